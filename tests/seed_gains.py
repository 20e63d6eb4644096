"""A distiller's gain over `random` per seed on digits at IPC 1: the kernel-regression methods' check.

Their ridge solves magnify float rounding, so one seed lands a point either side on CPUs with other kernels; the
tests judge three seeds instead of one. Evaluation as tests/test_beats_random.py: 2 networks of 60 epochs, no
augmentation, each seed's networks seeded by it.
"""
from __future__ import annotations

from distill_core.evaluate import evaluate_summary
from distill_core.methods import create_method


def gains_over_random(name: str, digits, steps: int, seeds: int = 3) -> list[float]:
    """Accuracy of `name`'s summary after `steps` steps minus `random`'s, for seeds 0 .. seeds-1 (fast settings)."""
    def accuracy(summary, seed: int) -> float:
        return evaluate_summary(summary, digits, "quick", reps=2, seed=seed, device="cpu", augment=None,
                                epochs=60).acc_mean

    gains = []
    for seed in range(seeds):
        random_acc = accuracy(create_method("random", digits, 1, seed=seed).summary(), seed)
        method = create_method(name, digits, 1, seed=seed)
        for _ in range(steps):
            method.step()
        gains.append(accuracy(method.summary(), seed) - random_acc)
    return gains

"""Plain-words warnings about what a run's numbers can and cannot say: a tiny test split, overfitting, and
evaluation networks whose training diverged.

- `tiny_test_warning`: with N test images each one is worth 100/N accuracy points, so on an upload with 20 test
  images a 5-point difference is one image. Said before a run (the distill page) whenever N < `TINY_TEST`.
- `overfitting_warning`: during or after a run, test accuracy (a moving mean of the periodic evaluations, each one
  network) has fallen clearly below its best while the training loss kept dropping: the summary is fitting the
  training images more than the task. "Clearly" means by at least `MIN_DROP` and by at least two test images.
- `diverged_evaluations_warning`: some live evaluations trained a network whose loss became NaN or infinite; their
  accuracies are plotted and averaged as measured, so the user is told which ones they are.

Pure: lists of numbers in, a sentence (or None) out.
"""
from __future__ import annotations

from typing import Any, Sequence

TINY_TEST = 100       # test images below which every one of them is worth more than a point of accuracy
MIN_DROP = 0.03       # accuracy (fraction) the moving mean must lose from its best to count as falling
WINDOW = 3            # evaluations in the moving mean
MIN_EVALS = 4         # evaluations before the warning can speak at all


def points_per_image(n_test: int) -> float:
    """Accuracy points (percent) one test image is worth."""
    return 100.0 / max(1, int(n_test))


def tiny_test_warning(n_test: int, threshold: int = TINY_TEST) -> str | None:
    """A sentence when the test split is tiny (fewer than `threshold` images), else None."""
    n = int(n_test)
    if n >= threshold:
        return None
    return (f"{n} test image{'s' if n != 1 else ''}: each is worth {points_per_image(n):.1f} accuracy points, so "
            f"differences of a few points between runs or steps are a single image and may be chance.")


def _moving_mean(values: Sequence[float], window: int) -> list[float]:
    out = []
    for i in range(len(values)):
        recent = values[max(0, i - window + 1):i + 1]
        out.append(sum(recent) / len(recent))
    return out


def _loss_near(rows: Sequence[dict[str, Any]], key: str, step: int) -> float | None:
    """The mean loss of the logged rows within a few rows of `step` (rows at or before it, the nearest last)."""
    before = [r for r in rows if r.get("step", 0) <= step and isinstance(r.get(key), (int, float))]
    recent = before[-5:]
    return sum(float(r[key]) for r in recent) / len(recent) if recent else None


def loss_key(rows: Sequence[dict[str, Any]]) -> str | None:
    """The training loss's key in the metrics rows ('loss' first, else the first key naming a loss)."""
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys and "loss" in k.lower() and isinstance(r[k], (int, float))]
    return "loss" if "loss" in keys else (keys[0] if keys else None)


def overfitting_warning(accuracy: Sequence[dict[str, Any]], metrics: Sequence[dict[str, Any]],
                        n_test: int) -> str | None:
    """A sentence, with the numbers, when test accuracy fell clearly from its best while the training loss
    kept dropping; None otherwise (too few evaluations, no loss logged, no clear fall, or the loss rose too).

    `accuracy`: the run's evaluations, {step, acc} in order; `metrics`: its logged rows, {step, <loss>, ...}."""
    if len(accuracy) < MIN_EVALS:
        return None
    key = loss_key(metrics)
    if key is None:
        return None
    steps = [int(a["step"]) for a in accuracy]
    smooth = _moving_mean([float(a["acc"]) for a in accuracy], WINDOW)
    best = max(range(len(smooth)), key=lambda i: smooth[i])
    drop = smooth[best] - smooth[-1]
    if best == len(smooth) - 1 or drop < max(MIN_DROP, 2 * points_per_image(n_test) / 100):
        return None
    loss_then, loss_now = _loss_near(metrics, key, steps[best]), _loss_near(metrics, key, steps[-1])
    if loss_then is None or loss_now is None or not loss_now < loss_then:
        return None
    return (f"Test accuracy fell from {100 * smooth[best]:.1f}% (step {steps[best]:,}) to {100 * smooth[-1]:.1f}% "
            f"(step {steps[-1]:,}) while the training {key} kept dropping ({loss_then:.4g} → {loss_now:.4g}): the "
            f"summary is fitting the training images rather than the task; fewer steps would do better here.")


def diverged_evaluations_warning(accuracy: Sequence[dict[str, Any]]) -> str | None:
    """A sentence when any evaluation row carries `diverged_epoch` (its network's training loss stopped being finite),
    naming how many and the latest one; None otherwise."""
    bad = [p for p in accuracy if p.get("diverged_epoch") is not None]
    if not bad:
        return None
    last = bad[-1]
    shown = ", ".join(f"{100 * float(p['acc']):.1f}%" for p in bad[-3:]) + (", …" if len(bad) > 3 else "")
    return (f"{len(bad)} of {len(accuracy)} evaluations trained a network whose loss became NaN or infinite (latest: "
            f"step {int(last['step']):,}, epoch {int(last['diverged_epoch'])}). Their accuracies ({shown}) are "
            "those of a broken network: they are marked ✕ on the curve and counted as measured.")

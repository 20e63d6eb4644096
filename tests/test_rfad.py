"""RFAD (random-feature KIP with a Platt loss) and the random-feature kernel it uses."""
from __future__ import annotations

import math

import pytest
import torch

from distill_core.errors import InvalidInputError
from distill_core.evaluate import eval_policy, evaluate_summary, resolve_label_loss
from distill_core.methods import create_method
from distill_core.random_features import random_convnet, readout_kernel, stacked_features

from seed_gains import gains_over_random

SMALL = {"width": "16", "num_models": "1", "target_batch": "200"}


def _fixed_target(ds, n: int = 400, seed: int = 123) -> tuple[torch.Tensor, torch.Tensor]:
    idx = torch.randperm(len(ds.y_train), generator=torch.Generator().manual_seed(seed))[:n]
    return ds.normalize(ds.x_train[idx]), ds.y_train[idx]


def _fixed_loss(method, nets, x_t, y_t) -> tuple[float, float]:
    with torch.no_grad():
        loss, pred = method.loss(nets, x_t, y_t)
    return float(loss), float((pred.argmax(1) == y_t).float().mean())


def test_random_convnets_are_seeded_gaussian_and_their_kernel_concentrates(digits):
    a, b = random_convnet(digits, 64, 3, seed=1), random_convnet(digits, 64, 3, seed=1)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not any(p.requires_grad for p in a.parameters())
    conv = [m for m in a.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(conv) == 3 and not any(isinstance(m, torch.nn.GroupNorm) for m in a.modules())
    w = conv[1].weight  # 64 × 64 × 3 × 3: std √(2 / 576)
    assert float(w.std()) == pytest.approx(math.sqrt(2 / 576), rel=0.05)
    assert float(conv[1].bias.std()) == pytest.approx(0.1, rel=0.3)
    # the estimate of the NNGP from M networks varies less between two independent draws as M grows
    x = digits.normalize(digits.x_train[:40])

    def kernel(seeds):
        nets = [random_convnet(digits, 64, 3, seed=s) for s in seeds]
        with torch.no_grad():
            f = stacked_features(nets, x)
        return readout_kernel(f, f)

    def spread(m):
        k1, k2 = kernel(range(m)), kernel(range(100, 100 + m))
        return float((k1 - k2).norm() / k1.norm())

    one, eight = spread(1), spread(8)
    assert eight < 0.6 * one, (one, eight)
    assert torch.allclose(kernel([3, 4]), kernel([3, 4]))


def test_rfad_loss_falls_on_a_fixed_kernel_and_target(digits):
    rfad = create_method("rfad", digits, 2, seed=0, overrides=SMALL)
    nets = [random_convnet(digits, 16, 3, seed=s) for s in (7, 8, 9)]
    x_t, y_t = _fixed_target(digits)
    before, acc_before = _fixed_loss(rfad, nets, x_t, y_t)
    metrics = [rfad.step() for _ in range(25)]
    after, acc_after = _fixed_loss(rfad, nets, x_t, y_t)
    assert set(metrics[0]) == {"loss", "acc"}
    # measured: loss 1.926 -> 1.790, accuracy on the fixed target 0.778 -> 0.805
    assert after < 0.95 * before, (before, after)
    assert acc_after > acc_before + 0.01, (acc_before, acc_after)
    assert float(rfad.log_temperature.detach()) != 0.0  # the Platt temperature is learned with the images
    s = rfad.summary()
    assert s.images.shape == (20, *digits.image_shape) and s.labels.tolist() == [c for c in range(10) for _ in "ab"]
    assert not s.soft and s.meta["steps"] == 25 and s.meta["platt_log_temperature"] == pytest.approx(
        float(rfad.log_temperature.detach()))
    assert s.meta["random_features"] == {"models": 1, "width": 16, "depth": 3}


def test_rfad_starts_from_random_and_repeats_under_a_seed(digits):
    a = create_method("rfad", digits, 2, seed=5, overrides=SMALL)
    b = create_method("rfad", digits, 2, seed=5, overrides=SMALL)
    rnd = create_method("random", digits, 2, seed=5).summary()
    assert torch.allclose(a.summary().images, rnd.images, atol=1e-5)
    for _ in range(3):
        assert a.step() == b.step()
    assert torch.equal(a.summary().images, b.summary().images)
    c = create_method("rfad", digits, 2, seed=6, overrides=SMALL)
    c.step()
    assert not torch.equal(c.summary().images, a.summary().images)


def test_rfad_learned_labels_are_soft_and_fit_with_mse(digits):
    rfad = create_method("rfad", digits, 1, seed=0, overrides={**SMALL, "learn_labels": "true", "loss": "mse"})
    start = rfad.y.detach().clone()
    assert torch.allclose(start.sum(1), torch.zeros(10), atol=1e-6)  # centred one-hot
    for _ in range(5):
        rfad.step()
    s = rfad.summary()
    assert s.soft and s.labels.shape == (10, 10) and s.labels.dtype == torch.float32
    assert not torch.allclose(s.labels, start)
    assert s.meta["soft_labels"] == "learned" and s.meta["label_loss"] == "mse"
    assert "platt_log_temperature" not in s.meta and float(rfad.log_temperature) == 0.0
    assert resolve_label_loss("auto", s) == "mse"
    res = evaluate_summary(s, digits, "quick", reps=1, epochs=2)
    assert res.details["label_loss"] == "mse" and res.details["augmentation"] == {"name": "none"}


def test_rfad_profiles_and_policy(digits):
    fast = create_method("rfad", digits, 10, seed=0)
    paper = create_method("rfad", digits, 10, seed=0, profile="paper")
    assert (fast.config.num_models, paper.config.num_models) == (2, 8)
    assert paper.config.width == 256 and paper.config.target_batch == 5120 and paper.config.learn_labels
    assert paper.config.ridge == 5e-3 and paper.config.loss == "platt"
    assert fast.default_steps == 200 and create_method("rfad", digits, 1, seed=0).default_steps == 300
    policy = eval_policy("rfad", "fashion-mnist", "quick")
    assert policy.augmentation == "none" and policy.soft_label_loss == "mse"
    assert create_method("rfad", digits, 1).family == "kernel"


def test_rfad_refuses_bad_settings(digits):
    for bad in ({"loss": "hinge"}, {"num_models": "0"}, {"lr": "nan"}, {"target_batch": "0"}, {"width": "99999"}):
        with pytest.raises(InvalidInputError):
            create_method("rfad", digits, 1, overrides=bad)


@pytest.mark.slow
def test_rfad_beats_random_on_digits(digits):
    """As tests/test_beats_random.py: IPC 1, fast settings, 150 steps, seeds 0-2 (measured: 0.60, 0.66, 0.55
    against random's 0.48, 0.44, 0.41 at 60 epochs without augmentation). One seed at 50 steps (measured +0.08 on
    one CPU, +0.049 on another) sat at the edge of its +0.05 bar."""
    gains = gains_over_random("rfad", digits, steps=150)
    assert min(gains) > 0.05 and sum(gains) / 3 >= 0.1, gains

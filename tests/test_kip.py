"""KIP (kernel inducing points) and the `krr` evaluation protocol."""
from __future__ import annotations

import json

import pytest
import torch

from distill_core.cli import main
from distill_core.errors import InvalidInputError
from distill_core.evaluate import evaluate_summary
from distill_core.kernels import KernelSpec, krr_predict
from distill_core.methods import create_method
from distill_core.methods.kip import centred_one_hot, evaluate_krr, random_shift


def _fixed_batch_loss(kip, x_t, y_t) -> float:
    with torch.no_grad():
        return float(kip.loss(x_t, y_t)[0])


def test_centred_one_hot():
    y = centred_one_hot(torch.tensor([0, 2]), 4)
    assert torch.allclose(y.sum(1), torch.zeros(2), atol=1e-6)
    assert torch.allclose(y[0], torch.tensor([0.75, -0.25, -0.25, -0.25]))


def test_kip_loss_falls_and_krr_accuracy_rises(digits):
    kip = create_method("kip", digits, 1, seed=0)
    gen = torch.Generator().manual_seed(123)
    idx = torch.randperm(len(digits.y_train), generator=gen)[:500]
    x_t, y_t = digits.normalize(digits.x_train[idx]), digits.y_train[idx]
    before_loss = _fixed_batch_loss(kip, x_t, y_t)
    before_acc = evaluate_krr(kip.summary(), digits).acc_mean
    losses = [kip.step()["loss"] for _ in range(60)]
    after_loss = _fixed_batch_loss(kip, x_t, y_t)
    after_acc = evaluate_krr(kip.summary(), digits).acc_mean
    assert after_loss < 0.7 * before_loss
    assert sum(losses[-10:]) < sum(losses[:10])
    assert after_acc > before_acc + 0.05, (before_acc, after_acc)
    s = kip.summary()
    assert s.images.shape == (10, *digits.image_shape) and s.labels.tolist() == list(range(10))
    assert s.images.min() >= 0 and s.images.max() <= 1  # clipped to the pixel range
    assert s.meta["steps"] == 60 and s.meta["kernel"]["name"] == "ntk"


def test_kip_starts_from_the_random_baseline_and_repeats_under_a_seed(digits):
    a, b = create_method("kip", digits, 2, seed=5), create_method("kip", digits, 2, seed=5)
    rnd = create_method("random", digits, 2, seed=5).summary()
    assert torch.allclose(a.summary().images, rnd.images, atol=1e-6)
    for _ in range(5):
        ma, mb = a.step(), b.step()
        assert ma == mb
    assert torch.equal(a.summary().images, b.summary().images)
    c = create_method("kip", digits, 2, seed=6)
    c.step()
    assert not torch.equal(c.summary().images, a.summary().images)


def test_kip_learned_labels_give_soft_summaries_that_krr_reads(digits):
    kip = create_method("kip", digits, 1, seed=0, overrides={"learn_labels": "true", "label_lr": "0.05"})
    start = kip.y.detach().clone()
    for _ in range(5):
        kip.step()
    s = kip.summary()
    assert s.soft and s.labels.shape == (10, 10)
    assert not torch.allclose(s.labels, start)
    res = evaluate_summary(s, digits, "krr")
    assert 0.0 <= res.acc_mean <= 1.0 and res.protocol == "krr"


@pytest.mark.parametrize("kernel", ["ntk", "nngp", "rbf"])
def test_kip_noise_init_and_every_kernel_step(digits, kernel):
    kip = create_method("kip", digits, 1, seed=0, overrides={"init": "noise", "kernel": kernel})
    assert kip.init_indices == []
    m = kip.step()
    assert set(m) == {"loss", "acc"} and m["loss"] > 0 and 0 <= m["acc"] <= 1


def test_kip_refuses_bad_settings(digits):
    for bad in ({"kernel": "poly"}, {"init": "zeros"}, {"lr": "nan"}, {"target_batch": "0"}, {"ridge": "-1"}):
        with pytest.raises(InvalidInputError):
            create_method("kip", digits, 1, overrides=bad)


def test_krr_protocol_is_kernel_ridge_regression_to_the_test_set(digits):
    s = create_method("random", digits, 3, seed=0).summary()
    res = evaluate_krr(s, digits)
    spec = KernelSpec("ntk", 3, 2.0, 0.01, 1.0)
    pred = krr_predict(spec, digits.normalize(s.images.double()), centred_one_hot(s.labels, 10, torch.float64),
                       digits.normalize(digits.x_test.double()), ridge=1e-6, dtype=torch.float64)
    assert res.acc_mean == pytest.approx(float((pred.argmax(1) == digits.y_test).double().mean()))
    assert res.reps == 1 and res.acc_std == 0.0
    # more support images help
    assert evaluate_krr(create_method("random", digits, 20, seed=0).summary(), digits).acc_mean > res.acc_mean


def test_random_shift_moves_whole_images():
    x = torch.zeros(3, 1, 5, 5)
    x[:, :, 2, 2] = 1.0
    gen = torch.Generator().manual_seed(0)
    y = random_shift(x, 1, gen)
    assert y.shape == x.shape and torch.allclose(y.sum((1, 2, 3)), torch.ones(3))
    assert random_shift(x, 0, gen).equal(x)


def test_cli_kip_with_krr_evaluation(tmp_path, capsys):
    assert main(["distill", "--dataset", "digits", "--method", "kip", "--ipc", "1", "--steps", "20", "--eval", "krr",
                 "--out", str(tmp_path / "k"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["eval"]["protocol"] == "krr" and 0.3 < out["eval"]["acc_mean"] <= 1.0
    assert out["steps"] == 20 and (tmp_path / "k" / "grid.png").is_file()


def test_kip_image_learning_rate_by_ipc(digits):
    one = create_method("kip", digits, 1, overrides={"lr_ipc1": "0.2", "lr": "0.03"})
    two = create_method("kip", digits, 2, overrides={"lr_ipc1": "0.2", "lr": "0.03"})
    assert one.opt.param_groups[0]["lr"] == 0.2 and two.opt.param_groups[0]["lr"] == 0.03

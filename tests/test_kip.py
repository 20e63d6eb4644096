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
from distill_core.methods.kip import centred_one_hot, evaluate_krr, random_shift, shift_images


def _fixed_target(ds, n: int = 500, seed: int = 123) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed set of real training images (normalised) and labels to judge a support set on."""
    idx = torch.randperm(len(ds.y_train), generator=torch.Generator().manual_seed(seed))[:n]
    return ds.normalize(ds.x_train[idx]), ds.y_train[idx]


def _fixed_batch_loss(kip, x_t, y_t) -> float:
    with torch.no_grad():
        return float(kip.loss(x_t, y_t)[0])


def test_centred_one_hot():
    y = centred_one_hot(torch.tensor([0, 2]), 4)
    assert torch.allclose(y.sum(1), torch.zeros(2), atol=1e-6)
    assert torch.allclose(y[0], torch.tensor([0.75, -0.25, -0.25, -0.25]))


def test_kip_loss_falls_and_krr_accuracy_rises(digits):
    kip = create_method("kip", digits, 1, seed=0)
    x_t, y_t = _fixed_target(digits)
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


def test_kip_learned_labels_fit_a_fixed_target_set_better_and_krr_reads_them(digits):
    x_t, y_t = _fixed_target(digits)
    after = {}
    for learn in ("false", "true"):
        kip = create_method("kip", digits, 1, seed=0, overrides={"learn_labels": learn, "label_lr": "0.05"})
        start = kip.y.detach().clone()
        for _ in range(30):
            kip.step()
        after[learn] = _fixed_batch_loss(kip, x_t, y_t)
        s = kip.summary()
        if learn == "true":
            assert s.soft and s.labels.shape == (10, 10) and s.meta["label_loss"] == "mse"
            assert not torch.allclose(s.labels, start)
            # krr regresses the learned labels as they are
            res = evaluate_summary(s, digits, "krr")
            pred = krr_predict(KernelSpec("ntk", 3, 2.0, 0.01, 1.0), digits.normalize(s.images.double()),
                               s.labels.double(), digits.normalize(digits.x_test.double()), ridge=1e-6)
            assert res.acc_mean == pytest.approx(float((pred.argmax(1) == digits.y_test).double().mean()))
            assert res.acc_mean > 0.8
        else:
            assert not s.soft and torch.equal(kip.y, start)
    # the same steps with labels learned too fit the held-fixed target set clearly better (0.103 vs 0.119)
    assert after["true"] < 0.93 * after["false"], after


@pytest.mark.parametrize("kernel", ["ntk", "nngp", "rbf"])
def test_kip_from_noise_learns_with_every_kernel(digits, kernel):
    kip = create_method("kip", digits, 1, seed=0, overrides={"init": "noise", "kernel": kernel})
    assert kip.init_indices == []
    x_t, y_t = _fixed_target(digits)
    with torch.no_grad():
        before, pred0 = kip.loss(x_t, y_t)
    metrics = [kip.step() for _ in range(30)]
    assert set(metrics[0]) == {"loss", "acc"}
    with torch.no_grad():
        after, pred = kip.loss(x_t, y_t)
    # noise predicts at chance (~0.1); 30 steps make one image per class a ~0.93 classifier of real digits
    assert float((pred0.argmax(1) == y_t).float().mean()) < 0.2
    assert float((pred.argmax(1) == y_t).float().mean()) > 0.85
    assert float(after) < 0.4 * float(before)
    assert metrics[-1]["acc"] > 0.85 and metrics[0]["acc"] < 0.2


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


def test_shift_images_moves_a_known_image_by_a_known_amount_with_edge_replication():
    x = torch.arange(20, dtype=torch.float32).view(1, 1, 4, 5)  # x[r, c] = 5r + c
    down_right = shift_images(x, torch.tensor([1]), torch.tensor([2]))[0, 0]
    expect = torch.tensor([[0, 0, 0, 1, 2],      # row 0 repeats the old top row (edge), columns 0-1 the left edge
                           [0, 0, 0, 1, 2],
                           [5, 5, 5, 6, 7],
                           [10, 10, 10, 11, 12]], dtype=torch.float32)
    assert torch.equal(down_right, expect)
    up_left = shift_images(x, torch.tensor([-2]), torch.tensor([-1]))[0, 0]
    assert torch.equal(up_left, torch.tensor([[11, 12, 13, 14, 14], [16, 17, 18, 19, 19],
                                              [16, 17, 18, 19, 19], [16, 17, 18, 19, 19]], dtype=torch.float32))
    assert torch.equal(shift_images(x, torch.tensor([0]), torch.tensor([0])), x)
    # per image, per channel: two images, two channels, each moved by its own amount
    two = torch.rand(2, 2, 6, 6, generator=torch.Generator().manual_seed(0))
    out = shift_images(two, torch.tensor([1, -1]), torch.tensor([0, 3]))
    assert torch.equal(out[0, :, 1:], two[0, :, :-1]) and torch.equal(out[0, :, 0], two[0, :, 0])
    assert torch.equal(out[1, :, :-1, 3:], two[1, :, 1:, :3])


def test_random_shift_applies_the_shifts_it_draws():
    x = torch.rand(64, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    y = random_shift(x, 2, torch.Generator().manual_seed(5))
    g = torch.Generator().manual_seed(5)
    dy, dx = torch.randint(-2, 3, (64,), generator=g), torch.randint(-2, 3, (64,), generator=g)
    assert torch.equal(y, shift_images(x, dy, dx))
    moved = (dy != 0) | (dx != 0)
    assert int(moved.sum()) > 50 and int(dy.abs().max()) == 2 and int(dx.abs().max()) == 2
    assert not torch.equal(y[moved], x[moved])  # really moved, not returned as given
    assert torch.equal(random_shift(x, 0, g), x)


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


def test_kip_float64_optimises_a_double_precision_support(digits):
    k64 = create_method("kip", digits, 2, seed=0, overrides={"float64": "true"})
    k32 = create_method("kip", digits, 2, seed=0)
    assert k64.x.dtype == torch.float64 and k64.y.dtype == torch.float64 and k32.x.dtype == torch.float32
    m64, m32 = k64.step(), k32.step()
    assert m64["loss"] == pytest.approx(m32["loss"], rel=1e-4)  # same batch, same start, same maths
    assert k64.x.dtype == torch.float64 and k64.summary().images.dtype == torch.float32


def test_kip_shift_translates_the_target_batches(digits):
    plain = create_method("kip", digits, 1, seed=3)
    shifted = create_method("kip", digits, 1, seed=3, overrides={"shift": "2"})
    x_a, y_a = plain._target_batch()
    state = plain.generator.get_state()  # both drew the same images; `shifted` then draws the shifts
    x_b, y_b = shifted._target_batch()
    assert torch.equal(y_a, y_b) and x_a.shape == x_b.shape == (500, 1, 8, 8)
    g = torch.Generator()
    g.set_state(state)
    assert torch.equal(x_b, random_shift(x_a, 2, g))
    assert float((x_b - x_a).abs().amax((1, 2, 3)).gt(0).float().mean()) > 0.8  # most images moved


def test_kip_half_life_halves_the_learning_rates(digits):
    kip = create_method("kip", digits, 2, seed=0, overrides={"half_life": "4", "learn_labels": "true",
                                                             "lr": "0.02", "label_lr": "0.04"})
    lrs = []
    for _ in range(9):
        kip.step()
        lrs.append([g["lr"] for g in kip.opt.param_groups])
    # step t (from 0) runs at base · 0.5^(t / half_life): half at step 4, a quarter at step 8
    assert lrs[0] == [0.02, 0.04]
    assert lrs[4] == pytest.approx([0.01, 0.02]) and lrs[8] == pytest.approx([0.005, 0.01])
    assert lrs[2] == pytest.approx([0.02 * 0.5 ** 0.5, 0.04 * 0.5 ** 0.5])
    constant = create_method("kip", digits, 2, seed=0, overrides={"lr": "0.02"})
    for _ in range(5):
        constant.step()
    assert [g["lr"] for g in constant.opt.param_groups] == [0.02]


def test_kip_uses_an_exact_support_diagonal_in_float32(digits):
    kip = create_method("kip", digits, 2, seed=0)
    k_ss = kip.spec(kip.x).detach()  # the K_ss of KIP's loss: float32, diagonal from the closed form
    exact = kip.spec(kip.x.detach().double(), dtype=torch.float64)
    assert k_ss.dtype == torch.float32
    rel = (k_ss.double().diagonal() - exact.diagonal()).abs() / exact.diagonal()
    assert float(rel.max()) < 1e-6  # the ridge is 1e-6 of the mean diagonal: an error above it would swamp it

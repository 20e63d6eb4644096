"""tesla and datm: the step-by-step trajectory gradient equals MTT's unrolled one and its graph memory does not grow
with the student's steps; learned soft labels; DATM's window, initialisation and threshold; seeds; beating random."""
from __future__ import annotations

import pytest
import torch

from distill_core.augment import SiameseAugment
from distill_core.evaluate import eval_policy, evaluate_summary, resolve_label_loss
from distill_core.methods import create_method, get_method
from distill_core.methods._trajectory import constant_memory_trajectory_grads, soft_cross_entropy
from distill_core.methods.datm import DATMConfig, start_window
from distill_core.methods.mtt import FlatParams, trajectory_loss
from distill_core.models import build_seeded

# a small trajectory matcher for the 8×8 digits (as tests/test_mtt.py's SMALL)
SMALL = {"width": 8, "lr_teacher": 0.05, "dsa": False, "num_experts": 2, "expert_train_epochs": 3,
         "max_start_epoch": 2, "expert_epochs": 1, "syn_steps": 5, "batch_syn": 0, "lr": 10.0}


@pytest.fixture
def experts_dir(tmp_path, monkeypatch):
    root = tmp_path / "experts"
    monkeypatch.setenv("DISTILL_EXPERTS_DIR", str(root))
    return root


@pytest.fixture(scope="module")
def case(digits):
    """A float64 student, a start and a nearby target, 20 real images (float64 makes the comparison tight)."""
    net = build_seeded(digits, "convnet", seed=0, width=8, depth=2).double()
    gen = torch.Generator().manual_seed(1)
    start = torch.cat([p.detach().flatten() for p in net.parameters()])
    target = start + 0.05 * torch.randn(start.shape, generator=gen, dtype=torch.float64)
    images = digits.normalize(digits.x_train[:20]).double()
    return FlatParams(net), start, target, images


def _unrolled_soft(student, start, target, x, y, lr, steps, batch, gen, augment):
    """MTT's unrolled loss with soft labels (y: logits), drawing batches as trajectory_loss does."""
    theta = start.clone().requires_grad_(True)
    n = len(x)
    for _ in range(steps):
        idx = torch.randperm(n, generator=gen)[:batch] if batch < n else None
        xb, yb = (x, y) if idx is None else (x[idx], y[idx])
        if augment is not None:
            xb = augment(xb, gen)
        g = torch.autograd.grad(soft_cross_entropy(student.forward(theta, xb), yb), theta, create_graph=True)[0]
        theta = theta - lr * g
    return ((theta - target) ** 2).sum() / ((start - target) ** 2).sum()


@pytest.mark.parametrize("batch,dsa", [(0, False), (7, False), (7, True)])
def test_the_gradient_equals_mtts_unrolled_gradient(digits, case, batch, dsa):
    student, start, target, images = case
    labels = torch.arange(10).repeat_interleave(2)
    augment = SiameseAugment.for_dataset("digits") if dsa else None
    x = images.clone().requires_grad_(True)
    lr = torch.tensor(0.1, dtype=torch.float64, requires_grad=True)
    loss = trajectory_loss(student, start, target, x, labels, lr, 6, batch, torch.Generator().manual_seed(5), augment)
    loss.backward()
    ours = constant_memory_trajectory_grads(student, start, target, images, labels, lr.detach(), 6, batch,
                                            torch.Generator().manual_seed(5), augment)
    assert float(ours.loss) == pytest.approx(float(loss.detach()), rel=1e-12)
    assert torch.allclose(ours.images, x.grad, rtol=1e-9, atol=1e-12)  # measured: ~1e-15 relative
    assert float(ours.lr) == pytest.approx(float(lr.grad), rel=1e-9)
    assert ours.labels is None
    # TESLA's published first-order decomposition holds each step's parameters fixed: close, but not equal
    first = constant_memory_trajectory_grads(student, start, target, images, labels, lr.detach(), 6, batch,
                                             torch.Generator().manual_seed(5), augment, exact=False)
    rel = float((first.images - x.grad).norm() / x.grad.norm())
    assert 0.02 < rel < 0.8, rel  # measured 0.18–0.30
    assert float(first.loss) == pytest.approx(float(loss.detach()), rel=1e-12)


def test_soft_label_gradients_equal_the_unrolled_ones(digits, case):
    student, start, target, images = case
    gen = torch.Generator().manual_seed(2)
    logits = torch.randn(20, 10, generator=gen, dtype=torch.float64)
    augment = SiameseAugment.for_dataset("digits")
    x, y = images.clone().requires_grad_(True), logits.clone().requires_grad_(True)
    lr = torch.tensor(0.1, dtype=torch.float64, requires_grad=True)
    _unrolled_soft(student, start, target, x, y, lr, 6, 7, torch.Generator().manual_seed(3), augment).backward()
    ours = constant_memory_trajectory_grads(student, start, target, images, logits, lr.detach(), 6, 7,
                                            torch.Generator().manual_seed(3), augment)
    assert ours.labels is not None and float(ours.labels.abs().max()) > 1e-4
    assert torch.allclose(ours.images, x.grad, rtol=1e-9, atol=1e-13)
    assert torch.allclose(ours.labels, y.grad, rtol=1e-9, atol=1e-13)
    assert float(ours.lr) == pytest.approx(float(lr.grad), rel=1e-9)


class _GraphMemory:
    """Bytes held by autograd for backward (saved tensors), tracked while alive; `peak` is the largest total."""

    def __init__(self) -> None:
        self.live = 0
        self.peak = 0

    def pack(self, t: torch.Tensor) -> "_Held":
        return _Held(self, t)


class _Held:
    def __init__(self, meter: _GraphMemory, t: torch.Tensor):
        self.meter, self.t, self.nbytes = meter, t, t.numel() * t.element_size()
        meter.live += self.nbytes
        meter.peak = max(meter.peak, meter.live)

    def __del__(self) -> None:
        self.meter.live -= self.nbytes


def _graph_peak(fn) -> int:
    meter = _GraphMemory()
    with torch.autograd.graph.saved_tensors_hooks(meter.pack, lambda held: held.t):
        fn()
    return meter.peak


def test_graph_memory_does_not_grow_with_the_steps(digits):
    student = FlatParams(build_seeded(digits, "convnet", seed=0, width=8, depth=2))
    start = torch.cat([p.detach().flatten() for p in student.model.parameters()])
    target = start + 0.05
    images = digits.normalize(digits.x_train[:20])
    labels = torch.arange(10).repeat_interleave(2)
    lr = torch.tensor(0.05)

    def ours(steps: int) -> int:
        return _graph_peak(lambda: constant_memory_trajectory_grads(student, start, target, images, labels, lr,
                                                                    steps, 0, torch.Generator().manual_seed(0)))

    def unrolled(steps: int) -> int:
        x = images.clone().requires_grad_(True)
        return _graph_peak(lambda: trajectory_loss(student, start, target, x, labels, lr.clone().requires_grad_(True),
                                                   steps, 0, torch.Generator().manual_seed(0)).backward())

    assert ours(16) == ours(2) > 0  # one step's graph, however many steps
    assert unrolled(16) > 5 * unrolled(2)  # MTT keeps every step's activations until backward
    assert ours(16) < unrolled(16) / 5


@pytest.mark.slow
def test_tesla_with_hard_labels_makes_mtts_updates(digits, experts_dir):
    runs = {}
    for name, extra in (("mtt", {}), ("tesla", {"soft_labels": False})):
        method = create_method(name, digits, 2, seed=0, overrides={**SMALL, **extra})
        losses = [method.step()["loss"] for _ in range(3)]
        runs[name] = (method.images.detach().clone(), losses, method.syn_lr)
    assert torch.allclose(runs["mtt"][0], runs["tesla"][0], atol=1e-5)
    assert runs["mtt"][1] == pytest.approx(runs["tesla"][1], rel=1e-5)
    assert runs["mtt"][2] == pytest.approx(runs["tesla"][2], rel=1e-6)


def _fixed_loss(method, labels) -> float:
    """The mean matching loss over every (expert, start epoch) pair, all images, no augmentation."""
    total, count = 0.0, 0
    for expert in method.experts:
        for t in range(method.config.max_start_epoch):
            out = constant_memory_trajectory_grads(method.student, expert.trajectory[t], expert.trajectory[t + 1],
                                                   method.images.detach(), labels, torch.tensor(method.syn_lr),
                                                   method.config.syn_steps, 0, torch.Generator())
            total, count = total + float(out.loss), count + 1
    return total / count


def test_tesla_learns_images_labels_and_rate_and_the_loss_falls(digits, experts_dir):
    method = create_method("tesla", digits, 2, seed=0, overrides=SMALL)
    assert get_method("tesla").family == "trajectory" and method.summary().labels.dtype == torch.int64
    assert method.load_experts() == 2  # what the first step does, done here to see the labels before any update
    method.prepare()
    assert method.label_logits is not None
    start_labels = method.label_logits.detach().clone()
    with torch.no_grad():  # the labels start as expert 0's logits (at the end of its trajectory) on the images
        expected = method.student.forward(method.experts[0].trajectory[3], method.images.detach())
    assert torch.allclose(start_labels, expected)
    before = _fixed_loss(method, method.label_logits.detach())
    metrics = [method.step() for _ in range(25)]
    assert all(0 < m["loss"] < 10 and "experts_trained" not in m for m in metrics)
    after = _fixed_loss(method, method.label_logits.detach())
    assert after < 0.9 * before, (before, after)
    assert not torch.allclose(method.label_logits.detach(), start_labels) and method.syn_lr != pytest.approx(0.05)
    summary = method.summary()
    assert summary.method == "tesla" and summary.images.shape == (20, 1, 8, 8) and summary.meta["steps"] == 25
    assert summary.labels.dtype == torch.float32 and summary.labels.shape == (20, 10)
    assert torch.allclose(summary.labels.sum(1), torch.ones(20)) and summary.meta["soft_labels"] == "learned"
    assert summary.meta["syn_lr"] == pytest.approx(method.syn_lr) and summary.meta["experts"] == 2
    assert resolve_label_loss("auto", summary) == "soft_ce"


def test_the_evaluation_policy_of_the_family():
    for name in ("tesla", "datm"):
        policy = eval_policy(name, "fashion-mnist", "quick")
        assert (policy.augmentation, policy.epochs, policy.lr_from, policy.soft_label_loss) == ("dsa", 200, "syn_lr",
                                                                                                "soft_ce")


def test_datm_window_grows_with_progress_and_follows_the_ipc():
    cfg = DATMConfig(min_start_epoch=0, current_max_start_epoch=10, max_start_epoch=20, expansion_end=1000,
                     expert_train_epochs=50)
    assert [start_window(cfg, s) for s in (0, 500, 999, 1000, 5000)] == [(0, 10), (0, 15), (0, 19), (0, 20), (0, 20)]
    assert start_window(DATMConfig(max_start_epoch=4, expert_train_epochs=6), 123) == (0, 4)  # no growth
    # the profiles: an early window at IPC 1, later ones as the IPC grows (paper: DATM's CIFAR-10 configs)
    paper = {ipc: get_method("datm").Config.for_dataset("cifar10", "paper", ipc) for ipc in (1, 10, 50)}
    assert [(c.min_start_epoch, c.current_max_start_epoch, c.max_start_epoch, c.expansion_end)
            for c in paper.values()] == [(0, 0, 4, 0), (0, 10, 20, 1000), (0, 20, 40, 2000)]
    fast = {ipc: get_method("datm").Config.for_dataset("fashion-mnist", "fast", ipc) for ipc in (1, 10, 50)}
    assert [start_window(c, 10**6)[1] for c in fast.values()] == [2, 4, 5]
    for c in fast.values():
        c.validate()


def test_datm_starts_from_correctly_classified_images_and_draws_in_its_window(digits, experts_dir):
    settings = {**SMALL, "expert_train_epochs": 4, "max_start_epoch": 3, "current_max_start_epoch": 1,
                "expansion_end": 6, "threshold": 10.0}
    method = create_method("datm", digits, 3, seed=0, overrides=settings)
    random_pick = method.init_indices
    metrics = [method.step() for _ in range(8)]
    starts = [int(m["start_epoch"]) for m in metrics]
    assert starts[:2] == [0, 0] and all(s < start_window(method.config, i)[1] for i, s in enumerate(starts))
    assert max(starts) >= 1  # the window has widened
    picks = torch.tensor(method.init_indices)
    assert method.init_indices != random_pick and len(picks) == 30
    assert torch.equal(digits.y_train[picks], torch.arange(10).repeat_interleave(3))
    with torch.no_grad():  # expert 0 at the end of its 4 epochs, on every training image
        right = method.student.forward(method.experts[0].trajectory[4], method.x_real).argmax(1) == digits.y_train
    for c in range(10):  # each class: as many correctly classified images as it has, up to the IPC (then others)
        assert int(right[picks[3 * c:3 * c + 3]].sum()) == min(3, int(right[digits.y_train == c].sum()))
    assert int(right[picks].sum()) >= 20
    summary = method.summary()
    assert summary.meta["soft_labels"] == "learned" and summary.meta["start_window"] == [0, 3]
    assert summary.meta["skipped_updates"] == 0


def test_datm_label_init_averages_the_experts_that_are_right(digits, experts_dir):
    method = create_method("datm", digits, 2, seed=0, overrides={**SMALL, "init_correct": False})
    method.load_experts()
    logits = torch.stack([method.student.forward(e.trajectory[3], method.images.detach()).detach()
                          for e in method.experts])
    init = method.initial_label_logits()
    for k in range(20):
        right = logits[:, k].argmax(1) == method.labels[k]
        expected = logits[right, k].mean(0) if right.any() else logits[:, k].mean(0)
        assert torch.allclose(init[k], expected, atol=1e-5)


def test_datm_skips_updates_above_its_threshold(digits, experts_dir):
    method = create_method("datm", digits, 1, seed=0, overrides={**SMALL, "threshold": 1e-6})
    method.step()
    start = method.images.detach().clone()
    for _ in range(3):
        method.step()
    assert torch.equal(method.images.detach(), start) and method.summary().meta["skipped_updates"] == 4


@pytest.mark.parametrize("name", ["tesla", "datm"])
def test_runs_repeat_under_a_seed(name, digits, experts_dir):
    runs = []
    for seed in (0, 0, 1):
        method = create_method(name, digits, 1, seed=seed, overrides={**SMALL, "dsa": True, "batch_syn": 5})
        losses = [method.step()["loss"] for _ in range(3)]
        runs.append((method.images.detach().clone(), losses, method.summary().labels))
    assert torch.equal(runs[0][0], runs[1][0]) and runs[0][1] == runs[1][1] and torch.equal(runs[0][2], runs[1][2])
    assert not torch.equal(runs[0][0], runs[2][0])


@pytest.mark.slow
@pytest.mark.parametrize("name", ["tesla", "datm"])
def test_beats_random_on_digits(name, digits, experts_dir):
    """As tests/test_beats_random.py, but evaluated for 300 epochs: networks trained on soft labels take longer to
    fit them (60 epochs left tesla's set at 0.14–0.33 while its argmax labels gave 0.78; 500 epochs: 0.81).
    Measured for tesla: 0.814 after 20 steps vs random's 0.704."""
    def accuracy(summary) -> float:
        return evaluate_summary(summary, digits, "quick", reps=2, seed=0, device="cpu", augment=None,
                                epochs=300).acc_mean

    random_acc = accuracy(create_method("random", digits, 1, seed=0).summary())
    method = create_method(name, digits, 1, seed=0, overrides={
        "width": 32, "num_experts": 1, "expert_train_epochs": 20, "max_start_epoch": 2, "syn_steps": 10})
    for _ in range(20):
        method.step()
    summary = method.summary()
    acc = accuracy(summary)
    assert summary.soft and acc >= random_acc + 0.05, f"{name}: {acc:.3f} vs random {random_acc:.3f}"

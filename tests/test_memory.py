"""Memory known before a run: the analytic estimate, the settings chosen by memory (mtt's batch, dm's class
slices), gradient checkpointing of MTT's unrolled student, and the CLI's --dry-run and refusal."""
from __future__ import annotations

import json

import pytest
import torch

from distill_core import memory
from distill_core.cli import main
from distill_core.errors import InvalidInputError
from distill_core.memory import DatasetShape, estimate, estimate_peak_bytes
from distill_core.methods import create_method, get_method
from distill_core.methods.mtt import FlatParams, trajectory_loss
from distill_core.augment import SiameseAugment
from distill_core.models import build_seeded

GB = 2**30
CIFAR10 = DatasetShape(50_000, 10, 3, 32, 32)
CIFAR100 = DatasetShape(50_000, 100, 3, 32, 32)
MNIST = DatasetShape(60_000, 10, 1, 28, 28)


def paper(method: str, dataset: str, ipc: int, **overrides):
    return get_method(method).Config.from_overrides(dataset, overrides, profile="paper", ipc=ipc)


@pytest.mark.parametrize("method", ["dm", "dc", "dsa", "mtt", "kip"])
def test_the_estimate_grows_with_ipc_and_holds_the_dataset(method):
    cfg = get_method(method).Config()
    sizes = [estimate_peak_bytes(method, MNIST, ipc, cfg) for ipc in (1, 10, 50)]
    assert sizes[0] < sizes[1] < sizes[2]
    # every method keeps the normalised training set on its device (kip: up to 1 GiB of it)
    assert estimate(method, MNIST, 1, cfg).parts["dataset"] == 60_000 * 784 * 4
    if method == "kip":
        big = (1_300_000, 1000, 3, 64, 64)  # ImageNet-sized at 64 px: KIP normalises each target batch instead
        assert estimate("kip", big, 1, cfg).parts["dataset"] == 0
        assert estimate("kip", big, 1, cfg, device="cuda").parts["dataset"] == 1_300_000 * 3 * 64 * 64 * 4


def test_activations_scale_with_width_and_images():
    """Activations are linear in the width (beyond the input image) and in the images differentiated."""
    cfg = get_method("dm").Config(batch_real=64)
    act = {w: estimate("dm", CIFAR10, 50, get_method("dm").Config(width=w)).parts["activations"] for w in (64, 128)}
    assert 1.9 < act[128] / act[64] < 2.05
    a10, a50 = (estimate("dm", CIFAR10, i, cfg).parts["activations"] for i in (10, 50))
    assert a50 / a10 == pytest.approx(5.0, rel=0.01)
    counts = memory.convnet_counts(CIFAR10, 128, 3)
    # ConvNet-3 width 128 on 32×32: 3×1024 input + blocks of 2 × 128 × s² + the pooled 128 × (s/2)²
    assert counts.saved == 3 * 1024 + 2.25 * 128 * (1024 + 256 + 64)
    assert counts.params == sum(p.numel() for p in build_seeded(_Fake(CIFAR10), "convnet", width=128).parameters())


class _Fake:
    """Just enough of an ImageSet for `build_for`."""

    def __init__(self, shape: DatasetShape):
        self.image_shape = (shape.channels, shape.height, shape.width)
        self.num_classes = shape.num_classes


def test_mtt_grows_with_unrolled_steps_and_checkpointing_flattens_it():
    cfg = paper("mtt", "cifar10", 50)
    by_steps = [estimate("mtt", CIFAR10, 50, paper("mtt", "cifar10", 50, syn_steps=s)).parts["unrolled student"]
                for s in (10, 20, 40)]
    assert by_steps[1] / by_steps[0] == pytest.approx(2.0, rel=0.02)
    assert by_steps[2] / by_steps[1] == pytest.approx(2.0, rel=0.02)
    plain = estimate_peak_bytes("mtt", CIFAR10, 50, cfg, "cpu")
    assert 30 * GB < plain < 90 * GB  # the paper's recipe needs tens of GB (reported: ~43 GB at CIFAR-10 IPC 50)
    cp = paper("mtt", "cifar10", 50, checkpoint=True)
    assert estimate_peak_bytes("mtt", CIFAR10, 50, cp, "cpu") < plain / 10


def test_cifar100_ipc50_fits_80gb_by_checkpointing_or_a_smaller_batch():
    cfg = paper("mtt", "cifar100", 50)
    budget = 80 * GB
    assert estimate_peak_bytes("mtt", CIFAR100, 50, cfg, "cuda") > budget  # the whole set per step does not fit
    assert estimate_peak_bytes("mtt", CIFAR100, 50, paper("mtt", "cifar100", 50, checkpoint=True), "cuda") < budget
    batch = memory.fitting_batch_syn(CIFAR100, 50, cfg, "cuda", budget=budget)
    assert batch > 0 and batch % 100 == 0
    smaller = paper("mtt", "cifar100", 50, batch_syn=batch)
    assert estimate_peak_bytes("mtt", CIFAR100, 50, smaller, "cuda") <= budget
    larger = paper("mtt", "cifar100", 50, batch_syn=batch + 100)
    assert estimate_peak_bytes("mtt", CIFAR100, 50, larger, "cuda") > budget  # the largest that fits
    assert memory.fitting_batch_syn(CIFAR100, 50, cfg, "cuda", budget=10**15) == 0  # all fit: the whole set
    assert memory.fitting_batch_syn(CIFAR100, 50, cfg, "cpu") == 0  # no budget off CUDA: the recipe as it is


def test_dm_slices_classes_only_when_one_pass_does_not_fit():
    cfg = paper("dm", "cifar100", 50)
    one_pass = estimate_peak_bytes("dm", CIFAR100, 50, cfg, "cuda")
    assert memory.classes_per_pass(CIFAR100, 50, cfg, torch.device("cuda"), budget=2 * one_pass) == 100
    per = memory.classes_per_pass(CIFAR100, 50, cfg, torch.device("cuda"), budget=one_pass // 2)
    assert 1 <= per < 100
    assert memory.classes_per_pass(CIFAR100, 50, get_method("dm").Config(class_batch=7), torch.device("cpu")) == 7


def test_dm_sliced_gradient_equals_one_pass(digits):
    """The DM loss is a sum over classes: passes over slices of 3 classes give the one-pass update."""
    images = []
    for class_batch in (0, 3):
        m = create_method("dm", digits, 2, seed=5, overrides={"width": 8, "batch_real": 8,
                                                              "class_batch": class_batch})
        assert m.class_batch == (10 if class_batch == 0 else 3)
        loss = m.step()["loss"]
        images.append((m.images.detach().clone(), loss))
    assert torch.allclose(images[0][0], images[1][0], atol=1e-5, rtol=1e-5)
    assert images[0][1] == pytest.approx(images[1][1], rel=1e-5)
    assert not torch.equal(images[0][0], create_method("dm", digits, 2, seed=5).images.detach())  # it moved


@pytest.mark.parametrize("augment", [False, True])
def test_checkpointed_unroll_has_the_plain_gradient(digits, augment):
    """The checkpointed student (each step recomputed in the backward) gives the plain unroll's loss and the same
    gradients for the images and the learning rate."""
    student = FlatParams(build_seeded(digits, "convnet", seed=0, width=8, depth=2))
    start = torch.cat([p.detach().flatten() for p in student.model.parameters()])
    target = start + 0.05 * torch.randn(start.shape, generator=torch.Generator().manual_seed(1))
    aug = SiameseAugment.for_dataset(digits.name) if augment else None
    results = []
    for checkpoint in (False, True):
        images = digits.normalize(digits.x_train[:20]).clone().requires_grad_(True)
        log_lr = torch.tensor(-2.0, requires_grad=True)
        loss = trajectory_loss(student, start, target, images, digits.y_train[:20], log_lr.exp(), 4, 10,
                               torch.Generator().manual_seed(3), aug, checkpoint=checkpoint)
        loss.backward()
        results.append((loss.detach(), images.grad.clone(), log_lr.grad.clone()))
    (l0, g0, lr0), (l1, g1, lr1) = results
    assert torch.allclose(l0, l1, rtol=1e-5)
    assert g0.abs().max() > 0 and torch.allclose(g0, g1, rtol=1e-4, atol=1e-7)
    assert torch.allclose(lr0, lr1, rtol=1e-4)


def test_mtt_method_checkpointing_repeats_the_plain_run(digits, tmp_path, monkeypatch):
    monkeypatch.setenv("DISTILL_EXPERTS_DIR", str(tmp_path))
    small = {"width": 8, "dsa": False, "num_experts": 1, "expert_train_epochs": 2, "max_start_epoch": 1,
             "expert_epochs": 1, "syn_steps": 3, "batch_syn": 10}
    runs = []
    for checkpoint in (False, True):
        m = create_method("mtt", digits, 2, seed=0, overrides={**small, "checkpoint": checkpoint})
        metrics = [m.step() for _ in range(2)]
        runs.append((m.images.detach(), metrics[-1]["loss"], metrics[-1]["syn_lr"]))
    assert torch.allclose(runs[0][0], runs[1][0], atol=1e-4)
    assert runs[0][1] == pytest.approx(runs[1][1], rel=1e-4) and runs[0][2] == pytest.approx(runs[1][2], rel=1e-4)


def test_a_run_that_cannot_fit_is_refused_with_one_message():
    est = estimate("mtt", CIFAR100, 50, paper("mtt", "cifar100", 50), "cpu")
    with pytest.raises(InvalidInputError, match=r"needs about .* GB but only 8\.0 GB is available on cpu; lower "
                                                r"batch_syn"):
        memory.check_fits(est, 8 * GB)
    memory.check_fits(est, None)  # unknown: not refused
    memory.check_fits(estimate("dm", CIFAR10, 1, get_method("dm").Config()), 8 * GB)


def test_a_built_method_is_checked_with_the_settings_it_chose(digits, monkeypatch):
    m = create_method("dm", digits, 2, seed=0, overrides={"width": 8, "class_batch": 4})
    est = memory.check_method_fits(m)
    assert est.notes == ["4 classes per pass"] and est.total == estimate_peak_bytes("dm", digits, 2, m.config)
    monkeypatch.setattr(memory, "available_bytes", lambda device: est.total // 2)
    with pytest.raises(InvalidInputError, match="lower batch_real or class_batch"):
        memory.check_method_fits(m)


def test_cli_dry_run_prints_the_estimate_and_does_nothing(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("DISTILL_EXPERTS_DIR", str(tmp_path / "experts"))
    out = tmp_path / "run"
    assert main(["distill", "--dataset", "digits", "--method", "mtt", "--ipc", "10", "--dry-run", "--json",
                 "--device", "cpu", "--out", str(out)]) == 0
    payload = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert payload["dry_run"] is True and payload["memory"]["method"] == "mtt"
    assert payload["memory"]["peak_bytes"] > payload["memory"]["parts"]["dataset"] > 0
    assert payload["steps"] > 0 and isinstance(payload["fits"], bool)
    assert payload["first_use_stored"] is False  # no experts in this folder: their training is in the estimate
    assert not out.exists() and not (tmp_path / "experts").exists()  # no work: no run folder, no experts trained
    assert main(["distill", "--dataset", "digits", "--method", "dm", "--ipc", "1", "--dry-run", "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["first_use_stored"] is None
    assert main(["distill", "--dataset", "digits", "--method", "dm", "--ipc", "1", "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert "estimated peak memory of dm on cpu" in text and "expected time on this CPU" in text


def test_cli_refuses_a_run_that_cannot_fit_before_any_work(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(memory, "available_bytes", lambda device: 2**20)
    out = tmp_path / "run"
    code = main(["distill", "--dataset", "digits", "--method", "dm", "--ipc", "1", "--steps", "1", "--device", "cpu",
                 "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "needs about" in err and "available on cpu" in err and not out.exists()


def _can_measure() -> bool:
    import os

    return os.path.exists("/proc/self/clear_refs") and os.access("/proc/self/clear_refs", os.W_OK)


@pytest.mark.slow
@pytest.mark.skipif(not _can_measure(), reason="measuring a process's peak needs Linux's /proc/self/clear_refs")
@pytest.mark.parametrize("case", ["dm-10", "kip-10"])
def test_the_estimate_is_within_a_quarter_of_the_measured_peak(case):
    """A fresh process measures its peak resident memory around two steps (benchmarks/memory_estimate.py)."""
    from benchmarks.memory_estimate import measure

    row = measure(case)
    assert row["measured"] > 5 * 2**20
    assert 0.75 < row["ratio"] < 1.25, row


def test_an_app_job_that_cannot_fit_is_refused_before_it_starts(digits, monkeypatch):
    """The app's Start check (`jobs.check_spec`) refuses, with the estimate, a run larger than the memory there is;
    the same run passes when the memory is there."""
    from distill_core import jobs

    spec = jobs.JobSpec(method="dm", dataset="digits", ipc=10, steps=5)
    need = estimate("dm", digits, 10, get_method("dm").Config.for_dataset("digits", ipc=10)).total
    monkeypatch.setattr(memory, "available_bytes", lambda device: int(need * 2))
    jobs.check_spec(spec, digits)
    monkeypatch.setattr(memory, "available_bytes", lambda device: int(need // 4))
    with pytest.raises(InvalidInputError, match="needs about .* but only .* is available"):
        jobs.check_spec(spec, digits)

"""MTT: experts trained once and stored, reused afterwards; the trajectory loss; distillation lowering it; the CLI."""
from __future__ import annotations

import copy

import json

import pytest
import torch

from distill_core.cli import main
from distill_core.experts import ExpertSpec, ensure_experts, load_experts
from distill_core.methods import create_method
from distill_core.methods.mtt import FlatParams, trajectory_loss
from distill_core.models import build_seeded


SPEC = ExpertSpec(width=8, lr=0.05, augment=False)  # what SMALL's mtt trains
LEARNS = ExpertSpec(width=8, lr=0.1, batch_size=32, augment=False)  # more steps per epoch: learns in 3 epochs
# a small MTT for the 8×8 digits: width-8 ConvNet, 2 experts of 3 epochs, short student runs
SMALL = {"width": 8, "lr_teacher": 0.05, "dsa": False, "num_experts": 2, "expert_train_epochs": 3,
         "max_start_epoch": 2, "expert_epochs": 1, "syn_steps": 5, "batch_syn": 0}


@pytest.fixture
def experts_dir(tmp_path, monkeypatch):
    root = tmp_path / "experts"
    monkeypatch.setenv("DISTILL_EXPERTS_DIR", str(root))
    return root


def _param_count(dataset, width: int = 8) -> int:
    return sum(p.numel() for p in build_seeded(dataset, "convnet", seed=0, width=width).parameters())


def test_experts_are_trained_stored_and_reused(digits, experts_dir):
    first = ensure_experts(digits, 2, 3, LEARNS, root=experts_dir)
    assert (first.trained, first.reused) == (2, 0)
    files = sorted(p.name for p in first.folder.glob("*.pt"))
    assert files == ["expert_000.pt", "expert_001.pt"] and first.folder.is_relative_to(experts_dir)
    for e in first.experts:
        assert e.trajectory.shape == (4, _param_count(digits)) and e.epochs == 3
        steps = (e.trajectory[1:] - e.trajectory[:-1]).norm(dim=1)
        assert bool((steps > 0).all())  # the parameters move every epoch
        # it starts at the seeded initialisation of expert i
        init = torch.cat([p.detach().flatten() for p in build_seeded(digits, "convnet", seed=e.index, width=8)
                          .parameters()])
        assert torch.equal(e.trajectory[0], init)
    # training them made real progress: the last point classifies the test split well
    student = FlatParams(build_seeded(digits, "convnet", seed=0, width=8))
    with torch.no_grad():
        logits = student.forward(first.experts[0].trajectory[-1], digits.normalize(digits.x_test))
    assert float((logits.argmax(1) == digits.y_test).float().mean()) > 0.3

    mtimes = [p.stat().st_mtime_ns for p in sorted(first.folder.glob("*.pt"))]
    again = ensure_experts(digits, 2, 2, LEARNS, root=experts_dir)  # fewer epochs asked: the stored ones serve
    assert (again.trained, again.reused) == (0, 2)
    assert all(torch.equal(a.trajectory, b.trajectory) for a, b in zip(first.experts, again.experts))
    assert [p.stat().st_mtime_ns for p in sorted(first.folder.glob("*.pt"))] == mtimes  # not rewritten

    more = ensure_experts(digits, 3, 3, LEARNS, root=experts_dir)  # one more expert: only it is trained
    assert (more.trained, more.reused) == (1, 2) and len(load_experts(more.folder)) == 3
    # another recipe lives in its own folder
    other = ExpertSpec(width=8, lr=0.01, batch_size=32, augment=False)
    assert other.folder(digits.name, experts_dir) != LEARNS.folder(digits.name, experts_dir)


def test_experts_repeat_and_broken_files_are_retrained(digits, tmp_path):
    a = ensure_experts(digits, 1, 1, SPEC, root=tmp_path / "a")
    b = ensure_experts(digits, 1, 1, SPEC, root=tmp_path / "b")
    assert torch.equal(a.experts[0].trajectory, b.experts[0].trajectory)  # expert i always from seed i
    path = a.experts[0].path
    path.write_bytes(path.read_bytes()[:100])  # truncated
    again = ensure_experts(digits, 1, 1, SPEC, root=tmp_path / "a")
    assert again.trained == 1 and torch.equal(again.experts[0].trajectory, b.experts[0].trajectory)
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_a_stop_stores_no_partial_expert(digits, tmp_path):
    epochs_seen: list[tuple[int, int]] = []
    report = ensure_experts(digits, 2, 3, SPEC, root=tmp_path, on_progress=lambda i, e: epochs_seen.append((i, e)),
                            should_stop=lambda: len(epochs_seen) >= 2)
    assert report.experts == [] and report.trained == 0 and epochs_seen == [(0, 1), (0, 2)]
    assert not list(tmp_path.rglob("*.pt"))


def _pair(digits, experts_dir):
    report = ensure_experts(digits, 1, 2, SPEC, root=experts_dir)
    traj = report.experts[0].trajectory
    return FlatParams(build_seeded(digits, "convnet", seed=0, width=8)), traj[0], traj[2]


def test_loss_is_one_when_the_student_does_not_move(digits, experts_dir):
    student, start, target = _pair(digits, experts_dir)
    gen = torch.Generator().manual_seed(0)
    images = torch.randn(20, 1, 8, 8, generator=gen, requires_grad=True)
    labels = torch.arange(10).repeat_interleave(2)
    still = trajectory_loss(student, start, target, images, labels, torch.tensor(0.0), 5, 0, gen)
    assert float(still.detach()) == pytest.approx(1.0, abs=1e-6)
    none = trajectory_loss(student, start, target, images, labels, torch.tensor(0.05), 0, 0, gen)
    assert float(none.detach()) == pytest.approx(1.0, abs=1e-6)
    # moving with the gradient of the real data brings the student closer than it started
    real_x = digits.normalize(digits.x_train[:300])
    moved = trajectory_loss(student, start, target, real_x, digits.y_train[:300], torch.tensor(0.05), 10, 100, gen)
    assert float(moved.detach()) < 1.0


def test_loss_is_differentiable_in_images_and_learning_rate(digits, experts_dir):
    student, start, target = _pair(digits, experts_dir)
    gen = torch.Generator().manual_seed(0)
    images = torch.randn(20, 1, 8, 8, generator=gen, requires_grad=True)
    lr = torch.tensor(0.05, requires_grad=True)
    loss = trajectory_loss(student, start, target, images, torch.arange(10).repeat_interleave(2), lr, 3, 10, gen)
    loss.backward()
    assert images.grad is not None and float(images.grad.abs().sum()) > 0 and torch.isfinite(images.grad).all()
    assert lr.grad is not None and float(lr.grad) != 0


def test_mtt_trains_experts_on_first_use_and_the_loss_falls(digits, experts_dir):
    method = create_method("mtt", digits, 2, seed=0, overrides={**SMALL, "lr": 10.0})
    assert type(method).first_use_stored(digits, method.config) is False  # the run-time estimate counts training
    first = method.step()
    assert first["experts_trained"] == 2.0 and method.experts is not None and len(method.experts) == 2
    assert str(experts_dir) in method.experts_folder
    assert type(method).first_use_stored(digits, method.config) is True
    longer = copy.copy(method.config)
    longer.expert_train_epochs = SMALL["expert_train_epochs"] + 1  # stored experts are too short: trained again
    assert type(method).first_use_stored(digits, longer) is False
    three = copy.copy(method.config)
    three.num_experts = 3
    assert type(method).first_use_stored(digits, three) is False

    def fixed_loss() -> float:  # every (expert, start epoch) pair, all images, no augmentation: deterministic
        total = 0.0
        for expert in method.experts:
            for t in range(method.config.max_start_epoch):
                loss = trajectory_loss(method.student, expert.trajectory[t], expert.trajectory[t + 1],
                                       method.images.detach(), method.labels, torch.tensor(method.syn_lr), 5, 0,
                                       torch.Generator())
                total += float(loss.detach())
        return total / (len(method.experts) * method.config.max_start_epoch)

    before = fixed_loss()
    losses = [method.step()["loss"] for _ in range(30)]
    assert all(0 < loss < 10 for loss in losses) and "experts_trained" not in method.step()
    after = fixed_loss()
    assert after < 0.9 * before, (before, after)
    assert method.syn_lr != pytest.approx(0.05)  # the student's learning rate is learned too
    summary = method.summary()
    assert summary.meta["experts"] == 2 and summary.meta["syn_lr"] == pytest.approx(method.syn_lr)

    again = create_method("mtt", digits, 2, seed=0, overrides={**SMALL, "lr": 10.0})
    assert "experts_trained" in again.step() and again.load_experts() == 0  # stored: reused, not retrained


def test_mtt_repeats_under_a_seed(digits, experts_dir):
    runs = []
    for seed in (0, 0, 1):
        method = create_method("mtt", digits, 1, seed=seed, overrides={**SMALL, "dsa": True, "batch_syn": 5})
        metrics = [method.step() for _ in range(3)]
        runs.append((method.images.detach().clone(), [m["loss"] for m in metrics], method.syn_lr))
    assert torch.equal(runs[0][0], runs[1][0]) and runs[0][1] == runs[1][1] and runs[0][2] == runs[1][2]
    assert not torch.equal(runs[0][0], runs[2][0])


def test_expert_settings_are_checked(digits):
    from distill_core.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="expert_train_epochs"):
        create_method("mtt", digits, 1, overrides={**SMALL, "max_start_epoch": 4})  # epochs 3 + 1 > 3 stored
    with pytest.raises(InvalidInputError, match="at least 1"):
        ensure_experts(digits, 0, 3, SPEC)


def test_cli_experts_trains_then_reuses(digits, tmp_path, capsys):
    args = ["experts", "--dataset", "digits", "--num", "1", "--epochs", "2", "--param", "width=8",
            "--dir", str(tmp_path), "--device", "cpu", "--json"]
    assert main(args) == 0
    first = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert first["trained"] == 1 and first["experts"] == 1 and first["epochs"] == 2
    assert first["folder"].startswith(str(tmp_path)) and "convnet-w8" in first["spec"]
    assert main(args) == 0
    again = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert again["trained"] == 0 and again["reused"] == 1 and again["files"] == first["files"]


@pytest.mark.parametrize("args,expected", [
    (["experts", "--dataset", "nope"], "unknown dataset 'nope'"),
    (["experts", "--dataset", "digits", "--num", "0"], "--num"),
    (["experts", "--dataset", "digits", "--epochs", "-1"], "--epochs"),
    (["experts", "--dataset", "digits", "--param", "syn_steps=3"], "unknown expert setting 'syn_steps'"),
    (["experts", "--dataset", "digits", "--param", "width=x"], "not a valid int"),
])
def test_cli_experts_errors_are_one_clear_line(args, expected, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and expected in err and len(err.splitlines()) == 1


def test_cli_experts_unwritable_folder_is_one_line(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert main(["experts", "--dataset", "digits", "--num", "1", "--epochs", "1", "--param", "width=8",
                 "--dir", str(blocker), "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: cannot store expert trajectories") and len(err.splitlines()) == 1


def test_a_stopped_job_interrupts_expert_training(digits, experts_dir):
    """In the app, stopping an mtt job while it trains its experts ends it promptly, with nothing half stored."""
    import time

    from distill_core.jobs import JobSpec, job_wait, start_job

    settings = {**SMALL, "expert_train_epochs": 100, "max_start_epoch": 2}
    job = start_job(JobSpec("mtt", "digits", ipc=1, steps=5, settings=settings, device="cpu", eval_protocol="none"),
                    digits)
    time.sleep(0.5)  # inside the first expert's 100 epochs
    t0 = time.perf_counter()
    job.stop(wait=True, timeout=30)
    state = job_wait(job, 30)
    assert time.perf_counter() - t0 < 20 and state.status == "stopped" and state.error is None
    assert not list(experts_dir.rglob("*.pt"))

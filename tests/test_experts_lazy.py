"""Expert trajectories are read lazily: handles in memory, one expert's file mapped at a time, same draws as an
eager load."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from distill_core import experts as experts_mod
from distill_core.embed import dataset_key
from distill_core.experts import ExpertReader, ensure_experts, load_expert, load_experts, save_expert
from distill_core.methods import create_method
from distill_core.models import build_seeded

# a small MTT on the 8×8 digits (2-block ConvNet of width 8), 4 stored experts of 4 epochs
SMALL = {"width": 8, "lr_teacher": 0.05, "dsa": False, "num_experts": 4, "expert_train_epochs": 4,
         "max_start_epoch": 3, "expert_epochs": 1, "syn_steps": 3, "batch_syn": 0, "lr": 10.0}


def _write_experts(digits, root: Path) -> Path:
    """Four experts written straight to the cache folder MTT reads (seeded random walks from the seeded init),
    so the test needs no training."""
    method = create_method("mtt", digits, 1, seed=0, overrides={**SMALL, "experts_dir": str(root)})
    spec = method.config.expert_spec().resolved(digits.image_shape[1])
    folder = spec.folder(dataset_key(digits), root)
    gen = torch.Generator().manual_seed(7)
    for i in range(SMALL["num_experts"]):
        net = build_seeded(digits, "convnet", seed=i, width=8, depth=spec.depth)
        init = torch.cat([p.detach().flatten() for p in net.parameters()])
        steps = 0.01 * torch.randn(SMALL["expert_train_epochs"], init.numel(), generator=gen)
        traj = torch.cat([init[None], init[None] + steps.cumsum(0)])
        save_expert(folder / f"expert_{i:03d}.pt", traj, {"seed": i})
    return folder


def _mapped(folder: Path) -> set[str]:
    """Files of `folder` this process has memory-mapped now (Linux: /proc/self/maps)."""
    text = Path("/proc/self/maps").read_text()
    return {line.split()[-1] for line in text.splitlines() if str(folder) in line}


def test_handles_hold_no_trajectory_and_read_the_same_rows(digits, tmp_path):
    folder = _write_experts(digits, tmp_path)
    handles = load_experts(folder)
    assert [e.index for e in handles] == [0, 1, 2, 3]
    eager = [torch.load(e.path, weights_only=True)["trajectory"] for e in handles]
    for e, full in zip(handles, eager):
        assert "trajectory" not in vars(e)  # a handle: path, shape and meta only
        assert e.shape == tuple(full.shape) and e.epochs == 4 and e.num_params == full.shape[1]
        assert torch.equal(e.trajectory, full)
    reader = ExpertReader(handles)
    gen = torch.Generator().manual_seed(3)
    for _ in range(20):
        i = int(torch.randint(4, (1,), generator=gen))
        t = int(torch.randint(3, (1,), generator=gen))
        start, target = reader.rows(i, t, t + 1)
        assert torch.equal(start, eager[i][t]) and torch.equal(target, eager[i][t + 1])
        assert reader.held == i
    assert 4 <= reader.loads <= 20  # a file is mapped again only when another expert was read in between


def test_a_broken_or_non_finite_file_is_no_expert(digits, tmp_path):
    folder = _write_experts(digits, tmp_path)
    path = folder / "expert_001.pt"
    traj = torch.load(path, weights_only=True)["trajectory"]
    traj[2, 5] = float("nan")
    save_expert(path, traj, {})
    assert load_expert(path) is None
    (folder / "expert_002.pt").write_bytes(b"not a torch file")
    assert [e.index for e in load_experts(folder)] == [0, 3]


def test_mtt_draws_the_same_pairs_as_an_eager_load(digits, tmp_path):
    """MTT's steps through the lazy reader equal those of a run whose trajectories are all in memory."""
    _write_experts(digits, tmp_path)
    lazy = create_method("mtt", digits, 1, seed=0, overrides={**SMALL, "experts_dir": str(tmp_path)})
    eager = create_method("mtt", digits, 1, seed=0, overrides={**SMALL, "experts_dir": str(tmp_path)})
    assert lazy.load_experts() == 0 and eager.load_experts() == 0  # stored: nothing trained
    held = [torch.load(e.path, weights_only=True)["trajectory"] for e in eager.experts]
    drawn: list[tuple[int, tuple[int, ...]]] = []

    class InMemory:  # what MTT did before: every trajectory in RAM, rows indexed directly
        def rows(self, i, *epochs):
            drawn.append((i, epochs))
            return [held[i][e] for e in epochs]

    eager.reader = InMemory()
    for _ in range(6):
        a, b = lazy.step(), eager.step()
        assert a == b
    assert torch.equal(lazy.images, eager.images)
    assert len({i for i, _ in drawn}) >= 2  # the steps did use several experts


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/maps")
def test_only_one_expert_file_is_mapped_at_a_time(digits, tmp_path, monkeypatch):
    folder = _write_experts(digits, tmp_path)
    reads: list[str] = []
    original = experts_mod.read_trajectory
    monkeypatch.setattr(experts_mod, "read_trajectory", lambda p: (reads.append(Path(p).name), original(p))[1])
    method = create_method("mtt", digits, 1, seed=0, overrides={**SMALL, "experts_dir": str(tmp_path)})
    method.load_experts()
    assert _mapped(folder) == set() and reads == []  # listing checked the files and let them go
    seen: set[str] = set()
    for _ in range(12):
        method.step()
        now = _mapped(folder)
        assert len(now) <= 1, now
        seen |= now
    assert len(seen) >= 2 and len(set(reads)) >= 2  # several experts were used, never two at once
    assert all(Path(p).name == f"expert_{method.experts[method.reader.held].index:03d}.pt" for p in now)
    method.reader.release()
    assert _mapped(folder) == set()


def test_freshly_trained_experts_are_not_kept_in_memory(digits, tmp_path):
    report = ensure_experts(digits, 1, 1, experts_mod.ExpertSpec(width=8, lr=0.05, augment=False), root=tmp_path)
    (expert,) = report.experts
    assert "trajectory" not in vars(expert) and expert.shape[0] == 2
    assert report.spec is not None and report.spec.depth == 2  # depth 0 settled by image size (8 px: 2)
    assert report.to_dict()["spec"] == report.spec.key() and "-d2_" in report.spec.key()
    assert torch.isfinite(expert.trajectory).all()

"""The snapshot byte budget: fewer snapshots (evenly spaced, the last always) when more would not fit."""
from __future__ import annotations

import json

import pytest
import torch

from distill_core import pipeline
from distill_core.cli import main
from distill_core.runs import (SNAPSHOT_BUDGET_MB, fit_snapshot_budget, load_run, save_run, snapshot_bytes,
                               snapshot_capacity, thin_snapshots)
from distill_core.summary import Summary


def _history(n: int, images: int = 20) -> dict[str, torch.Tensor]:
    steps = torch.arange(n, dtype=torch.int64) * 5
    pics = torch.stack([torch.full((images, 1, 8, 8), float(i), dtype=torch.float16) for i in range(n)])
    return {"steps": steps, "images": pics}


def test_thinning_is_even_and_keeps_the_last():
    snaps = _history(10)
    assert thin_snapshots(snaps, 4)["steps"].tolist() == [0, 15, 30, 45]  # positions 0, 3, 6, 9
    assert thin_snapshots(snaps, 2)["steps"].tolist() == [0, 45]
    assert thin_snapshots(snaps, 1)["steps"].tolist() == [45]
    assert thin_snapshots(snaps, 0)["steps"].tolist() == []
    assert thin_snapshots(snaps, 10) is snaps and thin_snapshots(snaps, 50) is snaps
    kept = thin_snapshots(snaps, 6)
    assert len(kept["steps"]) == 6 and kept["steps"][-1] == 45
    gaps = torch.diff(kept["steps"]).tolist()
    assert max(gaps) - min(gaps) <= 5  # even up to one position
    # the images travel with their steps
    assert [float(x[0, 0, 0, 0]) for x in kept["images"]] == [s / 5 for s in kept["steps"].tolist()]


def test_capacity_from_the_budget():
    one = snapshot_bytes(20, (1, 8, 8))
    assert one == 20 * 64 * 2
    assert snapshot_capacity(64, one, None) == 64
    assert snapshot_capacity(64, one, one * 5 / 2 ** 20) == 5
    assert snapshot_capacity(3, one, 1000.0) == 3
    assert snapshot_capacity(64, one, one * 0.5 / 2 ** 20) == 0
    # Tiny-ImageNet at IPC 50 under the default budget: one 245 MB snapshot fits, two do not
    tiny = snapshot_bytes(200 * 50, (3, 64, 64))
    assert tiny == 245_760_000 and snapshot_capacity(64, tiny, SNAPSHOT_BUDGET_MB) == 1
    assert fit_snapshot_budget(_history(10), one * 4 / 2 ** 20)["steps"].tolist() == [0, 15, 30, 45]


def test_save_run_fits_the_budget_and_records_it(tmp_path):
    summary = Summary(torch.rand(20, 1, 8, 8), torch.arange(10).repeat_interleave(2), "kip", "digits", 2,
                      [str(i) for i in range(10)], {})
    one = snapshot_bytes(20, (1, 8, 8))
    out = save_run(tmp_path / "a", summary, {}, [], _history(10), snapshot_budget_mb=one * 4.5 / 2 ** 20)
    record = load_run(out)
    assert record.snapshots["steps"].tolist() == [0, 15, 30, 45]
    assert record.config["snapshots"] == {"offered": 10, "kept": 4, "budget_mb": pytest.approx(one * 4.5 / 2 ** 20)}
    assert (out / "snapshots.pt").stat().st_size < 6 * one  # the file is what the budget allowed (plus framing)
    whole = load_run(save_run(tmp_path / "b", summary, {}, [], _history(10)))  # 26 kB: inside the default
    assert len(whole.snapshots["steps"]) == 10 and whole.config["snapshots"]["kept"] == 10
    none = load_run(save_run(tmp_path / "c", summary, {}, [], _history(10), snapshot_budget_mb=0))
    assert none.snapshots is None and none.config["snapshots"]["kept"] == 0


def test_cli_budget_bounds_the_run_and_the_folder(tmp_path, capsys, monkeypatch):
    capacities = []
    original = pipeline.SnapshotHistory.__init__

    def spy(self, capacity=64):
        capacities.append(capacity)
        original(self, capacity)

    monkeypatch.setattr(pipeline.SnapshotHistory, "__init__", spy)
    one = snapshot_bytes(10, (1, 8, 8))  # digits, IPC 1
    budget = one * 5 / 2 ** 20
    out = tmp_path / "run"
    assert main(["distill", "--dataset", "digits", "--method", "kip", "--ipc", "1", "--steps", "40",
                 "--snapshots", "64", "--snapshot-budget-mb", repr(budget), "--out", str(out), "--json"]) == 0
    assert capacities == [5]  # the history held in memory was bounded by the budget while it ran
    record = load_run(out)
    steps = record.snapshots["steps"].tolist()
    assert len(steps) <= 5 and steps[-1] == 40 and steps[0] == 0
    assert record.config["snapshots"]["kept"] == len(steps)
    json.loads(capsys.readouterr().out.strip().splitlines()[-1])


@pytest.mark.parametrize("value", ["-1", "nan", "inf"])
def test_cli_refuses_a_bad_budget(value, capsys):
    code = main(["distill", "--dataset", "digits", "--method", "random", "--ipc", "1",
                 f"--snapshot-budget-mb={value}"])
    err = capsys.readouterr().err.strip()
    assert code != 0 and "--snapshot-budget-mb" in err and len(err.splitlines()) == 1

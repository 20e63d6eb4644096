"""The distillers' hot loops do not read tensors back to the host every step.

Reading a value from a GPU (`.item()`, `float(t)`, `.cpu()`, `.tolist()`, `.numpy()`, `bool(t)`) makes the host
wait until the device has finished everything queued, so a step that does it stalls the pipeline. Here (on any
device, the CPU included) those reads are counted while a method takes N steps with `step(sync=False)`: the count
must not grow with N. Only reads made by distill-lab's own code count: torch's optimisers read their own step
counters, which live on the host by design. Values drawn from the methods' host generators (a network seed, an
expert's index) are host-side from the start and need no read.
"""
from __future__ import annotations

import sys

import pytest
import torch

from distill_core.methods import create_method
from distill_core.pipeline import DistillRun

READS = ("item", "cpu", "tolist", "numpy", "__float__", "__bool__")

SETTINGS = {
    "dm": {"width": 8, "batch_real": 8},
    "dc": {"width": 8, "batch_real": 4, "outer_loop": 2, "inner_loop": 1},
    "dsa": {"width": 8, "batch_real": 4, "outer_loop": 2, "inner_loop": 1},
    "mtt": {"width": 8, "lr_teacher": 0.05, "dsa": True, "num_experts": 1, "expert_train_epochs": 2,
            "max_start_epoch": 1, "expert_epochs": 1, "syn_steps": 3, "batch_syn": 10},
    "kip": {"target_batch": 100},
}


class ReadCounter:
    """Counts host reads of tensors made from distill_core's code while active."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch):
        self.count = 0
        self.where: list[str] = []
        self.active = False
        for name in READS:
            original = getattr(torch.Tensor, name)
            monkeypatch.setattr(torch.Tensor, name, self._wrap(original))

    def _wrap(self, original):
        counter = self

        def counted(tensor, *args, **kwargs):
            if counter.active:
                caller = sys._getframe(1).f_code.co_filename
                if "distill_core" in caller:
                    counter.count += 1
                    counter.where.append(f"{original.__name__} in {caller}:{sys._getframe(1).f_lineno}")
            return original(tensor, *args, **kwargs)

        return counted

    def reads_during(self, fn) -> int:
        before = self.count
        self.active = True
        try:
            fn()
        finally:
            self.active = False
        return self.count - before


@pytest.fixture
def experts_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("DISTILL_EXPERTS_DIR", str(tmp_path / "experts"))
    return tmp_path / "experts"


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_steps_do_not_read_from_the_device(name, digits, experts_dir, monkeypatch):
    method = create_method(name, digits, 2, seed=0, overrides=SETTINGS[name])
    method.step()  # first use: mtt trains its expert here
    counter = ReadCounter(monkeypatch)

    def steps(n: int):
        return lambda: [method.step(sync=False) for _ in range(n)]

    one, four = counter.reads_during(steps(1)), counter.reads_during(steps(4))
    assert one == four == 0, counter.where[:5]
    # the counter does catch a read: the default step() reads its metrics once per step
    assert counter.reads_during(lambda: method.step()) >= 1
    # and what step(sync=False) returned are the same numbers, read later
    metrics = method.step(sync=False)
    assert all(isinstance(v, (torch.Tensor, float)) for v in metrics.values())
    assert torch.isfinite(torch.as_tensor(float(metrics["loss"])))


def test_the_pipeline_reads_metrics_in_batches(digits, monkeypatch):
    """With `sync_every` 5, ten steps read the device at steps 5 and 10 only (snapshots are due at 8 and 10 with a
    capacity of 2), and every step still gets its log row, equal to a run that reads every step."""
    def run(sync_every: int) -> tuple[DistillRun, int]:
        method = create_method("dm", digits, 1, seed=3, overrides={"width": 8, "batch_real": 8})
        dr = DistillRun(method, 10, snapshot_capacity=2, sync_every=sync_every)
        counter = ReadCounter(monkeypatch)
        dr.step_once()  # the first step records the initial snapshot
        reads = counter.reads_during(lambda: [dr.step_once() for _ in range(9)])
        monkeypatch.undo()
        return dr, reads

    lazy, lazy_reads = run(5)
    eager, eager_reads = run(1)
    assert [r["step"] for r in lazy.metrics] == list(range(1, 11))
    assert [r["loss"] for r in lazy.metrics] == [r["loss"] for r in eager.metrics]
    assert all(isinstance(r["loss"], float) for r in lazy.metrics)
    assert lazy.snapshots.steps == eager.snapshots.steps
    assert lazy_reads < eager_reads

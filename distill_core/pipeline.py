"""Drive a method step by step: metrics history, a bounded snapshot history, and callbacks for progress.

The loop knows nothing of the CLI or the app: they pass callbacks (a tqdm bar, live plots) and a `should_stop`.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import torch

from .device import materialize
from .errors import InvalidInputError
from .limits import LIMITS
from .methods.base import Method
from .summary import Summary


SYNC_EVERY = 20  # off the CPU, metrics are read from the device every this many steps (and at snapshots, the end)


class SnapshotHistory:
    """At most `capacity` snapshots of the summary's images, spread over the whole run.

    When full, every other snapshot is dropped and the recording stride doubles, so memory stays bounded however
    long the run and the kept snapshots still cover it from start to end. Images are kept as float16 on the CPU.
    """

    def __init__(self, capacity: int = 64):
        if capacity < 2:
            raise ValueError("capacity must be at least 2")
        self.capacity = capacity
        self.stride = 1
        self.steps: list[int] = []
        self.images: list[torch.Tensor] = []

    def due(self, step: int, force: bool = False) -> bool:
        """Whether `offer` at `step` would record (so the caller builds the images only then)."""
        return force or step % self.stride == 0

    def offer(self, step: int, images: torch.Tensor, force: bool = False) -> bool:
        """Record `images` at `step` if the stride says so (or force); returns True when recorded."""
        if not force and step % self.stride != 0:
            return False
        if self.steps and self.steps[-1] == step:
            self.images[-1] = images.detach().to("cpu", torch.float16).clone()
            return True
        self.steps.append(int(step))
        self.images.append(images.detach().to("cpu", torch.float16).clone())
        if len(self.steps) > self.capacity:
            self.stride *= 2
            keep = [i for i, s in enumerate(self.steps) if s % self.stride == 0 or i == len(self.steps) - 1]
            self.steps = [self.steps[i] for i in keep]
            self.images = [self.images[i] for i in keep]
        return True

    def __len__(self) -> int:
        return len(self.steps)

    def to_tensors(self) -> dict[str, torch.Tensor]:
        if not self.steps:
            return {"steps": torch.zeros(0, dtype=torch.int64), "images": torch.zeros(0)}
        return {"steps": torch.tensor(self.steps, dtype=torch.int64), "images": torch.stack(self.images)}

    @classmethod
    def from_tensors(cls, data: dict[str, torch.Tensor], capacity: int = 64) -> "SnapshotHistory":
        hist = cls(max(capacity, len(data["steps"]), 2))
        hist.steps = [int(s) for s in data["steps"].tolist()]
        hist.images = list(data["images"]) if len(hist.steps) else []
        return hist


@dataclass
class Callbacks:
    """Optional hooks; each receives the DistillRun so it can read anything it needs."""

    on_step: Optional[Callable[["DistillRun", dict[str, float]], None]] = None
    on_snapshot: Optional[Callable[["DistillRun", int], None]] = None
    on_end: Optional[Callable[["DistillRun"], None]] = None


@dataclass
class DistillRun:
    """One method being run for a number of steps, with its history."""

    method: Method
    steps: int
    snapshot_capacity: int = 64
    log_every: int = 1
    sync_every: int = 0   # steps between reads of the metrics from the device (0: 1 on a CPU, SYNC_EVERY elsewhere)
    metrics: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    def __post_init__(self) -> None:
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1:
            raise InvalidInputError(f"steps must be a positive whole number, got {self.steps!r}")
        if self.steps > LIMITS.max_steps:
            raise InvalidInputError(f"steps {self.steps} is above the limit of {LIMITS.max_steps}")
        if not self.method.iterative:
            self.steps = 1  # a selector does its work in one step
        self.snapshots = SnapshotHistory(self.snapshot_capacity)
        if self.sync_every < 1:
            self.sync_every = 1 if self.method.device.type == "cpu" else SYNC_EVERY
        self._pending: list[dict[str, Any]] = []  # log rows whose metrics are still tensors on the device

    @property
    def step_index(self) -> int:
        return self.method.steps_done

    @property
    def finished(self) -> bool:
        return self.method.steps_done >= self.steps

    def summary(self) -> Summary:
        """The method's summary now (pending metric rows are read first, so `metrics` is complete with it)."""
        self.flush_metrics()
        return self.method.summary()

    def step_once(self, callbacks: Callbacks | None = None) -> dict[str, Any]:
        """Advance one step, record metrics and maybe a snapshot, fire callbacks.

        The step does not wait for the device: its metrics stay tensors until a read is due (every `sync_every`
        steps, at a snapshot and at the end), when all pending rows are read at once and checked for NaN. Returns
        this step's metrics — floats when they were read now, else as the method left them. `on_step` receives
        the floats when read, an empty dict otherwise.
        """
        cb = callbacks or Callbacks()
        if self.method.iterative and self.method.steps_done == 0 and not len(self.snapshots):
            self.snapshots.offer(0, self.method.summary().images, force=True)
        t0 = time.perf_counter()
        metrics = self.method.step(sync=False)
        self.seconds += time.perf_counter() - t0
        step = self.method.steps_done
        last = step == self.steps
        if step % self.log_every == 0 or last:
            self._pending.append({"step": step, "seconds": round(self.seconds, 4), **metrics})
        snapshot_due = self.snapshots.due(step, force=last)
        read = snapshot_due or last or step % self.sync_every == 0 or not self.method.iterative
        if read:
            metrics = self.flush_metrics(step, metrics)
        if cb.on_step:
            cb.on_step(self, metrics if read else {})
        if snapshot_due and self.snapshots.offer(step, self.method.summary().images, force=last) and cb.on_snapshot:
            cb.on_snapshot(self, step)
        return metrics

    def flush_metrics(self, step: int | None = None, current: dict[str, Any] | None = None) -> dict[str, Any]:
        """Read every pending log row from the device (one transfer per row), check for NaN, append them to
        `metrics`; returns `current` read too."""
        rows, self._pending = self._pending, []
        out = materialize(current) if current is not None else {}
        first_bad: tuple[Any, list[str]] | None = None
        for row in rows:
            row = materialize(row)
            self.metrics.append(row)
            bad = [k for k, v in row.items() if isinstance(v, float) and v != v]
            if bad and first_bad is None:
                first_bad = (row["step"], bad)
        bad = [k for k, v in out.items() if isinstance(v, float) and v != v]
        if bad and first_bad is None:
            first_bad = (step, bad)
        if first_bad is not None:
            raise InvalidInputError(f"the optimisation diverged at step {first_bad[0]} ({', '.join(first_bad[1])} "
                                    f"became NaN); try a smaller learning rate")
        return out

    def run(self, callbacks: Callbacks | None = None, should_stop: Callable[[], bool] | None = None) -> Summary:
        """Step until `steps` are done or `should_stop()` says so; returns the final summary."""
        cb = callbacks or Callbacks()
        while not self.finished:
            if should_stop is not None and should_stop():
                break
            self.step_once(cb)
        self.flush_metrics()  # a stopped run's last rows
        if cb.on_end:
            cb.on_end(self)
        return self.summary()


def default_steps(method: Method | type[Method]) -> int:
    """Steps to run without an explicit count: for a method instance, its profile's iterations at its dataset and
    IPC (`Method.profile_steps`); for a class, its class-level default."""
    if isinstance(method, Method):
        return max(1, method.profile_steps())
    return int(getattr(method, "default_steps", 1) or 1)

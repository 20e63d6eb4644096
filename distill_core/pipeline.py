"""Drive a method step by step: metrics history, a bounded snapshot history, and callbacks for progress.

The loop knows nothing of the CLI or the app: they pass callbacks (a tqdm bar, live plots) and a `should_stop`.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import torch

from .errors import InvalidInputError
from .limits import LIMITS
from .methods.base import Method
from .summary import Summary


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

    @property
    def step_index(self) -> int:
        return self.method.steps_done

    @property
    def finished(self) -> bool:
        return self.method.steps_done >= self.steps

    def summary(self) -> Summary:
        return self.method.summary()

    def step_once(self, callbacks: Callbacks | None = None) -> dict[str, float]:
        """Advance one step, record metrics and maybe a snapshot, fire callbacks."""
        cb = callbacks or Callbacks()
        if self.method.iterative and self.method.steps_done == 0 and not len(self.snapshots):
            self.snapshots.offer(0, self.method.summary().images, force=True)
        t0 = time.perf_counter()
        metrics = self.method.step()
        self.seconds += time.perf_counter() - t0
        step = self.method.steps_done
        bad = [k for k, v in metrics.items() if isinstance(v, float) and v != v]
        if bad:
            raise InvalidInputError(f"the optimisation diverged at step {step} ({', '.join(bad)} became NaN); "
                                    f"try a smaller learning rate")
        if step % self.log_every == 0 or step == self.steps:
            self.metrics.append({"step": step, "seconds": round(self.seconds, 4), **metrics})
        if cb.on_step:
            cb.on_step(self, metrics)
        if self.snapshots.offer(step, self.method.summary().images, force=(step == self.steps)) and cb.on_snapshot:
            cb.on_snapshot(self, step)
        return metrics

    def run(self, callbacks: Callbacks | None = None, should_stop: Callable[[], bool] | None = None) -> Summary:
        """Step until `steps` are done or `should_stop()` says so; returns the final summary."""
        cb = callbacks or Callbacks()
        while not self.finished:
            if should_stop is not None and should_stop():
                break
            self.step_once(cb)
        if cb.on_end:
            cb.on_end(self)
        return self.summary()


def default_steps(method: Method | type[Method]) -> int:
    """Steps to run without an explicit count: for a method instance, its profile's iterations at its dataset and
    IPC (`Method.profile_steps`); for a class, its class-level default."""
    if isinstance(method, Method):
        return max(1, method.profile_steps())
    return int(getattr(method, "default_steps", 1) or 1)

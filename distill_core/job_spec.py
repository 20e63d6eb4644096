"""What a job runs and what a reader sees of it: `JobSpec`, the immutable `JobState`, the statuses, and every
check made before a job starts (`check_spec`), kept apart from the threads so the app can check a spec without
starting anything."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from .data import ImageSet, load_dataset
from .device import resolve_device
from .errors import DistillError, InvalidInputError
from .limits import LIMITS
from .methods.base import Method, MethodConfig, check_ipc, get_method

# statuses ---------------------------------------------------------------------------------------------------
STARTING, RUNNING, PAUSED = "starting", "running", "paused"
FINISHED, STOPPED, FAILED = "finished", "stopped", "failed"
ACTIVE_STATUSES = frozenset({STARTING, RUNNING, PAUSED})

MAX_PLOT_POINTS = 1500          # metrics rows handed to a reader (evenly thinned, the last one always kept)
SNAPSHOT_BYTES = 48 * 2 ** 20   # float16 snapshot history per job, at most (and at most 64 snapshots)


@dataclass(frozen=True)
class JobSpec:
    """What to run. `settings` override fields of the method's Config (strings are converted)."""

    method: str
    dataset: str
    ipc: int
    steps: int | None = None          # None: the method's default_steps
    seed: int = 0
    settings: dict[str, Any] = field(default_factory=dict)
    device: str = "auto"
    eval_protocol: str = "auto"       # "auto" (krr if registered, else quick), "quick", "krr" or "none"
    eval_epochs: int = 40             # epochs of the reduced `quick` evaluation
    eval_every_s: float = 4.0         # seconds between periodic evaluations (at least twice the last one's time)
    profile: str = "fast"             # the profile the Config's defaults come from ("fast" | "paper")


@dataclass(frozen=True)
class JobState:
    """An immutable copy of a job's latest state; safe to read from any thread."""

    job_id: str
    spec: JobSpec
    kind: str                         # "distiller" or "selector"
    status: str
    step: int
    total_steps: int
    version: int                      # increases whenever `images` change
    images: torch.Tensor | None       # K×C×H×W float32, CPU (never mutated after publication)
    labels: torch.Tensor | None       # K hard labels
    class_names: list[str]
    metrics: list[dict[str, Any]]     # thinned to at most MAX_PLOT_POINTS rows
    accuracy: list[dict[str, Any]]    # {step, acc, protocol, model, seconds[, epochs][, diverged_epoch]}
    snapshot_steps: list[int]
    elapsed_s: float                  # running time, pauses excluded
    steps_per_s: float
    eta_s: float | None
    error: str | None
    evaluating: bool
    eval_error: str | None
    device: str
    saved_path: str | None = None     # the run folder the job autosaved itself to (once finished or stopped)
    save_error: str | None = None     # why that autosave failed

    @property
    def active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    @property
    def progress(self) -> float:
        return min(1.0, self.step / max(1, self.total_steps))

    @property
    def last_accuracy(self) -> dict[str, Any] | None:
        return self.accuracy[-1] if self.accuracy else None


def _short_error(exc: BaseException) -> str:
    """The one-line `JobState.error` (or `save_error`) for an exception: a DistillError's own sentence."""
    if isinstance(exc, DistillError):
        return str(exc)
    if isinstance(exc, MemoryError):
        return "out of memory: try a smaller IPC or dataset"
    text = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
    return f"unexpected {type(exc).__name__}" + (f": {text}" if text else "")


def _check_steps(steps: Any) -> None:
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise InvalidInputError(f"steps must be a positive whole number, got {steps!r}")
    if steps > LIMITS.max_steps:
        raise InvalidInputError(f"steps {steps} is above the limit of {LIMITS.max_steps}")


def _check_seed(seed: Any) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2 ** 63:
        raise InvalidInputError(f"seed must be a whole number from 0 to 2^63-1, got {seed!r}")


def snapshot_capacity(images: torch.Tensor, budget_bytes: int = SNAPSHOT_BYTES, most: int = 64) -> int:
    """How many float16 snapshots of `images` fit the per-job budget (2 to `most`)."""
    per = max(1, images.numel() * 2)
    return int(max(2, min(most, budget_bytes // per)))


def _load(spec: JobSpec) -> ImageSet:
    if not isinstance(spec.dataset, str) or not spec.dataset.strip():
        raise InvalidInputError("no dataset chosen")
    return load_dataset(spec.dataset)


def check_spec(spec: JobSpec, dataset: ImageSet) -> tuple[type[Method], MethodConfig, int]:
    """Every check `Job` makes before it starts, without starting anything: the method class, its Config and the
    number of steps that will run. Raises a DistillError with one clear sentence (the page shows it beside a
    disabled Start button)."""
    cls = get_method(spec.method)
    if not isinstance(spec.dataset, str) or not spec.dataset.strip():
        raise InvalidInputError("no dataset chosen")
    check_ipc(cls, dataset, spec.ipc)
    if not isinstance(spec.settings, dict):
        raise InvalidInputError("settings must be a mapping of setting name to value")
    config = cls.Config.from_overrides(dataset.name, dict(spec.settings), profile=spec.profile, ipc=spec.ipc)
    steps = spec.steps if spec.steps is not None else int(getattr(cls, "default_steps", 1) or 1)
    _check_steps(steps)
    _check_seed(spec.seed)
    if cls.kind != "distiller":
        steps = 1
    if not isinstance(spec.eval_every_s, (int, float)) or not math.isfinite(spec.eval_every_s) \
            or spec.eval_every_s <= 0:
        raise InvalidInputError(f"eval_every_s must be a positive number, got {spec.eval_every_s}")
    from .evaluate import protocol_names

    if spec.eval_protocol not in ("auto", "none", *protocol_names()):
        raise InvalidInputError(f"unknown evaluation protocol {spec.eval_protocol!r}; choose auto, none or one "
                                f"of {', '.join(protocol_names())}")
    from .memory import available_bytes, check_fits, estimate

    device = resolve_device(spec.device)
    check_fits(estimate(spec.method, dataset, spec.ipc, config, device), available_bytes(device))  # before any work
    return cls, config, int(steps)


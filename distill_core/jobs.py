"""Background jobs: one method driven step by step by `pipeline.DistillRun` in a worker thread (no UI code here).

The app starts a `Job`, then polls `job.state()` — a thread-safe, immutable copy of the latest step, metrics,
summary images, snapshot steps, ETA, status and error — as often as it redraws. Nothing the app does waits for
the loop:

- the *worker* thread builds the method and steps it; `pause()`, `resume()` and `stop()` act between steps;
- an *evaluator* thread periodically trains a small network on the latest summary (the `krr` protocol when one
  is registered, else `quick` with few epochs and one network) so accuracy is plotted without stalling steps;
- errors inside either thread become `status == "failed"` with a one-line `error`, never an exception;
- a global cap (`LIMITS.max_concurrent_jobs`) bounds the jobs running in this process: `start_job` raises
  `BusyError` ("busy — try again") when it is reached;
- each job thread runs torch with at most `LIMITS.job_torch_threads` intra-op threads.

    job = start_job(JobSpec("kip", "digits", ipc=1, steps=200))
    while job.state().active: time.sleep(0.5)
    job.save()   # a run folder under runs.default_runs_dir()

The app keeps its jobs in one server-wide `JobRegistry` (`registry()`), keyed by an unguessable token that the
page puts in its URL: a reload or a reconnect finds the same job again, and a visitor without the token cannot see
or control it. Pages *hold* a token while they show it; when no page holds it any more an idle timer starts, and
after `idle_timeout_s` the job is stopped (and autosaved) and its entry dropped. A job started with `autosave_dir`
saves itself there once, when it finishes or is stopped.
"""
from __future__ import annotations

import collections
import math
import os
import re
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .data import ImageSet, load_dataset
from .device import describe_device, resolve_device
from .errors import DistillError, InvalidInputError
from .limits import LIMITS
from .methods.base import Method, MethodConfig, check_ipc, get_method
from .pipeline import DistillRun
from .summary import Summary

# statuses ---------------------------------------------------------------------------------------------------
STARTING, RUNNING, PAUSED = "starting", "running", "paused"
FINISHED, STOPPED, FAILED = "finished", "stopped", "failed"
ACTIVE_STATUSES = frozenset({STARTING, RUNNING, PAUSED})

MAX_PLOT_POINTS = 1500          # metrics rows handed to a reader (evenly thinned, the last one always kept)
MAX_LOGGED_ROWS = 5000          # a long run logs every k-th step so its metrics history stays bounded
SNAPSHOT_BYTES = 48 * 2 ** 20   # float16 snapshot history per job, at most (and at most 64 snapshots)
PUBLISH_EVERY_S = 0.05          # the worker hands fresh images to readers at most this often
AUTOSAVE_EVAL_WAIT_S = 120.0    # an autosave waits this long at most for the final step's evaluation


class BusyError(DistillError):
    """Raised by `start_job` when the server already runs its maximum number of jobs."""


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
    accuracy: list[dict[str, Any]]    # {step, acc, protocol, seconds}
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


# the global cap ---------------------------------------------------------------------------------------------
_REGISTRY_LOCK = threading.Lock()
_RUNNING: set["Job"] = set()
_ORIGINAL_THREADS = torch.get_num_threads()


def running_jobs() -> int:
    """How many jobs hold a slot (starting, running or paused) in this process."""
    with _REGISTRY_LOCK:
        return len(_RUNNING)


def stop_all(timeout: float = 10.0) -> None:
    """Stop every job of this process, forget every token of the registry, and let the reference-line thread
    finish what it is computing (tests, shutdown: no thread is left inside torch when the interpreter exits)."""
    with _REGISTRY_LOCK:
        jobs = list(_RUNNING)
        reg = _REGISTRY
    if reg is not None:
        reg.stop_all(timeout)
    for job in jobs:
        job.stop(wait=True, timeout=timeout)
    with _REF_LOCK:
        _REF_QUEUE.clear()
        ref = _REF_THREAD
    if ref is not None:
        ref.join(timeout)


def _reserve(job: "Job") -> None:
    with _REGISTRY_LOCK:
        if len(_RUNNING) >= LIMITS.max_concurrent_jobs:
            raise BusyError(f"busy — {len(_RUNNING)} distillation(s) already running on this server "
                            f"(the limit is {LIMITS.max_concurrent_jobs}); try again when one finishes")
        _RUNNING.add(job)


def _release(job: "Job") -> None:
    with _REGISTRY_LOCK:
        _RUNNING.discard(job)
        idle = not _RUNNING
    if idle:  # the next thread created starts with the process's original thread count again
        torch.set_num_threads(_ORIGINAL_THREADS)


def _bound_threads() -> None:
    """Called at the top of each job thread: torch intra-op threads for this thread (and new ones) bounded."""
    limit = max(1, int(LIMITS.job_torch_threads))
    if torch.get_num_threads() != limit:
        torch.set_num_threads(limit)


def _short_error(exc: BaseException) -> str:
    if isinstance(exc, DistillError):
        return str(exc)
    if isinstance(exc, MemoryError):
        return "out of memory: try a smaller IPC or dataset"
    text = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
    return f"unexpected {type(exc).__name__}" + (f": {text}" if text else "")


def _thin(rows: list[dict[str, Any]], limit: int = MAX_PLOT_POINTS) -> list[dict[str, Any]]:
    if len(rows) <= limit:
        return list(rows)
    stride = math.ceil(len(rows) / limit)
    out = rows[::stride]
    if out[-1] is not rows[-1]:
        out.append(rows[-1])
    return out


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


class Job:
    """One method run in a background thread. Build with `start_job` (validates, reserves a slot, starts)."""

    def __init__(self, spec: JobSpec, dataset: ImageSet | None = None, autosave_dir: str | Path | None = None):
        self.spec = spec
        self.autosave_dir = Path(autosave_dir) if autosave_dir is not None else None
        self.id = uuid.uuid4().hex[:10]
        self.dataset = dataset if dataset is not None else _load(spec)
        self.method_cls, self.config, self.total_steps = check_spec(spec, self.dataset)
        self.device = resolve_device(spec.device)

        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._resume = threading.Event()
        self._resume.set()
        self._eval_wake = threading.Event()
        self._status = STARTING
        self._error: str | None = None
        self._eval_error: str | None = None
        self._evaluating = False
        self._step = 0
        self._version = 0
        self._summary: Summary | None = None
        self._run: DistillRun | None = None
        self._n_metrics = 0
        self._accuracy: list[dict[str, Any]] = []
        self._snap_steps: list[int] = []
        self._snap_images: list[torch.Tensor] = []
        self._elapsed = 0.0
        self._rate_window: collections.deque[tuple[float, int]] = collections.deque(maxlen=64)
        self._worker_done = threading.Event()
        self._worker: threading.Thread | None = None
        self._evaluator: threading.Thread | None = None
        self._save_lock = threading.Lock()
        self._saved_path: Path | None = None
        self._save_error: str | None = None
        self.started_at = time.time()

    # -------------------------------------------------------------------------------------------- control
    def start(self) -> "Job":
        """Reserve a slot under the global cap and start the threads (BusyError when the cap is reached)."""
        if self._worker is not None:
            raise InvalidInputError("this job was already started")
        _reserve(self)
        self._worker = threading.Thread(target=self._work, name=f"distill-job-{self.id}", daemon=True)
        self._evaluator = threading.Thread(target=self._eval_loop, name=f"distill-eval-{self.id}", daemon=True)
        self.started_at = time.time()
        try:
            self._worker.start()
            if self.spec.eval_protocol != "none":
                self._evaluator.start()
        except BaseException:
            self._stop.set()
            _release(self)
            raise
        return self

    def pause(self) -> None:
        """Pause between steps (no effect unless running)."""
        with self._lock:
            if self._status in (STARTING, RUNNING):
                self._resume.clear()
                self._status = PAUSED

    def resume(self) -> None:
        with self._lock:
            if self._status == PAUSED:
                self._status = RUNNING if self._run is not None else STARTING
                self._resume.set()

    def stop(self, wait: bool = True, timeout: float = 10.0) -> None:
        """Stop after the current step; with `wait`, join both threads (up to `timeout` seconds each)."""
        self._stop.set()
        self._resume.set()
        self._eval_wake.set()
        if wait:
            self.join(timeout)

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the worker and the evaluator to end; True when both have."""
        for thread in (self._worker, self._evaluator):
            if thread is not None and thread.is_alive() and thread is not threading.current_thread():
                thread.join(timeout)
        return not self.alive

    @property
    def alive(self) -> bool:
        return any(t is not None and t.is_alive() for t in (self._worker, self._evaluator))

    # -------------------------------------------------------------------------------------------- reading
    def state(self) -> JobState:
        """A consistent copy of the latest state (cheap: thinned metrics, references to immutable tensors)."""
        with self._lock:
            run = self._run
            n = self._n_metrics
            summary = self._summary
            status, step, version = self._status, self._step, self._version
            accuracy = list(self._accuracy)
            snap_steps = list(self._snap_steps)
            elapsed = self._elapsed
            window = list(self._rate_window)
            error, eval_error, evaluating = self._error, self._eval_error, self._evaluating
        rows = _thin(run.metrics[:n]) if run is not None else []
        rate = 0.0
        if len(window) >= 2 and window[-1][0] > window[0][0]:
            rate = (window[-1][1] - window[0][1]) / (window[-1][0] - window[0][0])
        elif elapsed > 0 and step:
            rate = step / elapsed
        eta = None
        if status in ACTIVE_STATUSES and rate > 0:
            eta = (self.total_steps - step) / rate
        elif status not in ACTIVE_STATUSES:
            eta = 0.0
        return JobState(self.id, self.spec, self.method_cls.kind, status, step, self.total_steps, version,
                        summary.images if summary is not None else None,
                        summary.hard_labels if summary is not None else None,
                        list(self.dataset.class_names), rows, accuracy, snap_steps, elapsed, rate, eta, error,
                        evaluating, eval_error, describe_device(self.device),
                        str(self._saved_path) if self._saved_path is not None else None, self._save_error)

    def summary(self) -> Summary | None:
        """The latest published summary (a detached CPU copy), or None before the first one."""
        with self._lock:
            return self._summary

    def snapshots(self) -> tuple[list[int], list[torch.Tensor]]:
        """Copies of the stored snapshot steps and their images (float16 K×C×H×W each)."""
        with self._lock:
            return list(self._snap_steps), list(self._snap_images)

    def metrics(self) -> list[dict[str, Any]]:
        """Every logged metrics row so far (a copy)."""
        with self._lock:
            run, n = self._run, self._n_metrics
        return list(run.metrics[:n]) if run is not None else []

    # --------------------------------------------------------------------------------------------- saving
    def run_config(self) -> dict[str, Any]:
        """The config.json fields a saved run gets (the same keys as the CLI's, plus source and status)."""
        st = self.state()
        rows = self.metrics()
        return {"steps": st.step, "seed": self.spec.seed, "device": self.device.type,
                "seconds": round(st.elapsed_s, 3), "profile": self.config.profile,
                "method_config": self.config.to_dict(), "data_root": None,
                "image_size": int(self.dataset.image_shape[-1]), "final_metrics": rows[-1] if rows else {},
                "source": "app", "status": st.status, "total_steps": self.total_steps}

    def evaluations(self) -> list[dict[str, Any]]:
        """The live evaluation of the latest published step, in the run folder's evaluation format."""
        st = self.state()
        last = st.last_accuracy
        if last is None or last["step"] != st.step:
            return []
        return [{"protocol": last["protocol"], "model": last.get("model", "convnet"), "reps": 1,
                 "acc_mean": last["acc"], "acc_std": 0.0, "accs": [last["acc"]], "seconds": last["seconds"],
                 "source": "app-live", **({"epochs": last["epochs"]} if "epochs" in last else {})}]

    @property
    def saved_path(self) -> Path | None:
        """The run folder this job autosaved itself to, once it has."""
        return self._saved_path

    def autosave(self) -> Path | None:
        """Save once into `autosave_dir` (a finished or stopped job with a summary); later calls return the same
        folder. A failure is kept as `save_error` (state) and returns None."""
        with self._save_lock:
            if self._saved_path is not None or self.autosave_dir is None or self._save_error is not None:
                return self._saved_path
            if self.state().status not in (FINISHED, STOPPED) or self.summary() is None:
                return None
            try:
                self._saved_path = self.save(runs_dir=self.autosave_dir)
            except Exception as exc:  # noqa: BLE001 - a full disk must not crash the worker thread
                self._save_error = _short_error(exc)
            return self._saved_path

    def save(self, out_dir: str | Path | None = None, runs_dir: str | Path | None = None) -> Path:
        """Write the latest summary as a run folder (default: a new name under the runs folder)."""
        from .runs import default_runs_dir, new_run_name, save_run

        summary = self.summary()
        if summary is None:
            raise InvalidInputError("nothing to save yet: the job has not produced a summary")
        steps, images = self.snapshots()
        snaps = ({"steps": torch.tensor(steps, dtype=torch.int64), "images": torch.stack(images)}
                 if steps else None)
        if out_dir is None:
            base = Path(runs_dir) if runs_dir is not None else default_runs_dir()
            out_dir = base / new_run_name(self.dataset.name, self.spec.method, self.spec.ipc)
        return save_run(out_dir, summary, self.run_config(), self.metrics(), snaps, self.evaluations())

    # --------------------------------------------------------------------------------------------- worker
    def _publish(self, run: DistillRun) -> None:
        summary = run.summary().detach()
        with self._lock:
            self._summary = summary
            self._step = run.step_index
            self._version += 1
            first = not self._accuracy and not self._evaluating
        if first:  # the evaluator measures the very first summary at once
            self._eval_wake.set()

    def _record(self, run: DistillRun, t_run: float) -> None:
        now = time.perf_counter()
        with self._lock:
            self._n_metrics = len(run.metrics)
            self._snap_steps = list(run.snapshots.steps)
            self._snap_images = list(run.snapshots.images)
            self._step = run.step_index
            self._elapsed = t_run
            self._rate_window.append((now, run.step_index))

    def _wait_while_paused(self, paused_for: list[float]) -> None:
        if self._resume.is_set():
            return
        t0 = time.perf_counter()
        with self._lock:
            self._rate_window.clear()
        while not self._resume.wait(0.1):
            if self._stop.is_set():
                break
        paused_for[0] += time.perf_counter() - t0

    def _work(self) -> None:
        status, error = FINISHED, None
        try:
            _bound_threads()
            t_start = time.perf_counter()
            paused_for = [0.0]
            method = self.method_cls(self.dataset, self.spec.ipc, config=self.config, seed=self.spec.seed,
                                     device=self.device)
            self.config = method.config  # as run: a depth left "by image size" (0) is settled by the method
            if hasattr(method, "should_stop"):  # mtt: a stop also interrupts training its experts on first use
                method.should_stop = self._stop.is_set
            if self.spec.steps is None and method.iterative:  # some distillers size their default by IPC
                self.total_steps = int(getattr(method, "default_steps", self.total_steps) or self.total_steps)
            log_every = max(1, math.ceil(self.total_steps / MAX_LOGGED_ROWS))
            capacity = 64
            if method.iterative:
                capacity = snapshot_capacity(method.summary().images)
            run = DistillRun(method, self.total_steps, snapshot_capacity=capacity, log_every=log_every)
            with self._lock:
                self._run = run
                if self._status == STARTING:
                    self._status = RUNNING
            if method.iterative:  # the initial images are the first grid, before any step
                run.snapshots.offer(0, method.summary().images, force=True)
                self._publish(run)
                self._record(run, 0.0)
            last_publish = 0.0
            while not run.finished:
                self._wait_while_paused(paused_for)
                if self._stop.is_set():
                    status = STOPPED
                    break
                run.step_once()
                now = time.perf_counter()
                if now - last_publish >= PUBLISH_EVERY_S or run.finished:
                    self._publish(run)
                    last_publish = now
                self._record(run, now - t_start - paused_for[0])
            self._publish(run)
            self._record(run, time.perf_counter() - t_start - paused_for[0])
        except BaseException as exc:  # noqa: BLE001 - every failure becomes a status, never a crash
            status, error = (STOPPED, None) if self._stop.is_set() else (FAILED, _short_error(exc))
        finally:
            with self._lock:
                self._status = status
                self._error = error
            _release(self)
            self._worker_done.set()
            self._eval_wake.set()
        if self.autosave_dir is not None and status in (FINISHED, STOPPED):
            evaluator = self._evaluator
            if evaluator is not None and evaluator.is_alive():  # the final step's accuracy goes into the save
                evaluator.join(AUTOSAVE_EVAL_WAIT_S)
            self.autosave()

    # ------------------------------------------------------------------------------------------ evaluator
    def _protocol(self) -> str:
        from .evaluate import protocol_names

        wanted = self.spec.eval_protocol
        if wanted == "auto":
            return "krr" if "krr" in protocol_names() else "quick"
        return wanted

    def _evaluate(self, summary: Summary) -> dict[str, Any]:
        protocol = self._protocol()
        t0 = time.perf_counter()
        acc, model = live_evaluate(summary, self.dataset, protocol, self.spec.seed, self.device,
                                   self.spec.eval_epochs, self._stop.is_set)
        row = {"acc": acc, "protocol": protocol, "model": model, "seconds": round(time.perf_counter() - t0, 3)}
        if protocol == "quick":
            row["epochs"] = int(self.spec.eval_epochs)
        return row

    def _eval_loop(self) -> None:
        try:
            _bound_threads()
            last_step, next_due = -1, 0.0
            while not self._stop.is_set():
                now = time.monotonic()
                self._eval_wake.wait(timeout=next_due - now if next_due > now else 0.5)
                self._eval_wake.clear()
                if self._stop.is_set():
                    break
                with self._lock:
                    summary, step, status = self._summary, self._step, self._status
                done = self._worker_done.is_set()
                if done and (summary is None or step == last_step or status == FAILED):
                    break
                if summary is None or step == last_step or status == PAUSED:
                    continue
                if not done and time.monotonic() < next_due:
                    continue
                with self._lock:
                    self._evaluating = True
                try:
                    row = self._evaluate(summary)
                finally:
                    with self._lock:
                        self._evaluating = False
                if self._stop.is_set():
                    break
                row["step"] = step
                with self._lock:
                    self._accuracy.append(row)
                last_step = step
                if done:  # the final summary has been measured
                    break
                next_due = time.monotonic() + max(float(self.spec.eval_every_s), 2.0 * row["seconds"])
        except BaseException as exc:  # noqa: BLE001 - a failed evaluation never fails the job
            with self._lock:
                self._eval_error = _short_error(exc)
                self._evaluating = False


def live_evaluate(summary: Summary, dataset: ImageSet, protocol: str, seed: int = 0, device: Any = "cpu",
                  epochs: int | None = 40, should_stop=None) -> tuple[float, str]:
    """The live evaluation a job plots: one network (`quick`, `epochs` epochs) or the protocol as it is (`krr`).
    Returns (accuracy, model)."""
    from .evaluate import evaluate_summary

    kwargs: dict[str, Any] = {"reps": 1, "seed": seed, "device": device}
    if protocol == "quick":
        kwargs.update(epochs=max(1, int(epochs or 40)), should_stop=should_stop)
    result = evaluate_summary(summary, dataset, protocol, **kwargs)
    return float(result.acc_mean), result.model


# reference lines of the live accuracy plot -------------------------------------------------------------------
REFERENCE_SEEDS = 3              # random picks: mean over this many draws
FULL_DATA_MAX = {"krr": 5000}  # the full-data line: krr on training sets up to this size (seconds; a network on
#                                  all of digits takes over a minute of a CPU core, so `quick` gets none)
_REF_LOCK = threading.Lock()
_REFS: dict[tuple, dict[str, float]] = {}
_REF_QUEUE: "collections.OrderedDict[tuple, ImageSet]" = collections.OrderedDict()
_REF_THREAD: threading.Thread | None = None
_REF_MAX = 128


def reference_accuracies(dataset_name: str, ipc: int, protocol: str, epochs: int | None = None,
                         dataset: ImageSet | None = None) -> dict[str, float]:
    """Accuracies to draw beside a live curve, measured with the same live evaluation: 'random picks' (random real
    images at the same IPC, mean of REFERENCE_SEEDS draws) and 'full data' (the whole training split, when it is
    small enough to be quick). Computed once per (dataset, IPC, protocol, epochs) in one background thread and
    cached; until then (or without `dataset` to compute from) what is known so far, possibly {}."""
    global _REF_THREAD
    key = (str(dataset_name), int(ipc), str(protocol), int(epochs) if epochs else None)
    with _REF_LOCK:
        known = dict(_REFS.get(key, {}))
        if key in _REFS or dataset is None or key in _REF_QUEUE:
            return known
        _REF_QUEUE[key] = dataset
        if _REF_THREAD is None or not _REF_THREAD.is_alive():
            _REF_THREAD = threading.Thread(target=_reference_loop, name="distill-reference", daemon=True)
            _REF_THREAD.start()
    return known


def _reference_loop() -> None:
    global _REF_THREAD
    _bound_threads()
    while True:
        with _REF_LOCK:
            if not _REF_QUEUE:
                _REF_THREAD = None
                return
            key, dataset = _REF_QUEUE.popitem(last=False)
            _REFS[key] = {}
            while len(_REFS) > _REF_MAX:
                _REFS.pop(next(iter(_REFS)))
        try:
            _compute_references(key, dataset)
        except Exception:  # noqa: BLE001 - a reference line is optional; what was measured stays
            pass


def _compute_references(key: tuple, dataset: ImageSet) -> None:
    from .methods import create_method

    _, ipc, protocol, epochs = key
    accs = []
    for seed in range(REFERENCE_SEEDS):
        summary = create_method("random", dataset, ipc, seed=seed).summary()
        accs.append(live_evaluate(summary, dataset, protocol, seed, "cpu", epochs)[0])
    with _REF_LOCK:
        _REFS.setdefault(key, {})["random picks"] = sum(accs) / len(accs)
    if len(dataset.y_train) <= FULL_DATA_MAX.get(protocol, 0):
        counts = torch.bincount(dataset.y_train.long(), minlength=dataset.num_classes)
        full = Summary(dataset.x_train.float(), dataset.y_train.long(), "full", dataset.name,
                       int(counts.max()), list(dataset.class_names), {})
        acc = live_evaluate(full, dataset, protocol, 0, "cpu", epochs)[0]
        with _REF_LOCK:
            _REFS.setdefault(key, {})["full data"] = acc


def warm_up(dataset: str = "digits", method: str | None = None) -> float:
    """Pay the first-use costs once (torch's optimiser machinery imports ~3 s of modules; the embedded dataset;
    one step of a distiller) so that a user's first Start shows its grid at once. Returns the seconds spent.
    Meant for a background thread at server start; failures are ignored."""
    t0 = time.perf_counter()
    try:
        _bound_threads()
        p = torch.zeros(2, requires_grad=True)
        opt = torch.optim.Adam([p], lr=0.1)
        (p ** 2).sum().backward()
        opt.step()
        from .methods import METHODS

        ds = load_dataset(dataset)
        name = method or next((m for m in ("kip", "dm") if m in METHODS), None)
        if name is not None:
            m = METHODS[name](ds, 1, seed=0)
            m.step()
            m.summary()
    except Exception:  # noqa: BLE001 - warming is best effort
        pass
    finally:
        if running_jobs() == 0:
            torch.set_num_threads(_ORIGINAL_THREADS)
    return time.perf_counter() - t0


def start_job(spec: JobSpec, dataset: ImageSet | None = None, autosave_dir: str | Path | None = None) -> Job:
    """Validate `spec` (DistillError with a clear message), reserve a slot, start the threads."""
    return Job(spec, dataset, autosave_dir).start()


def job_wait(job: Job, timeout: float = 60.0, poll: float = 0.05) -> JobState:
    """Block until the job is no longer active (or `timeout`); returns its state. For scripts and tests."""
    deadline = time.monotonic() + timeout
    state = job.state()
    while state.active and time.monotonic() < deadline:
        time.sleep(poll)
        state = job.state()
    return state


# the server-wide registry: jobs by unguessable token --------------------------------------------------------
IDLE_TIMEOUT_ENV = "DISTILL_JOB_IDLE_S"
DEFAULT_IDLE_TIMEOUT_S = 300.0   # a job no page holds is stopped (and autosaved) after this many seconds
MAX_REGISTERED = 64              # entries kept (finished ones with no holder are dropped first)
TOKEN_BYTES = 18                 # secrets.token_urlsafe(18): 24 characters, 144 random bits
_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{16,64}")


def new_token() -> str:
    """A fresh unguessable job token (URL-safe)."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def valid_token(token: Any) -> bool:
    """True for a string that has the shape of a token (says nothing about whether a job has it)."""
    return isinstance(token, str) and _TOKEN_RE.fullmatch(token) is not None


def idle_timeout_from_env(default: float = DEFAULT_IDLE_TIMEOUT_S) -> float:
    """$DISTILL_JOB_IDLE_S when it is a non-negative number, else `default`."""
    raw = os.environ.get(IDLE_TIMEOUT_ENV, "").strip()
    try:
        value = float(raw) if raw else default
    except ValueError:
        return default
    return value if math.isfinite(value) and value >= 0 else default


@dataclass
class _Entry:
    job: Job
    holders: set[str]
    idle_since: float | None


class JobRegistry:
    """Jobs keyed by token, shared by every browser session of the server.

    `start(token, spec, ..., holder=h)` starts a job under a fresh token held by `h`; `attach(token, h)` finds
    it again (a reload, a reconnect, another tab with the link) and `release(token, h)` lets go. With no holder
    left the entry's idle timer runs: after `idle_timeout_s` the job is stopped and the entry dropped. Jobs still
    count against the global cap while nobody holds them, and at most `max_entries` entries are kept."""

    def __init__(self, idle_timeout_s: float | None = None, max_entries: int = MAX_REGISTERED,
                 clock=time.monotonic):
        self.idle_timeout_s = idle_timeout_from_env() if idle_timeout_s is None else float(idle_timeout_s)
        self.max_entries = int(max_entries)
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}
        self._sweeper: threading.Thread | None = None
        self._wake = threading.Event()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def start(self, token: str, spec: JobSpec, dataset: ImageSet | None = None, holder: str | None = None,
              autosave_dir: str | Path | None = None) -> Job:
        """Start a job under `token` (a token is used once); BusyError at the global cap."""
        if not valid_token(token):
            raise InvalidInputError("invalid job token")
        self.sweep()
        with self._lock:
            if token in self._entries:
                raise InvalidInputError("this job token is already in use")
        job = start_job(spec, dataset, autosave_dir)
        with self._lock:
            self._entries[token] = _Entry(job, {holder} if holder else set(), None if holder else self._clock())
            self._evict()
        if not holder:
            self._ensure_sweeper()
        return job

    def get(self, token: Any) -> Job | None:
        """The job under `token`, or None (an unknown or malformed token); does not hold it."""
        if not valid_token(token):
            return None
        with self._lock:
            entry = self._entries.get(token)
            return entry.job if entry is not None else None

    def attach(self, token: Any, holder: str) -> Job | None:
        """Hold `token` for `holder` (its idle timer stops); returns its job, or None when there is none."""
        if not valid_token(token):
            return None
        with self._lock:
            entry = self._entries.get(token)
            if entry is None:
                return None
            entry.holders.add(holder)
            entry.idle_since = None
            return entry.job

    def release(self, token: Any, holder: str) -> None:
        """`holder` lets go of `token`; with no holder left, its idle timer starts."""
        with self._lock:
            entry = self._entries.get(token) if valid_token(token) else None
            if entry is None:
                return
            entry.holders.discard(holder)
            if entry.holders or entry.idle_since is not None:
                return
            entry.idle_since = self._clock()
        self._ensure_sweeper()

    def holders(self, token: Any) -> int:
        with self._lock:
            entry = self._entries.get(token) if valid_token(token) else None
            return len(entry.holders) if entry is not None else 0

    def sweep(self) -> int:
        """Stop and drop the entries idle for `idle_timeout_s` or longer; returns how many were dropped."""
        now = self._clock()
        with self._lock:
            expired = [t for t, e in self._entries.items()
                       if not e.holders and e.idle_since is not None and now - e.idle_since >= self.idle_timeout_s]
            jobs = [self._entries.pop(t).job for t in expired]
        for job in jobs:
            job.stop(wait=False)  # the worker autosaves a stopped job itself
        return len(jobs)

    def stop_all(self, timeout: float = 10.0) -> None:
        """Stop every job and forget every token (tests, shutdown)."""
        with self._lock:
            jobs = [e.job for e in self._entries.values()]
            self._entries.clear()
        for job in jobs:
            job.stop(wait=True, timeout=timeout)

    def _evict(self) -> None:
        """Called with the lock held: drop entries beyond `max_entries`, inactive unheld ones (oldest) first."""
        if len(self._entries) <= self.max_entries:
            return
        def rank(item: tuple[str, _Entry]) -> tuple[int, int, float]:
            _, e = item
            return (e.job.state().active, bool(e.holders), e.job.started_at)
        for token, entry in sorted(self._entries.items(), key=rank):
            if len(self._entries) <= self.max_entries:
                break
            if entry.job.state().active:
                continue  # a running job keeps its entry (the global cap bounds how many there are)
            del self._entries[token]

    def _ensure_sweeper(self) -> None:
        with self._lock:
            if self._sweeper is not None and self._sweeper.is_alive():
                return
            self._sweeper = threading.Thread(target=self._sweep_loop, name="distill-sweeper", daemon=True)
            self._sweeper.start()

    def _sweep_loop(self) -> None:
        period = min(1.0, max(0.05, self.idle_timeout_s / 4))
        while True:
            try:
                self.sweep()
            except Exception:  # noqa: BLE001 - the sweeper must outlive a bad entry
                pass
            with self._lock:
                if not any(not e.holders and e.idle_since is not None for e in self._entries.values()):
                    self._sweeper = None
                    return
            time.sleep(period)


_REGISTRY: JobRegistry | None = None


def registry() -> JobRegistry:
    """The process-wide job registry (created on first use; idle timeout from $DISTILL_JOB_IDLE_S)."""
    global _REGISTRY
    with _REGISTRY_LOCK:
        if _REGISTRY is None:
            _REGISTRY = JobRegistry()
        return _REGISTRY

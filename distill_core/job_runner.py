"""`Job`: one method driven step by step by `pipeline.DistillRun` in a worker thread, with an evaluator thread
that measures the latest summary now and then (see `distill_core.jobs` for the whole picture). Readers poll
`job.state()`; nothing they do waits for the loop."""
from __future__ import annotations

import collections
import math
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import torch

from .data import ImageSet
from .device import describe_device, resolve_device
from .errors import InvalidInputError
from .job_save import JobSaver
from .job_slots import _bound_threads, _release, _reserve
from .job_spec import (ACTIVE_STATUSES, FAILED, FINISHED, MAX_PLOT_POINTS, PAUSED, RUNNING, STARTING, STOPPED,
                       JobSpec, JobState, _load, _short_error, check_spec, snapshot_capacity)
from .pipeline import DistillRun
from .references import live_evaluate
from .summary import Summary

MAX_LOGGED_ROWS = 5000          # a long run logs every k-th step so its metrics history stays bounded
PUBLISH_EVERY_S = 0.05          # the worker hands fresh images to readers at most this often
AUTOSAVE_EVAL_WAIT_S = 120.0    # an autosave waits this long at most for the final step's evaluation


def _thin(rows: list[dict[str, Any]], limit: int = MAX_PLOT_POINTS) -> list[dict[str, Any]]:
    """At most about `limit` rows, evenly spaced, the last one always kept."""
    if len(rows) <= limit:
        return list(rows)
    stride = math.ceil(len(rows) / limit)
    out = rows[::stride]
    if out[-1] is not rows[-1]:
        out.append(rows[-1])
    return out


def _rate_and_eta(window: list[tuple[float, int]], elapsed: float, step: int, total_steps: int,
                  status: str) -> tuple[float, float | None]:
    """Steps per second (over the recent (time, step) window, else the whole run) and seconds left (None while
    the rate is unknown, 0 once the job is over)."""
    rate = 0.0
    if len(window) >= 2 and window[-1][0] > window[0][0]:
        rate = (window[-1][1] - window[0][1]) / (window[-1][0] - window[0][0])
    elif elapsed > 0 and step:
        rate = step / elapsed
    eta = None
    if status in ACTIVE_STATUSES and rate > 0:
        eta = (total_steps - step) / rate
    elif status not in ACTIVE_STATUSES:
        eta = 0.0
    return rate, eta


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
        self._saver = JobSaver(self)  # run_config, evaluations, save and the one autosave
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
        rate, eta = _rate_and_eta(window, elapsed, step, self.total_steps, status)
        saver = self._saver
        return JobState(self.id, self.spec, self.method_cls.kind, status, step, self.total_steps, version,
                        summary.images if summary is not None else None,
                        summary.hard_labels if summary is not None else None,
                        list(self.dataset.class_names), rows, accuracy, snap_steps, elapsed, rate, eta, error,
                        evaluating, eval_error, describe_device(self.device),
                        str(saver.saved_path) if saver.saved_path is not None else None, saver.save_error)

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
        return self._saver.run_config()

    def evaluations(self) -> list[dict[str, Any]]:
        """The live evaluation of the latest published step, in the run folder's evaluation format."""
        return self._saver.evaluations()

    @property
    def saved_path(self) -> Path | None:
        """The run folder this job autosaved itself to, once it has."""
        return self._saver.saved_path

    def autosave(self) -> Path | None:
        """Save once into `autosave_dir` (a finished or stopped job with a summary); later calls return the same
        folder. A failure is kept as `save_error` (state) and returns None."""
        return self._saver.autosave()

    def save(self, out_dir: str | Path | None = None, runs_dir: str | Path | None = None) -> Path:
        """Write the latest summary as a run folder (default: a new name under the runs folder)."""
        return self._saver.save(out_dir, runs_dir)

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
        live = live_evaluate(summary, self.dataset, protocol, self.spec.seed, self.device,
                             self.spec.eval_epochs, self._stop.is_set)
        row = {"acc": live.acc, "protocol": protocol, "model": live.model,
               "seconds": round(time.perf_counter() - t0, 3)}
        if protocol == "quick":
            row["epochs"] = int(self.spec.eval_epochs)
        if live.diverged_epoch is not None:  # the accuracy stays as measured; the row says it is a broken network's
            row["diverged_epoch"] = live.diverged_epoch
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

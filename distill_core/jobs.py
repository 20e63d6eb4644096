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

The pieces live in their own modules and are re-exported here, so callers import from this one:
`job_spec` (JobSpec, JobState, statuses, `check_spec`), `job_slots` (the global cap, BusyError, thread bound),
`job_runner` (Job, `start_job`, `job_wait`), `job_save` (run folders, the autosave), `references` (the live
evaluation and the reference lines), `job_warm` (`warm_up`), `job_registry` (tokens, JobRegistry, `registry()`).
Each piece of process-wide state (slots, reference cache, registry) lives in one of them only: a test that patches
a name patches it in the module that looks it up.
"""
from __future__ import annotations

from . import job_registry, job_slots, references
from .errors import DistillError, InvalidInputError
from .job_registry import (DEFAULT_IDLE_TIMEOUT_S, IDLE_TIMEOUT_ENV, MAX_REGISTERED, TOKEN_BYTES, JobRegistry,
                           idle_timeout_from_env, new_token, registry, valid_token)
from .job_runner import AUTOSAVE_EVAL_WAIT_S, MAX_LOGGED_ROWS, PUBLISH_EVERY_S, Job, job_wait, start_job
from .job_save import JobSaver
from .job_slots import BusyError, _bound_threads, _release, _reserve, running_jobs
from .job_spec import (ACTIVE_STATUSES, FAILED, FINISHED, MAX_PLOT_POINTS, PAUSED, RUNNING, SNAPSHOT_BYTES,
                       STARTING, STOPPED, JobSpec, JobState, _check_seed, _check_steps, _load, check_spec,
                       snapshot_capacity)
from .job_warm import warm_up
from .references import FULL_DATA_MAX, REFERENCE_SEEDS, live_evaluate, reference_accuracies

__all__ = [
    # statuses and constants
    "STARTING", "RUNNING", "PAUSED", "FINISHED", "STOPPED", "FAILED", "ACTIVE_STATUSES", "MAX_PLOT_POINTS",
    "MAX_LOGGED_ROWS", "SNAPSHOT_BYTES", "PUBLISH_EVERY_S", "AUTOSAVE_EVAL_WAIT_S", "REFERENCE_SEEDS",
    "FULL_DATA_MAX", "IDLE_TIMEOUT_ENV", "DEFAULT_IDLE_TIMEOUT_S", "MAX_REGISTERED", "TOKEN_BYTES",
    # errors (DistillError and InvalidInputError as callers catch them here)
    "BusyError", "DistillError", "InvalidInputError",
    # specs, state, jobs
    "JobSpec", "JobState", "Job", "JobSaver", "check_spec", "snapshot_capacity", "start_job", "job_wait",
    "running_jobs", "stop_all", "warm_up", "live_evaluate", "reference_accuracies",
    # the registry
    "JobRegistry", "registry", "new_token", "valid_token", "idle_timeout_from_env",
    # private, but the bench runner shares the slots and tests check specs through them
    "_bound_threads", "_release", "_reserve", "_check_seed", "_check_steps", "_load",
]


def stop_all(timeout: float = 10.0) -> None:
    """Stop every job of this process, forget every token of the registry, and let the reference-line thread
    finish what it is computing (tests, shutdown: no thread is left inside torch when the interpreter exits)."""
    with job_slots.SLOT_LOCK:
        jobs = list(job_slots._RUNNING)
        reg = job_registry.existing_registry()
    if reg is not None:
        reg.stop_all(timeout)
    for job in jobs:
        job.stop(wait=True, timeout=timeout)
    references.stop_references(timeout)

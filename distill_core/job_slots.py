"""The process-wide cap on running jobs: a slot per job (`LIMITS.max_concurrent_jobs` of them), and the bound on
torch's intra-op threads inside job threads. Distillations and bench runs share these slots, so the state lives
here once; read it through `running_jobs()`."""
from __future__ import annotations

import threading
from typing import Any

import torch

from .errors import DistillError
from .limits import LIMITS

SLOT_LOCK = threading.Lock()  # guards _RUNNING (and the creation of the job registry, `job_registry.registry`)
_RUNNING: set[Any] = set()    # the jobs holding a slot (never rebound: readers may keep a reference)
_ORIGINAL_THREADS = torch.get_num_threads()


class BusyError(DistillError):
    """Raised by `start_job` when the server already runs its maximum number of jobs."""


def running_jobs() -> int:
    """How many jobs hold a slot (starting, running or paused) in this process."""
    with SLOT_LOCK:
        return len(_RUNNING)


def _reserve(job: Any) -> None:
    with SLOT_LOCK:
        if len(_RUNNING) >= LIMITS.max_concurrent_jobs:
            raise BusyError(f"busy — {len(_RUNNING)} distillation(s) already running on this server "
                            f"(the limit is {LIMITS.max_concurrent_jobs}); try again when one finishes")
        _RUNNING.add(job)


def _release(job: Any) -> None:
    with SLOT_LOCK:
        _RUNNING.discard(job)
        idle = not _RUNNING
    if idle:  # the next thread created starts with the process's original thread count again
        torch.set_num_threads(_ORIGINAL_THREADS)


def _bound_threads() -> None:
    """Called at the top of each job thread: torch intra-op threads for this thread (and new ones) bounded."""
    limit = max(1, int(LIMITS.job_torch_threads))
    if torch.get_num_threads() != limit:
        torch.set_num_threads(limit)


def restore_threads_when_idle() -> None:
    """Give torch the process's original thread count again when no job holds a slot."""
    if running_jobs() == 0:
        torch.set_num_threads(_ORIGINAL_THREADS)

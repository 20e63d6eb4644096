"""Background work that steps aside: work preparing a (dataset, space) in a background thread holds still between
small pieces while a distillation runs or a page waits for another map, and goes on at full speed when a page
waits for this very work (the page joins it instead of starting it again).
"""
from __future__ import annotations

import contextlib
import threading
import time
from typing import Iterator

from .data import ImageSet
from .embed_common import COMPUTE_THREADS, dataset_key, torch_threads
from .job_slots import running_jobs

_BACKGROUND = threading.local()   # .work: the (dataset key, space) a background thread prepares; .stats
_DEMAND: dict[tuple[str, str], int] = {}   # (dataset key, space) -> page calls waiting for it
_DEMAND_LOCK = threading.Lock()
HOLD_POLL_S = 0.1


@contextlib.contextmanager
def _demanded(ds: ImageSet, space: str) -> Iterator[None]:
    """Marks (dataset, space) as wanted by a page call for a block (background threads mark nothing)."""
    if getattr(_BACKGROUND, "work", None) is not None:
        yield
        return
    key = (dataset_key(ds), space)
    with _DEMAND_LOCK:
        _DEMAND[key] = _DEMAND.get(key, 0) + 1
    try:
        yield
    finally:
        with _DEMAND_LOCK:
            _DEMAND[key] -= 1
            if not _DEMAND[key]:
                del _DEMAND[key]


def _jobs_running() -> int:
    return running_jobs()


def background_should_hold(work: tuple[str, str]) -> bool:
    """Whether background work on `work` should wait: a distillation is running, or a page waits for another
    map — unless a page waits for this very work (then it goes on at full speed)."""
    with _DEMAND_LOCK:
        if work in _DEMAND:
            return False
        others = bool(_DEMAND)
    return others or _jobs_running() > 0


def _pause_point() -> None:
    """Called between small pieces of work (training steps, feature batches): in a background thread, wait while
    `background_should_hold`; in a page's call, return at once."""
    work = getattr(_BACKGROUND, "work", None)
    if work is None:
        return
    stats = _BACKGROUND.stats
    while background_should_hold(work):
        stats["holds"] += 1
        t = time.perf_counter()
        time.sleep(HOLD_POLL_S)
        stats["held_s"] += time.perf_counter() - t


@contextlib.contextmanager
def background_work(ds: ImageSet, space: str) -> Iterator[dict[str, float]]:
    """Run the block as background work preparing (ds, space) in the calling thread: it steps aside at every
    `_pause_point` while `background_should_hold`, on one torch thread. Yields live stats: `holds` (pauses) and
    `held_s` (seconds spent holding)."""
    stats = {"holds": 0, "held_s": 0.0}
    _BACKGROUND.work, _BACKGROUND.stats = (dataset_key(ds), space), stats
    try:
        with torch_threads(COMPUTE_THREADS):
            yield stats
    finally:
        _BACKGROUND.work = None

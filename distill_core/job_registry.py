"""The server-wide job registry: jobs keyed by an unguessable token that a page puts in its URL, held by the pages
showing them and stopped (and autosaved) after an idle timeout once no page holds them. The process-wide instance
(`registry()`) exists only in this module."""
from __future__ import annotations

import math
import os
import re
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .data import ImageSet
from .errors import InvalidInputError
from .job_runner import Job, start_job
from .job_slots import SLOT_LOCK
from .job_spec import JobSpec

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


_REGISTRY: JobRegistry | None = None  # read it through `registry()` or `existing_registry()`


def registry() -> JobRegistry:
    """The process-wide job registry (created on first use; idle timeout from $DISTILL_JOB_IDLE_S)."""
    global _REGISTRY
    with SLOT_LOCK:
        if _REGISTRY is None:
            _REGISTRY = JobRegistry()
        return _REGISTRY


def existing_registry() -> JobRegistry | None:
    """The process-wide registry if one was created, else None; called with `SLOT_LOCK` held (`jobs.stop_all`)."""
    return _REGISTRY

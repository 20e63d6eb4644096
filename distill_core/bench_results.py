"""Bench results: a bench run in a background thread, and the JSON files `python -m distill_core bench --out`
writes (kept under <runs dir>/bench). No UI code: the app polls `BenchJob.state()`.
"""
from __future__ import annotations

import json
import math
import os
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any


from .atomic import write_text_atomically
from .bench import BenchRow, check_bench, run_bench
from .data import ImageSet
from .errors import DistillError, InvalidInputError, RunFormatError
from .job_slots import _bound_threads, _release, _reserve
from .runs import default_runs_dir

_MAX_FILE_BYTES = 20 * 2 ** 20


def bench_dir(runs_dir: str | os.PathLike | None = None) -> Path:
    """Where saved bench results live: <runs dir>/bench."""
    return (Path(runs_dir) if runs_dir is not None else default_runs_dir()) / "bench"


def bench_payload(dataset: str, protocol: str, ipcs: list[int], device: str, seconds: float,
                  rows: list[BenchRow] | list[dict], **settings: Any) -> dict[str, Any]:
    """The JSON object `python -m distill_core bench --json/--out` writes (and the app saves): the bench's
    `settings` (profile, split, seeds, models, overrides, ...) sit beside the rows, each row also carrying its own."""
    return {"dataset": dataset, "protocol": protocol, "ipcs": [int(i) for i in ipcs], "device": device, **settings,
            "seconds": round(float(seconds), 2),
            "rows": [r.to_dict() if isinstance(r, BenchRow) else dict(r) for r in rows]}


def _finite_or_none(v: Any) -> float | None:
    if v is None or isinstance(v, bool):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def validate_payload(data: Any, where: str = "the bench file") -> dict[str, Any]:
    """Check a bench JSON object; rows are normalised (method str, ipc int, acc_mean/acc_std floats or None)."""
    if not isinstance(data, dict) or not isinstance(data.get("rows"), list):
        raise RunFormatError(f"{where} is not a bench result (a JSON object with 'rows' is expected)")
    rows = []
    for r in data["rows"]:
        if not isinstance(r, dict) or not isinstance(r.get("method"), str) \
                or isinstance(r.get("ipc"), bool) or not isinstance(r.get("ipc"), int):
            raise RunFormatError(f"{where} has a row without a method name and a whole-number ipc")
        row = dict(r)
        row["acc_mean"], row["acc_std"] = _finite_or_none(r.get("acc_mean")), _finite_or_none(r.get("acc_std"))
        if row["acc_mean"] is not None and not 0.0 <= row["acc_mean"] <= 1.0:
            raise RunFormatError(f"{where} has an accuracy outside [0, 1] ({row['acc_mean']})")
        rows.append(row)
    out = dict(data)
    out["rows"] = rows
    out.setdefault("dataset", "?")
    out.setdefault("protocol", "?")
    return out


def load_bench(path: str | os.PathLike) -> dict[str, Any]:
    """Read and check a bench JSON file."""
    p = Path(path)
    if not p.is_file():
        raise RunFormatError(f"bench file {p} does not exist")
    if p.stat().st_size > _MAX_FILE_BYTES:
        raise RunFormatError(f"bench file {p} is too large to be a bench result")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        raise RunFormatError(f"bench file {p.name} is not valid JSON") from None
    return validate_payload(data, f"bench file {p.name}")


def save_bench(payload: dict[str, Any], path: str | os.PathLike | None = None,
               runs_dir: str | os.PathLike | None = None) -> Path:
    """Write a bench result atomically (default: <runs dir>/bench/<dataset>-<time>.json); returns its path."""
    payload = validate_payload(payload, "the bench result")
    if path is None:
        safe = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in str(payload["dataset"]))[-40:]
        path = bench_dir(runs_dir) / f"{safe}-{payload['protocol']}-{datetime.now():%Y%m%d-%H%M%S}.json"
    out = Path(path)
    try:
        write_text_atomically(out, json.dumps(payload, indent=2, default=str))
    except OSError as exc:
        raise InvalidInputError(f"cannot write bench result {out}: {exc.strerror or exc}") from None
    return out


def list_bench(runs_dir: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """Saved bench results under <runs dir>/bench, newest first: name, path, mtime (and dataset when readable)."""
    d = bench_dir(runs_dir)
    if not d.is_dir():
        return []
    rows = []
    for p in d.glob("*.json"):
        if p.name.startswith(".") or not p.is_file():
            continue
        rows.append({"name": p.name, "path": str(p), "mtime": p.stat().st_mtime})
    return sorted(rows, key=lambda r: r["mtime"], reverse=True)


def row_models(payload: dict[str, Any]) -> list[str]:
    """The evaluating architectures of a bench's rows, in order of appearance (rows without one: convnet)."""
    return list(dict.fromkeys(str(r.get("model") or "convnet") for r in payload.get("rows", [])))


def curves(payload: dict[str, Any]) -> dict[str, list[tuple[int, float, float]]]:
    """Per line, its (ipc, acc_mean, acc_std) points sorted by ipc (rows with an error or no accuracy left out).
    A line is a method; when the rows were judged by several architectures, a (method, architecture) pair named
    "method · model", so no line mixes two architectures."""
    several = len(row_models(payload)) > 1
    out: dict[str, list[tuple[int, float, float]]] = {}
    for r in payload.get("rows", []):
        if r.get("error") or r.get("acc_mean") is None:
            continue
        line = f"{r['method']} · {r.get('model') or 'convnet'}" if several else r["method"]
        out.setdefault(line, []).append((int(r["ipc"]), float(r["acc_mean"]), float(r.get("acc_std") or 0.0)))
    return {m: sorted(v) for m, v in out.items()}


SPLIT_WORDS = {"test": "test", "val": "validation"}


def accuracy_label(payload: dict[str, Any]) -> str:
    """What the bench's accuracies are: "test accuracy" or "validation accuracy" (from the rows' split, else the
    payload's; rows from before splits existed are test figures), "accuracy" if the rows disagree."""
    rows = payload.get("rows", [])
    splits = {str(r.get("split") or payload.get("split") or "test") for r in rows} or {payload.get("split") or "test"}
    if len(splits) != 1:
        return "accuracy"
    split = splits.pop()
    return f"{SPLIT_WORDS.get(split, split)} accuracy"


# ------------------------------------------------------------------------------------------- job

@dataclass(frozen=True)
class BenchState:
    """A copy of a bench job's state, safe to read from any thread."""

    status: str                    # running, finished, stopped, failed
    rows: list[dict[str, Any]]
    total: int
    seconds: float
    error: str | None = None
    payload: dict[str, Any] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        return self.status == "running"


class BenchJob:
    """`run_bench` in a daemon thread; rows appear as they finish; `stop()` ends it between steps."""

    def __init__(self, dataset: ImageSet, methods: list[str], ipcs: list[int], steps: int | None = None,
                 protocol: str = "quick", reps: int | None = None, seed: int = 0, device: str = "auto",
                 relabel: str = "none", seeds: int = 1, profile: str = "fast", split: str = "test",
                 models: list[str] | None = None, overrides: dict[str, Any] | None = None):
        if not methods:
            raise InvalidInputError("choose at least one method to benchmark")
        if not ipcs or any(isinstance(i, bool) or int(i) < 1 for i in ipcs):
            raise InvalidInputError("choose at least one IPC (a positive whole number)")
        self.dataset, self.methods, self.ipcs = dataset, list(methods), sorted({int(i) for i in ipcs})
        # every setting is refused here, before the job takes a slot
        self.models, overrides = check_bench(dataset.name, self.methods, seeds, profile, split, models, relabel,
                                             overrides)
        self.kwargs = {"steps": steps, "protocol": protocol, "reps": reps, "seed": seed, "device": device,
                       "relabel": relabel, "seeds": seeds, "profile": profile, "split": split, "models": self.models,
                       "overrides": overrides}
        self._rows: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._status, self._error = "running", None
        self._t0 = time.perf_counter()
        self._t1: float | None = None
        self._thread = threading.Thread(target=self._work, name="distill-bench", daemon=True)

    def start(self) -> "BenchJob":
        """Take a slot under the server's one job cap (shared with distillations: BusyError when it is full)."""
        _reserve(self)
        self._t0 = time.perf_counter()
        try:
            self._thread.start()
        except BaseException:
            _release(self)
            raise
        return self

    def _on_row(self, row: BenchRow) -> None:
        with self._lock:
            self._rows.append(row.to_dict())

    def _work(self) -> None:
        try:
            _bound_threads()
            run_bench(self.dataset, self.methods, self.ipcs, on_row=self._on_row, should_stop=self._stop.is_set,
                      **self.kwargs)
            status, error = ("stopped" if self._stop.is_set() else "finished"), None
        except DistillError as exc:
            status, error = "failed", str(exc)
        except Exception as exc:  # noqa: BLE001 - reported as one line, never raised into the app
            status, error = "failed", f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
        finally:
            _release(self)
        with self._lock:
            self._status, self._error, self._t1 = status, error, time.perf_counter()

    def stop(self, wait: bool = False, timeout: float = 10.0) -> None:
        self._stop.set()
        if wait:
            self._thread.join(timeout)

    def join(self, timeout: float | None = None) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def state(self) -> BenchState:
        with self._lock:
            rows = [dict(r) for r in self._rows]
            status, error = self._status, self._error
            seconds = (self._t1 or time.perf_counter()) - self._t0
        from .device import resolve_device

        try:
            device = resolve_device(self.kwargs["device"]).type
        except DistillError:
            device = str(self.kwargs["device"])
        k = self.kwargs
        payload = bench_payload(self.dataset.name, k["protocol"], self.ipcs, device, seconds, rows,
                                profile=k["profile"], split=k["split"], seeds=k["seeds"], models=self.models,
                                relabel=k["relabel"], overrides=k["overrides"])
        return BenchState(status, rows, len(self.methods) * len(self.ipcs) * len(self.models), seconds, error,
                          payload)

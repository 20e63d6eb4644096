"""Warm-up at server start: compile umap's numba code in a background thread, then prepare the maps asked for.

A space with a feature network to train (`SERVER_WARM_SPACES`: convnet-trained) is prepared last, as background
work that steps aside (`embed_background`), and a page asking for the same map joins that work.
"""
from __future__ import annotations

import threading
import time
import warnings
from typing import Any, Iterable

import numpy as np

from .data import ImageSet
from .embed_background import background_work
from .embed_maps import get_embedding
from .embed_umap import _UMAP_LOCK, _WARM_INFO, _fast_transform, _new_reducer, _one_numba_thread

SERVER_WARM_SPACES = ("pixels", "convnet-trained")   # what app.py warms for the default dataset

_WARM = threading.Event()
_WARM_THREAD: threading.Thread | None = None
_WARM_ASKED: set[tuple[str, str]] = set()


def warm_up(datasets: Iterable[str] = (), spaces: Iterable[str] = ("pixels",)) -> threading.Thread:
    """Compile umap's numba code on a tiny array in a daemon thread, then fit (or load from the disk cache) the
    maps of `datasets` × `spaces` so their first map is ready. Idempotent: cheap to call on every app rerun; a
    thread starts only for work not asked for before. Returns the thread; `is_warm()` tells when umap is ready.

    A space with a feature network to train (convnet-trained) comes last and runs as background work: one torch
    thread, holding still between training steps and feature batches while a distillation runs or a page waits
    for another map (`background_should_hold`); a page asking for the same map waits for this work (it is not
    done twice) and the work then goes on at full speed."""
    global _WARM_THREAD
    todo = [(d, s) for d in datasets for s in spaces]
    with _UMAP_LOCK:
        new = [k for k in todo if k not in _WARM_ASKED]
        if _WARM_THREAD is not None and not new:
            return _WARM_THREAD
        _WARM_ASKED.update(new)
        previous = _WARM_THREAD
        thread = threading.Thread(target=_warm, args=(new, previous), name="distill-umap-warm-up", daemon=True)
        _WARM_THREAD = thread
    thread.start()
    return thread


def _warm(todo: list[tuple[str, str]], previous: threading.Thread | None) -> None:
    """Maps asked for first (loading a cached map and placing a few points needs only umap's transform code, so
    the first map is ready sooner), then a tiny fit + transform so every code path umap uses is compiled."""
    t0 = time.perf_counter()
    try:
        if previous is not None:
            previous.join()
        _one_numba_thread()
        from .data import load_dataset

        quick = [(d, s) for d, s in todo if s != "convnet-trained"]
        for name, space in quick:
            ds = load_dataset(name)
            get_embedding(ds, space).transform(ds.x_train[:4], memo=False)
        if not _WARM.is_set():
            x = np.random.default_rng(0).random((64, 8), dtype=np.float32)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                reducer = _fast_transform(_new_reducer(len(x)).fit(x))
                reducer.transform(x[:4] + 0.05)
            _WARM_INFO["compile_seconds"] = round(time.perf_counter() - t0, 2)
            _WARM.set()
        for name, space in todo:
            if (name, space) not in quick:
                _warm_in_background(load_dataset(name), space)
    except Exception as exc:  # warming is best effort; the real call reports any real problem
        _WARM_INFO["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        _WARM_INFO["seconds"] = round(time.perf_counter() - t0, 2)


def _warm_in_background(ds: ImageSet, space: str) -> None:
    """Train the feature network of `space` (or load it), compute the map's features and fit the map (or load
    it), as background work that steps aside (see `_pause_point`). Seconds spent and held go to `warm_info()`."""
    t0 = time.perf_counter()
    stats: dict[str, float] = {}
    try:
        with background_work(ds, space) as stats:
            get_embedding(ds, space)
    finally:
        _WARM_INFO.setdefault("background", {})[f"{ds.name}/{space}"] = {
            "seconds": round(time.perf_counter() - t0, 2), "held_s": round(stats.get("held_s", 0.0), 2)}


def join_warm_up(timeout: float | None = None) -> bool:
    """Wait for the warm-up thread (tests, shutdown: no thread left inside torch or numba at exit). True when
    no warm-up work is left."""
    with _UMAP_LOCK:
        thread = _WARM_THREAD
    if thread is not None:
        thread.join(timeout)
        return not thread.is_alive()
    return True


def is_warm() -> bool:
    """True once umap's numba code is compiled (or loaded from numba's disk cache) in this process."""
    return _WARM.is_set()


def warm_info() -> dict[str, Any]:
    return dict(_WARM_INFO, warm=_WARM.is_set())

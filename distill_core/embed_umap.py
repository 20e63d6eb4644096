"""umap-learn, imported once and set up for small maps on a small CPU.

umap compiles its numba code on first use (20-40 s on a small CPU); numba is asked to keep the compiled code on
disk, so later processes start in about a second. What the set-up found goes to `_WARM_INFO` (see `warm_info`).
"""
from __future__ import annotations

import threading
import warnings
from typing import Any

from . import umap_fast

UMAP_PARAMS = {"n_neighbors": 15, "min_dist": 0.1, "n_epochs": 200, "random_state": 0, "transform_seed": 42}

_UMAP_MOD: Any = None
_UMAP_LOCK = threading.Lock()
_WARM_INFO: dict[str, Any] = {}


def _enable_numba_disk_cache() -> int:
    """Ask numba to keep umap/pynndescent's compiled code on disk (many of their functions do not by default)."""
    import sys

    try:
        from numba.core.dispatcher import Dispatcher
    except Exception:
        return 0
    count = 0
    for name, mod in list(sys.modules.items()):
        if not name.startswith(("umap", "pynndescent")) or mod is None:
            continue
        for value in list(vars(mod).values()):
            try:
                if isinstance(value, Dispatcher) and type(value._cache).__name__ == "NullCache":
                    value.enable_caching()
                    count += 1
            except Exception:  # numba internals differ: caching is only a speed-up
                continue
    return count


def _umap() -> Any:
    """The umap module, imported once (with numba disk caching switched on)."""
    global _UMAP_MOD
    with _UMAP_LOCK:
        if _UMAP_MOD is None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                import umap  # noqa: PLC0415 - slow import, done lazily
            _WARM_INFO["numba_cached_functions"] = _enable_numba_disk_cache()
            _WARM_INFO["vectorised_small_data_distances"] = umap_fast.install_vectorised_small_data_distances()
            _WARM_INFO["argpartition_knn"] = umap_fast.install_fast_knn()
            _UMAP_MOD = umap
    return _UMAP_MOD


def _one_numba_thread() -> None:
    """Run umap's parallel numba loops in the calling thread: on a small shared CPU, waking a thread pool for
    each tiny loop costs more than the loop (about 40 ms per call under load)."""
    try:
        import numba

        numba.set_num_threads(1)  # thread-local setting
    except Exception:
        pass


def _new_reducer(n_points: int) -> Any:
    params = dict(UMAP_PARAMS)
    params["n_neighbors"] = max(2, min(params["n_neighbors"], n_points - 1))
    return _umap().UMAP(n_components=2, metric="euclidean", n_jobs=1, **params)


def _fast_transform(reducer: Any) -> Any:
    """umap's exact (small-data) transform calls its numba metric once per pair through sklearn; the string
    'euclidean' lets sklearn compute the same distances vectorised (about 20× faster for 100 points)."""
    if getattr(reducer, "_small_data", False) and getattr(reducer, "metric", None) == "euclidean" \
            and not getattr(reducer, "_sparse_data", False):
        reducer._input_distance_func = "euclidean"
    return reducer

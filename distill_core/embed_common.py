"""What the feature spaces and maps share: the spaces' names, the dataset fingerprint that keys every cache, where
the disk cache lives, the in-memory caches, and `torch_threads` (torch's thread count set for one computation,
never left changed for the rest of the process).
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import threading
import weakref
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import numpy as np
import torch

from .atomic import write_atomically
from .data import ImageSet
from .errors import UnknownNameError

EMBED_VERSION = 3           # 2: exact-PCA projection, feature ConvNet on a capped sample; 3: 60 training steps
CACHE_ENV = "DISTILL_CACHE_DIR"
COMPUTE_THREADS = 1          # torch threads of feature-network training and extraction: small convolutions, where
#                              a second thread mostly waits for a core on a shared 2-core CPU
_MEMORY_ITEMS = 8            # maps / feature pools kept in memory per kind

SPACES: dict[str, str] = {
    "pixels": "pixels (PCA to 50 dimensions)",
    "convnet-random": "features of a random ConvNet-3 (seed 0)",
    "convnet-trained": "features of a ConvNet-3 trained on the real training images (cached on disk)",
}

Progress = Optional[Callable[[str], None]]


def cache_dir() -> Path:
    """Where feature networks, feature pools and fitted maps are cached ($DISTILL_CACHE_DIR or ~/.cache)."""
    base = os.environ.get(CACHE_ENV)
    return (Path(base) if base else Path.home() / ".cache" / "distill-lab") / "features"


def check_space(space: str) -> str:
    if space not in SPACES:
        raise UnknownNameError(f"unknown feature space {space!r}; choose one of {', '.join(SPACES)}")
    return space


_KEYS: dict[int, tuple[weakref.ref, str]] = {}
_KEYS_LOCK = threading.Lock()


def dataset_key(ds: ImageSet) -> str:
    """A short, file-name-safe fingerprint of a dataset's training split and of the space models see it in
    (name + content hash + whether it is ZCA-whitened)."""
    with _KEYS_LOCK:
        hit = _KEYS.get(id(ds))
        if hit is not None and hit[0]() is ds:
            return hit[1]
    h = hashlib.blake2b(digest_size=8)
    h.update(repr((ds.name, tuple(ds.x_train.shape), list(ds.class_names), bool(ds.meta.get("zca")))).encode())
    x = ds.x_train.detach().cpu().contiguous()
    step = max(1, len(x) // 2000)
    h.update(x[::step].numpy().tobytes())
    h.update(ds.y_train.detach().cpu().numpy().tobytes())
    slug = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in ds.name)[-32:]
    key = f"{slug}-{h.hexdigest()}"
    with _KEYS_LOCK:
        _KEYS[id(ds)] = (weakref.ref(ds), key)
    return key


def sample_indices(labels: np.ndarray | torch.Tensor, n_max: int, seed: int = 0) -> np.ndarray:
    """Sorted indices of a stratified, seeded sample of at most `n_max` items (all of them when fewer)."""
    labels = labels.numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    n = len(labels)
    if n <= n_max:
        return np.arange(n, dtype=np.int64)
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    quota = np.maximum(1, np.floor(counts * n_max / n)).astype(int)
    while quota.sum() > n_max:  # rounding up the tiny classes may overshoot
        quota[np.argmax(quota)] -= 1
    picks = [rng.permutation(np.flatnonzero(labels == c))[:q] for c, q in zip(classes, quota)]
    return np.sort(np.concatenate(picks)).astype(np.int64)


def _try_cache_write(path: Path, write: Callable[[Path], None]) -> None:
    """Write a cache file; a cache that cannot be written (read-only home, full disk) only costs speed."""
    try:
        write_atomically(path, write)
    except OSError:
        pass


class _LRU:
    """A small thread-safe LRU dict with one lock per key, so a costly value is computed once."""

    def __init__(self, size: int):
        self.size = size
        self.items: OrderedDict[Any, Any] = OrderedDict()
        self.lock = threading.Lock()
        self.key_locks: dict[Any, threading.Lock] = {}

    def get_or_make(self, key: Any, make: Callable[[], Any]) -> Any:
        with self.lock:
            if key in self.items:
                self.items.move_to_end(key)
                return self.items[key]
            key_lock = self.key_locks.setdefault(key, threading.Lock())
        with key_lock:
            with self.lock:
                if key in self.items:
                    return self.items[key]
            value = make()
            with self.lock:
                self.items[key] = value
                while len(self.items) > self.size:
                    self.items.popitem(last=False)
                self.key_locks.pop(key, None)
            return value

    def clear(self) -> None:
        with self.lock:
            self.items.clear()


_NETS = _LRU(_MEMORY_ITEMS)
_POOLS = _LRU(_MEMORY_ITEMS)
_MAPS = _LRU(_MEMORY_ITEMS)


def clear_memory_cache() -> None:
    """Forget the in-memory networks, feature pools and maps (the disk cache stays)."""
    for lru in (_NETS, _POOLS, _MAPS):
        lru.clear()


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Torch intra-op threads of the calling thread set to `n` for a block, and restored afterwards (even on an
    error). Torch's setting also seeds threads that start using torch during the block, so the block is kept to
    the computation that needs it instead of changing the count for the rest of the process."""
    n = max(1, int(n))
    before = torch.get_num_threads()
    if before == n:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)

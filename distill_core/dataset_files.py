"""Where a disk dataset's files are, and what to say when they are not there.

`find_dataset_files` is the one place that decides whether a registry set read from disk is available: the
registry's availability checks and the loaders all use it. It looks in the data root (`--data-root` or
$DISTILL_DATA_ROOT) and, for Fashion-MNIST, in Debian's package `dataset-fashion-mnist`
(`/usr/share/datasets/fashion-mnist/`), in a fixed order.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DATA_ROOT_ENV = "DISTILL_DATA_ROOT"
TINY_NAME = "tiny-imagenet"
TINY_FOLDER = "tiny-imagenet-200"
TINY_URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
TINY_FILES = ("wnids.txt", "words.txt", "train/<wnid>/images/*.JPEG", "val/images/*.JPEG", "val/val_annotations.txt")


def default_data_root() -> Path:
    return Path(os.environ.get(DATA_ROOT_ENV) or Path.home() / ".cache" / "distill-lab" / "data")


IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
_IDX_FOLDERS = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST", "kmnist": "KMNIST"}  # torchvision's names
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

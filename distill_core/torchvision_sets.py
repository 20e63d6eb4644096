"""CIFAR-10, CIFAR-100 and SVHN through torchvision's readers (pickled batches, .mat files), and torchvision's
downloader for every torchvision set (only when asked, only when online)."""
from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import torch

from .dataset_files import _missing_message, default_data_root, find_dataset_files
from .errors import DatasetUnavailableError, InvalidInputError
from .imageset import ImageSet, _from_arrays


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

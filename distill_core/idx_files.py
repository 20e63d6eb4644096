"""The MNIST family (MNIST, Fashion-MNIST, KMNIST) from its four IDX files, raw or `.gz`, read here directly
(gzip, a header check, numpy) rather than through torchvision, so a broken file gives one clear message."""
from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from .dataset_files import _missing_message, default_data_root, find_dataset_files
from .errors import DatasetUnavailableError, InvalidInputError
from .imageset import ImageSet, _from_arrays
from .torchvision_sets import _download_torchvision

_IDX_CLASSES = {
    "mnist": [str(i) for i in range(10)],
    "fashion-mnist": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                      "Ankle boot"],
    "kmnist": ["o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"],
}


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

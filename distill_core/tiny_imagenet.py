"""Stanford's Tiny-ImageNet (200 classes, 64×64 colour) read from its own folder layout.

Its official validation images (labelled) are the test split; its unlabelled test images are unused. Finding the
folder is `dataset_files`' job; this module reads it.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .dataset_files import TINY_NAME, TINY_URL, _is_file, _missing_message, default_data_root, find_dataset_files
from .errors import DatasetUnavailableError, InvalidInputError
from .image_folders import IMAGE_EXTENSIONS
from .imageset import ImageSet, _from_arrays
from .limits import LIMITS, limits_for

TINY_MD5 = "90528d7ca1a48142e341f4ef8d21d0de"
TINY_SIZE = 64
TINY_CLASSES = 200  # the registry's class count for the set


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
    limits = limits_for(TINY_NAME)
    wnids = [w.strip() for w in f["wnids"].read_text(encoding="utf-8", errors="replace").split() if w.strip()]
    if len(wnids) < 2 or len(set(wnids)) != len(wnids):
        raise InvalidInputError(f"{f['wnids']} must list at least 2 distinct WordNet ids, one a line")
    if len(wnids) > limits.max_classes:
        raise InvalidInputError(f"{f['wnids']} lists {len(wnids)} classes; '{TINY_NAME}' has {TINY_CLASSES}")
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

"""A dataset from a folder of class subfolders of images (`folder:PATH`, uploads): every image is centre-cropped,
resized to one size and kept as bytes; a stratified seeded split gives the test images."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .errors import InvalidInputError
from .imageset import SPLIT_SEED, ImageSet, _from_arrays, stratified_split
from .limits import LIMITS

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")


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

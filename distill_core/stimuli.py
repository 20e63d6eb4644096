"""Stimulus export for experiments: a zip of PNGs at one size and colour mode, with a CSV manifest.

    zip layout:  images/0001_<class>_<method>.png ...   manifest.csv
    manifest:    file, class, class_index, method, ipc, seed, run_id, typicality, source, train_index, width,
                 height, mode

`file` is relative to the zip's root, so experiment software (PsychoPy, jsPsych, ...) can read the manifest as
a conditions file. `typicality_csv` writes typicality rankings (see `archetypes.typicality`) as CSV.
"""
from __future__ import annotations

import csv
import io
import zipfile
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
import torch

from .data import ImageSet
from .errors import InvalidInputError
from .summary import Summary

MODES = ("greyscale", "rgb")
RESAMPLING = ("nearest", "bilinear", "bicubic", "lanczos")
MIN_SIZE, MAX_SIZE = 8, 1024
MANIFEST_COLUMNS = ["file", "class", "class_index", "method", "ipc", "seed", "run_id", "typicality", "source",
                    "train_index", "width", "height", "mode"]
TYPICALITY_COLUMNS = ["class", "class_index", "rank", "train_index", "score", "space", "metric", "archetype"]


@dataclass
class Stimulus:
    """One image to export (C×H×W, pixel space) and what the manifest says about it."""

    image: torch.Tensor
    class_name: str
    class_index: int
    method: str
    source: str = "distilled"       # distilled, selected, real, class mean, ...
    ipc: int | None = None
    seed: int | None = None
    run_id: str = ""
    typicality: float | None = None
    train_index: int | None = None


def stimuli_from_summary(summary: Summary, run_id: str = "", seed: int | None = None,
                         typicality: Sequence[float] | np.ndarray | None = None,
                         source: str | None = None) -> list[Stimulus]:
    """One stimulus per image of a summary (its hard label gives the class)."""
    hard = summary.hard_labels.tolist()
    seed = seed if seed is not None else summary.meta.get("seed")
    indices = summary.meta.get("indices")
    kind = source or ("selected" if indices is not None else "distilled")
    if typicality is not None and len(typicality) != len(summary):
        raise InvalidInputError(f"{len(typicality)} typicality scores for {len(summary)} images")
    out = []
    for i, c in enumerate(hard):
        out.append(Stimulus(summary.images[i], str(summary.class_names[c]), int(c), summary.method, kind,
                            summary.ipc, None if seed is None else int(seed), run_id,
                            None if typicality is None else float(typicality[i]),
                            int(indices[i]) if isinstance(indices, list) and i < len(indices) else None))
    return out


def stimuli_from_real(ds: ImageSet, indices: Iterable[int], scores: Iterable[float] | None = None,
                      source: str = "real", method: str = "real") -> list[Stimulus]:
    """Stimuli for real training images (e.g. the most and least typical of a class)."""
    idx = [int(i) for i in indices]
    sc = list(scores) if scores is not None else [None] * len(idx)
    if len(sc) != len(idx):
        raise InvalidInputError(f"{len(sc)} scores for {len(idx)} images")
    out = []
    for i, s in zip(idx, sc):
        c = int(ds.y_train[i])
        out.append(Stimulus(ds.x_train[i], str(ds.class_names[c]), c, method, source,
                            typicality=None if s is None else float(s), train_index=i))
    return out


def _check_options(size: int, mode: str, resample: str) -> None:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or not MIN_SIZE <= int(size) <= MAX_SIZE:
        raise InvalidInputError(f"stimulus size must be a whole number of pixels from {MIN_SIZE} to {MAX_SIZE}, "
                                f"got {size!r}")
    if mode not in MODES:
        raise InvalidInputError(f"unknown colour mode {mode!r}; choose one of {', '.join(MODES)}")
    if resample not in RESAMPLING:
        raise InvalidInputError(f"unknown resampling {resample!r}; choose one of {', '.join(RESAMPLING)}")


def render_image(image: torch.Tensor, size: int = 128, mode: str = "greyscale", resample: str = "bicubic"):
    """A PIL image of one C×H×W pixel-space image, clamped to [0, 1], resized to size×size, in `mode`."""
    from PIL import Image

    _check_options(size, mode, resample)
    x = torch.as_tensor(image).detach().float().cpu()
    if x.dim() != 3 or x.shape[0] not in (1, 3):
        raise InvalidInputError(f"a stimulus must be a 1- or 3-channel C×H×W image, got shape {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise InvalidInputError("a stimulus image contains NaN or infinite values")
    arr = (x.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    img = Image.fromarray(arr[..., 0], "L") if arr.shape[-1] == 1 else Image.fromarray(arr, "RGB")
    img = img.convert("L" if mode == "greyscale" else "RGB")
    filt = {"nearest": Image.NEAREST, "bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC,
            "lanczos": Image.LANCZOS}[resample]
    return img.resize((int(size), int(size)), filt)


def _slug(text: str, most: int = 24) -> str:
    s = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in str(text)).strip("-")
    return (s or "x")[:most]


def _cell(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return value


def stimulus_zip(stimuli: Sequence[Stimulus], size: int = 128, mode: str = "greyscale",
                 resample: str = "bicubic") -> bytes:
    """The zip (bytes): images/NNNN_class_method.png for every stimulus, and manifest.csv describing them."""
    _check_options(size, mode, resample)
    if not stimuli:
        raise InvalidInputError("there are no images to export; choose at least one run or exemplar")
    buf = io.BytesIO()
    manifest = io.StringIO()
    writer = csv.DictWriter(manifest, fieldnames=MANIFEST_COLUMNS, lineterminator="\n")
    writer.writeheader()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for n, s in enumerate(stimuli, start=1):
            name = f"images/{n:04d}_{_slug(s.class_name)}_{_slug(s.method)}_{_slug(s.source)}.png"
            png = io.BytesIO()
            render_image(s.image, size, mode, resample).save(png, format="PNG")
            zf.writestr(name, png.getvalue())
            writer.writerow({k: _cell(v) for k, v in {
                "file": name, "class": s.class_name, "class_index": s.class_index, "method": s.method,
                "ipc": s.ipc, "seed": s.seed, "run_id": s.run_id, "typicality": s.typicality, "source": s.source,
                "train_index": s.train_index, "width": int(size), "height": int(size), "mode": mode}.items()})
        zf.writestr("manifest.csv", manifest.getvalue())
    return buf.getvalue()


def typicality_csv(tables: Iterable) -> str:
    """CSV text of typicality rankings (`archetypes.Typicality` objects), one row per real image."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=TYPICALITY_COLUMNS, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for table in tables:
        for row in table.rows():
            writer.writerow({k: _cell(v) for k, v in row.items()})
    return out.getvalue()

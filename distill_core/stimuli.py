"""Stimulus export for experiments: a zip of PNGs, a CSV manifest, trial lists and a methods text.

    zip layout:  images/<stimulus_id>_<class>_<method>.png ...   manifest.csv   trials.csv (optional)   README.txt

`file` is relative to the zip's root, so experiment software (PsychoPy, jsPsych, ...) can read the manifest as a
conditions file. Every stimulus has a stable `stimulus_id`: a hash of its run, class and index within that run
(for real images: the dataset and training index), so the same image keeps its ID and file name whichever other
images are exported with it.

`source` says what an image *is*: a **selected real image** (coreset picks, medoids, typical exemplars), **averaged
real images** (a k-means centroid, a class mean) or **distilled** (pixels learned by a distiller); `source_detail`
names the rule. Images can be equalised (mean luminance and RMS contrast to targets, RMS contrast being the
standard deviation of luminance in [0, 1]), inverted, and padded on a chosen background (`StimulusOptions`).
`trial_orders` / `trials_csv` write counterbalanced presentation orders per participant; `methods_text` writes
the README that says how the images were made. `typicality_csv` writes typicality rankings as CSV.
"""
from __future__ import annotations

import csv
import hashlib
import io
import zipfile
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np
import torch

from . import __version__
from .data import ImageSet
from .errors import InvalidInputError
from .summary import Summary

MODES = ("greyscale", "rgb")
RESAMPLING = ("nearest", "bilinear", "bicubic", "lanczos")
DESIGNS = ("latin", "shuffle")
MIN_SIZE, MAX_SIZE = 8, 1024
MAX_PADDING = 512
MAX_PARTICIPANTS = 10_000

SOURCE_SELECTED = "selected real image"
SOURCE_AVERAGED = "averaged real images"
SOURCE_DISTILLED = "distilled"
SOURCES = (SOURCE_SELECTED, SOURCE_AVERAGED, SOURCE_DISTILLED)

# selectors that average real images (their images are in no training set) and what their images are
AVERAGING_SELECTORS = {"kmeans": "k-means centroid", "mean": "class mean"}
# what a selector's pick is, for the manifest's source_detail
SELECTION_DETAIL = {"medoids": "k-means medoid", "herding": "herding pick", "kcenter": "k-center pick",
                    "facility": "facility-location pick", "random": "random pick"}

LUMINANCE_WEIGHTS = (0.2126, 0.7152, 0.0722)   # Rec. 709: luminance of an RGB image
EQUALISE_TOLERANCE = 0.01                        # exported images are within 1 % of the targets, or refused

MANIFEST_COLUMNS = ["file", "stimulus_id", "class", "class_index", "source", "source_detail", "method", "dataset",
                    "ipc", "steps", "seed", "run_id", "index", "train_index", "original_file", "typicality",
                    "typicality_space", "typicality_metric", "typicality_rank", "typicality_percentile",
                    "mean_luminance", "rms_contrast", "inverted", "background", "padding", "width", "height",
                    "mode", "resample", "library_version"]
TRIAL_COLUMNS = ["participant", "trial", "stimulus_id", "file", "class", "source", "method"]
TYPICALITY_COLUMNS = ["class", "class_index", "rank", "train_index", "score", "space", "metric", "archetype"]


@dataclass
class Stimulus:
    """One image to export (C×H×W, pixel space) and what the manifest says about it."""

    image: torch.Tensor
    class_name: str
    class_index: int
    method: str
    source: str = SOURCE_DISTILLED
    ipc: int | None = None
    seed: int | None = None
    run_id: str = ""
    typicality: float | None = None
    train_index: int | None = None
    source_detail: str = ""
    dataset: str = ""
    steps: int | None = None
    index: int | None = None              # position in its run's summary (or the class, for a class mean)
    typicality_space: str = ""
    typicality_metric: str = ""
    typicality_rank: int | None = None    # 1 = the most typical real image of the class
    typicality_percentile: float | None = None
    original_file: str = ""               # the uploaded file a real image came from, when known
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def stimulus_id(self) -> str:
        """A hash of run + class + index: the same image keeps its ID whatever else is exported."""
        key = f"{self.run_id}|{self.class_index}|{self.index}"
        return "s" + hashlib.sha1(key.encode("utf-8")).hexdigest()[:11]


def source_of(summary: Summary) -> tuple[str, str]:
    """(source, source_detail) of a summary's images, from its method (selector or distiller) and provenance."""
    from .methods import METHODS

    name = summary.method
    if name in AVERAGING_SELECTORS:
        return SOURCE_AVERAGED, AVERAGING_SELECTORS[name]
    cls = METHODS.get(name)
    picked = isinstance(summary.meta.get("indices"), list)
    if cls is not None and cls.kind == "distiller":
        init = summary.meta.get("init")
        if not init:
            return SOURCE_DISTILLED, name
        start = {"noise": "noise", "herding": "herding's real images"}.get(init, "real images")
        return SOURCE_DISTILLED, f"{name}, started from {start}"
    if picked:
        return SOURCE_SELECTED, SELECTION_DETAIL.get(name, f"{name} pick")
    if cls is not None and cls.kind == "selector":
        return SOURCE_AVERAGED, name
    return SOURCE_DISTILLED, name


def _original_file(ds: ImageSet | None, train_index: int | None) -> str:
    files = ds.meta.get("train_files") if ds is not None else None
    if train_index is None or not isinstance(files, (list, tuple)) or not 0 <= train_index < len(files):
        return ""
    return str(files[train_index])


def stimuli_from_summary(summary: Summary, run_id: str = "", seed: int | None = None,
                         typicality: Sequence[float] | np.ndarray | None = None,
                         source: str | None = None, dataset: ImageSet | None = None,
                         settings: dict[str, Any] | None = None) -> list[Stimulus]:
    """One stimulus per image of a summary (its hard label gives the class; `source` from `source_of`)."""
    hard = summary.hard_labels.tolist()
    seed = seed if seed is not None else summary.meta.get("seed")
    indices = summary.meta.get("indices")
    kind, detail = source_of(summary)
    if source is not None:
        kind = source
    if typicality is not None and len(typicality) != len(summary):
        raise InvalidInputError(f"{len(typicality)} typicality scores for {len(summary)} images")
    steps = summary.meta.get("steps")
    run_id = run_id or f"{summary.dataset}:{summary.method}-ipc{summary.ipc}-seed{seed}"
    out = []
    for i, c in enumerate(hard):
        train_index = int(indices[i]) if isinstance(indices, list) and i < len(indices) else None
        out.append(Stimulus(summary.images[i], str(summary.class_names[c]), int(c), summary.method, kind,
                            summary.ipc, None if seed is None else int(seed), run_id,
                            None if typicality is None else float(typicality[i]), train_index,
                            source_detail=detail, dataset=summary.dataset,
                            steps=int(steps) if isinstance(steps, (int, float)) else None, index=i,
                            original_file=_original_file(dataset, train_index), settings=dict(settings or {})))
    return out


def stimuli_from_real(ds: ImageSet, indices: Iterable[int], scores: Iterable[float] | None = None,
                      source: str = "real", method: str = "real") -> list[Stimulus]:
    """Stimuli for real training images (e.g. the most and least typical of a class); `source` is the rule
    that chose them (it becomes `source_detail`; `source` is always a selected real image)."""
    idx = [int(i) for i in indices]
    sc = list(scores) if scores is not None else [None] * len(idx)
    if len(sc) != len(idx):
        raise InvalidInputError(f"{len(sc)} scores for {len(idx)} images")
    out = []
    for i, s in zip(idx, sc):
        c = int(ds.y_train[i])
        out.append(Stimulus(ds.x_train[i], str(ds.class_names[c]), c, method, SOURCE_SELECTED,
                            typicality=None if s is None else float(s), train_index=i,
                            source_detail="" if source in ("real", SOURCE_SELECTED) else source,
                            dataset=ds.name, run_id=f"{ds.name}:train", index=i,
                            original_file=_original_file(ds, i)))
    return out


def select_stimuli(items: Sequence[Stimulus], classes: Iterable[int] | None = None,
                   ids: Iterable[str] | None = None) -> list[Stimulus]:
    """The stimuli of the given classes (indices) and/or with the given IDs (hand-picked), in their order."""
    keep_c = None if classes is None else {int(c) for c in classes}
    keep_i = None if ids is None else set(ids)
    if keep_i is not None:
        unknown = keep_i - {s.stimulus_id for s in items}
        if unknown:
            raise InvalidInputError(f"unknown stimulus ID(s): {', '.join(sorted(unknown)[:5])}")
    return [s for s in items if (keep_c is None or s.class_index in keep_c)
            and (keep_i is None or s.stimulus_id in keep_i)]


# ------------------------------------------------------------------------------------------ rendering

@dataclass
class StimulusOptions:
    """How every image is rendered: size, colour mode, resampling; optional polarity inversion, equalisation of
    mean luminance and RMS contrast (targets in [0, 1]; None leaves it), and padding on a background colour."""

    size: int = 128
    mode: str = "greyscale"
    resample: str = "bicubic"
    invert: bool = False
    mean_luminance: float | None = None
    rms_contrast: float | None = None
    background: str = "#808080"     # "#rrggbb" or a grey level in [0, 1]; the padding's colour
    padding: int = 0                # pixels of background around each image

    def check(self) -> None:
        _check_options(self.size, self.mode, self.resample)
        for name, value, hi in (("mean luminance", self.mean_luminance, 1.0), ("RMS contrast", self.rms_contrast, 0.5)):
            if value is None:
                continue  # RMS contrast of values in [0, 1] is at most 0.5 (half black, half white)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value) \
                    or not 0.0 < float(value) < hi:
                raise InvalidInputError(f"target {name} must be a number above 0 and below {hi:g}, got {value!r}")
        if isinstance(self.padding, bool) or not isinstance(self.padding, (int, np.integer)) \
                or not 0 <= int(self.padding) <= MAX_PADDING:
            raise InvalidInputError(f"padding must be a whole number of pixels from 0 to {MAX_PADDING}, "
                                    f"got {self.padding!r}")
        parse_colour(self.background)

    def describe(self) -> dict[str, Any]:
        return {"size": int(self.size), "mode": self.mode, "resample": self.resample, "invert": bool(self.invert),
                "mean_luminance": self.mean_luminance, "rms_contrast": self.rms_contrast,
                "background": self.background, "padding": int(self.padding)}


def parse_colour(value: str | float) -> tuple[float, float, float]:
    """RGB in [0, 1] from '#rrggbb' or a grey level (a number or its text) in [0, 1]."""
    text = str(value).strip()
    try:
        if text.startswith("#") and len(text) == 7:
            return tuple(int(text[i:i + 2], 16) / 255.0 for i in (1, 3, 5))  # type: ignore[return-value]
        grey = float(text)
    except ValueError:
        grey = float("nan")
    if not 0.0 <= grey <= 1.0:
        raise InvalidInputError(f"background colour must be '#rrggbb' or a grey level from 0 to 1, got {value!r}")
    return (grey, grey, grey)


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


def luminance(arr: np.ndarray) -> np.ndarray:
    """Luminance in [0, 1] of an H×W (grey) or H×W×3 (RGB, Rec. 709 weights) float array."""
    return arr if arr.ndim == 2 else arr @ np.asarray(LUMINANCE_WEIGHTS)


def image_stats(arr: np.ndarray) -> tuple[float, float]:
    """(mean luminance, RMS contrast = standard deviation of luminance) of a float array in [0, 1]."""
    lum = luminance(arr.astype(np.float64))
    return float(lum.mean()), float(lum.std())


def equalise(arr: np.ndarray, mean: float | None = None, contrast: float | None = None,
             iterations: int = 200) -> np.ndarray:
    """Set mean luminance and/or RMS contrast of a float image in [0, 1] (H×W or H×W×3).

    Every channel gets the same affine map of luminance (so hue is kept); pixels pushed out of [0, 1] are
    clipped and the map is applied again until both targets hold (or `iterations` run out).
    """
    x = np.clip(arr.astype(np.float64), 0.0, 1.0)
    if mean is None and contrast is None:
        return x
    for _ in range(iterations):
        m, s = image_stats(x)
        if contrast is not None and s < 1e-9:
            raise InvalidInputError("a uniform image has no contrast to set; leave its RMS contrast alone")
        tm = m if mean is None else float(mean)
        ts = s if contrast is None else float(contrast)
        if abs(m - tm) <= 1e-5 * max(tm, 1e-3) and abs(s - ts) <= 1e-5 * max(ts, 1e-3):
            break
        x = np.clip(tm + (x - m) * (ts / s if s > 0 else 1.0), 0.0, 1.0)
    return x


def render_stimulus(image: torch.Tensor, options: StimulusOptions):
    """The PIL image of one stimulus under `options` (resize, invert, equalise, quantise, pad).

    Equalisation applies to the image itself, before padding; an image whose targets cannot be met within 1 %
    (its pixels saturate at 0 or 1) is refused with a clear message."""
    from PIL import Image

    options.check()
    img = render_image(image, options.size, options.mode, options.resample)
    arr = np.asarray(img, dtype=np.float64) / 255.0
    if options.invert:
        arr = 1.0 - arr
    if options.mean_luminance is not None or options.rms_contrast is not None:
        arr = equalise(arr, options.mean_luminance, options.rms_contrast)
    out = np.round(arr * 255.0).astype(np.uint8)
    if options.mean_luminance is not None or options.rms_contrast is not None:
        m, s = image_stats(out / 255.0)
        for name, got, want in (("mean luminance", m, options.mean_luminance),
                                ("RMS contrast", s, options.rms_contrast)):
            if want is not None and abs(got - want) > EQUALISE_TOLERANCE * want:
                raise InvalidInputError(f"an image cannot reach {name} {want:g} within the pixel range (it gets "
                                        f"{got:.3f}): choose a mean nearer 0.5 or a lower contrast")
    pic = Image.fromarray(out, "L" if out.ndim == 2 else "RGB")
    pad = int(options.padding)
    if pad:
        bg = parse_colour(options.background)
        fill = (round(255 * float(np.dot(bg, LUMINANCE_WEIGHTS))) if options.mode == "greyscale"
                else tuple(round(255 * v) for v in bg))
        canvas = Image.new(pic.mode, (pic.width + 2 * pad, pic.height + 2 * pad), fill)
        canvas.paste(pic, (pad, pad))
        pic = canvas
    return pic


def _slug(text: str, most: int = 24) -> str:
    s = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in str(text)).strip("-")
    return (s or "x")[:most]


def _cell(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.6g}"
    return value


def stimulus_file(s: Stimulus) -> str:
    """The stimulus' path inside the zip (stable: it depends on the stimulus alone)."""
    return f"images/{s.stimulus_id}_{_slug(s.class_name)}_{_slug(s.method)}.png"


# -------------------------------------------------------------------------------------- trial lists

def trial_orders(n: int, participants: int, design: str = "latin", seed: int = 0) -> list[list[int]]:
    """Presentation order (stimulus positions 0..n−1) for each participant.

    - `latin`: a Williams design — each participant gets one row of a Latin square whose rows also balance which
      stimulus follows which (n rows for even n; n and their reverses for odd n);
    - `shuffle`: seeded random Latin squares, one per block of n participants (rows, columns and symbols of a
      cyclic square permuted).

    Both put every stimulus equally often at every position when `participants` is a multiple of n (otherwise
    the counts per position differ by at most one).
    """
    if design not in DESIGNS:
        raise InvalidInputError(f"unknown trial design {design!r}; choose one of {', '.join(DESIGNS)}")
    if isinstance(participants, bool) or not isinstance(participants, (int, np.integer)) \
            or not 1 <= int(participants) <= MAX_PARTICIPANTS:
        raise InvalidInputError(f"participants must be a whole number from 1 to {MAX_PARTICIPANTS}, "
                                f"got {participants!r}")
    if n < 1:
        raise InvalidInputError("there are no stimuli to order")
    if design == "latin":
        first = [0]
        lo, hi = 1, n - 1
        while len(first) < n:
            first.append(lo)
            lo += 1
            if len(first) < n:
                first.append(hi)
                hi -= 1
        rows = [[(v + r) % n for v in first] for r in range(n)]
        if n % 2:
            rows += [row[::-1] for row in rows]
        # a multiple of n participants takes whole cyclic squares (the forward ones, then the reversed ones)
        return [list(rows[p % len(rows)]) for p in range(int(participants))]
    out: list[list[int]] = []
    for block in range((int(participants) + n - 1) // n):
        rng = np.random.default_rng([int(seed), block])
        rows_p, cols_p, syms = rng.permutation(n), rng.permutation(n), rng.permutation(n)
        square = [[int(syms[(int(rows_p[r]) + int(cols_p[c])) % n]) for c in range(n)] for r in range(n)]
        out += square
    return out[:int(participants)]


def trials_csv(items: Sequence[Stimulus], participants: int, design: str = "latin", seed: int = 0) -> str:
    """CSV: one row per participant and trial, with the stimulus shown (ID, file, class, source, method)."""
    orders = trial_orders(len(items), participants, design, seed)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=TRIAL_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for p, order in enumerate(orders, start=1):
        for t, i in enumerate(order, start=1):
            s = items[i]
            writer.writerow({"participant": p, "trial": t, "stimulus_id": s.stimulus_id, "file": stimulus_file(s),
                             "class": s.class_name, "source": s.source, "method": s.method})
    return out.getvalue()


# ------------------------------------------------------------------------------------------ the zip

def _manifest_row(s: Stimulus, pic, options: StimulusOptions) -> dict[str, object]:
    pad = int(options.padding)
    inner = np.asarray(pic, dtype=np.float64)[pad:pic.height - pad, pad:pic.width - pad] / 255.0
    m, c = image_stats(inner)
    return {"file": stimulus_file(s), "stimulus_id": s.stimulus_id, "class": s.class_name,
            "class_index": s.class_index, "source": s.source, "source_detail": s.source_detail, "method": s.method,
            "dataset": s.dataset, "ipc": s.ipc, "steps": s.steps, "seed": s.seed, "run_id": s.run_id,
            "index": s.index, "train_index": s.train_index, "original_file": s.original_file,
            "typicality": s.typicality, "typicality_space": s.typicality_space if s.typicality is not None else "",
            "typicality_metric": s.typicality_metric if s.typicality is not None else "",
            "typicality_rank": s.typicality_rank, "typicality_percentile": s.typicality_percentile,
            "mean_luminance": m, "rms_contrast": c, "inverted": bool(options.invert),
            "background": options.background if pad else "", "padding": pad, "width": pic.width,
            "height": pic.height, "mode": options.mode, "resample": options.resample,
            "library_version": __version__}


def _plain(settings: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(settings.items())) or "the method's defaults"


def methods_text(items: Sequence[Stimulus], options: StimulusOptions, participants: int = 0,
                 design: str = "latin", seed: int = 0) -> str:
    """A methods paragraph (plain text) saying how the exported images were made and processed."""
    lines = [f"Stimuli: {len(items)} images exported by distill-lab {__version__}.", ""]
    groups: dict[str, list[Stimulus]] = {}
    for s in items:
        groups.setdefault(s.run_id if s.source != SOURCE_SELECTED or s.train_index is None or s.ipc
                          else f"{s.dataset}:{s.source_detail or 'real'}", []).append(s)
    for key, group in groups.items():
        s = group[0]
        classes = len({g.class_index for g in group})
        what = {SOURCE_DISTILLED: "synthetic images learned by dataset distillation",
                SOURCE_AVERAGED: "averages of real training images",
                SOURCE_SELECTED: "real training images, unaltered"}.get(s.source, s.source)
        text = (f"- {len(group)} image(s) of {classes} class(es) from dataset '{s.dataset}': {what}"
                f" ({s.source_detail or s.method}).")
        if s.source == SOURCE_DISTILLED:
            text += (f" Method '{s.method}', {s.ipc} image(s) per class, {s.steps if s.steps is not None else '?'}"
                     f" optimisation steps, seed {s.seed}; settings: {_plain(s.settings)}. Run: {s.run_id}.")
        elif s.source == SOURCE_AVERAGED:
            text += (f" Method '{s.method}' ({s.ipc or 1} per class, seed {s.seed if s.seed is not None else 0}):"
                     " each image is the pixel-wise mean of a group of real training images of its class.")
        elif s.ipc:
            text += f" Chosen by '{s.method}' ({s.ipc} per class, seed {s.seed}); run: {s.run_id}."
        else:
            text += " Chosen by their typicality within the class (see below)."
        if any(g.original_file for g in group):
            text += " Their original file names are in the manifest's original_file column."
        lines.append(text)
    lines.append("")
    proc = (f"Every image was clamped to [0, 1], resized to {options.size}×{options.size} pixels with "
            f"{options.resample} resampling and saved as an 8-bit {options.mode} PNG.")
    if options.invert:
        proc += " Polarity was inverted (each pixel value v became 1 − v)."
    if options.mean_luminance is not None or options.rms_contrast is not None:
        targets = []
        if options.mean_luminance is not None:
            targets.append(f"mean luminance {options.mean_luminance:g}")
        if options.rms_contrast is not None:
            targets.append(f"RMS contrast {options.rms_contrast:g}")
        proc += (f" Each image was equalised to {' and '.join(targets)} (luminance in [0, 1]"
                 f"{', Rec. 709 weights for colour' if options.mode == 'rgb' else ''}; RMS contrast is the standard "
                 "deviation of luminance over the image) by an affine map of its pixel values, repeated with "
                 f"clipping to [0, 1] until within {100 * EQUALISE_TOLERANCE:g} % of the targets; the measured "
                 "values are in the manifest.")
    else:
        proc += " Luminance and contrast were not equalised; the measured values are in the manifest."
    if options.padding:
        proc += f" Each image was centred on a {options.padding}-pixel border of colour {options.background}."
    lines.append(proc)
    scored = [s for s in items if s.typicality is not None]
    if scored:
        spaces = sorted({f"{s.typicality_space} ({s.typicality_metric})" for s in scored})
        lines += ["", "Typicality: the similarity of each image to its class centroid — the mean of the class's real "
                      f"training images — in {', '.join(spaces)}; higher is more typical. typicality_rank places the "
                      "image among the real training images of its class (1 = most typical); "
                      "typicality_percentile is the percentage of them scoring at or below it."]
    if participants:
        how = ("a Williams Latin square (each stimulus equally often at each position, and each following each "
               "other equally often)" if design == "latin" else
               f"seeded random Latin squares (seed {seed}), one per block of {len(items)} participants")
        lines += ["", f"Trial lists (trials.csv): {participants} participant(s), each seeing every stimulus once, "
                      f"orders from {how}. With a multiple of {len(items)} participants every stimulus appears "
                      "equally often at every position."]
    lines += ["", "Columns of manifest.csv: " + ", ".join(MANIFEST_COLUMNS) + ".",
              "stimulus_id is a hash of run, class and index: it stays the same whichever images are exported."]
    return "\n".join(lines) + "\n"


def stimulus_zip(stimuli: Sequence[Stimulus], size: int = 128, mode: str = "greyscale",
                 resample: str = "bicubic", options: StimulusOptions | None = None, participants: int = 0,
                 design: str = "latin", seed: int = 0) -> bytes:
    """The zip (bytes): images/<id>_class_method.png for every stimulus, manifest.csv, README.txt (methods) and,
    with `participants`, trials.csv. `options` (when given) replaces size, mode and resample."""
    options = options or StimulusOptions(size=size, mode=mode, resample=resample)
    options.check()
    if not stimuli:
        raise InvalidInputError("there are no images to export; choose at least one run or exemplar")
    ids = [s.stimulus_id for s in stimuli]
    if len(set(ids)) != len(ids):
        seen: set[str] = set()
        stimuli = [s for s, i in zip(stimuli, ids) if not (i in seen or seen.add(i))]  # one copy of each image
    if participants:
        trial_orders(len(stimuli), participants, design, seed)  # checks before any image is drawn
    buf = io.BytesIO()
    manifest = io.StringIO()
    writer = csv.DictWriter(manifest, fieldnames=MANIFEST_COLUMNS, lineterminator="\n")
    writer.writeheader()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for s in stimuli:
            pic = render_stimulus(s.image, options)
            png = io.BytesIO()
            pic.save(png, format="PNG")
            zf.writestr(stimulus_file(s), png.getvalue())
            writer.writerow({k: _cell(v) for k, v in _manifest_row(s, pic, options).items()})
        zf.writestr("manifest.csv", manifest.getvalue())
        if participants:
            zf.writestr("trials.csv", trials_csv(stimuli, participants, design, seed))
        zf.writestr("README.txt", methods_text(stimuli, options, participants, design, seed))
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

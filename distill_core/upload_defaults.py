"""Defaults sized to a small dataset (an upload or an image folder): steps, learning rates and per-step batches.

The profiles table (`distill_core.profiles`) is written for the benchmark sets, which have hundreds to thousands of
training images per class. An upload often has a few dozen. `sized_defaults` adapts a method's defaults to it:

- **batches of real images cannot exceed what there is**: KIP's `target_batch` and the label solvers' targets are
  capped at the training images, per-class batches (`batch_real`) at the smallest class, MTT's synthetic batch at
  the summary's size;
- **fewer images, fewer steps**: with `m` training images per class (on average) and `REFERENCE_PER_CLASS` = 100,
  a distiller runs `steps × f` steps, `f = clamp(m / 100, MIN_STEP_FACTOR, 1)` (at least `MIN_STEPS`): there is
  less to summarise, and a long run on a few images mostly fits those images (the page warns when test accuracy
  falls while the loss still drops);
- **shorter runs take larger steps**: the image learning rates (`lr`, `lr_ipc1`) are multiplied by `1 / √f`
  (at most ×2 at the smallest factor), so that the images still travel a useful distance in the fewer steps
  without the full `1 / f` that makes a run unstable.

At 100 or more images per class nothing but the caps changes, so a benchmark-sized folder keeps the profile's
values. Measured (`python -m benchmarks.upload_defaults_check`: KIP, IPC 2, digits cut to 20 training images per
class, krr accuracy on the full test split, 3 seeds, a busy 2-core CPU): the profile's 1,000 steps 93.3 ± 0.6 %,
the sized 250 steps with ×2 learning rates 93.2 ± 0.3 %, 250 steps at the profile's rates 93.3 ± 0.5 % — the
same accuracy in a quarter of the time; the larger rates neither helped nor hurt there. Pure: numbers in, numbers out (the distill page shows the notes beside the settings).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

REFERENCE_PER_CLASS = 100   # training images per class from which the profile's steps stand unchanged
MIN_STEP_FACTOR = 0.25      # a small dataset still gets at least a quarter of the profile's steps...
MIN_STEPS = 20              # ...and never fewer than this many
LR_FIELDS = ("lr", "lr_ipc1")
# settings that count real training images drawn per step, and what caps them
CAP_TOTAL = ("target_batch", "label_solve_target", "target_size")    # at the number of training images
CAP_PER_CLASS = ("batch_real",)                                      # at the smallest class


@dataclass
class Sized:
    """Settings and steps sized to a dataset, with one note per change (what and why)."""

    settings: dict[str, Any]
    steps: int
    notes: list[str] = field(default_factory=list)


def step_factor(n_train: int, num_classes: int) -> float:
    """The share of the profile's steps a dataset of `n_train` images in `num_classes` classes gets (0.25 to 1)."""
    per_class = n_train / max(1, num_classes)
    return min(1.0, max(MIN_STEP_FACTOR, per_class / REFERENCE_PER_CLASS))


def sized_defaults(settings: dict[str, Any], steps: int, class_counts: Sequence[int], ipc: int,
                   distiller: bool = True) -> Sized:
    """A method's default `settings` and `steps`, sized to a dataset whose classes have `class_counts` training
    images, at `ipc` images per class (see the module's docstring for the rules). Only defaults go in: what the
    user typed is theirs to keep."""
    counts = [int(c) for c in class_counts]
    n_train, smallest, k = sum(counts), min(counts), len(counts)
    out = dict(settings)
    notes: list[str] = []
    for name in CAP_TOTAL:
        value = out.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > n_train:
            out[name] = n_train
            notes.append(f"{name} {value:,} → {n_train:,} (there are {n_train:,} training images)")
    for name in CAP_PER_CLASS:
        value = out.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > smallest:
            out[name] = smallest
            notes.append(f"{name} {value:,} → {smallest:,} (the smallest class has {smallest:,} training images)")
    syn = out.get("batch_syn")
    if isinstance(syn, int) and not isinstance(syn, bool) and syn > ipc * k:
        out["batch_syn"] = 0
        notes.append(f"batch_syn {syn} → 0, all {ipc * k} synthetic images")
    new_steps = int(steps)
    if distiller:
        f = step_factor(n_train, k)
        if f < 1.0:
            new_steps = min(int(steps), max(MIN_STEPS, int(round(steps * f))))
            if new_steps != steps:
                notes.append(f"steps {steps:,} → {new_steps:,} ({n_train / k:.0f} training images per class, "
                             f"fewer than {REFERENCE_PER_CLASS})")
            scale = 1.0 / math.sqrt(f)
            for name in LR_FIELDS:
                value = out.get(name)
                if isinstance(value, float) and value > 0:
                    out[name] = float(f"{value * scale:.3g}")
                    notes.append(f"{name} {value:g} → {out[name]:g} (larger steps for a shorter run)")
    return Sized(out, new_steps, notes)


def is_small_dataset(name: str, registry_names: Sequence[str]) -> bool:
    """True for the datasets whose defaults are sized: uploads and image folders (not the registry's sets)."""
    return name not in registry_names

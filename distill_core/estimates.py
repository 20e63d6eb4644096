"""How long a run will take on a CPU, from measured seconds per step (data, not rules).

`STEP_SECONDS` holds the median seconds of one step of each distiller per dataset and IPC, measured with
`python -m benchmarks.presets --step-table` on the project's 2-core CPU with one torch thread (the app's job
setting), `fast` settings. `SETUP_SECONDS` is what a method spends before its first step (mtt, tesla and datm
train their experts on digits, rded and random-soft their teacher, when none are stored); `FIRST_USE_SECONDS`
is the experts' training on the larger sets, stated beside the estimate rather than in it (it happens once).
Both drop out when the caller knows that what they train is already stored (`Method.first_use_stored`); full
MNIST and KMNIST take Fashion-MNIST's (`SAME_TRAINING_AS`: the same images, count and recipes).
`estimate_seconds` reads the first two:

- between measured IPCs the time per step is interpolated linearly, above the largest it grows along the last
  segment, below the smallest it stays at the smallest's (so the estimate never falls as IPC grows);
- a dataset with no row of its own uses its family's measured dataset (`FAMILY`), scaled by its pixel count;
- selectors (one step) take `SELECTOR_SECONDS`;
- the estimate is steps × seconds per step + setup: monotone in steps and in IPC.
"""
from __future__ import annotations

import math
from typing import Sequence

WARN_ABOVE_S = 120.0       # the app warns, with the estimate, before starting a run expected to take longer
SELECTOR_SECONDS = 1.0     # selectors on the embedded sets take under a second (README's figures)

# (method, dataset, ipc) -> median seconds per step; 2-core CPU, one torch thread, shared with other work
STEP_SECONDS: dict[tuple[str, str, int], float] = {
    ("kip", "digits", 1): 0.0097,
    ("kip", "digits", 10): 0.0177,
    ("kip", "digits", 50): 0.1567,
    ("kip", "mnist-5k", 1): 0.0077,
    ("kip", "mnist-5k", 10): 0.0174,
    ("kip", "mnist-5k", 50): 0.0789,
    ("dm", "digits", 1): 0.0972,
    ("dm", "digits", 10): 0.1187,
    ("dm", "digits", 50): 0.2126,
    ("dm", "mnist-5k", 1): 0.3555,
    ("dm", "mnist-5k", 10): 0.5024,
    ("dm", "mnist-5k", 50): 1.8844,
    ("dc", "digits", 1): 0.1476,
    ("dc", "digits", 10): 0.3918,
    ("dc", "digits", 50): 1.6146,
    ("dc", "mnist-5k", 1): 0.6529,
    ("dc", "mnist-5k", 10): 2.9992,
    ("dc", "mnist-5k", 50): 215.0960,
    ("dsa", "digits", 1): 0.1409,
    ("dsa", "digits", 10): 0.3770,
    ("dsa", "mnist-5k", 1): 0.5064,
    ("dsa", "mnist-5k", 10): 2.5678,
    ("mtt", "digits", 1): 0.3670,
    ("mtt", "digits", 10): 0.5060,
    ("mtt", "mnist-5k", 1): 0.9791,
    ("mtt", "mnist-5k", 10): 1.9362,
    ("rfad", "digits", 1): 0.0791,
    ("rfad", "digits", 10): 0.1144,
    ("rfad", "mnist-5k", 1): 0.1879,
    ("rfad", "mnist-5k", 10): 0.4031,
    ("frepo", "digits", 1): 0.0477,
    ("frepo", "digits", 10): 0.0499,
    ("frepo", "digits", 50): 0.2027,
    ("frepo", "mnist-5k", 1): 0.0715,
    ("frepo", "mnist-5k", 10): 1.3032,   # width 128, target batch 512 (the fast profile at IPC 10), channels-last; alone
    ("frepo", "mnist-5k", 50): 0.7970,
    ("idm", "digits", 1): 0.1047,
    ("idm", "digits", 10): 0.1406,
    ("idm", "mnist-5k", 1): 0.5297,
    ("idm", "mnist-5k", 10): 1.0362,
    ("tesla", "digits", 1): 0.4301,
    ("tesla", "digits", 10): 0.5105,
    ("tesla", "mnist-5k", 1): 1.1274,
    ("tesla", "mnist-5k", 10): 2.5566,
    ("datm", "digits", 1): 0.5373,
    ("datm", "digits", 10): 0.5559,
    ("datm", "mnist-5k", 1): 1.5184,
    ("datm", "mnist-5k", 10): 2.2778,
}

# (method, dataset) -> seconds before the first step (beyond loading the dataset)
SETUP_SECONDS: dict[tuple[str, str], float] = {
    ("mtt", "digits"): 26.0,   # training one expert trajectory on first use (none stored yet)
    ("tesla", "digits"): 26.0,  # the same experts as mtt
    ("datm", "digits"): 26.0,
    # training the teacher whose soft labels rded and random-soft use, on first use (CPU seconds, one thread)
    ("rded", "digits"): 13.0, ("random-soft", "digits"): 13.0,
    ("rded", "mnist-5k"): 32.0, ("random-soft", "mnist-5k"): 32.0,
    # fashion-mnist's teacher sees 10,000 training images to mnist-5k's 4,000: its time scaled by that
    ("rded", "fashion-mnist"): 80.0, ("random-soft", "fashion-mnist"): 80.0,
}

# (method, dataset) -> seconds of first-use training stated beside the estimate, not added to it: on the larger sets
# it dwarfs the run but happens once (the experts are stored), so a repeat run's estimate would be wrong with it.
# Measured: one expert epoch of the fast grey28 recipe (ConvNet width 32, DSA) took 9.7 s on mnist-5k and 100 s on
# fashion-mnist with one other job running; the recipe trains 2 experts × 6 epochs.
FIRST_USE_SECONDS: dict[tuple[str, str], float] = {
    (method, dataset): seconds
    for method in ("mtt", "tesla", "datm")
    for dataset, seconds in (("mnist-5k", 116.0), ("fashion-mnist", 1200.0))
}

# dataset -> the measured dataset whose first-use and set-up training it shares: full MNIST and KMNIST have
# Fashion-MNIST's 28×28 greyscale images, 60,000 of them, and the same `fast` recipes, so their experts and
# teacher train on as many images for as many epochs
SAME_TRAINING_AS = {"mnist": "fashion-mnist", "kmnist": "fashion-mnist"}

# dataset -> the measured dataset whose rows it uses (scaled by pixels per image)
FAMILY = {"digits": "digits", "mnist-5k": "mnist-5k", "mnist": "mnist-5k", "fashion-mnist": "mnist-5k",
          "kmnist": "mnist-5k", "cifar10": "mnist-5k", "cifar100": "mnist-5k", "svhn": "mnist-5k"}
PIXELS = {"digits": 64, "mnist-5k": 784, "mnist": 784, "fashion-mnist": 784, "kmnist": 784, "cifar10": 3072,
          "cifar100": 3072, "svhn": 3072}


def _interpolate(points: Sequence[tuple[int, float]], ipc: int) -> float:
    """Piecewise-linear in IPC through the measured points, made non-decreasing, extended along the last segment."""
    pts = sorted(points)
    xs = [p[0] for p in pts]
    ys: list[float] = []
    for _, y in pts:
        ys.append(max(y, ys[-1]) if ys else y)
    if ipc <= xs[0] or len(xs) == 1:
        return ys[0] if ipc <= xs[0] else ys[0] * ipc / xs[0]
    for (x0, y0), (x1, y1) in zip(zip(xs, ys), zip(xs[1:], ys[1:])):
        if ipc <= x1:
            return y0 + (y1 - y0) * (ipc - x0) / (x1 - x0)
    slope = (ys[-1] - ys[-2]) / (xs[-1] - xs[-2])
    return ys[-1] + slope * (ipc - xs[-1])


def seconds_per_step(method: str, dataset: str, ipc: int, pixels: int | None = None) -> float | None:
    """Estimated seconds of one step of `method` on `dataset` at `ipc` (None: nothing measured to go by).

    `pixels` (C×H×W per image) lets an image folder or upload borrow the rows of the measured family."""
    base = dataset if any(k[0] == method and k[1] == dataset for k in STEP_SECONDS) else FAMILY.get(dataset)
    if base is None:
        base = "mnist-5k" if pixels is not None else None
    if base is None:
        return None
    points = [(k[2], v) for k, v in STEP_SECONDS.items() if k[0] == method and k[1] == base]
    if not points:
        return None
    per_step = _interpolate(points, max(1, int(ipc)))
    if base != dataset:
        own = pixels if pixels is not None else PIXELS.get(dataset, PIXELS[base])
        per_step *= max(1.0, own / PIXELS[base])
    return per_step


def estimate_seconds(method: str, dataset: str, ipc: int, steps: int | None, kind: str = "distiller",
                     pixels: int | None = None, stored: bool | None = None) -> float | None:
    """Expected seconds of a run on a 2-core CPU (None when nothing measured applies), its set-up included unless
    `stored` says what the set-up trains is already stored (None: unknown, counted)."""
    same = SAME_TRAINING_AS.get(dataset, dataset)
    setup = 0.0 if stored else SETUP_SECONDS.get((method, same),
                                                  SETUP_SECONDS.get((method, FAMILY.get(dataset, "")), 0.0))
    if kind == "selector":
        return SELECTOR_SECONDS + setup
    per_step = seconds_per_step(method, dataset, ipc, pixels)
    if per_step is None:
        return None
    return max(0, int(steps or 0)) * per_step + setup


def first_use_seconds(method: str, dataset: str, stored: bool | None = None) -> float | None:
    """Seconds a method's first run on `dataset` spends training what it stores (its experts) before its first
    step, when that is measured and not already part of `estimate_seconds` (None otherwise, and when `stored`
    says they are already stored)."""
    return None if stored else FIRST_USE_SECONDS.get((method, SAME_TRAINING_AS.get(dataset, dataset)))


def needs_warning(seconds: float | None) -> bool:
    """True when a run is expected to take longer than `WARN_ABOVE_S`."""
    return seconds is not None and math.isfinite(seconds) and seconds > WARN_ABOVE_S


def describe_seconds(seconds: float | None) -> str:
    """'about 40 s', 'about 3 min', or 'unknown'."""
    if seconds is None or not math.isfinite(seconds):
        return "unknown"
    if seconds < 90:
        return f"about {max(1, round(seconds / 5) * 5 if seconds >= 10 else round(seconds))} s"
    if seconds < 5400:
        return f"about {round(seconds / 60)} min"
    return f"about {seconds / 3600:.1f} h"

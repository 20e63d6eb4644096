"""DSA: differentiable siamese augmentation (Zhao & Bilen, ICML 2021).

Gradient and distribution matching compare a *real* batch with a *synthetic* batch. DSA augments both with the
**same** random transformation, so the comparison stays meaningful, and every transformation is differentiable
with respect to the pixels, so the synthetic images still receive gradients through it.

Families (the paper's ranges): ``color`` (brightness shift in [-0.5, 0.5], saturation ×[0, 2], contrast
×[0.5, 1.5]), ``crop`` (translation by up to 1/8 of the side, zero filled), ``cutout`` (a zeroed square of half
the side), ``flip`` (horizontal, probability 1/2), ``scale`` (×[1/1.2, 1.2] per axis), ``rotate`` (±15°).
In ``single`` mode (DSA's default) each draw picks one family at random; ``all`` applies every family in turn.
Digit datasets never flip (a mirrored 2 or 7 is not a digit).

Usage::

    aug = SiameseAugment.for_dataset("mnist-5k")
    draw = aug.draw(generator)              # one draw of parameters ...
    x_real, x_syn = draw(x_real), draw(x_syn)   # ... applied to both batches
    groups = aug.draw(generator, groups=10) # one draw per class, applied with draw(x, group=labels)
    x = aug(x, generator)                   # `evaluate.Augment`: one family per batch, fresh parameters per image

Images are augmented in whatever space they are given (the distillers use the normalised space, as DSA does).

`DCAugment` is the other augmentation the field evaluates with: DC's crop / scale / rotate, which the DC authors'
code applies (one transformation per image, drawn at random) when training networks on DC's MNIST images.
`ThenCutMix` follows an augmentation with `cutmix` (RDED's students; used by teacher relabelling, whose teacher
labels the mixed view, so no labels are mixed).

Both describe themselves (`describe()`: name and parameters) so every evaluation record can say what it used.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F

from .device import to_device
from .errors import InvalidInputError

FAMILIES: tuple[str, ...] = ("color", "crop", "cutout", "flip", "scale", "rotate")
NO_FLIP_DATASETS = frozenset({"digits", "mnist-5k", "mnist", "kmnist", "svhn"})


def strategy_for(dataset_name: str) -> tuple[str, ...]:
    """The DSA families for a dataset: all six, without `flip` for digit datasets."""
    if dataset_name in NO_FLIP_DATASETS:
        return tuple(f for f in FAMILIES if f != "flip")
    return FAMILIES


@dataclass(frozen=True)
class DSAParams:
    """Which families to use and their ranges (DSA's published values by default)."""

    strategy: tuple[str, ...] = FAMILIES
    mode: str = "single"          # "single": one family per draw; "all": every family in order
    brightness: float = 1.0       # shift ∈ (u - 0.5) * brightness
    saturation: float = 2.0       # factor ∈ u * saturation
    contrast: float = 0.5         # factor ∈ u + contrast
    crop: float = 0.125           # largest translation, as a fraction of the side
    cutout: float = 0.5           # side of the cut square, as a fraction of the side
    scale: float = 1.2            # factor ∈ [1/scale, scale]
    rotate: float = 15.0          # largest rotation in degrees

    def __post_init__(self) -> None:
        unknown = [f for f in self.strategy if f not in FAMILIES]
        if unknown or not self.strategy:
            raise InvalidInputError(f"unknown augmentation {', '.join(unknown) or '(none)'}; "
                                    f"choose from {', '.join(FAMILIES)}")
        if self.mode not in ("single", "all"):
            raise InvalidInputError(f"augmentation mode must be 'single' or 'all', got {self.mode!r}")


@dataclass
class AugmentDraw:
    """One random draw of parameters, applied identically to every batch it is called on.

    `params` holds, per family, tensors whose first dimension is the number of groups G. Called without `group`,
    a draw with G == 1 applies the same transformation to every image; with `group` (one index per image, e.g.
    the class label), image i gets the parameters of group `group[i]`.
    """

    families: tuple[str, ...]
    params: dict[str, torch.Tensor] = field(default_factory=dict)
    groups: int = 1

    def __call__(self, x: torch.Tensor, group: torch.Tensor | None = None) -> torch.Tensor:
        return self.apply(x, group)

    def to(self, device: torch.device) -> "AugmentDraw":
        """The same draw with its parameters on `device` (queued copies from pinned memory on CUDA, so a hot loop
        does not wait for the device); `group` indices passed to `apply` should then live there too."""
        from .device import to_device

        return AugmentDraw(self.families, {k: to_device(v, device) for k, v in self.params.items()}, self.groups)

    def apply(self, x: torch.Tensor, group: torch.Tensor | None = None) -> torch.Tensor:
        """Transform a batch N×C×H×W (differentiably)."""
        where = next(iter(self.params.values())).device if self.params else torch.device("cpu")
        if group is None:
            if self.groups == 1:
                group = torch.zeros(len(x), dtype=torch.long, device=where)
            elif self.groups == len(x):
                group = torch.arange(len(x), device=where)
            else:
                raise ValueError(f"a draw of {self.groups} groups needs `group` for a batch of {len(x)}")
        group = group.to(device=where, dtype=torch.long)
        for fam in self.families:
            p = {k.split(".", 1)[1]: v[group].to(x.device, x.dtype)
                 for k, v in self.params.items() if k.startswith(fam + ".")}
            x = _APPLY[fam](x, p)
        return x


class SiameseAugment:
    """Draws DSA parameters; also an `evaluate.Augment` (fresh parameters per image) when called directly."""

    name = "dsa"

    def __init__(self, params: DSAParams | None = None):
        self.params = params or DSAParams()

    @classmethod
    def for_dataset(cls, dataset_name: str, mode: str = "single") -> "SiameseAugment":
        return cls(DSAParams(strategy=strategy_for(dataset_name), mode=mode))

    def draw(self, generator: torch.Generator, groups: int = 1) -> AugmentDraw:
        """One draw: the families (one at random in `single` mode) and parameters for `groups` groups.

        Offsets are drawn as fractions of the side, so one draw fits batches of any image size.
        """
        p = self.params
        if p.mode == "single":
            families: tuple[str, ...] = (p.strategy[int(torch.randint(len(p.strategy), (1,), generator=generator))],)
        else:
            families = tuple(p.strategy)
        g = int(groups)

        def u(*shape: int) -> torch.Tensor:
            return torch.rand((g, *shape), generator=generator)

        params: dict[str, torch.Tensor] = {}
        for fam in families:
            if fam == "color":
                params["color.brightness"] = (u() - 0.5) * p.brightness
                params["color.saturation"] = u() * p.saturation
                params["color.contrast"] = u() + p.contrast
            elif fam == "crop":
                params["crop.shift"] = (u(2) * 2 - 1) * p.crop  # fraction of the side, rounded to pixels on use
            elif fam == "cutout":
                params["cutout.centre"] = u(2)                  # fraction of the side
                params["cutout.size"] = torch.full((g,), p.cutout)
            elif fam == "flip":
                params["flip.flip"] = (u() < 0.5).float()
            elif fam == "scale":
                lo = 1.0 / p.scale
                params["scale.factor"] = u(2) * (p.scale - lo) + lo
            elif fam == "rotate":
                params["rotate.angle"] = (u() * 2 - 1) * p.rotate * math.pi / 180.0
        return AugmentDraw(families, params, g)

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Augment a training batch for evaluation: in `single` mode one family for the batch (as DSA's code
        does when it trains networks), with independent parameters per image, fresh for every batch."""
        return self.draw(generator, groups=len(x)).to(x.device).apply(x)

    def describe(self) -> dict:
        """Name and parameters, for evaluation records."""
        p = self.params
        return {"name": self.name, "strategy": "_".join(p.strategy), "mode": p.mode, "brightness": p.brightness,
                "saturation": p.saturation, "contrast": p.contrast, "crop": p.crop, "cutout": p.cutout,
                "scale": p.scale, "rotate": p.rotate}


def dsa_augment(dataset_name: str) -> SiameseAugment:
    """The `Augment` callable for evaluation with DSA (the `paper` protocol then trains 1000 epochs)."""
    return SiameseAugment.for_dataset(dataset_name)


# ------------------------------------------------------------------------------- DC's crop/scale/rotate

DC_FAMILIES: tuple[str, ...] = ("crop", "scale", "rotate")


@dataclass(frozen=True)
class DCAugParams:
    """DC's evaluation augmentation (the DC authors' `get_daparam` values): each image gets one of `strategy`.

    crop: pad by `crop` pixels with the batch's channel means and cut back at a random offset (shifts of
    −crop … crop−1 pixels); scale: resize each axis by a factor in [1 − scale, 1 + scale] about the centre
    (zeros outside); rotate: a whole number of degrees in [−rotate, rotate), filled with the mean pixel value.
    """

    strategy: tuple[str, ...] = DC_FAMILIES
    crop: int = 4
    scale: float = 0.2
    rotate: int = 45

    def __post_init__(self) -> None:
        unknown = [f for f in self.strategy if f not in DC_FAMILIES]
        if unknown or not self.strategy:
            raise InvalidInputError(f"unknown DC augmentation {', '.join(unknown) or '(none)'}; "
                                    f"choose from {', '.join(DC_FAMILIES)}")
        if self.crop < 0 or not 0 <= self.scale < 1 or self.rotate < 0:
            raise InvalidInputError("DC augmentation needs crop >= 0, 0 <= scale < 1 and rotate >= 0")


class DCAugment:
    """DC's crop/scale/rotate as an `evaluate.Augment`: one transformation per image, chosen at random.

    Resampling is bilinear (DC's code resizes by nearest neighbour and rotates with a cubic spline); the ranges,
    the choice of one transformation per image and the fill values follow DC's code.
    """

    name = "dc"

    def __init__(self, params: DCAugParams | None = None):
        self.params = params or DCAugParams()

    def describe(self) -> dict:
        p = self.params
        return {"name": self.name, "strategy": "_".join(p.strategy), "crop": p.crop, "scale": p.scale,
                "rotate": p.rotate}

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        p = self.params
        n, _, h, w = x.shape
        choice = torch.randint(len(p.strategy), (n,), generator=generator)
        out = x.clone()
        channel_mean = x.mean(dim=(0, 2, 3)).view(1, -1, 1, 1)
        for k, fam in enumerate(p.strategy):
            sel = torch.nonzero(choice == k, as_tuple=False).flatten()
            m = len(sel)
            if m == 0:
                continue
            xs = x[sel.to(x.device)]
            if fam == "crop":
                # padded side 2·crop: DC draws the cut's corner in [0, 2·crop), i.e. a shift in [−crop, crop)
                dy = torch.randint(0, max(1, 2 * p.crop), (m,), generator=generator) - p.crop
                dx = torch.randint(0, max(1, 2 * p.crop), (m,), generator=generator) - p.crop
                xs = _shift_fill(xs, dy, dx, channel_mean)
            elif fam == "scale":
                lo, hi = 1.0 - p.scale, 1.0 + p.scale
                sy = torch.rand(m, generator=generator) * (hi - lo) + lo
                sx = torch.rand(m, generator=generator) * (hi - lo) + lo
                zero = torch.zeros(m)
                # the output samples the input at coordinates / factor: content grows by the factor
                theta = torch.stack([torch.stack([1 / sx, zero, zero], 1), torch.stack([zero, 1 / sy, zero], 1)], 1)
                xs = _affine(xs, theta.to(xs.device, xs.dtype))
            elif fam == "rotate":
                deg = torch.randint(-p.rotate, max(-p.rotate + 1, p.rotate), (m,), generator=generator).float()
                a = deg * math.pi / 180.0
                c, s, zero = torch.cos(a), torch.sin(a), torch.zeros(m)
                theta = torch.stack([torch.stack([c, -s, zero], 1), torch.stack([s, c, zero], 1)], 1)
                fill = channel_mean.mean()
                xs = _affine(xs - fill, theta.to(xs.device, xs.dtype)) + fill
            out[sel.to(x.device)] = xs
        return out


def _shift_fill(x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, fill: torch.Tensor) -> torch.Tensor:
    """Translate image i by (dy[i], dx[i]) whole pixels (content moves down/right for positive shifts); the
    uncovered border takes the per-channel `fill` value."""
    n, c, h, w = x.shape
    s = int(max(dy.abs().max(), dx.abs().max(), 0)) if n else 0
    padded = (F.pad(x - fill, (s, s, s, s)) + fill) if s else x
    rows = (s - dy.view(n, 1) + torch.arange(h).view(1, h)).to(x.device)
    cols = (s - dx.view(n, 1) + torch.arange(w).view(1, w)).to(x.device)
    idx_n = torch.arange(n, device=x.device).view(n, 1, 1, 1)
    idx_c = torch.arange(c, device=x.device).view(1, c, 1, 1)
    return padded[idx_n, idx_c, rows.view(n, 1, h, 1), cols.view(n, 1, 1, w)]


def dc_augment(dataset_name: str = "") -> DCAugment:  # noqa: ARG001 - one setting for every set DC augments
    """The `Augment` callable for evaluating DC's images on MNIST-family digits (1000 epochs in `paper`)."""
    return DCAugment()


def cutmix(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """CutMix without labels (RDED's students, β(1, 1)): λ ~ U(0, 1); one box of side √(1 − λ) times the image's,
    centred uniformly and clipped to the image, is copied into every image from another image of the batch (a
    random permutation). Returns a new tensor; `x` is unchanged."""
    n, _, h, w = x.shape
    lam = float(torch.rand((), generator=generator))
    perm = torch.randperm(n, generator=generator)
    cy, cx = (int(v) for v in torch.randint(0, 1 << 30, (2,), generator=generator))
    cy, cx = cy % h, cx % w
    cut_h, cut_w = int(h * (1.0 - lam) ** 0.5), int(w * (1.0 - lam) ** 0.5)
    y0, y1 = max(cy - cut_h // 2, 0), min(cy + cut_h // 2, h)
    x0, x1 = max(cx - cut_w // 2, 0), min(cx + cut_w // 2, w)
    mixed = x.clone()
    if y1 > y0 and x1 > x0:
        mixed[:, :, y0:y1, x0:x1] = x[to_device(perm, x.device)][:, :, y0:y1, x0:x1]
    return mixed


class ThenCutMix:
    """An `evaluate.Augment`: `first` (e.g. DSA), then `cutmix`, fresh draws for every batch (teacher relabelling
    with CutMix, `distill_core.relabel`)."""

    def __init__(self, first: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None):
        self.first = first

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if self.first is not None:
            x = self.first(x, generator)
        return cutmix(x, generator)

    def describe(self) -> dict:
        first = describe_augment(self.first)
        return {**first, "name": f"{first['name']}+cutmix" if self.first is not None else "cutmix",
                "then": "cutmix (beta 1, no label mixing: the teacher labels the mixed view)"}


AUGMENTATIONS = {"dsa": dsa_augment, "dc": dc_augment}


def make_augment(name: str, dataset_name: str):
    """The evaluation augmentation called `name` ("dsa" | "dc") for a dataset, or None for "none"."""
    if name == "none":
        return None
    if name not in AUGMENTATIONS:
        raise InvalidInputError(f"unknown augmentation {name!r}; choose none, {', '.join(AUGMENTATIONS)}")
    return AUGMENTATIONS[name](dataset_name)


def describe_augment(augment) -> dict:
    """Name and parameters of an augmentation callable (for records); {"name": "none"} for None."""
    if augment is None:
        return {"name": "none"}
    if hasattr(augment, "describe"):
        return dict(augment.describe())
    return {"name": getattr(augment, "__name__", type(augment).__name__)}


# ------------------------------------------------------------------------------------- the families

def _color(x: torch.Tensor, p: dict[str, torch.Tensor]) -> torch.Tensor:
    x = x + p["brightness"].view(-1, 1, 1, 1)
    mean_c = x.mean(dim=1, keepdim=True)
    x = (x - mean_c) * p["saturation"].view(-1, 1, 1, 1) + mean_c
    mean_all = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean_all) * p["contrast"].view(-1, 1, 1, 1) + mean_all


def _affine(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Resample x through per-image 2×3 affine maps (bilinear, zero outside): differentiable in x."""
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _crop(x: torch.Tensor, p: dict[str, torch.Tensor]) -> torch.Tensor:
    h, w = x.shape[-2:]
    # whole-pixel shifts (as DSA's pad-and-crop), expressed in the [-1, 1] grid coordinates
    sx = torch.round(p["shift"][:, 0] * w) * 2.0 / w
    sy = torch.round(p["shift"][:, 1] * h) * 2.0 / h
    one, zero = torch.ones_like(sx), torch.zeros_like(sx)
    theta = torch.stack([torch.stack([one, zero, sx], 1), torch.stack([zero, one, sy], 1)], 1)
    return _affine(x, theta)


def _cutout(x: torch.Tensor, p: dict[str, torch.Tensor]) -> torch.Tensor:
    h, w = x.shape[-2:]
    size_h = torch.round(p["size"] * h).clamp_min(1)
    size_w = torch.round(p["size"] * w).clamp_min(1)
    cy = torch.floor(p["centre"][:, 1] * h)
    cx = torch.floor(p["centre"][:, 0] * w)
    top, left = cy - torch.floor(size_h / 2), cx - torch.floor(size_w / 2)
    rows = torch.arange(h, device=x.device, dtype=x.dtype).view(1, h, 1)
    cols = torch.arange(w, device=x.device, dtype=x.dtype).view(1, 1, w)
    inside = ((rows >= top.view(-1, 1, 1)) & (rows < (top + size_h).view(-1, 1, 1))
              & (cols >= left.view(-1, 1, 1)) & (cols < (left + size_w).view(-1, 1, 1)))
    return x * (~inside).unsqueeze(1).to(x.dtype)


def _flip(x: torch.Tensor, p: dict[str, torch.Tensor]) -> torch.Tensor:
    f = p["flip"].view(-1, 1, 1, 1)
    return f * x.flip(-1) + (1 - f) * x


def _scale(x: torch.Tensor, p: dict[str, torch.Tensor]) -> torch.Tensor:
    s = p["factor"]
    zero = torch.zeros_like(s[:, 0])
    theta = torch.stack([torch.stack([s[:, 0], zero, zero], 1), torch.stack([zero, s[:, 1], zero], 1)], 1)
    return _affine(x, theta)


def _rotate(x: torch.Tensor, p: dict[str, torch.Tensor]) -> torch.Tensor:
    a = p["angle"]
    c, s, zero = torch.cos(a), torch.sin(a), torch.zeros_like(a)
    theta = torch.stack([torch.stack([c, -s, zero], 1), torch.stack([s, c, zero], 1)], 1)
    return _affine(x, theta)


_APPLY = {"color": _color, "crop": _crop, "cutout": _cutout, "flip": _flip, "scale": _scale, "rotate": _rotate}

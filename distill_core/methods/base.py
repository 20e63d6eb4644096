"""The method interface and its registry.

A method is one class registered under one name. Every method exposes `step()` so the app, the CLI and the tests
can drive it step by step: a *selector* does all its work in its first step; a *distiller* improves its summary a
little on each step. `summary()` returns the current `Summary` at any time.
"""
from __future__ import annotations

import dataclasses
import inspect
import math
from dataclasses import dataclass, fields
from typing import Any, ClassVar

import torch

from .. import profiles
from ..data import ImageSet
from ..device import make_generator, materialize, resolve_device
from ..errors import InvalidInputError, UnknownNameError
from ..limits import LIMITS
from ..profiles import check_profile
from ..summary import Summary


@dataclass
class MethodConfig:
    """Settings shared by every method; each method subclasses it with its own fields and defaults.

    `profile` (not a field: the fields are the settings) names the profile the defaults came from, "fast" or
    "paper" (see `distill_core.profiles`).
    """

    profile: ClassVar[str] = "fast"

    @classmethod
    def for_dataset(cls, dataset_name: str, profile: str = "fast", ipc: int | None = None) -> "MethodConfig":
        """Defaults for one dataset under a profile (subclasses read theirs from the profiles table).

        `ipc`, when known, settles the settings the table gives by IPC (see `profiles.settings`).
        """
        cfg = cls()
        cfg.profile = check_profile(profile)
        return cfg

    def validate(self) -> None:
        """Refuse NaN/infinite numbers and negative counts with a clear message; subclasses may add checks."""
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise InvalidInputError(f"setting {f.name} must be a finite number, got {value}")
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
                raise InvalidInputError(f"setting {f.name} must not be negative, got {value}")
            if (f.name == "lr" or f.name.startswith("lr_") or f.name.endswith("_lr")) and isinstance(value, (int, float)) \
                    and not isinstance(value, bool) and value <= 0:
                raise InvalidInputError(f"learning rate {f.name} must be positive, got {value}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_overrides(cls, dataset_name: str, overrides: dict[str, Any] | None = None, profile: str = "fast",
                       ipc: int | None = None) -> "MethodConfig":
        """The profile's dataset defaults with user overrides (strings are converted to each field's type)."""
        cfg = config_defaults(cls, dataset_name, profile, ipc)
        known = {f.name: f for f in fields(cls)}
        for key, raw in (overrides or {}).items():
            if key not in known:
                raise InvalidInputError(f"unknown setting {key!r} for this method; known: {', '.join(known) or 'none'}")
            setattr(cfg, key, _convert(key, raw, getattr(cfg, key)))
        cfg.validate()
        return cfg


def config_defaults(config_cls: type[MethodConfig], dataset_name: str, profile: str = "fast",
                    ipc: int | None = None) -> MethodConfig:
    """`config_cls.for_dataset(...)` under a profile, also for a config whose `for_dataset` predates profiles
    (it takes the dataset name only; such a config has the fast profile alone)."""
    check_profile(profile)
    accepted = inspect.signature(config_cls.for_dataset).parameters
    if "profile" in accepted:
        kwargs: dict[str, Any] = {"profile": profile}
        if "ipc" in accepted:
            kwargs["ipc"] = ipc
        cfg = config_cls.for_dataset(dataset_name, **kwargs)
    elif profile != "fast":
        raise InvalidInputError(f"{config_cls.__name__} has no {profile!r} profile")
    else:
        cfg = config_cls.for_dataset(dataset_name)
    cfg.profile = profile
    return cfg


def _convert(key: str, raw: Any, current: Any) -> Any:
    if not isinstance(raw, str):
        return raw
    try:
        if isinstance(current, bool):
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if isinstance(current, int):
            return int(raw)
        if isinstance(current, float):
            return float(raw)
    except ValueError:
        raise InvalidInputError(f"setting {key}={raw!r} is not a valid {type(current).__name__}") from None
    return raw


FAMILIES: dict[str, str] = {
    "kernel": "Kernel",              # kip, ls, rfad, frepo: closed-form kernel regression on the summary
    "gradient": "Gradient matching",  # dc, dsa
    "distribution": "Distribution matching",  # dm, idm
    "trajectory": "Trajectory matching",      # mtt, tesla, datm
    "decoupled": "Decoupled",        # rded: a trained teacher picks and relabels real crops, no bi-level loop
    "selection": "Selection",        # random, herding, kcenter, facility, kmeans, ...: real images picked/averaged
}
"""Method families (`Method.family`) and their display names, in the order the app lists them."""


class Method:
    """Base class. Subclasses set `name`, `kind`, `family`, `Config`, `description` and implement
    `_step()`/`summary()`."""

    name: ClassVar[str] = ""
    kind: ClassVar[str] = "selector"  # or "distiller"
    family: ClassVar[str] = "selection"  # one of FAMILIES
    description: ClassVar[str] = ""
    Config: ClassVar[type[MethodConfig]] = MethodConfig
    default_steps: ClassVar[int] = 1  # instances: the profile's (see `profile_steps`)
    max_ipc: ClassVar[int | None] = None  # e.g. 1 for the class mean
    steps_per_iteration: int = 1  # image updates per profile iteration (dc/dsa: outer_loop, one network each)
    trains_first: ClassVar[str] = ""  # what a first run trains and stores before its first step ("experts", ...)

    def __init__(self, dataset: ImageSet, ipc: int, config: MethodConfig | None = None, seed: int = 0,
                 device: str | torch.device = "cpu"):
        check_ipc(self, dataset, ipc)
        self.dataset = dataset
        self.ipc = int(ipc)
        self.config = config if config is not None else config_defaults(self.Config, dataset.name, "fast", int(ipc))
        self.config.validate()
        self.seed = int(seed)
        self.device = resolve_device(device)
        self.generator = make_generator(seed, "cpu")
        self.steps_done = 0
        self.default_steps = self.profile_steps()

    @classmethod
    def first_use_stored(cls, dataset: ImageSet, config: MethodConfig) -> bool | None:
        """Whether what this method trains before its first step on `dataset` with `config` (MTT's experts, RDED's
        teacher) is already stored; None when it trains nothing first. Reads files only: run-time estimates ask."""
        return None

    def profile_steps(self) -> int:
        """Steps a run takes by default: the profile's iterations at this dataset and IPC × `steps_per_iteration`
        (the class's `default_steps` for a method the profiles table does not list)."""
        n = profiles.iterations(self.name, self.dataset.name, self.config.profile, self.ipc)
        return int(type(self).default_steps) if n is None else int(n) * int(self.steps_per_iteration)

    @property
    def iterative(self) -> bool:
        return self.kind == "distiller"

    @property
    def done(self) -> bool:
        """Selectors are done after their one step; distillers are stopped by whoever drives them."""
        return not self.iterative and self.steps_done >= 1

    def step(self, sync: bool = True) -> dict[str, Any]:
        """One unit of work; returns metrics (e.g. loss) for this step.

        A distiller's `_step` may keep its metrics as tensors on its device, so that a step need not wait for the
        device: `sync=False` returns them as they are (the pipeline gathers them when a log row is due), the
        default turns them into floats.
        """
        metrics = self._step()
        self.steps_done += 1
        return materialize(metrics) if sync else metrics

    def _step(self) -> dict[str, float]:
        raise NotImplementedError

    def summary(self) -> Summary:
        raise NotImplementedError

    def _make_summary(self, images: torch.Tensor, labels: torch.Tensor, **meta: Any) -> Summary:
        meta = {"seed": self.seed, "config": self.config.to_dict(), "profile": self.config.profile, **meta}
        return Summary(images.detach().float().cpu(), labels.detach().cpu(), self.name, self.dataset.name,
                       self.ipc, list(self.dataset.class_names), meta)


def check_ipc(method: type[Method] | Method, dataset: ImageSet, ipc: int) -> None:
    """Refuse IPC values the method or the dataset cannot serve."""
    if isinstance(ipc, bool) or not isinstance(ipc, int) or ipc < 1:
        raise InvalidInputError(f"IPC (images per class) must be a positive whole number, got {ipc!r}")
    if ipc > LIMITS.max_ipc:
        raise InvalidInputError(f"IPC {ipc} is above the limit of {LIMITS.max_ipc} images per class")
    if method.max_ipc is not None and ipc > method.max_ipc:
        raise InvalidInputError(f"method '{method.name}' makes at most {method.max_ipc} image(s) per class, "
                                f"got IPC {ipc}")
    counts = dataset.class_counts()
    smallest = min(counts)
    if ipc > smallest:
        cls = dataset.class_names[counts.index(smallest)]
        raise InvalidInputError(f"IPC {ipc} is larger than class '{cls}' of {dataset.name}, which has "
                                f"{smallest} training images")


METHODS: dict[str, type[Method]] = {}


def register_method(cls: type[Method]) -> type[Method]:
    """Class decorator: add a method to the registry under `cls.name`."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    if cls.family not in FAMILIES:
        raise ValueError(f"{cls.__name__}.family is {cls.family!r}; choose one of {', '.join(FAMILIES)}")
    if cls.name in METHODS and METHODS[cls.name] is not cls:
        raise ValueError(f"method name {cls.name!r} is registered twice")
    METHODS[cls.name] = cls
    return cls


def family_label(name: str) -> str:
    """'Kernel · kip': a registered method's name under its family's display name (the app's method lists)."""
    cls = get_method(name)
    return f"{FAMILIES[cls.family]} · {name}"


def by_family(names: list[str] | None = None) -> list[str]:
    """Registered method names (or `names`) grouped by family in `FAMILIES` order, alphabetical within one."""
    order = {f: i for i, f in enumerate(FAMILIES)}
    names = list(METHODS) if names is None else [n for n in names if n in METHODS]
    return sorted(names, key=lambda n: (order.get(METHODS[n].family, len(order)), n))


def get_method(name: str) -> type[Method]:
    if name not in METHODS:
        raise UnknownNameError(f"unknown method {name!r}; choose one of {', '.join(sorted(METHODS))}")
    return METHODS[name]


def create_method(name: str, dataset: ImageSet, ipc: int, seed: int = 0, device: str | torch.device = "cpu",
                  overrides: dict[str, Any] | None = None, profile: str = "fast") -> Method:
    """Look a method up, build its config (the profile's defaults for the dataset and IPC + overrides), and
    instantiate it."""
    cls = get_method(name)
    check_profile(profile)
    check_ipc(cls, dataset, ipc)
    config = cls.Config.from_overrides(dataset.name, overrides, profile=profile, ipc=ipc)
    return cls(dataset, ipc, config=config, seed=seed, device=device)


def class_balanced_pick(labels: torch.Tensor, num_classes: int, ipc: int, generator: torch.Generator) -> torch.Tensor:
    """`ipc` distinct random indices per class, classes in order (used by random selection and real-image init)."""
    picks = []
    for c in range(num_classes):
        idx = torch.nonzero(labels == c, as_tuple=False).flatten()
        perm = torch.randperm(len(idx), generator=generator)[:ipc]
        picks.append(idx[perm])
    return torch.cat(picks)


# how a distiller's images start (the app draws `init` as a select box with these choices)
INIT_CHOICES = ("real", "herding", "noise")


def herding_pick(dataset: ImageSet, ipc: int) -> torch.Tensor:
    """The `herding` baseline's picks in pixel space (that method itself, so the two cannot drift apart): `ipc`
    training indices per class, classes in order."""
    from .selectors import Herding  # imported late: selectors builds on this module

    return torch.as_tensor(Herding(dataset, ipc).summary().meta["indices"], dtype=torch.long)


def initial_pick(dataset: ImageSet, ipc: int, init: str, generator: torch.Generator) -> torch.Tensor | None:
    """Training indices a distiller starts from, `ipc` per class in class order, or None for `init=noise`.

    `real` is the `random` baseline's seeded pick under the same seed (drawn from `generator`, so a distiller starts
    where `random` ends); `herding` is the `herding` baseline's deterministic pick, so the distiller must improve on
    the classic coreset it starts from.
    """
    if init == "real":
        return class_balanced_pick(dataset.y_train, dataset.num_classes, ipc, generator)
    if init == "herding":
        return herding_pick(dataset, ipc)
    return None


def check_init(init: str) -> None:
    if init not in INIT_CHOICES:
        raise InvalidInputError(f"init must be one of {', '.join(INIT_CHOICES)}, got {init!r}")

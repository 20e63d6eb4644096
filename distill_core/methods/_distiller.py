"""Shared machinery of the network distillers (dm, dc, dsa, mtt) and their per-dataset defaults — in one place.

Every distiller learns `ipc` images per class in the models' *normalised* space, starting from real images
(`init=real`, the same seeded class-balanced pick as the `random` baseline, so a distiller starts exactly where
`random` ends; `init=herding`, the `herding` baseline's pick) or from Gaussian noise (`init=noise`). `summary()`
maps them back to pixel space.

Defaults: every per-dataset setting (and the iterations `distill` runs without --steps) comes from the profiles
table in `distill_core/profiles.py` — `fast` (CPU-sized, the default) and `paper` (the published recipes); the
README shows it. Dataset families: **small** = `digits` (8×8); **grey28** = `mnist-5k`, `mnist`, `fashion-mnist`,
`kmnist`; **colour32** = `cifar10`, `cifar100`, `svhn` and image folders.

On 8×8 digits a third block would instance-normalise 2×2 maps; gradients through those (matched, or unrolled
through the student) blow up and the images diverge (dc at IPC 1: 20 % quick accuracy at depth 3, 80 % at depth 2),
so dc, dsa and mtt use two blocks there. dm, whose network is never differentiated twice, keeps three.

In the fast profile the experts' learning rate is 5× the paper's on the small sets so that a CPU-sized trajectory of
6 epochs covers most of training (ConvNet-3 width 32 reaches 93–95 % on mnist-5k after 6 epochs at 0.05, ~85 % at
0.01).

Steps: one `step()` is one update of the synthetic images. `default_steps` (what `distill` runs without
--steps) is the profile's iterations at the run's IPC (`pipeline.default_steps`); the fast ones are sized so
`distill --ipc 1|10 --eval quick` finishes in minutes on a 2-core CPU.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from .. import profiles
from ..data import ImageSet
from ..errors import InvalidInputError
from ..device import build_on_device, make_generator, prepare_device
from ..models import build_for, build_seeded, default_depth
from ..summary import Summary
from .base import INIT_CHOICES, Method, MethodConfig, check_init, initial_pick

# the app draws `init` as a select box (settings widgets read "choices" and "help" from a field's metadata)
INIT_FIELD = {"choices": INIT_CHOICES,
              "help": "real: start from real images (a seeded random pick per class); herding: start from the "
                      "herding coreset's images; noise: start from random noise, so the evolution towards the "
                      "class is visible"}

DEPTH_FIELD = {"help": "ConvNet blocks; 0 follows the image size (3 up to 32 px, 4 at 64 px, 5 at 128 px)"}
PRECISIONS = ("fp32", "bf16")
PRECISION_FIELD = {"choices": PRECISIONS,
                   "help": "fp32: full precision; bf16: the networks' forward passes under bfloat16 autocast "
                           "(faster on GPUs with bf16 units; losses within ~2 % and image gradients within ~5 % "
                           "of fp32, tests/test_precision.py)"}

GROUPS = profiles.GROUPS
dataset_group = profiles.dataset_family  # small / grey28 / colour32


@dataclass
class DistillerConfig(MethodConfig):
    """Settings every network distiller has."""

    method_key: ClassVar[str] = ""
    init: str = field(default="real", metadata=INIT_FIELD)  # "real": a seeded class-balanced pick of real
    #                                                            images; "noise": N(0, 1) pixels
    lr: float = 1.0            # learning rate of the synthetic images
    momentum: float = 0.5      # SGD momentum of the synthetic images
    width: int = 64            # ConvNet channels of the networks used to distil
    depth: int = field(default=0, metadata=DEPTH_FIELD)  # ConvNet blocks; 0: by image size (models.default_depth)

    @classmethod
    def for_dataset(cls, dataset_name: str, profile: str = "fast", ipc: int | None = None) -> "DistillerConfig":
        """The profiles table's settings of this method for the dataset (and IPC, when given)."""
        cfg = cls(**profiles.config_kwargs(cls, cls.method_key, dataset_name, profile, ipc))
        cfg.profile = profile
        return cfg

    def validate(self) -> None:
        super().validate()
        check_init(self.init)
        if self.width < 1:
            raise InvalidInputError("width must be at least 1")
        if self.depth > 12:
            raise InvalidInputError(f"depth {self.depth} is too large (at most 12 blocks; 0 follows the image size)")
        if self.momentum >= 1:
            raise InvalidInputError(f"momentum must be below 1, got {self.momentum}")


@dataclass
class NetworkSpeedConfig(DistillerConfig):
    """Speed options of the distillers that differentiate through ConvNets (dm, dc, dsa, mtt and their kin)."""

    precision: str = field(default="fp32", metadata=PRECISION_FIELD)  # fp32 | bf16 (autocast)
    channels_last: bool = False  # networks and real images channels-last (same numbers, another speed); mtt's
    #                              functional student keeps its layout

    def validate(self) -> None:
        super().validate()
        if self.precision not in PRECISIONS:
            raise InvalidInputError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")


class SyntheticImages(Method):
    """Base of the distillers: learnable images (normalised space) and labels, real-data sampling, summary."""

    kind = "distiller"
    Config = DistillerConfig
    config: DistillerConfig
    sgd_on_images: ClassVar[bool] = True   # `opt_images`: SGD with the config's lr and momentum on the images
    opt_images: torch.optim.SGD

    def __init__(self, dataset: ImageSet, ipc: int, config: DistillerConfig | None = None, seed: int = 0,
                 device: str | torch.device = "cpu"):
        super().__init__(dataset, ipc, config, seed, device)
        if not self.config.depth:  # "by image size", settled on a copy so the caller's config stays as given
            self.config = copy.copy(self.config)
            self.config.depth = default_depth(dataset.image_shape[1])
        cfg = self.config
        c = dataset.num_classes
        self.init_indices: list[int] | None = None
        idx = initial_pick(dataset, self.ipc, cfg.init, self.generator)  # drawn first: `real` is `random`'s pick
        if idx is not None:
            start = dataset.normalize(dataset.x_train[idx])
            self.init_indices = idx.tolist()
        else:
            start = torch.randn((c * self.ipc, *dataset.image_shape), generator=self.generator)
        self.images = start.to(self.device).clone().requires_grad_(True)
        self.labels_host = torch.arange(c).repeat_interleave(self.ipc)  # for augmentation groups (host side)
        self.labels = self.labels_host.to(self.device)
        # the real data and its per-class indices live on the device, so drawing a real batch is a device gather
        self.x_real = dataset.normalize(dataset.x_train).to(self.device)
        if getattr(cfg, "channels_last", False):  # the layout the networks then compute in
            self.x_real = self.x_real.contiguous(memory_format=torch.channels_last)
        self.y_real = dataset.y_train.to(self.device)
        self._class_idx = [dataset.class_indices(k).to(self.device) for k in range(c)]
        # index draws: the method's own generator on the CPU (so CPU runs repeat exactly), a seeded generator on
        # the device elsewhere (no host-made indices to copy over every step)
        self.index_generator = self.generator if self.device.type != "cuda" else \
            make_generator(self.seed + 104729, self.device)
        if self.sgd_on_images:  # DM, DC/DSA, IDM and the trajectory family; RFAD and FRePo build their own Adam
            self.opt_images = torch.optim.SGD([self.images], lr=cfg.lr, momentum=cfg.momentum)
        prepare_device(self.device)

    def step(self, sync: bool = True) -> dict[str, Any]:
        """One update of the images, under bfloat16 autocast when the config asks for `precision=bf16`."""
        if getattr(self.config, "precision", "fp32") != "bf16":
            return super().step(sync)
        with torch.autocast(self.device.type, dtype=torch.bfloat16):
            return super().step(sync)

    # -------------------------------------------------------------------------- helpers for subclasses
    def next_seed(self) -> int:
        """A seed for a fresh network, drawn from the method's own generator (so runs repeat)."""
        return int(torch.randint(0, 2**31 - 1, (1,), generator=self.generator))

    def fresh_network(self, seed: int | None = None) -> torch.nn.Module:
        """A ConvNet initialised from `seed` (default: the next seed), built directly on the method's device."""
        cfg = self.config
        seed = self.next_seed() if seed is None else seed
        if self.device.type == "cuda":  # created and initialised on the GPU: no weights cross the bus per step
            net = build_on_device(lambda: build_for(self.dataset, "convnet", width=cfg.width, depth=cfg.depth),
                                  seed, self.device)
        else:
            net = build_seeded(self.dataset, "convnet", seed=seed, device=self.device, width=cfg.width,
                               depth=cfg.depth)
        if getattr(cfg, "channels_last", False):
            net = net.to(memory_format=torch.channels_last)
        return net

    def real_batch(self, c: int, n: int) -> torch.Tensor:
        """n random real images of class c (normalised, on the device); fewer if the class is smaller."""
        idx = self._class_idx[c]
        order = torch.randperm(len(idx), generator=self.index_generator, device=self.index_generator.device)
        return self.x_real[idx[order[:n].to(idx.device)]]

    def real_batches(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """n real images of every class, grouped by class (C*n images, labels), n capped by the smallest class."""
        n = min(n, min(len(i) for i in self._class_idx))
        x = torch.cat([self.real_batch(c, n) for c in range(self.dataset.num_classes)])
        y = torch.arange(self.dataset.num_classes, device=self.device).repeat_interleave(n)
        return x, y

    def class_images(self, c: int) -> torch.Tensor:
        return self.images[c * self.ipc:(c + 1) * self.ipc]

    # ------------------------------------------------------------------------------------ the summary
    def summary(self) -> Summary:
        pixels = self.dataset.denormalize(self.images.detach())
        meta: dict[str, Any] = {"init": self.config.init, "steps": self.steps_done}
        if self.init_indices is not None:
            meta["init_indices"] = self.init_indices
        meta.update(self.summary_meta())
        return self._make_summary(pixels, self.labels, **meta)

    def summary_meta(self) -> dict[str, Any]:
        return {}

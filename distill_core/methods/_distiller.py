"""Shared machinery of the network distillers (dm, dc, dsa, mtt) and their per-dataset defaults — in one place.

Every distiller learns `ipc` images per class in the models' *normalised* space, starting from real images
(`init=real`, the same seeded class-balanced pick as the `random` baseline, so a distiller starts exactly where
`random` ends) or from Gaussian noise (`init=noise`). `summary()` maps them back to pixel space.

Defaults (CPU-friendly: a ConvNet-3 narrower than the paper's 128 channels, fewer/lighter iterations, short
expert trajectories; on a GPU raise `width`, `batch_real` and the steps with --param / --steps). Dataset groups:
**small** = `digits` (8×8); **grey28** = `mnist-5k`, `mnist`, `fashion-mnist`, `kmnist`; **colour32** = `cifar10`,
`cifar100`, `svhn` and image folders.

| method | setting | small | grey28 | colour32 | paper |
|---|---|---|---|---|---|
| all | `width` (ConvNet-3 channels of the distilling networks) | 64 | 32 | 128 | 128 |
| dc, dsa, mtt | `depth` (ConvNet blocks) | 2 | 3 | 3 | 3 |
| all | `init` / `momentum` (image SGD) | real / 0.5 | real / 0.5 | real / 0.5 | real or noise / 0.5 |
| dm | `lr` (images) / `batch_real` (per class) | 1 / 64 | 1 / 64 | 1 / 128 | 1 / 256 |
| dc, dsa | `lr` (images) / `batch_real` (per class) | 0.1 / 32 | 0.1 / 32 | 0.1 / 128 | 0.1 / 256 |
| dc, dsa | `outer_loop` / `inner_loop` | by IPC (gm.py) | by IPC | by IPC | 1/1 at IPC 1, 10/50 at IPC 10 |
| dc, dsa | `image_lr_factor` (images' lr = `lr` × it) | by IPC: 1 at IPC 1, 5 above | by IPC | by IPC | 1 |
| mtt | `lr` (images) | 100 | 100 | 100 | 100–1000 (CIFAR-10, ZCA) |
| mtt | `lr_teacher` (experts, initial student lr) | 0.05 | 0.05 | 0.01 | 0.01 |
| mtt | `lr_lr` (Adam on log lr; paper: SGD on lr) | 0.01 | 0.01 | 0.01 | 1e-7–1e-5 |
| mtt | `syn_steps` / `expert_epochs` / `max_start_epoch` | 20 / 2 / 4 | 20 / 2 / 4 | 30 / 2 / 10 | 50 / 2 / 2 (IPC 1), 30 / 2 / 20 (IPC 10) |
| mtt | `batch_syn` (0: all) | 20 | 20 | 0 | all |
| mtt | `num_experts` × `expert_train_epochs` | 2 × 6 | 2 × 6 | 5 × 15 | 100 × 50 |

On 8×8 digits a third block would instance-normalise 2×2 maps; gradients through those (matched, or unrolled
through the student) blow up and the images diverge (dc at IPC 1: 20 % quick accuracy at depth 3, 80 % at depth 2),
so dc, dsa and mtt use two blocks there. dm, whose network is never differentiated twice, keeps three.

The experts' learning rate is 5× the paper's on the small sets so that a CPU-sized trajectory of 6 epochs covers
most of training (ConvNet-3 width 32 reaches 93–95 % on mnist-5k after 6 epochs at 0.05, ~85 % at 0.01).

Steps: one `step()` is one update of the synthetic images. `default_steps` (what `distill` runs without
--steps) is set per method and IPC in each module, sized so `distill --ipc 1|10 --eval quick` finishes in minutes
on a 2-core CPU.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

import torch

from ..data import ImageSet
from ..errors import InvalidInputError
from ..models import build_seeded
from ..summary import Summary
from .base import Method, MethodConfig, class_balanced_pick

# the app draws `init` as a select box (settings widgets read "choices" and "help" from a field's metadata)
INIT_FIELD = {"choices": ("real", "noise"),
              "help": "real: start from real images (a seeded pick per class); noise: start from random noise, "
                      "so the evolution towards the class is visible"}

GROUPS = {"digits": "small", "mnist-5k": "grey28", "mnist": "grey28", "fashion-mnist": "grey28",
          "kmnist": "grey28", "cifar10": "colour32", "cifar100": "colour32", "svhn": "colour32"}

# method -> dataset group -> settings that differ from the Config dataclass defaults (mirrors the table above)
DEFAULTS: dict[str, dict[str, dict[str, Any]]] = {
    "dm": {
        "small": {"width": 64, "lr": 1.0, "batch_real": 64},
        "grey28": {"width": 32, "lr": 1.0, "batch_real": 64},
        "colour32": {"width": 128, "lr": 1.0, "batch_real": 128},
    },
    "dc": {
        "small": {"width": 64, "depth": 2, "lr": 0.1, "batch_real": 32},
        "grey28": {"width": 32, "lr": 0.1, "batch_real": 32},
        "colour32": {"width": 128, "lr": 0.1, "batch_real": 128},
    },
    "mtt": {
        "small": {"width": 64, "depth": 2, "lr": 100.0, "lr_teacher": 0.05, "syn_steps": 20, "max_start_epoch": 4,
                  "batch_syn": 20, "num_experts": 2, "expert_train_epochs": 6},
        "grey28": {"width": 32, "lr": 100.0, "lr_teacher": 0.05, "syn_steps": 20, "max_start_epoch": 4,
                   "batch_syn": 20, "num_experts": 2, "expert_train_epochs": 6},
        "colour32": {"width": 128, "lr": 100.0, "lr_teacher": 0.01, "syn_steps": 30, "max_start_epoch": 10,
                     "batch_syn": 0, "num_experts": 5, "expert_train_epochs": 15},
    },
}
DEFAULTS["dsa"] = DEFAULTS["dc"]


def dataset_group(dataset_name: str) -> str:
    """small / grey28 / colour32 (image folders and unknown names count as colour32)."""
    return GROUPS.get(dataset_name, "colour32")


@dataclass
class DistillerConfig(MethodConfig):
    """Settings every network distiller has."""

    method_key: ClassVar[str] = ""
    init: str = field(default="real", metadata=INIT_FIELD)  # "real": a seeded class-balanced pick of real
    #                                                            images; "noise": N(0, 1) pixels
    lr: float = 1.0            # learning rate of the synthetic images
    momentum: float = 0.5      # SGD momentum of the synthetic images
    width: int = 64            # ConvNet-3 channels of the networks used to distil
    depth: int = 3

    @classmethod
    def for_dataset(cls, dataset_name: str) -> "DistillerConfig":
        known = {f.name for f in fields(cls)}
        table = DEFAULTS.get(cls.method_key, {}).get(dataset_group(dataset_name), {})
        return cls(**{k: v for k, v in table.items() if k in known})

    def validate(self) -> None:
        super().validate()
        if self.init not in ("real", "noise"):
            raise InvalidInputError(f"init must be 'real' or 'noise', got {self.init!r}")
        if self.width < 1 or self.depth < 1:
            raise InvalidInputError("width and depth must be at least 1")
        if self.momentum >= 1:
            raise InvalidInputError(f"momentum must be below 1, got {self.momentum}")


class SyntheticImages(Method):
    """Base of the distillers: learnable images (normalised space) and labels, real-data sampling, summary."""

    kind = "distiller"
    Config = DistillerConfig
    config: DistillerConfig

    def __init__(self, dataset: ImageSet, ipc: int, config: DistillerConfig | None = None, seed: int = 0,
                 device: str | torch.device = "cpu"):
        super().__init__(dataset, ipc, config, seed, device)
        cfg = self.config
        c = dataset.num_classes
        self.init_indices: list[int] | None = None
        if cfg.init == "real":  # drawn first, so it equals `random`'s pick under the same seed
            idx = class_balanced_pick(dataset.y_train, c, self.ipc, self.generator)
            start = dataset.normalize(dataset.x_train[idx])
            self.init_indices = idx.tolist()
        else:
            start = torch.randn((c * self.ipc, *dataset.image_shape), generator=self.generator)
        self.images = start.to(self.device).clone().requires_grad_(True)
        self.labels = torch.arange(c).repeat_interleave(self.ipc).to(self.device)
        self.x_real = dataset.normalize(dataset.x_train).to(self.device)
        self.y_real = dataset.y_train.to(self.device)
        self._class_idx = [dataset.class_indices(k) for k in range(c)]
        self.opt_images = torch.optim.SGD([self.images], lr=cfg.lr, momentum=cfg.momentum)

    # -------------------------------------------------------------------------- helpers for subclasses
    def next_seed(self) -> int:
        """A seed for a fresh network, drawn from the method's own generator (so runs repeat)."""
        return int(torch.randint(0, 2**31 - 1, (1,), generator=self.generator))

    def fresh_network(self, seed: int | None = None) -> torch.nn.Module:
        cfg = self.config
        return build_seeded(self.dataset, "convnet", seed=self.next_seed() if seed is None else seed,
                            device=self.device, width=cfg.width, depth=cfg.depth)

    def real_batch(self, c: int, n: int) -> torch.Tensor:
        """n random real images of class c (normalised, on the device); fewer if the class is smaller."""
        idx = self._class_idx[c]
        pick = idx[torch.randperm(len(idx), generator=self.generator)[:n]]
        return self.x_real[pick.to(self.device)]

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

"""`datm`: difficulty-aligned trajectory matching (Guo, Wang, Chen, Zhou, You et al., "Towards Lossless Dataset
Distillation via Difficulty-Aligned Trajectory Matching", ICLR 2024; code: github.com/NUS-HPC-AI-Lab/DATM).

DATM's finding: early expert epochs carry easy, general patterns that suit a small synthetic set; late epochs carry
hard, specific ones that only a large set can hold. So the window of start epochs the student is placed in follows
the IPC (the profiles table sets `min_start_epoch`, `current_max_start_epoch` and `max_start_epoch` by IPC), and
within a run it widens with progress: the start epoch is drawn from [min_start_epoch, upper) with

    upper = min(max_start_epoch, current_max_start_epoch + (max_start_epoch − current_max_start_epoch) · it / expansion_end)

(`current_max_start_epoch = 0` or `expansion_end = 0`: the whole window from the start, as DATM at IPC 1).

Initialisation (DATM's `samples_predicted_correctly`): each class starts from real images that expert 0 (at
`label_epoch`) classifies correctly, and every image's label logits start as the mean logits of the experts that
classify it correctly (of all experts when none does); the labels are then learned with the images (SGD,
`lr_label`, momentum 0.9) under the soft cross-entropy, and an update whose matching loss exceeds `threshold` is
skipped (DATM's guard against mismatched trajectories). Everything else is MTT's (`mtt.py`); the gradient is the
exact one, computed one student step at a time (`_trajectory.py`). DATM also tracks an EMA of the images for
evaluation; that is left out. Defaults: the profiles table (CIFAR-10 ConvNet configs of the authors' repository).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..errors import InvalidInputError
from ._trajectory import SoftLabelTrajectory, SoftTrajectoryConfig, expert_logits
from .base import register_method


@dataclass
class DATMConfig(SoftTrajectoryConfig):
    method_key = "datm"
    min_start_epoch: int = 0            # the window's lower end
    current_max_start_epoch: int = 0    # its upper end at the start (0: max_start_epoch throughout)
    expansion_end: int = 0              # steps over which the upper end grows to max_start_epoch (0: no growth)
    threshold: float = 1.0              # skip the update when the matching loss is above this
    init_correct: bool = True           # with init=real: start from real images the expert classifies correctly

    def validate(self) -> None:
        super().validate()
        if self.min_start_epoch >= self.max_start_epoch:
            raise InvalidInputError(f"min_start_epoch ({self.min_start_epoch}) must be below max_start_epoch "
                                    f"({self.max_start_epoch})")
        if self.current_max_start_epoch and not (self.min_start_epoch < self.current_max_start_epoch
                                                 <= self.max_start_epoch):
            raise InvalidInputError("current_max_start_epoch must be above min_start_epoch and at most "
                                    "max_start_epoch (0: no growing window)")
        if self.threshold <= 0:
            raise InvalidInputError(f"threshold must be positive, got {self.threshold}")


def start_window(cfg: DATMConfig, step: int) -> tuple[int, int]:
    """DATM's start-epoch window [low, high) at a step (the upper end grows linearly to max_start_epoch)."""
    cur = cfg.current_max_start_epoch
    if cur <= 0 or cfg.expansion_end <= 0:
        return cfg.min_start_epoch, cfg.max_start_epoch
    high = cur + int((cfg.max_start_epoch - cur) * step / cfg.expansion_end)
    return cfg.min_start_epoch, max(cfg.min_start_epoch + 1, min(high, cfg.max_start_epoch))


@register_method
class DATM(SoftLabelTrajectory):
    name = "datm"
    family = "trajectory"
    description = ("DATM: trajectory matching whose start-epoch window follows the IPC and widens as it runs, with "
                   "learned soft labels from the experts.")
    Config = DATMConfig
    config: DATMConfig
    default_steps = 200
    label_source = "mean logits of the experts that classify the image correctly"

    def start_epoch(self) -> int:
        low, high = start_window(self.config, self.steps_done)
        return int(torch.randint(low, high, (1,), generator=self.generator))

    def accept(self, loss: float) -> bool:
        return loss <= self.config.threshold

    def prepare(self) -> None:
        if self.config.init == "real" and self.config.init_correct:  # init=herding keeps herding's picks as they are
            self._pick_correct_images()
        super().prepare()

    def _pick_correct_images(self) -> None:
        """Replace each class's images by real ones expert 0 classifies correctly (seeded order; the first
        `ipc` correct ones, topped up with the others when a class has too few)."""
        params = self.label_params(0)
        picks: list[int] = []
        for c, idx in enumerate(self._class_idx):
            order = idx[torch.randperm(len(idx), generator=self.generator)]
            chosen: list[int] = []
            for part in order.split(256):
                pred = expert_logits(self.student, params, self.x_real[part.to(self.device)]).argmax(1).cpu()
                chosen += part[pred == c].tolist()[: self.ipc - len(chosen)]
                if len(chosen) == self.ipc:
                    break
            if len(chosen) < self.ipc:
                rest = [i for i in order.tolist() if i not in set(chosen)]
                chosen += rest[: self.ipc - len(chosen)]
            picks += chosen
        with torch.no_grad():
            self.images.copy_(self.x_real[torch.tensor(picks, device=self.device)])
        self.init_indices = picks

    def initial_label_logits(self) -> torch.Tensor:
        assert self.experts is not None
        x = self.images.detach()
        logits = torch.stack([expert_logits(self.student, self.label_params(i), x) for i in range(len(self.experts))])
        correct = (logits.argmax(2) == self.labels.unsqueeze(0)).float().unsqueeze(2)  # experts × K × 1
        count = correct.sum(0)
        mean_correct = (logits * correct).sum(0) / count.clamp_min(1)
        return torch.where(count > 0, mean_correct, logits.mean(0))

    def summary_meta(self) -> dict[str, Any]:
        low, high = start_window(self.config, self.steps_done)
        return {**super().summary_meta(), "start_window": [low, high]}

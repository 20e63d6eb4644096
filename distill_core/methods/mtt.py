"""`mtt`: dataset distillation by matching training trajectories (Cazenavette et al., CVPR 2022).

Experts — networks trained on the real data — leave parameter trajectories θ*_0, θ*_1, ... (one point per epoch;
see `distill_core.experts`, cached on disk and trained automatically the first time). Each step picks an expert
and a start epoch t < `max_start_epoch`, starts a student at θ*_t, trains it for `syn_steps` differentiable SGD
steps on (augmented mini-batches of) the synthetic set with a *learnable* learning rate (learned in log space
with Adam, so it stays positive), and minimises

    ||θ_student − θ*_{t+M}||² / ||θ*_t − θ*_{t+M}||²      (M = `expert_epochs`)

with respect to the images and the learning rate. A student that does not move scores exactly 1. The student
runs through `torch.func.functional_call` on one flat parameter vector. Defaults: see `_distiller.py`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Optional

import torch
import torch.nn.functional as F
from torch.func import functional_call

from ..augment import SiameseAugment
from ..errors import InvalidInputError
from ..evaluate import Augment
from ..experts import Expert, ExpertSpec, ensure_experts
from ._distiller import DistillerConfig, SyntheticImages
from .base import register_method


class FlatParams:
    """Maps one flat parameter vector to a module's named parameters (views, so gradients flow through)."""

    def __init__(self, model: torch.nn.Module):
        self.model = model
        self.names = [n for n, _ in model.named_parameters()]
        self.shapes = [p.shape for _, p in model.named_parameters()]
        self.numels = [p.numel() for _, p in model.named_parameters()]
        self.size = sum(self.numels)

    def unflatten(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        return {n: t.view(s) for n, t, s in zip(self.names, torch.split(flat, self.numels), self.shapes)}

    def forward(self, flat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return functional_call(self.model, self.unflatten(flat), (x,))


def trajectory_loss(student: FlatParams, start: torch.Tensor, target: torch.Tensor, images: torch.Tensor,
                    labels: torch.Tensor, syn_lr: torch.Tensor, syn_steps: int, batch_syn: int,
                    generator: torch.Generator, augment: Optional[Augment] = None) -> torch.Tensor:
    """Normalised parameter distance after `syn_steps` differentiable SGD steps from `start` on the images.

    Differentiable w.r.t. `images` and `syn_lr`. Exactly 1 when the student does not move (0 steps or lr 0).
    """
    theta = start.detach().clone().requires_grad_(True)
    n = len(images)
    batch = n if batch_syn <= 0 else min(batch_syn, n)
    for _ in range(int(syn_steps)):
        idx = torch.randperm(n, generator=generator)[:batch].to(images.device) if batch < n else None
        x, y = (images, labels) if idx is None else (images[idx], labels[idx])
        if augment is not None:
            x = augment(x, generator)
        ce = F.cross_entropy(student.forward(theta, x), y)
        grad = torch.autograd.grad(ce, theta, create_graph=True)[0]
        theta = theta - syn_lr * grad
    num = ((theta - target) ** 2).sum()
    den = ((start - target) ** 2).sum().clamp_min(1e-12)
    return num / den


@dataclass
class MTTConfig(DistillerConfig):
    method_key = "mtt"
    lr: float = 100.0               # learning rate of the images
    lr_lr: float = 0.01             # Adam step size of the student's log learning rate (~1% change per step)
    lr_teacher: float = 0.05        # experts' SGD learning rate, and the student's initial one
    syn_steps: int = 20             # student steps per distillation step (N)
    expert_epochs: int = 2          # expert epochs the student should cover (M)
    max_start_epoch: int = 4        # start epochs are drawn from 0 .. max_start_epoch - 1
    batch_syn: int = 20             # synthetic images per student step (0: all)
    dsa: bool = True                # augment the student's batches (and the experts' training)
    num_experts: int = 2            # experts to use (trained and cached when missing)
    expert_train_epochs: int = 6    # epochs each expert is trained for
    experts_dir: str = ""           # experts root ("" = $DISTILL_EXPERTS_DIR or ~/.cache/distill-lab/experts)

    def validate(self) -> None:
        super().validate()
        if self.syn_steps < 1 or self.expert_epochs < 1 or self.max_start_epoch < 1 or self.num_experts < 1:
            raise InvalidInputError("syn_steps, expert_epochs, max_start_epoch and num_experts must be at least 1")
        if self.max_start_epoch - 1 + self.expert_epochs > self.expert_train_epochs:
            raise InvalidInputError(f"max_start_epoch - 1 + expert_epochs ({self.max_start_epoch - 1 + self.expert_epochs}) "
                                    f"must not exceed expert_train_epochs ({self.expert_train_epochs})")

    def expert_spec(self) -> ExpertSpec:
        return ExpertSpec(width=self.width, depth=self.depth, lr=self.lr_teacher, augment=self.dsa)


@register_method
class MTT(SyntheticImages):
    name = "mtt"
    family = "trajectory"
    description = "Matching training trajectories: a student trained on the synthetic set should land where experts did."
    Config = MTTConfig
    config: MTTConfig
    default_steps = 200

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        cfg = self.config
        # the student's learning rate is learned in log space, which keeps it positive whatever the gradient
        self.log_lr = torch.tensor(math.log(cfg.lr_teacher), device=self.device, requires_grad=True)
        self.opt_lr = torch.optim.Adam([self.log_lr], lr=cfg.lr_lr)
        self.augment = SiameseAugment.for_dataset(self.dataset.name) if cfg.dsa else None
        self.student = FlatParams(self.fresh_network(seed=0))
        self.experts: list[Expert] | None = None
        self.on_expert_progress: Optional[Callable[[int, int], None]] = None  # (expert, epoch) while training
        self.should_stop: Optional[Callable[[], bool]] = None

    def load_experts(self) -> int:
        """Load (training and caching what is missing) the experts; returns how many were trained now."""
        cfg = self.config
        report = ensure_experts(self.dataset, cfg.num_experts, cfg.expert_train_epochs, cfg.expert_spec(),
                                root=cfg.experts_dir or None, device=self.device,
                                on_progress=self.on_expert_progress, should_stop=self.should_stop)
        if not report.experts:
            raise InvalidInputError("no expert trajectories are available (training was stopped)")
        if report.experts[0].trajectory.shape[1] != self.student.size:
            raise InvalidInputError(f"the experts in {report.folder} do not fit this network")
        self.experts = [e for e in report.experts]
        self.experts_folder = str(report.folder)
        return report.trained

    def _step(self) -> dict[str, float]:
        metrics: dict[str, float] = {}
        if self.experts is None:
            metrics["experts_trained"] = float(self.load_experts())
        cfg = self.config
        assert self.experts is not None
        expert = self.experts[int(torch.randint(len(self.experts), (1,), generator=self.generator))]
        t = int(torch.randint(cfg.max_start_epoch, (1,), generator=self.generator))
        start = expert.trajectory[t].to(self.device)
        target = expert.trajectory[t + cfg.expert_epochs].to(self.device)
        loss = trajectory_loss(self.student, start, target, self.images, self.labels, self.log_lr.exp(), cfg.syn_steps,
                               cfg.batch_syn, self.generator, self.augment)
        self.opt_images.zero_grad(set_to_none=True)
        self.opt_lr.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_images.step()
        self.opt_lr.step()
        metrics.update({"loss": float(loss.detach()), "syn_lr": self.syn_lr, "start_epoch": float(t)})
        return metrics

    @property
    def syn_lr(self) -> float:
        """The student's current (learned) learning rate."""
        return float(self.log_lr.detach().exp())

    def summary_meta(self) -> dict[str, Any]:
        return {"syn_lr": self.syn_lr,
                "experts": len(self.experts) if self.experts is not None else 0}

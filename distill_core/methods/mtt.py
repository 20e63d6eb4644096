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
from ..data import ImageSet
from ..device import to_device
from ..errors import InvalidInputError
from ..evaluate import Augment
from ..experts import Expert, ExpertReader, ExpertSpec, ensure_experts, stored_experts
from ._distiller import NetworkSpeedConfig, SyntheticImages
from .base import MethodConfig, register_method


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


def draw_batches(n: int, syn_steps: int, batch_syn: int, generator: torch.Generator,
                 augment: Optional[SiameseAugment], device: torch.device) -> list[tuple[Optional[torch.Tensor], Any]]:
    """The student's mini-batch indices and augmentation draws for all `syn_steps` steps, drawn up front from
    `generator` in the order the steps use them, and queued to `device` (nothing in the unrolled loop waits for
    the host, and a recomputed step sees exactly the batch the first pass saw)."""
    batch = n if batch_syn <= 0 else min(batch_syn, n)
    plan = []
    for _ in range(int(syn_steps)):
        idx = to_device(torch.randperm(n, generator=generator)[:batch], device) if batch < n else None
        draw = augment.draw(generator, groups=batch).to(device) if augment is not None else None
        plan.append((idx, draw))
    return plan


def _student_step(student: FlatParams, theta: torch.Tensor, images: torch.Tensor, labels: torch.Tensor,
                  syn_lr: torch.Tensor, idx: Optional[torch.Tensor], draw: Any, create_graph: bool) -> torch.Tensor:
    """One SGD step of the student on its batch: θ − lr · ∇CE(θ)."""
    x, y = (images, labels) if idx is None else (images[idx], labels[idx])
    if draw is not None:
        x = draw.apply(x)
    ce = F.cross_entropy(student.forward(theta, x), y)
    grad = torch.autograd.grad(ce, theta, create_graph=create_graph)[0]
    return theta - syn_lr * grad


class _CheckpointedUnroll(torch.autograd.Function):
    """θ_N of the unrolled student, keeping only θ_0 … θ_N (one flat vector per step) instead of every step's
    graph; the backward recomputes one step at a time (last first) and carries ∂L/∂θ back through it. Memory:
    N parameter vectors + one step's graph, for one extra forward per step."""

    @staticmethod
    def forward(ctx, images, syn_lr, start, student, labels, plan):  # type: ignore[override]
        thetas = [start.detach()]
        with torch.enable_grad():
            for idx, draw in plan:
                theta = thetas[-1].detach().requires_grad_(True)
                thetas.append(_student_step(student, theta, images.detach(), labels, syn_lr.detach(), idx, draw,
                                            create_graph=False).detach())
        ctx.student, ctx.labels, ctx.plan, ctx.thetas = student, labels, plan, thetas
        ctx.save_for_backward(images, syn_lr)
        return thetas[-1].clone()

    @staticmethod
    def backward(ctx, grad_theta):  # type: ignore[override]
        images, syn_lr = ctx.saved_tensors
        g_images = torch.zeros_like(images)
        g_lr = torch.zeros_like(syn_lr)
        with torch.enable_grad():
            x = images.detach().requires_grad_(True)
            lr = syn_lr.detach().requires_grad_(True)
            for i in range(len(ctx.plan) - 1, -1, -1):
                idx, draw = ctx.plan[i]
                theta = ctx.thetas[i].detach().requires_grad_(True)
                nxt = _student_step(ctx.student, theta, x, ctx.labels, lr, idx, draw, create_graph=True)
                d_theta, d_x, d_lr = torch.autograd.grad(nxt, (theta, x, lr), grad_theta, allow_unused=True)
                grad_theta = d_theta
                if d_x is not None:
                    g_images += d_x
                if d_lr is not None:
                    g_lr += d_lr
        return g_images, g_lr, None, None, None, None


def trajectory_loss(student: FlatParams, start: torch.Tensor, target: torch.Tensor, images: torch.Tensor,
                    labels: torch.Tensor, syn_lr: torch.Tensor, syn_steps: int, batch_syn: int,
                    generator: torch.Generator, augment: Optional[Augment] = None,
                    checkpoint: bool = False) -> torch.Tensor:
    """Normalised parameter distance after `syn_steps` differentiable SGD steps from `start` on the images.

    Differentiable w.r.t. `images` and `syn_lr`. Exactly 1 when the student does not move (0 steps or lr 0).
    `checkpoint` recomputes each student step in the backward instead of keeping all their graphs (same value
    and gradients, far less memory at a large `batch_syn` × `syn_steps`; it needs a `SiameseAugment` or none).
    """
    plan = draw_batches(len(images), syn_steps, batch_syn, generator, augment, images.device)  # type: ignore[arg-type]
    if checkpoint and plan:
        theta = _CheckpointedUnroll.apply(images, syn_lr, start, student, labels, plan)
    else:
        theta = start.detach().clone().requires_grad_(True)
        for idx, draw in plan:
            theta = _student_step(student, theta, images, labels, syn_lr, idx, draw, create_graph=True)
    num = ((theta - target) ** 2).sum()
    den = ((start - target) ** 2).sum().clamp_min(1e-12)
    return num / den


@dataclass
class MTTConfig(NetworkSpeedConfig):
    method_key = "mtt"
    lr: float = 100.0               # learning rate of the images
    lr_lr: float = 0.01             # Adam step size of the student's log learning rate (~1% change per step)
    lr_teacher: float = 0.05        # experts' SGD learning rate, and the student's initial one
    syn_steps: int = 20             # student steps per distillation step (N)
    expert_epochs: int = 2          # expert epochs the student should cover (M)
    max_start_epoch: int = 4        # start epochs are drawn from 0 .. max_start_epoch - 1
    batch_syn: int = 20             # synthetic images per student step (0: all, or as many as fit in memory)
    checkpoint: bool = False        # recompute each student step in the backward instead of keeping its graph
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
        """The experts' recipe (depth 0, "by image size", is settled by `ensure_experts` for the dataset)."""
        return ExpertSpec(width=self.width, depth=self.depth, lr=self.lr_teacher, augment=self.dsa)


@register_method
class MTT(SyntheticImages):
    name = "mtt"
    family = "trajectory"
    description = "Matching training trajectories: a student trained on the synthetic set should land where experts did."
    Config = MTTConfig
    config: MTTConfig
    default_steps = 200
    trains_first = "experts"

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        cfg = self.config
        # the student's learning rate is learned in log space, which keeps it positive whatever the gradient
        self.log_lr = torch.tensor(math.log(cfg.lr_teacher), device=self.device, requires_grad=True)
        self.opt_lr = torch.optim.Adam([self.log_lr], lr=cfg.lr_lr)
        self.augment = SiameseAugment.for_dataset(self.dataset.name) if cfg.dsa else None
        self.student = FlatParams(self.fresh_network(seed=0))
        self.batch_syn = self.choose_batch_syn()
        self.experts: list[Expert] | None = None  # handles; the trajectories stay on disk
        self.reader: ExpertReader | None = None   # maps one expert's file at a time
        self.on_expert_progress: Optional[Callable[[int, int], None]] = None  # (expert, epoch) while training
        self.should_stop: Optional[Callable[[], bool]] = None

    @classmethod
    def first_use_stored(cls, dataset: ImageSet, config: MethodConfig) -> bool | None:
        """True when every expert the run reads is stored for this training split and recipe (none is trained)."""
        cfg = config
        assert isinstance(cfg, MTTConfig)
        have = stored_experts(dataset, cfg.num_experts, cfg.expert_train_epochs, cfg.expert_spec(),
                              root=cfg.experts_dir or None)
        return have >= int(cfg.num_experts)

    def load_experts(self) -> int:
        """Load (training and caching what is missing) the experts; returns how many were trained now."""
        cfg = self.config
        report = ensure_experts(self.dataset, cfg.num_experts, cfg.expert_train_epochs, cfg.expert_spec(),
                                root=cfg.experts_dir or None, device=self.device,
                                on_progress=self.on_expert_progress, should_stop=self.should_stop)
        if not report.experts:
            raise InvalidInputError("no expert trajectories are available (training was stopped)")
        if report.experts[0].num_params != self.student.size:
            raise InvalidInputError(f"the experts in {report.folder} do not fit this network")
        self.experts = [e for e in report.experts]
        self.reader = ExpertReader(self.experts)
        self.experts_folder = str(report.folder)
        return report.trained

    def _step(self) -> dict[str, float]:
        metrics: dict[str, float] = {}
        if self.experts is None:
            metrics["experts_trained"] = float(self.load_experts())
        cfg = self.config
        assert self.experts is not None and self.reader is not None
        i = int(torch.randint(len(self.experts), (1,), generator=self.generator))
        t = int(torch.randint(cfg.max_start_epoch, (1,), generator=self.generator))
        start, target = (to_device(r, self.device) for r in self.reader.rows(i, t, t + cfg.expert_epochs))
        loss = trajectory_loss(self.student, start, target, self.images, self.labels, self.log_lr.exp(), cfg.syn_steps,
                               self.batch_syn, self.generator, self.augment, checkpoint=cfg.checkpoint)
        self.opt_images.zero_grad(set_to_none=True)
        self.opt_lr.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_images.step()
        self.opt_lr.step()
        # tensors, read when a log row is due (the start epoch was drawn on the host)
        metrics.update({"loss": loss.detach(), "syn_lr": self.log_lr.detach().exp(), "start_epoch": float(t)})
        return metrics

    def choose_batch_syn(self) -> int:
        """The student's batch: `batch_syn` when set; for 0 (the whole synthetic set) the largest multiple of the
        class count whose unrolled steps fit in the device's free memory by `memory.estimate`, when all do not."""
        from ..memory import fitting_batch_syn

        cfg = self.config
        if cfg.batch_syn > 0:
            return cfg.batch_syn
        return fitting_batch_syn(self.dataset, self.ipc, cfg, self.device)

    @property
    def syn_lr(self) -> float:
        """The student's current (learned) learning rate."""
        return float(self.log_lr.detach().exp())

    def summary_meta(self) -> dict[str, Any]:
        return {"syn_lr": self.syn_lr, "batch_syn": self.batch_syn,
                "experts": len(self.experts) if self.experts is not None else 0}

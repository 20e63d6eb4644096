"""Shared machinery of tesla and datm: the trajectory-matching gradient in constant graph memory, and soft labels.

**The gradient.** MTT's student takes N SGD steps θ_{i+1} = θ_i − α g_i, g_i = ∇_θ ℓ(θ_i; aug(X[B_i]), Y[B_i]),
and the loss is L = ||θ_N − θ*||² / ||θ_0 − θ*||². MTT differentiates through the whole unrolled graph, whose
activations grow with N. TESLA (Cui et al., ICML 2023, §4) observes that θ_N = θ_0 − α Σ g_i, so the gradient
can be accumulated one step at a time: a first pass runs the student without any graph and keeps only θ_N; a second
pass recomputes each step's g_i with a graph of that step alone and adds its contribution
−α (∂g_i/∂X)ᵀ λ, with λ = ∂L/∂θ_N = 2(θ_N − θ*)/||θ_0 − θ*||².

TESLA's published decomposition holds λ fixed, i.e. it treats every θ_i as a constant and drops the terms through
which a batch changes the *later* steps (θ_j, j > i, depends on X[B_i]). Here those terms are kept: λ is carried
backwards with one Hessian-vector product per step, λ_i = λ_{i+1} − α H_i λ_{i+1} (the adjoint of the SGD step),
so the result equals MTT's unrolled gradient to float precision (tests/test_trajectory_family.py checks this) while
the graph in memory is still one step's. The price is the parameter vectors θ_0..θ_{N−1} (P floats per step; the
authors' code keeps them too) — activations, which are what grows in MTT, are never kept across steps.
`exact=False` gives TESLA's first-order decomposition (a little cheaper, not equal to MTT's gradient).

Every step's random choices (the mini-batch and the DSA draw) are recorded in the first pass and replayed in the
second, so both passes see the same batches.

**Soft labels.** tesla and datm learn one logit vector per synthetic image; the student trains on the soft
cross-entropy to softmax(logits) (as DATM's code does), and the summary's labels are those probabilities.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Optional

import torch
import torch.nn.functional as F

from ..errors import InvalidInputError
from ..evaluate import Augment
from ..summary import Summary
from .mtt import MTT, FlatParams, MTTConfig


def soft_cross_entropy(logits: torch.Tensor, target_logits: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of −Σ softmax(target) · log_softmax(logits)."""
    return -(F.softmax(target_logits, dim=1) * F.log_softmax(logits, dim=1)).sum(dim=1).mean()


def _student_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy to class indices (int targets) or to softmax(targets) (float logits per image)."""
    if targets.dtype.is_floating_point:
        return soft_cross_entropy(logits, targets)
    return F.cross_entropy(logits, targets)


@dataclass
class TrajectoryGrads:
    """The matching loss and its gradients w.r.t. the images, the soft-label logits (None for hard labels) and
    the student's learning rate."""

    loss: torch.Tensor
    images: torch.Tensor
    labels: Optional[torch.Tensor]
    lr: torch.Tensor


def constant_memory_trajectory_grads(student: FlatParams, start: torch.Tensor, target: torch.Tensor,
                                     images: torch.Tensor, labels: torch.Tensor, syn_lr: torch.Tensor,
                                     syn_steps: int, batch_syn: int, generator: torch.Generator,
                                     augment: Optional[Augment] = None, exact: bool = True,
                                     on_step: Optional[Callable[[int], None]] = None) -> TrajectoryGrads:
    """MTT's normalised parameter distance after `syn_steps` student steps and its gradients, one step's graph at a
    time (see the module docstring).

    `labels`: int64 class indices, or float logits (K × C) for soft labels (their gradient is returned too).
    Batches and augmentations are drawn from `generator` exactly as `mtt.trajectory_loss` draws them, so under
    the same generator state both see the same batches. `exact=False`: TESLA's first-order decomposition.
    """
    images = images.detach()
    soft = labels.dtype.is_floating_point
    labels = labels.detach()
    alpha = float(syn_lr.detach())
    n = len(images)
    batch = n if batch_syn <= 0 else min(batch_syn, n)
    start = start.detach()
    target = target.detach()

    # pass 1: the student's steps without a graph through the images; record θ_i, batches and augmentation draws
    thetas: list[torch.Tensor] = []
    draws: list[tuple[Optional[torch.Tensor], Optional[torch.Tensor]]] = []
    theta = start.clone()
    grad_sum = torch.zeros_like(theta)
    for _ in range(int(syn_steps)):
        idx = torch.randperm(n, generator=generator)[:batch].to(images.device) if batch < n else None
        state = generator.get_state() if augment is not None else None
        x = images if idx is None else images[idx]
        y = labels if idx is None else labels[idx]
        if augment is not None:
            x = augment(x, generator)
        theta_i = theta.requires_grad_(True)
        with torch.enable_grad():
            g = torch.autograd.grad(_student_loss(student.forward(theta_i, x), y), theta_i)[0]
        thetas.append(theta_i.detach())
        draws.append((idx, state))
        grad_sum += g
        theta = theta_i.detach() - alpha * g
    den = ((start - target) ** 2).sum().clamp_min(1e-12)
    diff = theta - target
    loss = (diff ** 2).sum() / den
    lam = 2.0 * diff / den  # ∂L/∂θ_N

    # pass 2: backwards, one step's graph at a time
    g_images = torch.zeros_like(images)
    g_labels = torch.zeros_like(labels) if soft else None
    g_lr = torch.zeros((), dtype=theta.dtype, device=theta.device)
    replay = torch.Generator(device=generator.device)
    for i in reversed(range(len(thetas))):
        idx, state = draws[i]
        x_all = images.clone().requires_grad_(True)
        y_all = labels.clone().requires_grad_(True) if soft else labels
        x = x_all if idx is None else x_all[idx]
        y = y_all if idx is None else y_all[idx]
        if augment is not None:
            replay.set_state(state)
            x = augment(x, replay)
        theta_i = thetas[i].clone().requires_grad_(True)
        with torch.enable_grad():
            g = torch.autograd.grad(_student_loss(student.forward(theta_i, x), y), theta_i, create_graph=True)[0]
            s = (g * lam).sum()
            wrt = [x_all] + ([y_all] if soft else []) + ([theta_i] if exact else [])
            parts = torch.autograd.grad(s, wrt, allow_unused=True)
        g_lr -= (g.detach() * lam).sum()
        g_images -= alpha * parts[0]
        if soft:
            g_labels -= alpha * (parts[1] if parts[1] is not None else 0.0)
        if exact:
            hvp = parts[-1]
            lam = lam - alpha * (hvp if hvp is not None else 0.0)
        if on_step is not None:
            on_step(i)
        del g, s, parts
    return TrajectoryGrads(loss.detach(), g_images, g_labels, g_lr)


def expert_logits(student: FlatParams, params: torch.Tensor, x: torch.Tensor, chunk: int = 256) -> torch.Tensor:
    """The logits of the network with flat parameters `params` on normalised images x (no graph)."""
    with torch.no_grad():
        return torch.cat([student.forward(params, part) for part in x.split(chunk)])


# ------------------------------------------------------------------------------ the distillers' shared base

@dataclass
class SoftTrajectoryConfig(MTTConfig):
    """MTT's settings plus learned soft labels and the constant-memory gradient."""

    soft_labels: bool = True        # learn one logit vector per image (initialised from the experts)
    lr_label: float = 2.0           # SGD step size of the label logits (DATM's lr_y)
    momentum_label: float = 0.9     # SGD momentum of the label logits (DATM's Momentum_y)
    label_epoch: int = 0            # expert epoch whose predictions initialise the labels (0: expert_train_epochs, the end)
    exact: bool = True              # carry the adjoint through every step (= MTT's gradient); False: TESLA's
    #                                 first-order decomposition

    def validate(self) -> None:
        super().validate()
        if self.momentum_label >= 1:
            raise InvalidInputError(f"momentum_label must be below 1, got {self.momentum_label}")
        if self.label_epoch > self.expert_train_epochs:
            raise InvalidInputError(f"label_epoch ({self.label_epoch}) must not exceed expert_train_epochs "
                                    f"({self.expert_train_epochs}); 0 takes the last")


class SoftLabelTrajectory(MTT):
    """MTT with learned soft labels, stepped with `constant_memory_trajectory_grads`. Subclasses choose the start
    epoch (`start_epoch`), prepare the set once the experts are loaded (`prepare`) and may refuse an update
    (`accept`)."""

    config: SoftTrajectoryConfig
    label_source: str = "expert predictions"

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.label_logits: Optional[torch.Tensor] = None
        self.opt_labels: Optional[torch.optim.Optimizer] = None
        self.skipped = 0

    # ------------------------------------------------------------------------------------------- hooks
    def label_params(self, expert_index: int = 0) -> torch.Tensor:
        """Flat parameters of an expert at `label_epoch` (on the device)."""
        assert self.experts is not None
        traj = self.experts[expert_index].trajectory
        epoch = self.config.label_epoch or self.config.expert_train_epochs
        if epoch >= traj.shape[0]:
            raise InvalidInputError(f"label_epoch {epoch} is beyond the experts' {traj.shape[0] - 1} epochs")
        return traj[epoch].to(self.device)

    def initial_label_logits(self) -> torch.Tensor:
        """Expert 0's logits on the current images (TESLA's soft-label assignment)."""
        return expert_logits(self.student, self.label_params(0), self.images.detach())

    def prepare(self) -> None:
        """Called once the experts are loaded, before the first update: set up the learned labels."""
        if self.config.soft_labels:
            self.label_logits = self.initial_label_logits().detach().clone().requires_grad_(True)
            self.opt_labels = torch.optim.SGD([self.label_logits], lr=self.config.lr_label,
                                              momentum=self.config.momentum_label)

    def start_epoch(self) -> int:
        return int(torch.randint(self.config.max_start_epoch, (1,), generator=self.generator))

    def accept(self, loss: float) -> bool:
        return True

    # ------------------------------------------------------------------------------------------- a step
    def _step(self) -> dict[str, float]:
        metrics: dict[str, float] = {}
        if self.experts is None:
            metrics["experts_trained"] = float(self.load_experts())
            self.prepare()
        cfg = self.config
        assert self.experts is not None
        expert = self.experts[int(torch.randint(len(self.experts), (1,), generator=self.generator))]
        t = self.start_epoch()
        start = expert.trajectory[t].to(self.device)
        target = expert.trajectory[t + cfg.expert_epochs].to(self.device)
        labels = self.label_logits if self.label_logits is not None else self.labels
        lr = self.log_lr.detach().exp()
        grads = constant_memory_trajectory_grads(self.student, start, target, self.images, labels, lr,
                                                 cfg.syn_steps, cfg.batch_syn, self.generator, self.augment,
                                                 exact=cfg.exact)
        loss = float(grads.loss)
        if not math.isfinite(loss):
            raise InvalidInputError("the trajectory-matching loss is not finite; lower lr or lr_teacher")
        if self.accept(loss):
            self.opt_images.zero_grad(set_to_none=True)
            self.opt_lr.zero_grad(set_to_none=True)
            self.images.grad = grads.images
            self.log_lr.grad = (grads.lr * lr).to(self.log_lr.dtype)  # d/d log(lr) = lr · d/d lr
            self.opt_images.step()
            self.opt_lr.step()
            if self.opt_labels is not None and self.label_logits is not None and grads.labels is not None:
                self.opt_labels.zero_grad(set_to_none=True)
                self.label_logits.grad = grads.labels
                self.opt_labels.step()
        else:
            self.skipped += 1
        metrics.update({"loss": loss, "syn_lr": self.syn_lr, "start_epoch": float(t)})
        return metrics

    def summary(self) -> Summary:
        summary = super().summary()
        if self.label_logits is not None:
            summary.labels = torch.softmax(self.label_logits.detach().float(), dim=1).cpu()
            summary.meta["soft_labels"] = "learned"
            summary.meta["label_init"] = self.label_source
        return summary

    def summary_meta(self) -> dict[str, Any]:
        return {**super().summary_meta(), "skipped_updates": self.skipped}

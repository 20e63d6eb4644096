"""`tesla`: trajectory matching with soft label assignment in constant memory (Cui, Wang, Si & Hsieh, "Scaling Up
Dataset Distillation to ImageNet-1K with Constant Memory", ICML 2023; code: github.com/justincui03/tesla).

MTT's objective (see `mtt.py`) with TESLA's two changes:

- **constant-memory gradient**: the student's N steps are run once without a graph, then the gradient is
  accumulated step by step with only one step's graph alive, so the memory of the activations does not grow with
  N (`_trajectory.constant_memory_trajectory_grads`). By default the adjoint is carried through every step, which
  makes the gradient *equal* to MTT's unrolled one; `exact=False` is the paper's first-order decomposition, which
  holds each step's parameters fixed (on an 8×8-digits check its image gradient was 18–30 % (relative norm) away
  from the unrolled one).
- **soft labels**: every synthetic image gets the logits of an expert (expert 0 at `label_epoch`, the end of its
  stored trajectory by default) as its label, and the student trains on the soft cross-entropy to them. TESLA's
  code re-assigns them from the current expert at every iteration and does not learn them; here, as asked of this
  lab's soft-label methods (and as DATM does), they are initialised once and then learned with the images
  (`lr_label`, SGD with momentum). `soft_labels=False` gives hard labels: MTT's update, in constant memory.

The summary's labels are the learned class probabilities (float K × C, `meta["soft_labels"] = "learned"`);
evaluation trains on them with soft cross-entropy at the learned learning rate `syn_lr`. Defaults: the profiles
table (TESLA reuses MTT's CIFAR recipes; its ImageNet-1K ones are out of this lab's reach).
"""
from __future__ import annotations

from dataclasses import dataclass

from ._trajectory import SoftLabelTrajectory, SoftTrajectoryConfig
from .base import register_method


@dataclass
class TESLAConfig(SoftTrajectoryConfig):
    method_key = "tesla"


@register_method
class TESLA(SoftLabelTrajectory):
    name = "tesla"
    family = "trajectory"
    description = ("TESLA: trajectory matching whose gradient is accumulated step by step in constant memory, with "
                   "soft labels from an expert, learned.")
    Config = TESLAConfig
    config: TESLAConfig
    default_steps = 200
    label_source = "expert 0's logits at label_epoch"

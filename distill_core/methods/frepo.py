"""`frepo`: neural Feature Regression with Pooling (Zhou, Nezhadarya & Ba, NeurIPS 2022).

FRePo keeps a pool of ConvNets that are trained *online* on the synthetic set, each at a different age. A step:

1. pick one network of the pool at random;
2. take its last-layer features of the synthetic images (with gradients) and of a fresh batch of real images;
3. predict the real batch by kernel ridge regression on those features from the synthetic set and its labels,
   ŷ_t = F_t F_sᵀ (F_s F_sᵀ + ridge · tr/n · I)⁻¹ y_s, and take the squared error to the real batch's centred
   one-hot labels (summed over classes, averaged over the batch);
4. update the images and the learned labels with Adam on that loss (plus, for learned labels, the margin term of
   the authors' code, which rewards each label's top class leading the second by up to 1/C);
5. train the picked network one Adam step on the synthetic set (mean-squared error to its current labels), and
   replace it by a freshly initialised one once it has taken `max_age` steps.

The meta-gradient thus runs through a kernel and a feature extractor instead of an unrolled inner loop (a one-step
truncation), and the pool of networks at many stages of training keeps the images from overfitting one network.
Colour sets also regress from the horizontally flipped images (`flip`), as FRePo does outside (Fashion-)MNIST.
The summary's labels are the learned soft labels (centred class scores), fitted by networks with mean-squared
error, as FRePo's evaluation does.

Sources (paper profile): the authors' code github.com/yongchao97/FRePo (`script/distill.py` and its PyTorch version):
a pool of 10 networks reset after 100 online updates (initial ages staggered), ConvNet-3 width 128 without
normalisation, network Adam at 3e-4 on batches of up to 500 synthetic images, 1,024 real images per step, ridge
1e-6 · tr/n, images and labels learned with Adam at 1e-3 decayed by a cosine to a tenth (the JAX original uses
LAMB at 3e-4), 500,000 steps in the CIFAR scripts. Published Fashion-MNIST ConvNet accuracies: 75.6 / 86.2 / 89.6
% at IPC 1 / 10 / 50.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from ..errors import InvalidInputError
from ..models import build_seeded
from ..random_features import embed_in_slices, krr_from_features
from ..summary import Summary
from ._distiller import DistillerConfig, SyntheticImages
from .base import register_method
from .dm import CPU_CHUNK
from .label_solve import centred_one_hot


@dataclass
class FRePoConfig(DistillerConfig):
    """FRePo settings. `lr`: Adam on the images (normalised space) and labels, cosine-decayed to `lr_end_factor`
    × lr over the profile's steps; `momentum`: Adam's β1. `width`/`depth`: the pool's ConvNets."""

    method_key = "frepo"
    lr: float = 0.001
    momentum: float = 0.9
    lr_end_factor: float = 0.1
    label_lr: float = 0.001
    learn_labels: bool = True
    margin_weight: float = 1.0     # weight of the label-margin term (learned labels only; 0: off)
    width: int = 128
    depth: int = 3
    pool_size: int = 10
    max_age: int = 100             # online updates before a network of the pool is replaced by a fresh one
    net_lr: float = 0.0003         # Adam on the pool's networks
    net_batch: int = 500           # synthetic images per online update (all of them when fewer)
    target_batch: int = 1024       # real images per step (uniformly drawn)
    ridge: float = 1e-6
    flip: bool = False             # also regress from the mirrored synthetic images (colour sets)
    channels_last: bool = False    # the pool's networks and their inputs channels-last (as NetworkSpeedConfig's;
    #                                sums in another order), 1.4-1.9x faster per step on a CPU (benchmarks/frepo_layout.py)

    def validate(self) -> None:
        super().validate()
        if self.pool_size < 1 or self.max_age < 1 or self.net_batch < 1 or self.target_batch < 1:
            raise InvalidInputError("pool_size, max_age, net_batch and target_batch must be at least 1")
        if not 0 < self.lr_end_factor <= 1:
            raise InvalidInputError(f"lr_end_factor must be in (0, 1], got {self.lr_end_factor}")
        if self.pool_size > 100 or self.width > 1024 or self.depth > 8:
            raise InvalidInputError("pool_size is at most 100, width at most 1024 and depth at most 8")


class PoolMember:
    """One network of the pool with its own Adam optimiser and the number of online updates it has taken."""

    def __init__(self, net: torch.nn.Module, lr: float, age: int = 0):
        self.net = net
        self.opt = torch.optim.Adam(net.parameters(), lr=lr)
        self.age = age


def label_margin(y: torch.Tensor) -> torch.Tensor:
    """−mean over labels of min(top1 − top2, 1/C): rewards each learned label's leading class by up to 1/C."""
    top = y.topk(2, dim=1).values
    return -torch.clamp(top[:, 0] - top[:, 1], max=1.0 / y.shape[1]).mean()


@register_method
class FRePo(SyntheticImages):
    name = "frepo"
    family = "kernel"
    description = ("Neural feature regression with pooling: kernel ridge regression on the features of a pool of "
                   "networks trained online on the synthetic set, with learned labels.")
    Config = FRePoConfig
    config: FRePoConfig
    sgd_on_images = False  # Adam on the images (and labels): `self.opt`
    default_steps = 1000

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        cfg = self.config
        self.y = centred_one_hot(self.labels.cpu(), self.dataset.num_classes).to(self.device)
        self.y.requires_grad_(cfg.learn_labels)
        groups: list[dict[str, Any]] = [{"params": [self.images], "lr": cfg.lr}]
        if cfg.learn_labels:
            groups.append({"params": [self.y], "lr": cfg.label_lr})
        self.opt = torch.optim.Adam(groups, betas=(cfg.momentum, 0.999))
        self._base_lrs = [g["lr"] for g in groups]
        # ages staggered over [0, max_age), as in the authors' code, so the pool spans the stages of training
        stagger = cfg.max_age // cfg.pool_size
        self.pool = [self._fresh_member(age=stagger * i) for i in range(cfg.pool_size)]
        self.resets = 0

    def _fresh_member(self, age: int = 0) -> PoolMember:
        cfg = self.config
        net = build_seeded(self.dataset, "convnet", seed=self.next_seed(), device=self.device, width=cfg.width,
                           depth=cfg.depth, norm="none")
        if cfg.channels_last:
            net = net.to(memory_format=torch.channels_last)
        return PoolMember(net, cfg.net_lr, age)

    def _layout(self, x: torch.Tensor) -> torch.Tensor:
        """x in the pool's memory layout (a no-op when it is already in it)."""
        return x.contiguous(memory_format=torch.channels_last) if self.config.channels_last else x

    def _chunk(self) -> int:
        return CPU_CHUNK if self.device.type == "cpu" else 0

    def _schedule(self) -> None:
        """Cosine decay of the image and label rates from lr to lr_end_factor·lr over the profile's steps."""
        cfg = self.config
        t = min(1.0, self.steps_done / max(1, self.default_steps))
        factor = cfg.lr_end_factor + (1 - cfg.lr_end_factor) * 0.5 * (1 + math.cos(math.pi * t))
        for group, base in zip(self.opt.param_groups, self._base_lrs):
            group["lr"] = base * factor

    def target_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """`target_batch` real training images (normalised) drawn uniformly without replacement, and labels."""
        n = len(self.y_real)
        idx = torch.randperm(n, generator=self.generator)[:min(self.config.target_batch, n)].to(self.device)
        return self.x_real[idx], self.y_real[idx]

    def loss(self, net: torch.nn.Module, x_t: torch.Tensor,
             y_t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Feature-regression loss of one network for one real batch, and the batch's predictions."""
        cfg = self.config
        net.eval()
        net.requires_grad_(False)
        with torch.no_grad():
            f_t = embed_in_slices(net, self._layout(x_t), self._chunk())
        x_s, y_s = self.images, self.y
        if cfg.flip:
            x_s, y_s = torch.cat([x_s, x_s.flip(-1)]), torch.cat([y_s, y_s])
        f_s = embed_in_slices(net, self._layout(x_s), self._chunk())
        pred = krr_from_features(f_s, y_s, f_t, cfg.ridge)
        target = centred_one_hot(y_t, self.dataset.num_classes).to(pred)
        return (pred - target).square().sum(1).mean(), pred

    def _train_member(self, member: PoolMember) -> float:
        """One online update of a pool network on the synthetic set (MSE to the current labels); reset when old."""
        cfg = self.config
        x, y = self.images.detach(), self.y.detach()
        if len(x) > cfg.net_batch:
            pick = torch.randperm(len(x), generator=self.generator)[:cfg.net_batch].to(self.device)
            x, y = x[pick], y[pick]
        net = member.net
        net.train()
        net.requires_grad_(True)
        loss = F.mse_loss(net(self._layout(x)), y)
        member.opt.zero_grad(set_to_none=True)
        loss.backward()
        member.opt.step()
        member.age += 1
        return float(loss.detach())

    def _step(self) -> dict[str, float]:
        cfg = self.config
        self._schedule()
        k = int(torch.randint(0, len(self.pool), (1,), generator=self.generator))
        member = self.pool[k]
        x_t, y_t = self.target_batch()
        regression, pred = self.loss(member.net, x_t, y_t)
        loss = regression
        if cfg.learn_labels and cfg.margin_weight > 0:
            loss = loss + cfg.margin_weight * label_margin(self.y)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        net_loss = self._train_member(member)
        if member.age >= cfg.max_age:
            self.pool[k] = self._fresh_member()
            self.resets += 1
        acc = (pred.detach().argmax(1) == y_t).float().mean()
        return {"loss": float(regression.detach()), "acc": float(acc), "net_loss": net_loss}

    def summary(self) -> Summary:
        cfg = self.config
        pixels = self.dataset.denormalize(self.images.detach())
        meta: dict[str, Any] = {"init": cfg.init, "steps": self.steps_done, "ridge": cfg.ridge,
                                "pool": {"size": cfg.pool_size, "max_age": cfg.max_age, "resets": self.resets}}
        if self.init_indices is not None:
            meta["init_indices"] = self.init_indices
        if cfg.learn_labels:
            return self._make_summary(pixels, self.y.detach().float(), soft_labels="learned", label_loss="mse",
                                      **meta)
        return self._make_summary(pixels, self.labels, **meta)

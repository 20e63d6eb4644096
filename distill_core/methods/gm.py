"""`dc` and `dsa`: dataset condensation by gradient matching (Zhao, Mopuri & Bilen, ICLR 2021) and its
differentiable-siamese-augmentation variant (Zhao & Bilen, ICML 2021).

For each class, a network's gradient of the cross-entropy on a real batch and on that class's synthetic images
should point the same way: the distance is, layer by layer and output channel by output channel, 1 − cosine
similarity (biases and norm scales — 1-D parameters — are skipped, as in the DC paper). The synthetic images descend
this distance. Around that sit two loops: an *outer* loop over freshly initialised networks, and an *inner* loop
that trains the current network a few epochs on the synthetic set between image updates, so the images are matched
along a training trajectory, not only at initialisation. `dsa` augments the real and synthetic batches of each
class with the same DSA draw, and augments the inner-loop training too.

One `step()` is one update of the images (one outer-loop iteration). A new network is drawn every `outer_loop`
steps. Defaults, the loops and the image learning-rate factor by IPC among them: the profiles table
(`distill_core/profiles.py`; `fast` keeps the paper's outer loops with shorter inner loops and larger image steps).

Many processes (`torchrun`, see `distill_core.distributed`): with `shard` set, every rank takes every class's
real-batch and augmentation draws (one seed, one generator) but computes the matching loss of its own classes only
(r, r + N, ...); the image gradients, a sum over classes, are summed over ranks, and every rank then takes the same
image step and the same inner-loop training, so the images stay equal on all ranks and equal one process's.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional, Sequence

import torch
import torch.nn.functional as F

from .. import profiles
from ..augment import SiameseAugment
from ..evaluate import NetworkProtocol, train_network
from ._distiller import NetworkSpeedConfig, SyntheticImages
from .base import register_method

if TYPE_CHECKING:
    from ..distributed import Dist

# The loops and the image learning-rate factor are set by IPC in the profiles table (distill_core/profiles.py).
# Paper loops: 1 -> (1, 1), 10 -> (10, 50), 20 -> (20, 25), 30 -> (30, 20), 40 -> (40, 15), 50 -> (50, 10); the
# fast profile shortens the inner loops to 10 epochs. Its factor multiplies `lr` above IPC 1: a class's loss averages
# over its IPC images, so each image gets a smaller share of the gradient, and the CPU budget (~100 updates at IPC
# 10, against the paper's 10,000) leaves no time for small steps. On mnist-5k at IPC 10 (quick, one network):
# lr 0.1 -> 90.3 %, 0.5 -> 91.5 %, 1.0 -> 91.2 % (random: 89.3 %).


def match_distance(grads_syn: Sequence[torch.Tensor], grads_real: Sequence[torch.Tensor],
                   eps: float = 1e-8) -> torch.Tensor:
    """Σ over layers, Σ over output channels of (1 − cos(g_syn, g_real)); 1-D parameters are skipped.

    A conv weight's gradient O×I×k×k is compared row by row as O vectors of I·k·k; a linear weight's as O rows.
    """
    total = grads_syn[0].new_zeros(())
    for gs, gr in zip(grads_syn, grads_real):
        if gs.dim() < 2:
            continue
        a, b = gs.reshape(gs.shape[0], -1), gr.reshape(gr.shape[0], -1)
        cos = (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1)).clamp_min(eps)
        total = total + (1 - cos).sum()
    return total


@dataclass
class DCConfig(NetworkSpeedConfig):
    method_key = "dc"
    lr: float = 0.1
    batch_real: int = 32        # real images per class per matching
    outer_loop: int = 0         # image updates per network (0: by IPC, from the profile)
    inner_loop: int = 0         # epochs of training on the synthetic set between updates (0: by IPC)
    image_lr_factor: float = 0  # the images' SGD runs at lr × this (0: by IPC, from the profile)
    lr_net: float = 0.01        # SGD learning rate of the inner loop
    batch_train: int = 256      # batch size of the inner loop


@dataclass
class DSAConfig(DCConfig):
    method_key = "dsa"


class _GradientMatching(SyntheticImages):
    """Gradient matching; subclasses choose whether to augment."""

    family = "gradient"
    Config = DCConfig
    config: DCConfig
    use_dsa = False
    shardable = True  # runs over many processes: set `shard` (see the module docstring)

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        cfg = self.config

        def by_ipc(setting: str) -> Any:
            return profiles.by_ipc(self.name, setting, self.dataset.name, cfg.profile, self.ipc)

        self.outer_loop = cfg.outer_loop or int(by_ipc("outer_loop"))
        self.inner_loop = cfg.inner_loop or int(by_ipc("inner_loop"))
        self.image_lr = cfg.lr * (cfg.image_lr_factor or float(by_ipc("image_lr_factor")))
        for group in self.opt_images.param_groups:
            group["lr"] = self.image_lr
        self.steps_per_iteration = self.outer_loop  # an iteration is one network, matched outer_loop times
        self.default_steps = self.profile_steps()
        self.augment = SiameseAugment.for_dataset(self.dataset.name) if self.use_dsa else None
        self.inner_protocol = NetworkProtocol("inner", "distiller inner loop", lr=self.config.lr_net, momentum=0.0,
                                              weight_decay=0.0, batch_size=self.config.batch_train)
        self.net: torch.nn.Module | None = None
        self.net_seed = -1
        self.outer_done = 0
        self.networks_used = 0
        self.shard: Optional["Dist"] = None  # many processes: set to share the classes (module docstring)

    def class_loss(self, net: torch.nn.Module, params: list[torch.Tensor], x_real: torch.Tensor,
                   x_syn: torch.Tensor, c: int) -> torch.Tensor:
        """Gradient-matching distance of class c (differentiable w.r.t. x_syn)."""
        y_real = torch.full((len(x_real),), c, dtype=torch.long, device=x_real.device)
        y_syn = torch.full((len(x_syn),), c, dtype=torch.long, device=x_syn.device)
        g_real = torch.autograd.grad(F.cross_entropy(net(x_real), y_real), params)
        g_real = [g.detach() for g in g_real]
        g_syn = torch.autograd.grad(F.cross_entropy(net(x_syn), y_syn), params, create_graph=True)
        return match_distance(g_syn, g_real)

    def _step(self) -> dict[str, Any]:
        if self.net is None or self.outer_done >= self.outer_loop:
            self.net_seed = self.next_seed()
            self.net, self.outer_done = self.fresh_network(self.net_seed), 0
            self.networks_used += 1
        net = self.net
        params = [p for p in net.parameters() if p.requires_grad]
        c_all = self.dataset.num_classes
        mine = set(range(c_all)) if self.shard is None or not self.shard.enabled else set(self.shard.items(c_all))

        def match() -> tuple[torch.Tensor, torch.Tensor]:
            """The image gradient and loss of this rank's classes; every class's draws are taken all the same,
            so the generator moves as in one process."""
            grad = torch.zeros_like(self.images)
            total = torch.zeros((), device=self.device)  # summed on the device: no host round trip
            for c in range(c_all):
                x_real, x_syn = self.real_batch(c, self.config.batch_real), self.class_images(c)
                if self.augment is not None:
                    draw = self.augment.draw(self.generator).to(self.device)
                    x_real, x_syn = draw(x_real), draw(x_syn)
                if c not in mine:
                    continue
                loss = self.class_loss(net, params, x_real, x_syn, c)
                grad += torch.autograd.grad(loss, self.images)[0]  # w.r.t. the images only, not the network
                total = total + loss.detach()
            return grad, total

        if len(mine) == c_all:
            grad, total = match()
        else:  # many processes: the ranks' class shares summed (see the module docstring)
            def packed() -> torch.Tensor:
                g, t = match()
                return torch.cat([g.reshape(-1), t.reshape(1).to(g.dtype)])

            assert self.shard is not None
            summed = self.shard.all_reduce_sum(packed, self.images.numel() + 1, self.device)
            grad, total = summed[:-1].view_as(self.images).clone(), summed[-1]
        self.images.grad = grad
        self.opt_images.step()
        self.outer_done += 1
        if self.outer_done < self.outer_loop and self.inner_loop > 0:
            train_network(net, self.images.detach(), self.labels, self.inner_protocol, self.inner_loop,
                          self.generator, augment=self.augment, lr_decay=False)
        return {"loss": total / self.dataset.num_classes}

    def summary_meta(self) -> dict[str, Any]:
        return {"outer_loop": self.outer_loop, "inner_loop": self.inner_loop, "image_lr": self.image_lr,
                "networks": self.networks_used}


@register_method
class DC(_GradientMatching):
    name = "dc"
    description = "Gradient matching: make networks' gradients on synthetic and real images of each class agree."
    Config = DCConfig
    default_steps = 200


@register_method
class DSA(_GradientMatching):
    name = "dsa"
    description = "Gradient matching with differentiable siamese augmentation of real and synthetic batches."
    Config = DSAConfig
    use_dsa = True
    default_steps = 200

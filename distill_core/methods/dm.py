"""`dm`: dataset condensation with distribution matching (Zhao & Bilen, WACV 2023).

Each step samples a freshly initialised, frozen ConvNet and pulls the synthetic images so that, in its embedding
space, the mean embedding of each class's synthetic images matches the mean embedding of a batch of that class's
real images (both augmented with the same DSA draw). No network is trained, which makes DM the cheapest of the
network distillers.

All classes go through the network together — one batched pass for the real images (without autograd) and one for
the synthetic set — and the per-class means are read off the grouped embeddings. The ConvNet's instance norm
normalises each image on its own, so this is exactly the class-by-class computation. On a CPU the batched pass is
cut into slices of `CPU_CHUNK` images, whatever their classes: a slice's activations stay in the processor's cache,
which made the step 1.3–2.4× faster than one 640-image pass on a 2-core CPU (`benchmarks/dm_speed.py`).
(Channels-last layout would save another ~25 % on a CPU, but its float32 kernels put the image gradient up to
~4e-3 (relative) away from the plain computation under the scale and rotate augmentations, so it is not used.) On a GPU it is one
pass. Defaults: see `_distiller.py`.

Many processes (`torchrun`, see `distill_core.distributed`): with `shard` set, every rank draws the same network,
real batch and augmentation (one seed, one generator), but embeds only its share of the classes (r, r + N, ...).
The loss is a sum over classes and a synthetic image's gradient comes from its own class's term alone, so the sum
of the ranks' gradients is the one-process gradient; every rank then takes the same step and the images stay equal
on all ranks. Ranks beyond the number of classes add nothing.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

import torch

from ..augment import SiameseAugment
from ._distiller import NetworkSpeedConfig, SyntheticImages
from .base import register_method

if TYPE_CHECKING:
    from ..distributed import Dist


def class_means(emb: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Per-class means of embeddings grouped by class in equal blocks (C*n × D -> C × D)."""
    return emb.view(num_classes, -1, emb.shape[-1]).mean(dim=1)


CPU_CHUNK = 32  # images per slice of the batched pass on a CPU


def embed_all(net: torch.nn.Module, x: torch.Tensor, chunk: int = 0) -> torch.Tensor:
    """`net.embed(x)` for the whole batch, in slices of at most `chunk` images (0: one pass)."""
    if chunk <= 0 or len(x) <= chunk:
        return net.embed(x)
    return torch.cat([net.embed(part) for part in x.split(chunk)])


def dm_loss(net: torch.nn.Module, x_real: torch.Tensor, x_syn: torch.Tensor, num_classes: int,
            chunk: int = 0) -> torch.Tensor:
    """Σ_c ||mean embed(real_c) − mean embed(syn_c)||², all classes of a set embedded together.

    x_real and x_syn are grouped by class in equal blocks (class 0 first). Gradients flow to x_syn only.
    `chunk` slices the batched pass (see `embed_all`); the result does not depend on it.
    """
    with torch.no_grad():
        mean_real = class_means(embed_all(net, x_real, chunk), num_classes)
    mean_syn = class_means(embed_all(net, x_syn, chunk), num_classes)
    return ((mean_real - mean_syn) ** 2).sum()


@dataclass
class DMConfig(NetworkSpeedConfig):
    method_key = "dm"
    lr: float = 1.0
    batch_real: int = 64       # real images per class per step
    dsa: bool = True           # siamese augmentation of both sets
    class_batch: int = 0       # classes per forward/backward pass (0: all, or as many as fit in the device's memory)


@register_method
class DistributionMatching(SyntheticImages):
    name = "dm"
    family = "distribution"
    description = "Distribution matching: match per-class mean embeddings of real and synthetic images under random networks."
    Config = DMConfig
    config: DMConfig
    default_steps = 300
    shardable = True  # runs over many processes: set `shard` (see the module docstring)

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.augment = SiameseAugment.for_dataset(self.dataset.name) if self.config.dsa else None
        self.shard: Optional["Dist"] = None
        from ..memory import DatasetShape, classes_per_pass

        self.class_batch = classes_per_pass(DatasetShape.of(self.dataset), self.ipc, self.config, self.device)

    def _step(self) -> dict[str, Any]:
        c = self.dataset.num_classes
        net = self.fresh_network()
        net.requires_grad_(False)
        x_real, y_real = self.real_batches(self.config.batch_real)
        draw = None
        if self.augment is not None:  # one draw per class, shared by that class's real and synthetic images
            draw = self.augment.draw(self.generator, groups=c).to(self.device)
        chunk = CPU_CHUNK if self.device.type == "cpu" else 0
        if self.shard is not None and self.shard.enabled:
            return self._sharded_update(net, x_real, y_real, draw, chunk)
        if draw is not None:
            x_real = draw(x_real, y_real)
        self.opt_images.zero_grad(set_to_none=True)
        n_real, per = len(x_real) // c, self.class_batch
        total = None
        # the loss is a sum over classes, so passes over slices of classes add up to the one-pass gradient
        for lo in range(0, c, per):
            hi = min(c, lo + per)
            x_syn = self.images[lo * self.ipc:hi * self.ipc]
            if draw is not None:
                x_syn = draw(x_syn, self.labels[lo * self.ipc:hi * self.ipc])
            loss = dm_loss(net, x_real[lo * n_real:hi * n_real], x_syn, hi - lo, chunk)
            loss.backward()
            total = loss.detach() if total is None else total + loss.detach()
        self.opt_images.step()
        return {"loss": total}  # a tensor: read when a log row is due, not every step

    def _sharded_update(self, net: torch.nn.Module, x_real: torch.Tensor, y_real: torch.Tensor, draw: Any,
                        chunk: int) -> dict[str, Any]:
        """This rank's classes' loss terms and image gradients, summed over ranks; then the common step."""
        assert self.shard is not None
        c = self.dataset.num_classes
        mine = torch.tensor(self.shard.items(c), dtype=torch.long)

        def local() -> torch.Tensor:
            grad = torch.zeros_like(self.images)
            loss = torch.zeros((), device=self.device)
            if len(mine):
                xr = x_real.view(c, -1, *x_real.shape[1:])[mine.to(x_real.device)].flatten(0, 1)
                yr = y_real.view(c, -1)[mine.to(y_real.device)].flatten()
                xs = self.images.view(c, self.ipc, *self.images.shape[1:])[mine.to(self.device)].flatten(0, 1)
                ys = self.labels.view(c, self.ipc)[mine.to(self.device)].flatten()
                if draw is not None:
                    xr, xs = draw(xr, yr), draw(xs, ys)
                loss = dm_loss(net, xr, xs, len(mine), chunk)
                (grad,) = torch.autograd.grad(loss, self.images)
            return torch.cat([grad.reshape(-1), loss.detach().reshape(1)])

        total = self.shard.all_reduce_sum(local, self.images.numel() + 1, self.device)
        self.opt_images.zero_grad(set_to_none=True)
        self.images.grad = total[:-1].view_as(self.images).clone()
        self.opt_images.step()
        return {"loss": total[-1]}  # a tensor: read when a log row is due

    def summary_meta(self) -> dict[str, Any]:
        return {"class_batch": self.class_batch} if self.class_batch < self.dataset.num_classes else {}

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
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..augment import SiameseAugment
from ._distiller import DistillerConfig, SyntheticImages
from .base import register_method


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
class DMConfig(DistillerConfig):
    method_key = "dm"
    lr: float = 1.0
    batch_real: int = 64       # real images per class per step
    dsa: bool = True           # siamese augmentation of both sets


@register_method
class DistributionMatching(SyntheticImages):
    name = "dm"
    family = "distribution"
    description = "Distribution matching: match per-class mean embeddings of real and synthetic images under random networks."
    Config = DMConfig
    config: DMConfig
    default_steps = 300

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.augment = SiameseAugment.for_dataset(self.dataset.name) if self.config.dsa else None

    def _step(self) -> dict[str, float]:
        c = self.dataset.num_classes
        net = self.fresh_network()
        net.requires_grad_(False)
        x_real, y_real = self.real_batches(self.config.batch_real)
        x_syn = self.images
        if self.augment is not None:  # one draw per class, shared by that class's real and synthetic images
            draw = self.augment.draw(self.generator, groups=c)
            x_real, x_syn = draw(x_real, y_real.cpu()), draw(x_syn, self.labels.cpu())
        loss = dm_loss(net, x_real, x_syn, c, CPU_CHUNK if self.device.type == "cpu" else 0)
        self.opt_images.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_images.step()
        return {"loss": float(loss.detach())}

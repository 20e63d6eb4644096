"""`idm`: improved distribution matching (Zhao, Li, Qin & Yu, "Improved Distribution Matching for Dataset
Condensation", CVPR 2023; code: github.com/uitrbn/IDM).

DM (`dm.py`) matches per-class mean embeddings of real and synthetic images under freshly initialised networks.
IDM keeps that loss and changes three things:

1. **Partitioning and expansion**: each stored synthetic image holds `factor`×`factor` smaller images (initialised
   with that many downscaled real images of its class); before matching, every part is cut out and upsampled
   (bilinear) to full size, so one stored image gives factor² training images at the same storage. The summary is
   the expanded set (C · ipc · factor² images; `meta["partition"]`, `meta["stored_images"]`), which is what
   IDM's evaluation trains on. `factor = 1` turns it off (used on 8×8 digits, whose 4×4 parts hold no digit).
2. **Efficient and enriched model sampling**: instead of a fresh random network per step, a queue of up to
   `num_nets` networks is kept; a fresh one joins every `net_interval` steps (the oldest leaves when it is full),
   every step matches under one network drawn from the queue, and `train_nets` queue networks are trained
   `net_train_steps` SGD steps on real batches (`net_batch` images, `lr_net`, momentum 0.9, weight decay 5e-4).
   So the embeddings come from networks at many stages of training, cheaply.
3. **Class-aware distribution regularisation**: the matching network's classifier must also classify the
   synthetic images: `ce_weight` × (that network's accuracy on its recent real training batches) × the
   cross-entropy of the synthetic set is added to the loss, so the synthetic distribution is pulled towards
   what the network separates. As in IDM's code, the accuracy enters in percent (0–100), so at ce_weight 0.5 a
   network at 60 % weighs the cross-entropy 30×, comparable to the matching term.

One image update per step covers all classes (the ConvNet's instance norm keeps classes independent, so this is
IDM's per-class update in one pass). The ipc=1 trick of IDM's code (matching only the 2,560 lowest-loss real
images, used when partitioning is off) is left out. Defaults: the profiles table.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from ..augment import SiameseAugment
from ..errors import InvalidInputError
from ..summary import Summary
from ._distiller import NetworkSpeedConfig, SyntheticImages
from .base import initial_pick, register_method
from .dm import CPU_CHUNK, class_means, embed_all


def expand(images: torch.Tensor, factor: int) -> torch.Tensor:
    """Cut every image into factor×factor parts and upsample each to the full size (bilinear): N·factor² images,
    image k's parts at k·factor² ... (k+1)·factor² − 1 in row-major order (so class blocks stay together)."""
    if factor == 1:
        return images
    n, c, h, w = images.shape
    ph, pw = h // factor, w // factor
    parts = images.view(n, c, factor, ph, factor, pw).permute(0, 2, 4, 1, 3, 5).reshape(n * factor * factor, c, ph, pw)
    return F.interpolate(parts, size=(h, w), mode="bilinear", align_corners=False)


def pack(images: torch.Tensor, factor: int) -> torch.Tensor:
    """The inverse layout of `expand` for initialisation: N·factor² full-size images -> N images, each holding
    factor×factor of them downscaled (area averaging)."""
    if factor == 1:
        return images
    m, c, h, w = images.shape
    n = m // (factor * factor)
    small = F.interpolate(images, size=(h // factor, w // factor), mode="area")
    ph, pw = small.shape[-2:]
    return small.view(n, factor, factor, c, ph, pw).permute(0, 3, 1, 4, 2, 5).reshape(n, c, ph * factor, pw * factor)


@dataclass
class IDMConfig(NetworkSpeedConfig):
    method_key = "idm"
    lr: float = 0.2             # learning rate of the images (SGD, momentum 0.5)
    batch_real: int = 64        # real images per class per step
    factor: int = 2             # partitions per side of a stored image (1: no partitioning)
    num_nets: int = 10          # length of the network queue
    net_interval: int = 10      # a fresh network joins the queue every this many steps
    train_nets: int = 1         # queue networks trained per step
    net_train_steps: int = 2    # SGD steps each of them takes per step
    net_batch: int = 64         # real images per network training step (all classes)
    lr_net: float = 0.01        # the queue networks' learning rate
    ce_weight: float = 0.5      # weight of the class-aware regulariser (× the network's accuracy in %)
    dsa: bool = True            # siamese augmentation of both sets

    def validate(self) -> None:
        super().validate()
        if self.factor < 1 or self.num_nets < 1 or self.net_interval < 1 or self.batch_real < 1 or self.net_batch < 1:
            raise InvalidInputError("factor, num_nets, net_interval, batch_real and net_batch must be at least 1")


class QueuedNet:
    """A queue network, its optimiser, and its running accuracy on the real batches it was trained on."""

    def __init__(self, net: torch.nn.Module, lr: float):
        self.net = net
        self.opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
        self.correct = 0
        self.seen = 0

    @property
    def accuracy(self) -> float:
        return self.correct / self.seen if self.seen else 0.0


@register_method
class IDM(SyntheticImages):
    name = "idm"
    family = "distribution"
    description = ("Improved distribution matching: DM with partitioned images, a queue of partly trained "
                   "networks, and a class-aware cross-entropy term.")
    Config = IDMConfig
    config: IDMConfig
    default_steps = 200

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        cfg = self.config
        h, w = self.dataset.image_shape[1:]
        if h % cfg.factor or w % cfg.factor:
            raise InvalidInputError(f"factor {cfg.factor} does not divide the {h}×{w} images")
        if cfg.factor > 1 and cfg.init != "noise":  # factor² real images of the class in every stored image
            idx = initial_pick(self.dataset, self.ipc * cfg.factor ** 2, cfg.init, self.generator)
            assert idx is not None
            with torch.no_grad():
                self.images.copy_(pack(self.x_real[idx.to(self.device)], cfg.factor))
            self.init_indices = idx.tolist()
        self.augment = SiameseAugment.for_dataset(self.dataset.name) if cfg.dsa else None
        self.queue: list[QueuedNet] = [self._fresh() for _ in range(min(3, cfg.num_nets))]  # IDM starts with 3

    def _fresh(self) -> QueuedNet:
        return QueuedNet(self.fresh_network(), self.config.lr_net)

    def _pick(self) -> int:
        return int(torch.randint(len(self.queue), (1,), generator=self.generator))

    def expanded(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The training images (expanded) and their labels, grouped by class."""
        f2 = self.config.factor ** 2
        return expand(self.images, self.config.factor), self.labels.repeat_interleave(f2)

    def _train_queue(self) -> None:
        cfg = self.config
        n = len(self.x_real)
        for _ in range(cfg.train_nets):
            member = self.queue[self._pick()]
            member.net.train()
            for _ in range(cfg.net_train_steps):
                idx = torch.randperm(n, generator=self.generator)[:cfg.net_batch].to(self.device)
                logits = member.net(self.x_real[idx])
                loss = F.cross_entropy(logits, self.y_real[idx])
                member.opt.zero_grad(set_to_none=True)
                loss.backward()
                member.opt.step()
                member.correct += int((logits.detach().argmax(1) == self.y_real[idx]).sum())
                member.seen += len(idx)

    def _step(self) -> dict[str, float]:
        cfg = self.config
        c = self.dataset.num_classes
        if self.steps_done % cfg.net_interval == 0:  # enrich the queue
            if len(self.queue) >= cfg.num_nets:
                self.queue.pop(0)
            self.queue.append(self._fresh())
        member = self.queue[self._pick()]
        net = member.net
        x_real, y_real = self.real_batches(cfg.batch_real)
        x_syn, y_syn = self.expanded()
        if self.augment is not None:  # one draw per class, shared by that class's real and synthetic images
            draw = self.augment.draw(self.generator, groups=c)
            x_real, x_syn = draw(x_real, y_real.cpu()), draw(x_syn, y_syn.cpu())
        chunk = CPU_CHUNK if self.device.type == "cpu" else 0
        with torch.no_grad():
            mean_real = class_means(embed_all(net, x_real, chunk), c)
        emb_syn = embed_all(net, x_syn, chunk)
        dm = ((mean_real - class_means(emb_syn, c)) ** 2).sum()
        ce = F.cross_entropy(net.classifier(emb_syn), y_syn)
        weight = cfg.ce_weight * 100.0 * member.accuracy
        loss = dm + weight * ce
        self.opt_images.zero_grad(set_to_none=True)
        self.images.grad = torch.autograd.grad(loss, self.images)[0]
        self.opt_images.step()
        self._train_queue()
        return {"loss": float(loss.detach()), "dm_loss": float(dm.detach()), "ce_loss": float(ce.detach()),
                "net_accuracy": member.accuracy, "queue": float(len(self.queue))}

    def summary(self) -> Summary:
        x, y = self.expanded()
        meta: dict[str, Any] = {"init": self.config.init, "steps": self.steps_done, "partition": self.config.factor,
                                "stored_images": int(len(self.images))}
        if self.init_indices is not None:
            meta["init_indices"] = self.init_indices
        return self._make_summary(self.dataset.denormalize(x.detach()), y, **meta)

"""`rfad`: Random Feature Approximation Distillation (Loo, Hasani, Amini & Rus, NeurIPS 2022).

RFAD is KIP with a cheaper, better kernel: instead of the closed-form NTK of a fully connected network it estimates
the NNGP of the ConvNet itself with random features. Each step draws `num_models` ConvNets at initialisation
(Gaussian weights, no normalisation, `width` channels), takes the features of their last convolutional block for
the synthetic images and for a fresh batch of real training images, and forms K = w_var · Φ Φᵀ + b_var (the
read-out layer of the NNGP on the stacked features, see `distill_core.random_features`). Kernel ridge regression
from the synthetic set then predicts the real batch, and the images (and, optionally, the labels) follow the
gradient of the loss through the features of the synthetic images. The networks are drawn afresh every step,
so the images fit the kernel rather than a few networks.

Loss: RFAD's Platt-scaled cross-entropy, CE(exp(τ) · ŷ_t, y_t), where the log-temperature τ is learned with the
images (the predictions of kernel regression on centred one-hot labels are small numbers; the learned scale turns
them into calibrated logits), or KIP's ½ · mean squared error (`loss=mse`). Labels start as centred one-hot vectors
(1 − 1/C, −1/C) and are learned when `learn_labels` is set; the summary then carries them as soft labels, which
networks fit with mean-squared error (as RFAD's evaluation does).

Sources (paper profile): the authors' code github.com/yolky/RFAD (`run_distillation.py`, `distillation.py`,
`models.py`): 8 networks of 256 channels (width 128 × k = 2), 4 batches of 1,280 real images per step, ridge
5e-3 · tr(K)/n, learning rate 1e-3 (AdaBelief there; Adam here, the project adds no optimiser package), the
temperature at 1e-2, networks resampled every step, up to 100,000 steps with early stopping on a validation loss
(not done here: a run takes the steps it is given). Published Fashion-MNIST ConvNet accuracies: 78.6 / 87.0 /
88.8 % at IPC 1 / 10 / 50.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from ..errors import InvalidInputError
from ..random_features import krr_from_features, random_convnet, stacked_features
from ..summary import Summary
from ._distiller import DistillerConfig, SyntheticImages
from .base import register_method
from .dm import CPU_CHUNK
from .label_solve import centred_one_hot

LOSSES = ("platt", "mse")


@dataclass
class RFADConfig(DistillerConfig):
    """RFAD settings. `lr`: Adam on the images (normalised space); `momentum`: Adam's β1. `ridge` is relative
    (ridge · tr(K)/n). `width`/`depth`: the random ConvNets; `num_models` of them per step."""

    method_key = "rfad"
    lr: float = 0.001
    momentum: float = 0.9
    width: int = 256
    depth: int = 3
    num_models: int = 8
    target_batch: int = 5120      # real images per step (uniformly drawn)
    ridge: float = 5e-3
    w_var: float = 2.0            # weight variance of the random networks and of the kernel's read-out layer
    b_var: float = 0.01           # bias variance of the read-out layer
    b_std: float = 0.1            # bias std of the random convolutions
    loss: str = "platt"           # platt: CE with a learned temperature | mse: KIP's squared error
    temperature_lr: float = 0.01  # Adam on the log-temperature of the Platt loss
    learn_labels: bool = False
    label_lr: float = 0.001

    def validate(self) -> None:
        super().validate()
        if self.loss not in LOSSES:
            raise InvalidInputError(f"loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        if self.num_models < 1 or self.target_batch < 1:
            raise InvalidInputError("num_models and target_batch must be at least 1")
        if self.w_var <= 0:
            raise InvalidInputError(f"w_var must be positive, got {self.w_var}")
        if self.width > 4096 or self.depth > 8:
            raise InvalidInputError("width is at most 4096 and depth at most 8 for the random networks")


@register_method
class RFAD(SyntheticImages):
    name = "rfad"
    family = "kernel"
    description = ("Random Feature Approximation Distillation: KIP with the ConvNet's NNGP estimated by the features "
                   "of random wide ConvNets, and a Platt-scaled cross-entropy loss.")
    Config = RFADConfig
    config: RFADConfig
    sgd_on_images = False  # Adam on the images (and labels): `self.opt`
    default_steps = 1000

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        cfg = self.config
        c = self.dataset.num_classes
        self.y = centred_one_hot(self.labels.cpu(), c).to(self.device).requires_grad_(cfg.learn_labels)
        self.log_temperature = torch.zeros((), device=self.device, requires_grad=cfg.loss == "platt")
        groups: list[dict[str, Any]] = [{"params": [self.images], "lr": cfg.lr}]
        if cfg.loss == "platt":
            groups.append({"params": [self.log_temperature], "lr": cfg.temperature_lr})
        if cfg.learn_labels:
            groups.append({"params": [self.y], "lr": cfg.label_lr})
        self.opt = torch.optim.Adam(groups, betas=(cfg.momentum, 0.999))

    def random_networks(self) -> list[torch.nn.Module]:
        """`num_models` fresh random ConvNets, seeded from the method's generator."""
        cfg = self.config
        return [random_convnet(self.dataset, cfg.width, cfg.depth, self.next_seed(), self.device, cfg.w_var,
                               cfg.b_std) for _ in range(cfg.num_models)]

    def target_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """`target_batch` real training images (normalised) drawn uniformly without replacement, and labels."""
        n = len(self.y_real)
        idx = torch.randperm(n, generator=self.generator)[:min(self.config.target_batch, n)].to(self.device)
        return self.x_real[idx], self.y_real[idx]

    def loss(self, nets: list[torch.nn.Module], x_t: torch.Tensor,
             y_t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The loss of kernel ridge regression from the synthetic set to one real batch, and its predictions."""
        cfg = self.config
        chunk = CPU_CHUNK if self.device.type == "cpu" else 1024
        with torch.no_grad():
            f_t = stacked_features(nets, x_t, chunk)
        f_s = stacked_features(nets, self.images, chunk)
        pred = krr_from_features(f_s, self.y, f_t, cfg.ridge, cfg.w_var, cfg.b_var)
        if cfg.loss == "platt":
            return F.cross_entropy(self.log_temperature.exp() * pred, y_t), pred
        target = centred_one_hot(y_t, self.dataset.num_classes).to(pred)
        return 0.5 * (pred - target).square().mean(), pred

    def _step(self) -> dict[str, float]:
        nets = self.random_networks()
        x_t, y_t = self.target_batch()
        loss, pred = self.loss(nets, x_t, y_t)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        acc = (pred.detach().argmax(1) == y_t).float().mean()
        return {"loss": float(loss.detach()), "acc": float(acc)}

    def summary(self) -> Summary:
        cfg = self.config
        pixels = self.dataset.denormalize(self.images.detach())
        meta: dict[str, Any] = {"init": cfg.init, "steps": self.steps_done, "ridge": cfg.ridge,
                                "random_features": {"models": cfg.num_models, "width": cfg.width,
                                                    "depth": cfg.depth}}
        if self.init_indices is not None:
            meta["init_indices"] = self.init_indices
        if cfg.loss == "platt":
            meta["platt_log_temperature"] = float(self.log_temperature.detach())
        if cfg.learn_labels:
            return self._make_summary(pixels, self.y.detach().float(), soft_labels="learned", label_loss="mse",
                                      **meta)
        return self._make_summary(pixels, self.labels, **meta)

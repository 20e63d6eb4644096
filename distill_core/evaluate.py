"""Evaluation protocols: train fresh networks on a Summary and report test accuracy (mean ± std over reps).

- `paper`: the field's protocol — ConvNet-3 width 128, instance norm, SGD lr 0.01, momentum 0.9, weight decay
  5e-4, lr ÷10 at half, batch 256, 300 epochs (1000 when an augmentation such as DSA is used). For GPUs.
- `quick`: the same recipe made CPU-friendly — width 64 and 150 epochs (500 with augmentation) — for the app and
  the tests. Accuracy runs a few points under `paper`; use it to compare methods, not to quote papers.
- further protocols (e.g. `krr`, kernel ridge regression) register themselves with `register_protocol`.

Soft (learned) labels are fitted with mean-squared error, hard labels with cross-entropy.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F

from .data import ImageSet
from .device import make_generator, resolve_device
from .errors import InvalidInputError, UnknownNameError
from .models import MODELS, build_seeded
from .summary import Summary

Augment = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


@dataclass(frozen=True)
class NetworkProtocol:
    """How to train and test one freshly initialised network on a summary."""

    name: str
    description: str
    width: int = 128
    depth: int = 3
    epochs: int = 300
    epochs_augmented: int = 1000
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 256
    reps: int = 5


PROTOCOLS: dict[str, NetworkProtocol] = {
    "paper": NetworkProtocol("paper", "ConvNet-3 width 128, SGD 0.01, 300 epochs (1000 with augmentation); for GPUs",
                             reps=5),
    "quick": NetworkProtocol("quick", "ConvNet-3 width 64, SGD 0.01, 150 epochs (500 with augmentation); CPU-friendly",
                             width=64, epochs=150, epochs_augmented=500, reps=3),
}


@dataclass
class EvalResult:
    protocol: str
    model: str
    reps: int
    acc_mean: float
    acc_std: float
    accs: list[float] = field(default_factory=list)
    seconds: float = 0.0
    seconds_per_model: float = 0.0
    details: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


EvalFn = Callable[..., EvalResult]
CUSTOM_PROTOCOLS: dict[str, tuple[EvalFn, str]] = {}


def register_protocol(name: str, fn: EvalFn, description: str) -> None:
    """Register a non-network protocol: fn(summary, dataset, *, device, seed, reps, model) -> EvalResult."""
    CUSTOM_PROTOCOLS[name] = (fn, description)


def protocol_names() -> list[str]:
    from . import methods  # noqa: F401 - methods may register protocols (e.g. krr)
    return list(PROTOCOLS) + list(CUSTOM_PROTOCOLS)


def _loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    if targets.dim() == 2:
        return F.mse_loss(logits, targets)
    return F.cross_entropy(logits, targets)


@torch.no_grad()
def accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000) -> float:
    """Top-1 accuracy of `model` on normalised images `x` (moved to the model's device batch by batch)."""
    model.eval()
    device = next(model.parameters()).device
    correct = 0
    for i in range(0, len(x), batch_size):
        xb = x[i:i + batch_size].to(device, non_blocking=True)
        correct += int((model(xb).argmax(1).cpu() == y[i:i + batch_size]).sum())
    return correct / max(1, len(x))


def train_network(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, protocol: NetworkProtocol,
                  epochs: int, generator: torch.Generator, augment: Optional[Augment] = None,
                  should_stop: Callable[[], bool] | None = None, lr_decay: bool = True) -> torch.nn.Module:
    """SGD with momentum and weight decay, lr ÷10 at half the epochs (unless lr_decay=False, e.g. for the short
    inner loops of the distillers), shuffled mini-batches (x normalised)."""
    device = next(model.parameters()).device
    x, y = x.to(device), y.to(device)
    opt = torch.optim.SGD(model.parameters(), lr=protocol.lr, momentum=protocol.momentum,
                          weight_decay=protocol.weight_decay)
    model.train()
    n = len(x)
    for epoch in range(epochs):
        if lr_decay and epoch == epochs // 2:
            for group in opt.param_groups:
                group["lr"] = protocol.lr * 0.1
        order = torch.randperm(n, generator=generator).to(device)
        for i in range(0, n, protocol.batch_size):
            idx = order[i:i + protocol.batch_size]
            xb = x[idx]
            if augment is not None:
                xb = augment(xb, generator)
            loss = _loss(model(xb), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        if should_stop is not None and should_stop():
            break
    return model


def evaluate_summary(summary: Summary, dataset: ImageSet, protocol: str = "quick", model: str = "convnet",
                     reps: int | None = None, seed: int = 0, device: str | torch.device = "auto",
                     augment: Optional[Augment] = None, epochs: int | None = None,
                     on_model_done: Callable[[int, float], None] | None = None,
                     should_stop: Callable[[], bool] | None = None) -> EvalResult:
    """Train `reps` freshly initialised networks on the summary; mean ± std of their test accuracy.

    Rep r uses seed `seed + r` for both its initialisation and its batch order, so results repeat exactly.
    """
    names = protocol_names()
    if protocol not in names:
        raise UnknownNameError(f"unknown protocol {protocol!r}; choose one of {', '.join(names)}")
    if model not in MODELS:
        raise UnknownNameError(f"unknown model {model!r}; choose one of {', '.join(MODELS)}")
    if reps is not None and (isinstance(reps, bool) or int(reps) < 1):
        raise InvalidInputError(f"reps must be a positive whole number, got {reps}")
    if tuple(summary.images.shape[1:]) != dataset.image_shape:
        raise InvalidInputError(f"the summary's images are {tuple(summary.images.shape[1:])} but {dataset.name} "
                                f"has {dataset.image_shape}")
    if summary.num_classes != dataset.num_classes:
        raise InvalidInputError(f"the summary has {summary.num_classes} classes but {dataset.name} has "
                                f"{dataset.num_classes}")
    if not torch.isfinite(summary.images).all():
        raise InvalidInputError("the summary's images contain NaN or infinite values")
    dev = resolve_device(device)
    if protocol in CUSTOM_PROTOCOLS:
        fn, _ = CUSTOM_PROTOCOLS[protocol]
        return fn(summary, dataset, device=dev, seed=seed, reps=reps, model=model)

    proto = PROTOCOLS[protocol]
    reps = int(reps or proto.reps)
    n_epochs = int(epochs or (proto.epochs_augmented if augment is not None else proto.epochs))
    x = dataset.normalize(summary.images.float())
    y = summary.labels.float() if summary.soft else summary.labels.long()
    x_test = dataset.normalize(dataset.x_test)
    accs: list[float] = []
    start = time.perf_counter()
    for r in range(reps):
        net = build_seeded(dataset, model, seed=seed + r, device=dev, width=proto.width, depth=proto.depth)
        gen = make_generator(seed + r)
        train_network(net, x, y, proto, n_epochs, gen, augment=augment, should_stop=should_stop)
        accs.append(accuracy(net, x_test, dataset.y_test))
        if on_model_done is not None:
            on_model_done(r, accs[-1])
        if should_stop is not None and should_stop():
            break
    seconds = time.perf_counter() - start
    return EvalResult(protocol, model, len(accs), float(np.mean(accs)), float(np.std(accs)), accs, seconds,
                      seconds / max(1, len(accs)), {"epochs": n_epochs, "augment": augment is not None,
                                                    "width": proto.width, "depth": proto.depth})

"""Evaluation protocols: train fresh networks on a Summary and report accuracy (mean ± std over reps).

- `paper`: the field's protocol — ConvNet-3 width 128 (its depth by image size, `models.default_depth`: 2 blocks on
  8×8 digits, 4 at 64 px), instance norm, SGD lr 0.01, momentum 0.9, weight decay 5e-4, lr ÷10 at half, batch 256;
  1000 epochs when the summary's method is evaluated with augmentation in the field, 300 otherwise. For GPUs.
- `quick`: the same semantics on a CPU budget — width 64, 200 epochs with augmentation, 150 without — for the app
  and the tests. Accuracy runs a few points under `paper`; use it to compare methods, not to quote papers.
  (At IPC 10 on a 28×28 set an epoch is one batch of 100 images, ~0.33–0.4 s of one core at width 64 on a shared
  2-core machine, augmentation adding ~4 %: 200 augmented epochs cost ~1.4× the 150 plain ones.)
- further protocols (e.g. `krr`, kernel ridge regression) register themselves with `register_protocol`.

What the field does per method and dataset is DATA (`AUGMENT_RULES`, `LEARNED_LR`, `KERNEL_LABEL_METHODS`),
read by one function, `eval_policy(method, dataset, protocol)`:

| summary of | augmentation | epochs (paper / quick) | lr | why |
|---|---|---|---|---|
| dsa, dm, mtt | DSA (no flip on digit sets) | 1000 / 200 | mtt: its learned `syn_lr` | their authors' code |
| idm, tesla, datm | DSA (no flip on digit sets) | 1000 / 200 | tesla, datm: learned `syn_lr` | their authors' code |
| dc on mnist, mnist-5k | DC's crop/scale/rotate | 1000 / 200 | 0.01 | DC's code augments MNIST only |
| dc elsewhere (e.g. fashion-mnist) | none | 300 / 150 | 0.01 | DC's code |
| kip, ls (kernel images) | none | 300 / 150 | 0.01 (quick, MSE fits: MSE_LR) | the KIP paper trains networks on its images plainly |
| rfad | none | 300 / 150 | 0.01 (quick, MSE fits: MSE_LR) | RFAD's code trains networks on its images plainly |
| frepo | DSA (no flip on digit sets) | 1000 / 200 | 0.01 (quick, MSE fits: MSE_LR) | FRePo's code: colour/crop/rotate/scale/cutout |
| selectors (random, herding, …) | none | 300 / 150 | 0.01 | real images; the field's coreset baselines |
| rded, random-soft (teacher soft labels) | none | 300 / 150 | 0.01 | fixed labels: soft cross-entropy (RDED's KL) |

Labels: hard labels train with cross-entropy; soft labels of kernel methods (KIP's, Label Solve's, RFAD's and
FRePo's centred regression targets) with mean-squared error, as the KIP, RFAD and FRePo authors' code does; other
soft labels with soft cross-entropy (KL divergence to the targets, as DD-Ranking does; tesla's and datm's learned
labels by name, `SOFT_LABEL_LOSS`). `label_loss` forces one; the record states which was used. Under `quick`,
networks fitting MSE targets train at their architecture's rate (`MSE_LR`, chosen on the validation split);
`lr` forces a rate. The record's `lr_source` says where the rate came from.
`relabel="teacher"` replaces rded's and random-soft's fixed labels by their teacher's labels of every augmented
batch (`distill_core.relabel`), RDED's own evaluation; `"teacher-cutmix"` also mixes every batch with CutMix, as
RDED's students train; the record says so.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Callable, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .augment import ThenCutMix, describe_augment, make_augment
from .data import ImageSet
from .device import make_generator, resolve_device, to_device
from .errors import InvalidInputError, UnknownNameError
from .models import MODELS, build_seeded, default_depth
from .relabel import check_relabel, relabels, teacher_relabeller
from .summary import Summary

if TYPE_CHECKING:
    from .distributed import Dist

Augment = Callable[[torch.Tensor, torch.Generator], torch.Tensor]
SPLITS = ("test", "val")
LABEL_LOSSES = ("auto", "ce", "mse", "soft_ce")


@dataclass(frozen=True)
class NetworkProtocol:
    """How to train and test one freshly initialised network on a summary."""

    name: str
    description: str
    width: int = 128
    depth: int = 0  # 0: the architecture's default (ConvNet: by image size, `models.default_depth`; MLP: 3)
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
    "quick": NetworkProtocol("quick", "ConvNet-3 width 64, SGD 0.01 (MSE fits: 0.03), 150 epochs (200 with "
                                      "augmentation); CPU-friendly",
                             width=64, epochs=150, epochs_augmented=200, reps=3),
}


# ------------------------------------------------------------------------------ the field's policy, as data

@dataclass(frozen=True)
class AugmentRule:
    """Summaries of `methods` (on `datasets`; None: every dataset) are evaluated with `augmentation`."""

    methods: tuple[str, ...]
    augmentation: str
    datasets: Optional[tuple[str, ...]]
    why: str


AUGMENT_RULES: tuple[AugmentRule, ...] = (
    AugmentRule(("dsa", "dm", "mtt"), "dsa", None,
                "DSA, DM and MTT train their evaluation networks with DSA augmentation (their authors' code)"),
    AugmentRule(("idm", "tesla", "datm"), "dsa", None,
                "IDM, TESLA and DATM train their evaluation networks with DSA augmentation (their authors' code)"),
    AugmentRule(("dc",), "dc", ("mnist", "mnist-5k"),
                "DC's code (get_daparam) trains networks on its MNIST images with crop/scale/rotate"),
    AugmentRule(("frepo",), "dsa", None,
                "FRePo's code trains its evaluation networks with differentiable colour/crop/rotate/scale/cutout "
                "augmentation (and flips on colour sets): the DSA families"),
)
# Why a summary gets no augmentation, by method (the first rule that matches wins; then this; then the default).
NO_AUGMENT_WHY: dict[str, str] = {
    "dc": "DC's code augments MNIST only: none on Fashion-MNIST and the other sets",
    "kip": ("KIP's images are learned for a kernel without augmentation, and the KIP paper trains networks on them "
            "plainly"),
    "ls": "Label Solve's labels are solved for a kernel, judged like KIP's: no augmentation",
    "rfad": ("RFAD's code (eval_distilled_set.py) trains networks on its images without augmentation, with MSE on "
             "its (learned) labels"),
}
NO_AUGMENT_WHY.update({
    "rded": ("RDED's stitched real crops carry the teacher's fixed soft labels (soft cross-entropy, the KL "
             "divergence RDED trains with); an augmented view would no longer match its label: none"),
    "random-soft": "random real images with RDED's teacher's fixed soft labels (soft cross-entropy): none, as rded",
})
NO_AUGMENT_DEFAULT = "real images (selectors): trained plainly, as the field's coreset baselines are"
RELABEL_AUGMENT_WHY = "relabel=teacher: RDED augments every batch, then relabels the view with its teacher"
# Methods whose summaries carry a learned training learning rate in meta[key] (MTT's code evaluates with it).
LEARNED_LR: dict[str, str] = {"mtt": "syn_lr", "tesla": "syn_lr", "datm": "syn_lr"}
# The loss each method's learned soft labels are trained on, when the method names one (others: see eval_policy).
SOFT_LABEL_LOSS: dict[str, str] = {
    "tesla": "soft_ce",  # TESLA's code: cross-entropy to the soft labels' probabilities
    "datm": "soft_ce",   # DATM's code: SoftCrossEntropy to softmax(learned label logits)
}
# Methods whose soft labels are kernel-regression targets (centred one-hot, learned or solved): fitted with MSE.
KERNEL_LABEL_METHODS = frozenset({"kip", "ls", "rfad", "frepo"})
# (protocol, architecture) -> the learning rate of networks fitting their targets with MSE (others: the
# protocol's). MSE to regression targets gives a network a gradient several times smaller than cross-entropy to
# hard labels does, so at the protocol's 0.01 MSE fits underfit in `quick`'s 150 epochs: LeNet stays near chance
# (15 % on RFAD's labels), AlexNet and ResNet-18 fall 10-20 points short. Chosen on the validation
# split: fashion-mnist IPC 10, the `fast` RFAD and FRePo summaries (learned labels, seed 0), one network per rate,
# rates 0.01 / 0.03 / 0.1 / 0.3 (LeNet also 1.0); the rate with the best mean over the two, a rate that diverged
# or collapsed on either excluded (validation accuracy %, RFAD / FRePo):
#   convnet  0.01: 84.2 / 81.5   0.03: 84.9 / 83.3   0.1: 34.1 / 54.9
#   mlp      0.01: 71.8 / 72.1   0.03: 78.3 / 76.7   0.1: 78.2 / 77.8   0.3: 76.1 / 77.3
#   lenet    0.01: 15.1 / 32.0   0.03: 65.7 / 59.3   0.1: 76.4 / 73.5   0.3: 77.0 / 78.4   1.0: 10.0 / 80.4
#   alexnet  0.01: 51.1 / 62.4   0.03: 70.9 / 72.3   0.1: diverged / 78.9
#   vgg11    0.01: 71.1 / 77.7   0.03: 75.3 / 78.8   0.1: diverged / diverged
#   resnet18 0.01: 44.8 / 66.4   0.03: 52.1 / 76.2   0.1: 62.0 / 72.3
# (VGG-11 and ResNet-18, 4-5 minutes a network here, were not tried at 0.3: VGG-11 diverged at 0.1 and FRePo's
# ResNet-18 already fell from 0.03 to 0.1.)
# `paper` (300 or 1000 epochs) is not measured here: it keeps the field's 0.01.
MSE_LR: dict[tuple[str, str], float] = {
    ("quick", "convnet"): 0.03, ("quick", "mlp"): 0.1, ("quick", "lenet"): 0.3, ("quick", "alexnet"): 0.03,
    ("quick", "vgg11"): 0.03, ("quick", "resnet18"): 0.1,
}
MSE_LR_WHY = ("the rate chosen for MSE fits of this architecture under quick on the validation split "
              "(fashion-mnist IPC 10, RFAD's and FRePo's learned labels)")


@dataclass(frozen=True)
class EvalPolicy:
    """What a network protocol does with one method's summaries on one dataset."""

    method: str
    dataset: str
    protocol: str
    augmentation: str          # "dsa" | "dc" | "none"
    epochs: int
    lr_from: Optional[str]     # meta key of a learned learning rate (e.g. "syn_lr"), else None: the protocol's lr
    soft_label_loss: str       # label_loss="auto" for soft labels that are class probabilities ("mse" | "soft_ce")
    why: str

    def to_dict(self) -> dict:
        return asdict(self)


def eval_policy(method: str, dataset: str, protocol: str = "quick") -> EvalPolicy:
    """The field's evaluation of `method`'s summaries on `dataset` under a network protocol (read from the
    tables above): augmentation, epochs, where the learning rate comes from, the soft-label loss, and why."""
    if protocol not in PROTOCOLS:
        raise UnknownNameError(f"{protocol!r} is not a network protocol; choose one of {', '.join(PROTOCOLS)}")
    proto = PROTOCOLS[protocol]
    aug, why = "none", NO_AUGMENT_WHY.get(method, NO_AUGMENT_DEFAULT)
    for rule in AUGMENT_RULES:
        if method in rule.methods and (rule.datasets is None or dataset in rule.datasets):
            aug, why = rule.augmentation, rule.why
            break
    epochs = proto.epochs_augmented if aug != "none" else proto.epochs
    soft = SOFT_LABEL_LOSS.get(method, "mse" if method in KERNEL_LABEL_METHODS else "soft_ce")
    return EvalPolicy(method, dataset, protocol, aug, epochs, LEARNED_LR.get(method), soft, why)


def policy_table(dataset: str, methods: list[str] | None = None, protocol: str = "paper") -> list[dict]:
    """`eval_policy` for every registered method (or `methods`) on one dataset: rows for the app and the CLI."""
    if methods is None:
        from .methods import METHODS
        methods = sorted(METHODS)
    return [eval_policy(m, dataset, protocol).to_dict() for m in methods]


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
    """Register a non-network protocol: fn(summary, dataset, *, device, seed, reps, model, split) -> EvalResult."""
    CUSTOM_PROTOCOLS[name] = (fn, description)


def protocol_names() -> list[str]:
    from . import methods  # noqa: F401 - methods may register protocols (e.g. krr)
    return list(PROTOCOLS) + list(CUSTOM_PROTOCOLS)


# ---------------------------------------------------------------------------------------- labels and losses

def _is_distribution(labels: torch.Tensor, tol: float = 1e-3) -> bool:
    return bool((labels >= -tol).all() and torch.allclose(labels.sum(1), torch.ones(len(labels)), atol=tol))


def resolve_label_loss(label_loss: str, summary: Summary) -> str:
    """"auto" -> ce for hard labels; mse for kernel methods' soft labels (and any soft labels that are not class
    probabilities: regression targets); soft_ce for other soft labels. An explicit choice is kept as it is."""
    if label_loss not in LABEL_LOSSES:
        raise InvalidInputError(f"label_loss must be one of {', '.join(LABEL_LOSSES)}, got {label_loss!r}")
    if label_loss != "auto":
        if label_loss == "soft_ce" and summary.soft and not _is_distribution(summary.labels.float()):
            raise InvalidInputError("soft_ce needs soft labels that are class probabilities (non-negative, rows "
                                    "summing to 1); these are regression targets: use label_loss='mse'")
        return label_loss
    if not summary.soft:
        return "ce"
    if summary.method in SOFT_LABEL_LOSS and (SOFT_LABEL_LOSS[summary.method] != "soft_ce"
                                              or _is_distribution(summary.labels.float())):
        return SOFT_LABEL_LOSS[summary.method]
    if summary.method in KERNEL_LABEL_METHODS or not _is_distribution(summary.labels.float()):
        return "mse"
    return "soft_ce"


def label_targets(summary: Summary, label_loss: str) -> torch.Tensor:
    """The training targets for a resolved label loss: class indices (ce), or K×C float targets (mse: the soft
    labels as they are, one-hot for hard labels; soft_ce: the class probabilities, one-hot for hard labels)."""
    if label_loss == "ce":
        return summary.hard_labels.long()
    if summary.soft:
        return summary.labels.float()
    return F.one_hot(summary.labels.long(), summary.num_classes).float()


def label_loss_fn(name: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """ce: cross-entropy on class indices; mse: mean-squared error to the targets; soft_ce: cross-entropy to
    probability targets (the KL divergence to them up to a constant, so the same gradients)."""
    if name == "mse":
        return F.mse_loss
    if name in ("ce", "soft_ce"):
        return F.cross_entropy  # with float targets, torch's cross-entropy takes them as probabilities
    raise InvalidInputError(f"unknown label loss {name!r}; choose one of {', '.join(LABEL_LOSSES[1:])}")


def _loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The default when no loss is named: cross-entropy for class indices, MSE for K×C targets."""
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


def network_depth(protocol: NetworkProtocol, dataset: ImageSet, model: str) -> int:
    """Depth of an evaluation network: the protocol's, else the ConvNet's size rule (fixed-depth models get 3,
    which they ignore)."""
    return protocol.depth or (default_depth(dataset.image_shape[1]) if model == "convnet" else 3)


class TrainingDiverged(Exception):
    """An evaluation network's training loss became NaN or infinite (at the end of epoch `epoch`, 1-based)."""

    def __init__(self, epoch: int):
        super().__init__(f"the training loss became NaN or infinite in epoch {epoch}")
        self.epoch = int(epoch)


def train_network(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, protocol: NetworkProtocol,
                  epochs: int, generator: torch.Generator, augment: Optional[Augment] = None,
                  should_stop: Callable[[], bool] | None = None, lr_decay: bool = True, lr: float | None = None,
                  loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
                  on_epoch_end: Callable[[int, torch.optim.Optimizer], None] | None = None,
                  check_finite: bool = False,
                  relabel: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.nn.Module:
    """SGD with momentum and weight decay at `lr` (default: the protocol's), lr ÷10 at half the epochs (unless
    lr_decay=False, e.g. for the short inner loops of the distillers), shuffled mini-batches (x normalised), each
    augmented afresh when `augment` is given. `on_epoch_end(epoch, optimizer)` is called after every epoch.
    Nothing in the loop waits for the device (shuffles and augmentation draws reach it as queued copies), so the
    distillers' inner loops use it as it is. `check_finite`: raise `TrainingDiverged` at the end of the first
    epoch whose loss was not finite (one wait for the device per epoch), so a dead network is never reported
    as a trained one. `relabel`: each (augmented) batch's targets are `relabel(batch)` instead of its rows of `y`
    (a teacher's probabilities: see `distill_core.relabel`)."""
    device = next(model.parameters()).device
    x, y = x.to(device), y.to(device)
    base_lr = float(protocol.lr if lr is None else lr)
    loss_fn = loss_fn or _loss
    opt = torch.optim.SGD(model.parameters(), lr=base_lr, momentum=protocol.momentum,
                          weight_decay=protocol.weight_decay)
    model.train()
    n = len(x)
    finite = torch.ones((), dtype=torch.bool, device=device) if check_finite else None
    for epoch in range(epochs):
        if lr_decay and epoch == epochs // 2:
            for group in opt.param_groups:
                group["lr"] = base_lr * 0.1
        order = to_device(torch.randperm(n, generator=generator), device)  # a queued copy: no wait for the device
        for i in range(0, n, protocol.batch_size):
            idx = order[i:i + protocol.batch_size]
            xb = x[idx]
            if augment is not None:
                xb = augment(xb, generator)
            loss = loss_fn(model(xb), y[idx] if relabel is None else relabel(xb))
            if finite is not None:
                finite &= torch.isfinite(loss.detach())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        if finite is not None and not bool(finite):
            raise TrainingDiverged(epoch + 1)
        if on_epoch_end is not None:
            on_epoch_end(epoch, opt)
        if should_stop is not None and should_stop():
            break
    return model


# ------------------------------------------------------------------------------------------ records

def split_data(dataset: ImageSet, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (pixel space) and labels of the evaluation split: "test" or "val"."""
    if split not in SPLITS:
        raise InvalidInputError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    if callable(getattr(dataset, "split", None)):
        return dataset.split(split)
    if split == "test":
        return dataset.x_test, dataset.y_test
    x_val, y_val = getattr(dataset, "x_val", None), getattr(dataset, "y_val", None)
    if x_val is None or y_val is None:
        raise InvalidInputError(f"{dataset.name} has no validation split")
    return x_val, y_val


def architecture_name(model: str, width: int, depth: int) -> str:
    """'convnet-64x3', 'mlp-128x3'; LeNet has a fixed shape: 'lenet'; the field's AlexNet, VGG-11 and ResNet-18
    their name, with their channel scale when it is not the published one: 'resnet18', 'resnet18-x0.5'."""
    from .models import FIELD_MODELS, FIELD_WIDTH

    if model == "lenet":
        return model
    if model in FIELD_MODELS:
        return model if width == FIELD_WIDTH else f"{model}-x{width / FIELD_WIDTH:g}"
    return f"{model}-{width}x{depth}"


def distill_architecture(summary: Summary) -> str:
    """The network (or kernel) a summary was made with, from its meta: 'convnet-32x3', 'ntk-fc3 kernel',
    'pixels (selection space)'; 'unknown' when the meta does not say."""
    meta = summary.meta or {}
    cfg = meta.get("config") if isinstance(meta.get("config"), dict) else {}
    kernel = meta.get("kernel")
    if isinstance(kernel, dict):
        name = kernel.get("name", "kernel")
        return "rbf kernel" if name == "rbf" else f"{name}-fc{kernel.get('depth', '?')} kernel"
    if "width" in cfg and "depth" in cfg:
        return architecture_name("convnet", int(cfg["width"]), int(cfg["depth"]))
    if "space" in cfg:
        return f"{cfg['space']} (selection space)"
    return "unknown"


def learned_lr(summary: Summary, policy: EvalPolicy) -> float | None:
    """The summary's learned training learning rate when its method has one (MTT's syn_lr) and it is valid."""
    if policy.lr_from is None:
        return None
    value = (summary.meta or {}).get(policy.lr_from)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0:
        return float(value)
    return None


def network_lr(summary: Summary, policy: EvalPolicy, model: str, loss_name: str,
               forced: float | None = None) -> tuple[float, str]:
    """(the networks' learning rate, where it comes from): forced, else the summary's learned rate (MTT's
    syn_lr), else the MSE rate of this architecture (`MSE_LR`) when the targets are fitted with MSE, else the
    protocol's."""
    if forced is not None:
        return float(forced), "forced"
    learned = learned_lr(summary, policy)
    if learned is not None:
        return learned, f"summary meta {policy.lr_from} (learned)"
    if loss_name == "mse" and (policy.protocol, model) in MSE_LR:
        return MSE_LR[(policy.protocol, model)], f"MSE fit, {model}: {MSE_LR_WHY}"
    return PROTOCOLS[policy.protocol].lr, "protocol"


def _resolve_augment(augment: Augment | str | None, policy: EvalPolicy,
                     dataset_name: str) -> tuple[Optional[Augment], str]:
    """augment="auto" -> the policy's; None -> none; "dsa" | "dc" | "none" -> that one; a callable -> it."""
    if isinstance(augment, str):
        if augment == "auto":
            return make_augment(policy.augmentation, dataset_name), "policy"
        return make_augment(augment, dataset_name), "forced"
    if augment is None:
        return None, "forced"
    if callable(augment):
        return augment, "forced"
    raise InvalidInputError(f"augment must be 'auto', None, 'dsa', 'dc', 'none' or a callable, got {augment!r}")


def evaluate_summary(summary: Summary, dataset: ImageSet, protocol: str = "quick", model: str = "convnet",
                     reps: int | None = None, seed: int = 0, device: str | torch.device = "auto",
                     augment: Augment | str | None = "auto", epochs: int | None = None, split: str = "test",
                     label_loss: str = "auto", on_model_done: Callable[[int, float], None] | None = None,
                     should_stop: Callable[[], bool] | None = None,
                     on_epoch_end: Callable[[int, torch.optim.Optimizer], None] | None = None,
                     rep_indices: Sequence[int] | None = None, relabel: str = "none",
                     lr: float | None = None) -> EvalResult:
    """Train `reps` freshly initialised networks on the summary; mean ± std of their accuracy on `split`.

    `augment="auto"`, the epochs and the learning rate follow `eval_policy(summary.method, dataset.name,
    protocol)`; `augment=None` forces none, a name or a callable forces that one (epochs then follow whether
    there is an augmentation). `label_loss`: "auto" | "ce" | "mse" | "soft_ce" (see `resolve_label_loss`).
    Rep r uses seed `seed + r` for its initialisation, batch order and augmentation, so results repeat exactly;
    `rep_indices` trains only those of the `reps` networks (one rank's share, see `evaluate_sharded`).
    `relabel="teacher"` (summaries labelled by a teacher: rded, random-soft) relabels every augmented batch with
    that teacher while the network trains, RDED's own evaluation (`distill_core.relabel`); DSA unless forced;
    `relabel="teacher-cutmix"` adds CutMix after the augmentation, as RDED's students train.
    `lr` forces the networks' learning rate (default: see `network_lr`).
    `details` records everything that decides the figure (augmentation, epochs, lr, architectures, loss, split).
    """
    names = protocol_names()
    if protocol not in names:
        raise UnknownNameError(f"unknown protocol {protocol!r}; choose one of {', '.join(names)}")
    if model not in MODELS:
        raise UnknownNameError(f"unknown model {model!r}; choose one of {', '.join(MODELS)}")
    if reps is not None and (isinstance(reps, bool) or int(reps) < 1):
        raise InvalidInputError(f"reps must be a positive whole number, got {reps}")
    if epochs is not None and (isinstance(epochs, bool) or int(epochs) < 1):
        raise InvalidInputError(f"epochs must be a positive whole number, got {epochs}")
    if split not in SPLITS:
        raise InvalidInputError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    check_relabel(relabel)
    if tuple(summary.images.shape[1:]) != dataset.image_shape:
        raise InvalidInputError(f"the summary's images are {tuple(summary.images.shape[1:])} but {dataset.name} "
                                f"has {dataset.image_shape}")
    if summary.num_classes != dataset.num_classes:
        raise InvalidInputError(f"the summary has {summary.num_classes} classes but {dataset.name} has "
                                f"{dataset.num_classes}")
    if not torch.isfinite(summary.images).all():
        raise InvalidInputError("the summary's images contain NaN or infinite values")
    if summary.soft and not torch.isfinite(summary.labels).all():
        raise InvalidInputError("the summary's labels contain NaN or infinite values")
    dev = resolve_device(device)
    if protocol in CUSTOM_PROTOCOLS:
        if relabel != "none":
            raise InvalidInputError(f"relabel={relabel!r} trains networks; the {protocol!r} protocol trains none")
        fn, _ = CUSTOM_PROTOCOLS[protocol]
        return fn(summary, dataset, device=dev, seed=seed, reps=reps, model=model, split=split)

    proto = PROTOCOLS[protocol]
    policy = eval_policy(summary.method, dataset.name, protocol)
    relabeller, relabel_record = None, {"relabel": "none"}
    if relabels(relabel):
        if label_loss not in ("auto", "soft_ce"):
            raise InvalidInputError(f"relabel={relabel!r} trains on the teacher's probabilities with soft_ce, "
                                    f"not {label_loss}")
        relabeller, relabel_record = teacher_relabeller(summary, dataset, dev, mode=relabel)
        label_loss = "soft_ce"
        if isinstance(augment, str) and augment == "auto":  # RDED augments every batch before relabelling it
            augment, relabel_record["augmentation_why"] = "dsa", RELABEL_AUGMENT_WHY
    aug, aug_source = _resolve_augment(augment, policy, dataset.name)
    if relabel_record.get("augmentation_why"):
        aug_source = "relabel"
    if relabel == "teacher-cutmix":  # RDED's students: CutMix after the augmentation, the teacher labels the mix
        aug = ThenCutMix(aug)
    loss_name = resolve_label_loss(label_loss, summary)
    reps = int(reps or proto.reps)
    if epochs is not None:
        n_epochs = int(epochs)
    else:
        n_epochs = proto.epochs_augmented if aug is not None else proto.epochs
    if lr is not None and not (isinstance(lr, (int, float)) and not isinstance(lr, bool) and math.isfinite(lr)
                               and lr > 0):
        raise InvalidInputError(f"lr must be a positive number, got {lr!r}")
    lr, lr_source = network_lr(summary, policy, model, loss_name, forced=lr)
    x_eval, y_eval = split_data(dataset, split)
    x = dataset.normalize(summary.images.float())
    y = label_targets(summary, loss_name)
    x_eval = dataset.normalize(x_eval)
    loss_fn = label_loss_fn(loss_name)
    accs: list[float] = []
    diverged: list[dict[str, int]] = []
    net_depth = network_depth(proto, dataset, model)
    start = time.perf_counter()
    if rep_indices is not None and any(not 0 <= int(r) < reps for r in rep_indices):
        raise InvalidInputError(f"rep_indices must lie in 0..{reps - 1}, got {list(rep_indices)}")
    for r in (range(reps) if rep_indices is None else [int(i) for i in rep_indices]):
        net = build_seeded(dataset, model, seed=seed + r, device=dev, width=proto.width, depth=net_depth)
        gen = make_generator(seed + r)
        try:
            train_network(net, x, y, proto, n_epochs, gen, augment=aug, should_stop=should_stop, lr=lr,
                          loss_fn=loss_fn, on_epoch_end=on_epoch_end, check_finite=True, relabel=relabeller)
        except TrainingDiverged as exc:  # its accuracy is what the dead network scores; the record says why
            diverged.append({"network": r, "epoch": exc.epoch})
        accs.append(accuracy(net, x_eval, y_eval))
        if on_model_done is not None:
            on_model_done(r, accs[-1])
        if should_stop is not None and should_stop():
            break
    seconds = time.perf_counter() - start
    details = {
        "split": split,
        "augmentation": describe_augment(aug),
        "augmentation_source": aug_source,
        "epochs": n_epochs,
        "lr": lr,
        "lr_source": lr_source,
        "lr_schedule": "÷10 at half",
        "momentum": proto.momentum,
        "weight_decay": proto.weight_decay,
        "batch_size": proto.batch_size,
        "width": proto.width,
        "depth": net_depth,
        "eval_model": architecture_name(model, proto.width, net_depth),
        "distill_model": distill_architecture(summary),
        "label_loss": loss_name,
        "policy": policy.why,
        "diverged": diverged,
        **relabel_record,
    }
    return EvalResult(protocol, model, len(accs), float(np.mean(accs)), float(np.std(accs)), accs, seconds,
                      seconds / max(1, len(accs)), details)


def network_reps(protocol: str, reps: int | None = None) -> int | None:
    """How many networks a network protocol trains (`reps`, else its default); None for a registered protocol
    that trains no networks (e.g. `krr`), which is one piece of work."""
    if protocol not in PROTOCOLS:
        return None
    return int(reps or PROTOCOLS[protocol].reps)


def evaluate_sharded(dist: "Dist", summary: Summary, dataset: ImageSet, protocol: str = "quick",
                     model: str = "convnet", reps: int | None = None, seed: int = 0,
                     device: str | torch.device = "auto", split: str = "test", relabel: str = "none") -> EvalResult:
    """`evaluate_summary` with its networks spread over the ranks of `dist` (rank r trains networks r, r + N,
    ...; network i is seeded `seed + i` wherever it runs), the accuracies gathered on every rank: the same
    figures as one process. `seconds` is the wall time; `seconds_per_model` the mean training time of one."""
    n = network_reps(protocol, reps)
    if not dist.enabled or n is None:
        return dist.map_items(1, lambda _: evaluate_summary(summary, dataset, protocol, model=model, reps=reps,
                                                            seed=seed, device=device, split=split, relabel=relabel),
                             "evaluation")[0]
    start = time.perf_counter()
    parts = dist.map_items(n, lambda r: evaluate_summary(summary, dataset, protocol, model=model, reps=n, seed=seed,
                                                         device=device, split=split, rep_indices=[r],
                                                         relabel=relabel),
                           "evaluation")
    accs = [p.accs[0] for p in parts]
    details = dict(parts[0].details, diverged=[d for p in parts for d in p.details.get("diverged", [])])
    return EvalResult(parts[0].protocol, parts[0].model, n, float(np.mean(accs)), float(np.std(accs)), accs,
                      time.perf_counter() - start, sum(p.seconds for p in parts) / n, details)

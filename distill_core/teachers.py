"""Teacher networks: a ConvNet trained on the real training split, used by the decoupled methods (`rded`) to score
crops and to relabel images with soft labels.

A teacher is identified by the training split's fingerprint (`embed.dataset_key`) and its recipe (`TeacherSpec`),
and cached on disk under ``<root>/<dataset key>/<recipe>.pt``, where root is ``$DISTILL_TEACHERS_DIR`` or
``~/.cache/distill-lab/teachers`` — the same scheme as MTT's experts (`distill_core.experts`). The file holds
``{"state": state_dict, "meta": {...}}``, is loaded with ``weights_only=True``, and is written under a temporary
name and renamed into place, so an interrupted training never leaves a half-written teacher. The teacher is
always trained from `spec.seed`, so a cache is the same whichever process filled it.

The recipe follows RDED's small-image teacher, a ConvNet-3 with BatchNorm (RDED's `conv3`; Sun et al., CVPR 2024,
github.com/LINs-lab/RDED `synthesize/utils.py`), trained with SGD (momentum 0.9, weight decay 5e-4, lr ÷10 at half).
RDED ships pretrained teachers without their training recipe; the epochs here are this project's choice.
"""
from __future__ import annotations

import os
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Optional

import torch
import torch.nn.functional as F

from .atomic import write_atomically
from .augment import make_augment
from .data import ImageSet
from .device import make_generator, resolve_device
from .errors import InvalidInputError, RunWriteError
from .evaluate import NetworkProtocol, accuracy, split_data, train_network
from .models import build_seeded

TEACHERS_DIR_ENV = "DISTILL_TEACHERS_DIR"
TEACHER_AUGMENTS = ("none", "dsa")  # how a teacher's training batches are augmented


def default_teachers_root() -> Path:
    return Path(os.environ.get(TEACHERS_DIR_ENV) or Path.home() / ".cache" / "distill-lab" / "teachers")


@dataclass(frozen=True)
class TeacherSpec:
    """How a teacher is trained: ConvNet-`depth` of `width` channels with `norm`, `epochs` of SGD at `lr` on at
    most `max_train` training images (a seeded class-balanced sample; 0: all of them), each batch augmented by
    `augment` ("none" or "dsa", as RDED's teachers train on augmented views)."""

    width: int = 64
    depth: int = 3
    norm: str = "batchnorm"
    epochs: int = 3
    lr: float = 0.01
    batch_size: int = 256
    max_train: int = 0
    seed: int = 0
    augment: str = "none"

    def validate(self) -> None:
        if self.width < 1 or self.depth < 1:
            raise InvalidInputError("the teacher's width and depth must be at least 1")
        if self.epochs < 1:
            raise InvalidInputError(f"the teacher needs at least 1 epoch, got {self.epochs}")
        if not self.lr > 0:
            raise InvalidInputError(f"the teacher's learning rate must be positive, got {self.lr}")
        if self.batch_size < 1 or self.max_train < 0:
            raise InvalidInputError("the teacher's batch size must be at least 1 and max_train not negative")
        if self.augment not in TEACHER_AUGMENTS:
            raise InvalidInputError(f"the teacher's augmentation must be one of {', '.join(TEACHER_AUGMENTS)}, "
                                    f"got {self.augment!r}")

    def key(self) -> str:
        return (f"convnet-w{self.width}-d{self.depth}-{self.norm}_sgd-lr{self.lr:g}-b{self.batch_size}"
                f"-e{self.epochs}_n{self.max_train or 'all'}_s{self.seed}"
                + ("" if self.augment == "none" else f"_aug-{self.augment}"))

    def path(self, dataset_key: str, root: str | os.PathLike | None = None) -> Path:
        safe = re.sub(r"[^A-Za-z0-9._-]+", "-", dataset_key).strip("-")[-80:]
        return Path(root or default_teachers_root()) / safe / f"{self.key()}.pt"


@dataclass
class Teacher:
    """A trained teacher (in eval mode, frozen) and where it came from."""

    model: torch.nn.Module
    spec: TeacherSpec
    path: Path
    trained: bool              # False: loaded from the cache
    seconds: float
    meta: dict

    @torch.no_grad()
    def logits(self, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
        """The teacher's logits for normalised images (CPU float32), batch by batch."""
        device = next(self.model.parameters()).device
        out = [self.model(x[i:i + batch_size].to(device)).float().cpu() for i in range(0, len(x), batch_size)]
        return torch.cat(out) if out else torch.zeros(0)

    def soft_labels(self, x: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
        """Class probabilities softmax(logits / T) of normalised images: the teacher's relabelling."""
        return F.softmax(self.logits(x) / float(temperature), dim=1)

    def to_dict(self) -> dict:
        return {"path": str(self.path), "trained": self.trained, "seconds": round(self.seconds, 3),
                **{k: v for k, v in self.meta.items() if k in ("val_acc", "train_images", "epochs")}}


def training_indices(dataset: ImageSet, max_train: int, seed: int) -> torch.Tensor:
    """All training indices, or a seeded class-balanced sample of at most `max_train` (sorted)."""
    n = len(dataset.y_train)
    if max_train <= 0 or max_train >= n:
        return torch.arange(n)
    generator = make_generator(seed)
    per_class = max(1, max_train // dataset.num_classes)
    picks = []
    for c in range(dataset.num_classes):
        idx = torch.nonzero(dataset.y_train == c, as_tuple=False).flatten()
        picks.append(idx[torch.randperm(len(idx), generator=generator)[:per_class]])
    return torch.sort(torch.cat(picks)).values


def train_teacher(dataset: ImageSet, spec: TeacherSpec, device: str | torch.device = "cpu",
                  on_epoch: Optional[Callable[[int], None]] = None,
                  should_stop: Optional[Callable[[], bool]] = None) -> tuple[torch.nn.Module, int, bool]:
    """Train a teacher on the training split; (model in eval mode, images trained on, finished all epochs)."""
    dev = resolve_device(device)
    net = build_seeded(dataset, "convnet", seed=spec.seed, device=dev, width=spec.width, depth=spec.depth,
                       norm=spec.norm)
    idx = training_indices(dataset, spec.max_train, spec.seed)
    x = dataset.normalize(dataset.x_train[idx])
    y = dataset.y_train[idx]
    protocol = NetworkProtocol("teacher", "RDED teacher", lr=spec.lr, batch_size=spec.batch_size)
    generator = make_generator(spec.seed)
    done = 0

    def epoch_end(epoch: int, opt: torch.optim.Optimizer) -> None:
        nonlocal done
        done = epoch + 1
        if on_epoch is not None:
            on_epoch(done)

    train_network(net, x, y, protocol, spec.epochs, generator, augment=make_augment(spec.augment, dataset.name),
                  should_stop=should_stop, on_epoch_end=epoch_end)
    net.eval()
    net.requires_grad_(False)
    return net, len(idx), done >= spec.epochs


def teacher_stored(dataset: ImageSet, spec: TeacherSpec | None = None,
                   root: str | os.PathLike | None = None) -> bool:
    """Whether a teacher of this training split and recipe is stored (`ensure_teacher` would load, not train, it;
    an unreadable file, which it retrains, still counts here). Looks at the file only."""
    from .embed import dataset_key

    return (spec or TeacherSpec()).path(dataset_key(dataset), root).is_file()


def ensure_teacher(dataset: ImageSet, spec: TeacherSpec | None = None, root: str | os.PathLike | None = None,
                   device: str | torch.device = "cpu", on_progress: Optional[Callable[[int], None]] = None,
                   should_stop: Optional[Callable[[], bool]] = None) -> Teacher:
    """The cached teacher of this training split and recipe, or a freshly trained (and stored) one.

    A teacher stopped part-way (`should_stop`) is returned but not stored. An unreadable cache file is retrained.
    """
    spec = spec or TeacherSpec()
    spec.validate()
    from .embed import dataset_key  # the training split's fingerprint: a teacher of another split is not reused

    path = spec.path(dataset_key(dataset), root)
    dev = resolve_device(device)
    start = time.perf_counter()
    cached = _load(path, dataset, spec, dev)
    if cached is not None:
        model, meta = cached
        return Teacher(model, spec, path, False, time.perf_counter() - start, meta)
    try:  # an unwritable folder is reported before training, not after
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunWriteError(f"cannot store the teacher in {path.parent}: {exc.strerror or exc}") from None
    model, n_train, finished = train_teacher(dataset, spec, dev, on_progress, should_stop)
    meta = {"dataset": dataset.name, "train_images": n_train, "epochs": spec.epochs, **asdict(spec)}
    try:
        x_val, y_val = split_data(dataset, "val")
        meta["val_acc"] = round(accuracy(model, dataset.normalize(x_val), y_val), 4)
    except InvalidInputError:  # a dataset without a validation split
        pass
    if finished:
        _save(path, model, meta)
    return Teacher(model, spec, path, True, time.perf_counter() - start, meta)


def _save(path: Path, model: torch.nn.Module, meta: dict) -> None:
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    try:
        write_atomically(path, lambda tmp: torch.save({"state": state, "meta": meta}, tmp))
    except OSError as exc:
        raise RunWriteError(f"cannot store the teacher in {path.parent}: {exc.strerror or exc}") from None


def _load(path: Path, dataset: ImageSet, spec: TeacherSpec, device: torch.device) -> tuple[torch.nn.Module, dict] | None:
    """The stored teacher, or None when there is none or the file is not a readable teacher of this shape."""
    if not path.is_file():
        return None
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
        net = build_seeded(dataset, "convnet", seed=spec.seed, device="cpu", width=spec.width, depth=spec.depth,
                           norm=spec.norm)
        net.load_state_dict(data["state"])
        meta = dict(data.get("meta") or {})
    except Exception:  # truncated, foreign or mismatched file: retrain
        return None
    if not all(torch.isfinite(p).all() for p in net.state_dict().values() if p.is_floating_point()):
        return None
    net.to(device).eval()
    net.requires_grad_(False)
    return net, meta

"""`kip`: Kernel Inducing Points (Nguyen, Chen & Lee, ICLR 2021), and the `krr` evaluation protocol.

KIP learns a support set (images and, optionally, labels) such that kernel ridge regression *from* the support set
predicts a freshly drawn, class-balanced batch of real training images well:

    loss = ½ · mean‖K_ts (K_ss + λ · tr(K_ss)/n · I)⁻¹ y_s − y_t‖²

with the closed-form NTK (or NNGP / RBF) of `distill_core.kernels`. Labels are centred one-hot vectors
(1 − 1/C for the class, −1/C elsewhere). Images are optimised with Adam in the normalised space the networks see
and reported in pixel space. The paper's second algorithm, Label Solve (`label_solve.py`), is an option:
`label_solve=after` gives the summary the closed-form optimal labels for its final images; `during` also
replaces the labels by solved ones every `label_solve_every` steps, so the images are learned for them. The same
kernel then judges any summary through the `krr` protocol.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from ..data import ImageSet
from ..device import make_generator, to_device
from ..errors import InvalidInputError
from ..evaluate import EvalResult, register_protocol, split_data
from ..kernels import KERNEL_NAMES, KernelSpec, krr_predict, ridge_solve
from ..summary import Summary
from ._distiller import INIT_FIELD
from .base import Method, MethodConfig, check_init, initial_pick, register_method
from .label_solve import DEFAULT_TARGET_SIZE, LabelSolver, SolvedLabelSummary, centred_one_hot

__all__ = ["KIP", "KIPConfig", "centred_one_hot", "evaluate_krr", "random_shift", "shift_images"]


def shift_images(x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor) -> torch.Tensor:
    """Translate image i down by dy[i] and right by dx[i] whole pixels (negative: up / left), filling the
    uncovered border with the nearest edge pixel: out[i, :, r, c] = x[i, :, clamp(r − dy_i), clamp(c − dx_i)]."""
    n, c, h, w = x.shape
    dev = x.device
    rows = (torch.arange(h, device=dev)[None] - dy.to(dev)[:, None]).clamp(0, h - 1).view(n, 1, h, 1)
    cols = (torch.arange(w, device=dev)[None] - dx.to(dev)[:, None]).clamp(0, w - 1).view(n, 1, 1, w)
    return x[torch.arange(n, device=dev).view(n, 1, 1, 1), torch.arange(c, device=dev).view(1, c, 1, 1), rows, cols]


def random_shift(x: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Translate each image by a random whole number of pixels in [−max_shift, max_shift] along each axis (drawn
    from `generator`: rows first, then columns), edge pixels filling in — a cheap augmentation that stretches a
    small target set."""
    s = int(max_shift)
    dy = torch.randint(-s, s + 1, (len(x),), generator=generator)
    dx = torch.randint(-s, s + 1, (len(x),), generator=generator)
    return shift_images(x, to_device(dy, x.device), to_device(dx, x.device))


LABEL_SOLVE_MODES = ("none", "after", "during")
NORMALISED_COPY_BYTES = 1 << 30  # KIP keeps a normalised copy of a training set up to this size (1 GiB)


def keeps_normalised_copy(num_train: int, pixels: int, itemsize: int, device: torch.device) -> bool:
    """Whether KIP holds the normalised training set (always on CUDA; elsewhere up to NORMALISED_COPY_BYTES) —
    read by KIP itself and by the memory estimate."""
    return device.type == "cuda" or num_train * pixels * itemsize <= NORMALISED_COPY_BYTES


@dataclass
class KIPConfig(MethodConfig):
    """KIP settings. `ridge` is relative: λ · tr(K)/n. `target_batch` real images (class-balanced) per step."""

    kernel: str = "ntk"            # ntk | nngp | rbf
    depth: int = 3                 # hidden ReLU layers of the fully connected network behind ntk/nngp
    depth_ipc1: int = 0            # hidden layers at IPC 1 (0: `depth`); the profiles table deepens the kernel
                                   # at IPC 1 on 28×28 greyscale sets (chosen on val)
    w_var: float = 2.0             # weight variance σ_w²
    b_var: float = 0.01            # bias variance σ_b²
    gamma: float = 1.0             # rbf: exp(−gamma · ‖x − y‖² / d)
    ridge: float = 1e-6
    lr: float = 0.01               # Adam, images (normalised space), IPC 2 and up
    lr_ipc1: float = 0.1           # Adam, images, at IPC 1: one image must stand for a whole class, so it moves
                                   # further from its real start (mnist-5k, quick: 72.8 % vs 60.9 % at lr 0.01);
                                   # the profiles table raises both rates on 28×28 greyscale sets (chosen on val)
    label_lr: float = 0.01         # Adam, labels (when learned)
    half_life: int = 0          # steps over which both learning rates halve (0: constant)
    learn_labels: bool = False
    target_batch: int = 1000
    init: str = field(default="real", metadata=INIT_FIELD)  # real | herding | noise (a select box in the app)
    shift: int = 0                 # random translations of the target images by up to this many pixels
    clip: bool = True              # keep the images inside the pixel range [0, 1]
    float64: bool = False          # optimise in double precision (slower; for checks)
    label_solve: str = "none"      # none | after: the summary's labels are solved (Label Solve) for the final
                                   # images | during: also every `label_solve_every` steps, and KIP goes on
                                   # with the solved labels
    label_solve_every: int = 100
    label_solve_target: int = DEFAULT_TARGET_SIZE  # real training images (class-balanced) the labels fit

    @classmethod
    def for_dataset(cls, dataset_name: str, profile: str = "fast", ipc: int | None = None) -> "KIPConfig":
        """The profiles table's KIP settings for the dataset (fast: a target batch of 500 on digits, whose
        1,437 training images of 8×8 it still covers well)."""
        from ..profiles import config_kwargs

        cfg = cls(**config_kwargs(cls, "kip", dataset_name, profile, ipc))
        cfg.profile = profile
        return cfg

    def validate(self) -> None:
        super().validate()
        if self.kernel not in KERNEL_NAMES:
            raise InvalidInputError(f"kernel must be one of {', '.join(KERNEL_NAMES)}, got {self.kernel!r}")
        check_init(self.init)
        if self.target_batch < 1:
            raise InvalidInputError(f"target_batch must be at least 1, got {self.target_batch}")
        if self.w_var <= 0 or self.gamma <= 0:
            raise InvalidInputError("w_var and gamma must be positive")
        if self.depth > 64 or self.depth_ipc1 > 64:
            raise InvalidInputError(f"depth {max(self.depth, self.depth_ipc1)} is too large (at most 64 hidden layers)")
        if self.label_solve not in LABEL_SOLVE_MODES:
            raise InvalidInputError(f"label_solve must be one of {', '.join(LABEL_SOLVE_MODES)}, "
                                    f"got {self.label_solve!r}")
        if self.label_solve_every < 1 or self.label_solve_target < 1:
            raise InvalidInputError("label_solve_every and label_solve_target must be at least 1")

    def depth_at(self, ipc: int | None) -> int:
        """The kernel's hidden layers at an IPC: `depth_ipc1` at IPC 1 when it is set (not 0), else `depth`."""
        return self.depth_ipc1 if ipc == 1 and self.depth_ipc1 > 0 else self.depth

    def kernel_spec(self, ipc: int | None = None) -> KernelSpec:
        """The kernel KIP distils with at `ipc` (None: the IPC-free `depth`, the `krr` protocol's judge)."""
        return KernelSpec(self.kernel, self.depth_at(ipc), self.w_var, self.b_var, self.gamma)


@register_method
class KIP(Method):
    name = "kip"
    kind = "distiller"
    family = "kernel"
    description = ("Kernel Inducing Points: learn images (and optionally labels) whose kernel ridge regression "
                   "with a wide network's NTK predicts real images well.")
    Config = KIPConfig
    default_steps = 1000

    def __init__(self, dataset: ImageSet, ipc: int, config: KIPConfig | None = None, seed: int = 0,
                 device: str | torch.device = "cpu"):
        super().__init__(dataset, ipc, config, seed, device)
        cfg: KIPConfig = self.config  # type: ignore[assignment]
        self.spec = cfg.kernel_spec(self.ipc)
        self.dtype = torch.float64 if cfg.float64 else torch.float32
        if self.device.type == "mps" and self.dtype == torch.float64:
            raise InvalidInputError("float64 is not supported on Apple MPS; use float64=false or --device cpu")
        c = dataset.num_classes
        labels = torch.arange(c).repeat_interleave(self.ipc)
        idx = initial_pick(dataset, self.ipc, cfg.init, self.generator)
        if idx is not None:
            start = dataset.normalize(dataset.x_train[idx])
            self.init_indices = idx.tolist()
        else:
            start = torch.randn((len(labels), *dataset.image_shape), generator=self.generator)
            self.init_indices = []
        self.x = start.to(self.device, self.dtype).requires_grad_(True)
        self.y = centred_one_hot(labels, c, self.dtype).to(self.device).requires_grad_(cfg.learn_labels)
        self.labels = labels
        groups: list[dict[str, Any]] = [{"params": [self.x], "lr": cfg.lr_ipc1 if self.ipc == 1 else cfg.lr}]
        if cfg.learn_labels:
            groups.append({"params": [self.y], "lr": cfg.label_lr})
        self.opt = torch.optim.Adam(groups)
        self._base_lrs = [g["lr"] for g in groups]
        # pixel range [0, 1] in the normalised space, per channel (for clipping); a ZCA-whitened set has no such
        # box, so its images are clipped in pixel space and mapped back
        self._whitened = getattr(dataset, "whitening", None) is not None
        if not self._whitened:
            lo = dataset.normalize(torch.zeros(1, dataset.channels, 1, 1))
            hi = dataset.normalize(torch.ones(1, dataset.channels, 1, 1))
            self._lo, self._hi = lo.to(self.device, self.dtype), hi.to(self.device, self.dtype)
        self._per_class = max(1, cfg.target_batch // c)
        self._class_idx = [dataset.class_indices(k) for k in range(c)]
        # the normalised training set is kept (on the device) when it is small enough, so a target batch is one
        # row gather: no per-step normalisation and, off the CPU, no host gather and copy. On CUDA the indices are
        # drawn there too (a device generator); elsewhere from the run's generator, as before.
        self._x_dev: torch.Tensor | None = None
        self._index_gen = self.generator
        if keeps_normalised_copy(len(dataset.y_train), math.prod(dataset.image_shape), self.dtype.itemsize,
                                 self.device):
            self._x_dev = dataset.normalize(dataset.x_train).to(self.device, self.dtype)
            self._y_dev = dataset.y_train.to(self.device)
        if self.device.type == "cuda":
            self._class_idx = [i.to(self.device) for i in self._class_idx]
            self._index_gen = make_generator(self.seed + 104729, self.device)
        self.solver: LabelSolver | None = None
        if cfg.label_solve != "none":
            # its own generator: the target batches KIP draws stay those of a run without label solving
            gen = torch.Generator().manual_seed(self.seed + 7919)
            self.solver = LabelSolver(dataset, self.spec, cfg.ridge, cfg.label_solve_target, gen, self.device)
            if self.solver.size < len(labels):
                raise InvalidInputError(f"label solve needs at least as many target images as support images; "
                                        f"label_solve_target {cfg.label_solve_target} gives {self.solver.size}")

    def _target_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """A class-balanced batch of real training images (normalised) and their labels, fresh every step."""
        picks = []
        gen = self._index_gen
        for idx in self._class_idx:
            take = min(self._per_class, len(idx))
            picks.append(idx[torch.randperm(len(idx), generator=gen, device=gen.device)[:take]])
        idx = torch.cat(picks)
        # index_select: a row gather several times faster than advanced indexing of an N×C×H×W tensor
        if self._x_dev is not None:
            x, y = self._x_dev.index_select(0, idx), self._y_dev[idx]
        else:
            x, y = self.dataset.normalize(self.dataset.x_train.index_select(0, idx)), self.dataset.y_train[idx]
        if self.config.shift > 0:  # type: ignore[attr-defined]
            x = random_shift(x, self.config.shift, self.generator)  # type: ignore[attr-defined]
        return x.to(self.device, self.dtype), y.to(self.device)

    def loss(self, x_target: torch.Tensor, y_target_idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """KRR loss from the support set to one target batch, and the batch's predictions."""
        # two kernels rather than one of cat([x, x_t]) with x: the same forward work, but the backward of the
        # Gram product then skips the gradient for the target images (a third less matrix work at IPC 50)
        k_ss = self.spec(self.x)                # its diagonal is exact (closed form), even in float32
        k_ts = self.spec(x_target, self.x)
        alpha = ridge_solve(k_ss, self.y, self.config.ridge)  # type: ignore[attr-defined]
        pred = k_ts @ alpha
        y_t = centred_one_hot(y_target_idx, self.dataset.num_classes, self.dtype).to(self.device)
        return 0.5 * (pred - y_t).square().sum(1).mean(), pred

    def _step(self) -> dict[str, float]:
        half_life = self.config.half_life  # type: ignore[attr-defined]
        if half_life > 0:
            for group, base in zip(self.opt.param_groups, self._base_lrs):
                group["lr"] = base * 0.5 ** (self.steps_done / half_life)
        cfg: KIPConfig = self.config  # type: ignore[assignment]
        if self.solver is not None and cfg.label_solve == "during" and self.steps_done % cfg.label_solve_every == 0:
            with torch.no_grad():
                self.y.copy_(self.solver.solve_normalised(self.x).to(self.device, self.dtype))
        x_t, y_t = self._target_batch()
        loss, pred = self.loss(x_t, y_t)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        if self.config.clip:  # type: ignore[attr-defined]
            with torch.no_grad():
                if self._whitened:
                    self.x.copy_(self.dataset.normalize(self.dataset.denormalize(self.x).clamp(0.0, 1.0)))
                else:
                    self.x.copy_(torch.maximum(torch.minimum(self.x, self._hi), self._lo))
        acc = (pred.detach().argmax(1) == y_t).float().mean()
        return {"loss": loss.detach(), "acc": acc}  # tensors: read when a log row is due, not every step

    def summary(self) -> Summary:
        cfg: KIPConfig = self.config  # type: ignore[assignment]
        images = self.dataset.denormalize(self.x.detach().float().cpu())
        meta = {"kernel": self.spec.to_dict(), "ridge": cfg.ridge, "init": cfg.init, "init_indices": self.init_indices,
                "steps": self.steps_done}
        if self.solver is not None:  # labels solved for these images when first read
            meta.update(label_loss="mse", label_solve=cfg.label_solve, target_size=self.solver.size)
            base = self._make_summary(images, self.labels.clone(), **meta)
            solver = self.solver
            return SolvedLabelSummary(base.images, None, base.method, base.dataset, base.ipc, base.class_names,
                                      base.meta, solver=lambda im: solver.solve(im).float())
        if cfg.learn_labels:
            return self._make_summary(images, self.y.detach().float().cpu(), label_loss="mse", **meta)
        return self._make_summary(images, self.labels.clone(), **meta)


# --------------------------------------------------------------------------------------- krr protocol

def evaluate_krr(summary: Summary, dataset: ImageSet, *, device: torch.device | str = "cpu", seed: int = 0,
                 reps: int | None = None, model: str = "convnet", split: str = "test",
                 block: int = 2048) -> EvalResult:
    """Kernel ridge regression from the summary to the test (or validation) split in float64; argmax accuracy.

    The kernel and ridge come from the summary's meta when a KIP or Label Solve run recorded them, else KIP's
    defaults for the dataset — so every method's summary is judged by the same kernel KIP would use. Soft labels
    are regressed as they are, hard labels as centred one-hot vectors. Deterministic: `seed`, `reps` and `model`
    do not apply.
    """
    start = time.perf_counter()
    defaults = KIPConfig.for_dataset(dataset.name)
    spec = KernelSpec.from_dict(summary.meta["kernel"]) if isinstance(summary.meta.get("kernel"), dict) \
        else defaults.kernel_spec()
    ridge = float(summary.meta.get("ridge", defaults.ridge))
    dev = torch.device(device)
    if dev.type == "mps":  # no float64 on MPS
        dev = torch.device("cpu")
    y = summary.labels.double() if summary.soft else centred_one_hot(summary.labels, dataset.num_classes,
                                                                     torch.float64)
    x_s = dataset.normalize(summary.images.double()).to(dev)
    x_eval, y_eval = split_data(dataset, split)
    x_q = dataset.normalize(x_eval.double()).to(dev)
    pred = krr_predict(spec, x_s, y.to(dev), x_q, ridge=ridge, dtype=torch.float64, block=block)
    acc = float((pred.argmax(1).cpu() == y_eval).double().mean())
    seconds = time.perf_counter() - start
    return EvalResult("krr", spec.label, 1, acc, 0.0, [acc], seconds, seconds,
                      {"kernel": spec.to_dict(), "ridge": ridge, "support": len(summary), "split": split,
                       "labels": "soft" if summary.soft else "hard"})


register_protocol("krr", evaluate_krr,
                  "kernel ridge regression to the test set with KIP's kernel (the NTK of a wide ReLU MLP)")

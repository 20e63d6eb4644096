"""`ls`: Label Solve, the second algorithm of the KIP paper (Nguyen, Chen & Lee, ICLR 2021).

For a fixed support set X_s, kernel ridge regression predicts the targets X_t with Φ y_s, where
Φ = K_ts (K_ss + λ̃ I)⁻¹ (λ̃ = ridge · tr(K_ss)/n, as in KIP). The KRR loss ‖Φ y_s − y_t‖² is quadratic in the
support labels, so its minimiser is in closed form: y_s* = Φ⁺ y_t. We compute it as (K_ss + λ̃ I) · w*, where
w* = argmin_w ‖K_ts w − y_t‖² is a least-squares solve of the tall m×n kernel (float64, rank-revealing): the
same labels when K_ts has full column rank (distinct support images, m ≥ n), no matrix inverse, and still a
minimiser of the loss when it does not.

The targets are a large class-balanced sample of the training split — all of it when it has at most
`target_size` images — with centred one-hot labels. The solved labels are soft (K×C floats in the centred
label space) and recorded with `label_loss: "mse"`: networks fit them with mean-squared error, `krr` regresses
them as they are. `ls` solves labels for a random support by default, or for any selector's picks
(`support=herding|kmeans|...`); KIP uses the same solve as its `label_solve` option.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable

import torch

from ..data import ImageSet
from ..errors import InvalidInputError
from ..kernels import KERNEL_NAMES, KernelSpec, kernel_matrix
from ..summary import Summary
from .base import METHODS, Method, MethodConfig, create_method, register_method

DEFAULT_TARGET_SIZE = 60000  # the whole training split of (Fashion-)MNIST; 60000×500 float64 kernel ≈ 240 MB


def centred_one_hot(labels: torch.Tensor, num_classes: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """One-hot targets shifted to mean zero: 1 − 1/C for the class, −1/C elsewhere (as in the KIP paper)."""
    return torch.nn.functional.one_hot(labels.long(), num_classes).to(dtype) - 1.0 / num_classes


def balanced_target_indices(dataset: ImageSet, max_size: int, generator: torch.Generator) -> torch.Tensor:
    """Training indices, class-balanced: up to max_size // C of each class (all of a class that has fewer).
    When every class fits, this is the whole training split, in order."""
    per_class = max(1, int(max_size) // dataset.num_classes)
    picks = []
    for c in range(dataset.num_classes):
        idx = dataset.class_indices(c)
        if len(idx) > per_class:
            idx = idx[torch.randperm(len(idx), generator=generator)[:per_class]].sort().values
        picks.append(idx)
    return torch.cat(picks)


def solve_weights(k_ts: torch.Tensor, y_target: torch.Tensor) -> torch.Tensor:
    """argmin_w ‖K_ts w − y_t‖² in float64 on the CPU (LAPACK gelsd: minimum norm, rank-revealing)."""
    a = k_ts.detach().to("cpu", torch.float64)
    b = y_target.detach().to("cpu", torch.float64)
    return torch.linalg.lstsq(a, b, driver="gelsd").solution


def regularised(k_ss: torch.Tensor, ridge: float) -> torch.Tensor:
    """K_ss + ridge · tr(K_ss)/n · I: the matrix KIP's and krr's ridge regression invert."""
    reg = ridge * torch.diagonal(k_ss).mean().clamp_min(1e-12)
    return k_ss + reg * torch.eye(len(k_ss), dtype=k_ss.dtype, device=k_ss.device)


def _kernels(spec: KernelSpec, x_support: torch.Tensor, x_target: torch.Tensor,
             block: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(K_ss, K_ts) in float64 on x_support's device."""
    xs = x_support.to(torch.float64)
    k_ss = spec(xs, dtype=torch.float64)
    k_ts = kernel_matrix(spec, x_target.to(xs.device), xs, block=block, dtype=torch.float64)
    return k_ss, k_ts


def _loss(k_ss: torch.Tensor, k_ts: torch.Tensor, y_support: torch.Tensor, y_target: torch.Tensor,
          ridge: float) -> float:
    """½ · mean over targets of ‖K_ts (K_ss + λ̃ I)⁻¹ y_s − y_t‖² (KIP's loss), in float64."""
    alpha = torch.linalg.solve(regularised(k_ss, ridge), y_support.to(k_ss.device, torch.float64))
    pred = (k_ts @ alpha).cpu()
    return float(0.5 * (pred - y_target.to(torch.float64)).square().sum(1).mean())


@torch.no_grad()
def solve_labels(spec: KernelSpec, x_support: torch.Tensor, x_target: torch.Tensor, y_target: torch.Tensor,
                 ridge: float, block: int = 4096) -> torch.Tensor:
    """The support labels (n×C, float64, CPU) that minimise ‖K_ts (K_ss + λ̃ I)⁻¹ y_s − y_t‖² for fixed images.

    x_support, x_target: normalised images (any float dtype; kernels in float64, on x_support's device).
    """
    if len(x_target) < len(x_support):
        raise InvalidInputError(f"label solve needs at least as many target images ({len(x_target)}) as support "
                                f"images ({len(x_support)})")
    k_ss, k_ts = _kernels(spec, x_support, x_target, block)
    return regularised(k_ss.cpu(), ridge) @ solve_weights(k_ts, y_target)


@torch.no_grad()
def krr_target_loss(spec: KernelSpec, x_support: torch.Tensor, y_support: torch.Tensor, x_target: torch.Tensor,
                    y_target: torch.Tensor, ridge: float, block: int = 4096) -> float:
    """½ · mean over targets of ‖K_ts (K_ss + λ̃ I)⁻¹ y_s − y_t‖², KIP's loss, in float64."""
    k_ss, k_ts = _kernels(spec, x_support, x_target, block)
    return _loss(k_ss, k_ts, y_support, y_target, ridge)


class LabelSolver:
    """Label Solve against a fixed target set of one dataset; called with support images in pixel space."""

    def __init__(self, dataset: ImageSet, spec: KernelSpec, ridge: float, target_size: int,
                 generator: torch.Generator, device: torch.device):
        self.dataset, self.spec, self.ridge = dataset, spec, float(ridge)
        self.device = torch.device("cpu") if device.type == "mps" else device  # no float64 on Apple MPS
        self.indices = balanced_target_indices(dataset, target_size, generator)
        # normalised float32 targets; each kernel block is promoted to float64 as it is computed
        self.x_target = dataset.normalize(dataset.x_train[self.indices]).to(self.device)
        self.y_target = centred_one_hot(dataset.y_train[self.indices], dataset.num_classes, torch.float64)

    @property
    def size(self) -> int:
        return len(self.indices)

    def normalised(self, images: torch.Tensor) -> torch.Tensor:
        return self.dataset.normalize(images.detach().to(torch.float64)).to(self.device)

    def solve(self, images: torch.Tensor) -> torch.Tensor:
        """Solved labels (K×C float64, CPU) for support images in pixel space."""
        return self.solve_normalised(self.normalised(images))

    def solve_normalised(self, x: torch.Tensor) -> torch.Tensor:
        """Solved labels for support images already in the normalised space."""
        return solve_labels(self.spec, x.detach().to(self.device), self.x_target, self.y_target, self.ridge)

    @torch.no_grad()
    def solve_and_compare(self, images: torch.Tensor, hard_labels: torch.Tensor) -> tuple[torch.Tensor, float, float]:
        """(solved labels, target loss with them, target loss with the centred one-hot labels), one kernel."""
        k_ss, k_ts = _kernels(self.spec, self.normalised(images), self.x_target, 4096)
        k_ss, k_ts = k_ss.cpu(), k_ts.cpu()
        labels = regularised(k_ss, self.ridge) @ solve_weights(k_ts, self.y_target)
        fixed = centred_one_hot(hard_labels, self.dataset.num_classes, torch.float64)
        return (labels, _loss(k_ss, k_ts, labels, self.y_target, self.ridge),
                _loss(k_ss, k_ts, fixed, self.y_target, self.ridge))

    def loss(self, images: torch.Tensor, labels: torch.Tensor) -> float:
        """KIP's loss on this target set for pixel-space support images and (soft or hard) labels."""
        y = labels if labels.dim() == 2 else centred_one_hot(labels, self.dataset.num_classes, torch.float64)
        return krr_target_loss(self.spec, self.normalised(images), y, self.x_target, self.y_target, self.ridge)


class SolvedLabelSummary(Summary):
    """A Summary whose soft labels are solved (Label Solve) for its own images the first time they are read.

    A distiller's summary is asked for at every step for its images alone (snapshots, the live grid); solving
    the labels there would cost a kernel against the whole target set per step. Reading `labels` (evaluation,
    saving, `detach` for another thread) solves once and keeps the result; images never change afterwards.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor | None, method: str, dataset: str, ipc: int,
                 class_names: list[str], meta: dict | None = None, *,
                 solver: Callable[[torch.Tensor], torch.Tensor] | None = None):
        # the arguments of Summary, in its order (dataclasses.replace and copies keep working), plus the solver
        if labels is None and solver is None:
            raise ValueError("a SolvedLabelSummary needs labels or a solver")
        self._solver = solver
        self._labels: torch.Tensor | None = None
        super().__init__(images, labels, method, dataset, ipc, class_names,  # type: ignore[arg-type]
                         dict(meta or {}))

    @property  # type: ignore[override]
    def labels(self) -> torch.Tensor:
        if self._labels is None:
            self._labels = self._solver(self.images).float().cpu()  # type: ignore[misc]
        return self._labels

    @labels.setter
    def labels(self, value: torch.Tensor | None) -> None:
        self._labels = value

    def detach(self) -> "SolvedLabelSummary":
        labels = None if self._labels is None else self._labels.detach().cpu().clone()
        return SolvedLabelSummary(self.images.detach().float().cpu().clone(), labels, self.method, self.dataset,
                                  self.ipc, list(self.class_names), dict(self.meta), solver=self._solver)


# ------------------------------------------------------------------------------------------- the method

def _kip_defaults(dataset_name: str, profile: str) -> MethodConfig:
    """KIP's settings for the dataset (its kernel and ridge are Label Solve's too)."""
    from .kip import KIPConfig

    if "profile" in inspect.signature(KIPConfig.for_dataset).parameters:
        return KIPConfig.for_dataset(dataset_name, profile=profile)  # type: ignore[call-arg]
    return KIPConfig.for_dataset(dataset_name)


def support_names() -> list[str]:
    """Methods `ls` can take its support images from: every registered selector but itself."""
    return sorted(n for n, cls in METHODS.items() if cls.kind == "selector" and n != LabelSolve.name)


@dataclass
class LabelSolveConfig(MethodConfig):
    """`support`: the selector that picks the images. Kernel and (relative) ridge as KIP's for the dataset.
    `target_size`: at most this many real training images (class-balanced) to solve against."""

    support: str = "random"
    kernel: str = "ntk"
    depth: int = 3
    w_var: float = 2.0
    b_var: float = 0.01
    gamma: float = 1.0
    ridge: float = 1e-6
    target_size: int = DEFAULT_TARGET_SIZE

    @classmethod
    def for_dataset(cls, dataset_name: str, profile: str = "fast") -> "LabelSolveConfig":
        kip = _kip_defaults(dataset_name, profile)
        return cls(**{k: getattr(kip, k) for k in ("kernel", "depth", "w_var", "b_var", "gamma", "ridge")})

    def validate(self) -> None:
        super().validate()
        if self.kernel not in KERNEL_NAMES:
            raise InvalidInputError(f"kernel must be one of {', '.join(KERNEL_NAMES)}, got {self.kernel!r}")
        names = support_names()
        if self.support not in names:
            raise InvalidInputError(f"support must be one of {', '.join(names)}, got {self.support!r}")
        if self.target_size < 1:
            raise InvalidInputError(f"target_size must be at least 1, got {self.target_size}")
        if self.w_var <= 0 or self.gamma <= 0:
            raise InvalidInputError("w_var and gamma must be positive")

    def kernel_spec(self) -> KernelSpec:
        return KernelSpec(self.kernel, self.depth, self.w_var, self.b_var, self.gamma)


@register_method
class LabelSolve(Method):
    name = "ls"
    kind = "selector"
    family = "kernel"
    description = ("Label Solve (KIP paper): real support images (random, or any selector's) with the soft labels "
                   "that make kernel ridge regression from them fit the training set best, in closed form.")
    Config = LabelSolveConfig

    def _step(self) -> dict[str, float]:
        cfg: LabelSolveConfig = self.config  # type: ignore[assignment]
        picker = create_method(cfg.support, self.dataset, self.ipc, seed=self.seed, device=self.device)
        picked = picker.summary()
        solver = LabelSolver(self.dataset, cfg.kernel_spec(), cfg.ridge, cfg.target_size, self.generator,
                             self.device)
        if solver.size < len(picked):
            raise InvalidInputError(f"label solve needs at least as many target images as support images; "
                                    f"target_size {cfg.target_size} gives {solver.size} for {len(picked)}")
        labels, solved, fixed = solver.solve_and_compare(picked.images, picked.hard_labels)
        self._images = picked.images
        self._labels = labels.float()
        self._meta: dict[str, Any] = {"support": cfg.support, "kernel": cfg.kernel_spec().to_dict(),
                                      "ridge": cfg.ridge, "label_loss": "mse", "target_size": solver.size,
                                      "target_loss": solved, "fixed_label_loss": fixed}
        if "indices" in picked.meta:
            self._meta["indices"] = picked.meta["indices"]
        return {"target_loss": solved, "fixed_label_loss": fixed}

    def summary(self) -> Summary:
        if self.steps_done == 0:
            self.step()
        return self._make_summary(self._images, self._labels, **self._meta)

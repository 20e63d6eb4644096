"""Closed-form kernels: the NNGP and NTK of fully connected ReLU networks, and an RBF kernel.

The ReLU kernels are the infinite-width limits of an MLP in the NTK parametrisation with `depth` hidden ReLU layers
and a linear read-out, every layer h = sqrt(w_var / fan_in) · W a + sqrt(b_var) · b with W, b ~ N(0, 1):

    K⁰(x, y) = w_var · x·y / d + b_var                         (first pre-activation)
    K^l      = w_var · √(K^{l-1}_xx K^{l-1}_yy) · J1(θ) / 2π + b_var
    Θ^l      = K^l + w_var · (π − θ) / 2π · Θ^{l-1},   Θ⁰ = K⁰   (arc-cosine recursion, cos θ = ρ)

with J1(θ) = sin θ + (π − θ) cos θ. KIP (kernel inducing points) and the `krr` evaluation protocol use these as
the "method's kernel". Inputs are any N×… tensors (flattened to N×d); every function is batched over both sides,
differentiable with respect to its inputs, float32 by default and float64 when asked (`dtype=torch.float64`).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Callable

import torch

from .errors import InvalidInputError, UnknownNameError

KernelFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
KERNEL_NAMES = ("ntk", "nngp", "rbf")


def _flat(x: torch.Tensor, dtype: torch.dtype | None) -> torch.Tensor:
    """N×… -> N×d in the working dtype (float32 unless the input or `dtype` says otherwise)."""
    x = x.reshape(len(x), -1)
    if dtype is not None:
        return x.to(dtype)
    return x if x.is_floating_point() else x.float()


def _rho_eps(dtype: torch.dtype) -> float:
    """How far from ±1 the correlation is kept, so arccos and its gradient stay finite."""
    return 1e-6 if dtype in (torch.float32, torch.float16, torch.bfloat16) else 1e-12


def relu_kernels(x1: torch.Tensor, x2: torch.Tensor | None = None, depth: int = 3, w_var: float = 2.0,
                 b_var: float = 0.01, dtype: torch.dtype | None = None,
                 want_ntk: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(NNGP, NTK) between rows of x1 (N×…) and x2 (M×…, default x1) for a `depth`-hidden-layer ReLU MLP.

    Returns two N×M tensors (the NTK is None when `want_ntk` is False, which saves a third of the work).
    """
    if depth < 0:
        raise InvalidInputError(f"kernel depth must be 0 or more, got {depth}")
    a = _flat(x1, dtype)
    b = a if x2 is None else _flat(x2, a.dtype)
    if a.shape[1] != b.shape[1]:
        raise InvalidInputError(f"kernel inputs have {a.shape[1]} and {b.shape[1]} features")
    d = a.shape[1]
    # first pre-activation: covariance and the two diagonals (the variance of each input)
    k = (a @ b.T) * (w_var / d) + b_var
    da = a.square().sum(1) * (w_var / d) + b_var
    db = da if x2 is None else b.square().sum(1) * (w_var / d) + b_var
    theta_ntk = k if want_ntk else None
    eps = _rho_eps(a.dtype)
    inv_2pi = 1.0 / (2.0 * math.pi)
    for _ in range(depth):
        norm = torch.sqrt(da.clamp_min(1e-30)).unsqueeze(1) * torch.sqrt(db.clamp_min(1e-30)).unsqueeze(0)
        rho = (k / norm).clamp(-1.0 + eps, 1.0 - eps)
        theta = torch.arccos(rho)
        pi_minus = math.pi - theta
        j1 = torch.sqrt(1.0 - rho * rho) + pi_minus * rho
        k = norm * j1 * (w_var * inv_2pi) + b_var
        if want_ntk:
            theta_ntk = k + theta_ntk * pi_minus * (w_var * inv_2pi)
        # on the diagonal θ = 0, so J1 = π and the variance halves through the ReLU
        da = da * (0.5 * w_var) + b_var
        db = da if x2 is None else db * (0.5 * w_var) + b_var
    return k, theta_ntk


def nngp(x1: torch.Tensor, x2: torch.Tensor | None = None, depth: int = 3, w_var: float = 2.0, b_var: float = 0.01,
         dtype: torch.dtype | None = None) -> torch.Tensor:
    """NNGP kernel (output covariance at initialisation) of a wide fully connected ReLU network."""
    return relu_kernels(x1, x2, depth, w_var, b_var, dtype, want_ntk=False)[0]


def ntk(x1: torch.Tensor, x2: torch.Tensor | None = None, depth: int = 3, w_var: float = 2.0, b_var: float = 0.01,
        dtype: torch.dtype | None = None) -> torch.Tensor:
    """Neural tangent kernel of a wide fully connected ReLU network (NTK parametrisation)."""
    return relu_kernels(x1, x2, depth, w_var, b_var, dtype, want_ntk=True)[1]  # type: ignore[return-value]


def rbf(x1: torch.Tensor, x2: torch.Tensor | None = None, gamma: float = 1.0,
        dtype: torch.dtype | None = None) -> torch.Tensor:
    """exp(−gamma · ‖x − y‖² / d): an RBF kernel whose bandwidth is per feature, so it suits any image size."""
    a = _flat(x1, dtype)
    b = a if x2 is None else _flat(x2, a.dtype)
    d = a.shape[1]
    sq = a.square().sum(1, keepdim=True) + b.square().sum(1).unsqueeze(0) - 2.0 * (a @ b.T)
    return torch.exp(-gamma * sq.clamp_min(0.0) / d)


@dataclass(frozen=True)
class KernelSpec:
    """A kernel by name and parameters; callable as spec(x1, x2) and JSON-serialisable via `to_dict`."""

    name: str = "ntk"
    depth: int = 3
    w_var: float = 2.0
    b_var: float = 0.01
    gamma: float = 1.0

    def __post_init__(self) -> None:
        if self.name not in KERNEL_NAMES:
            raise UnknownNameError(f"unknown kernel {self.name!r}; choose one of {', '.join(KERNEL_NAMES)}")
        if self.depth < 0 or self.w_var <= 0 or self.b_var < 0 or self.gamma <= 0:
            raise InvalidInputError(f"invalid kernel parameters: {self}")

    @property
    def label(self) -> str:
        """A short name such as 'ntk-fc3' or 'rbf' (used as the `model` of a krr evaluation)."""
        return "rbf" if self.name == "rbf" else f"{self.name}-fc{self.depth}"

    def __call__(self, x1: torch.Tensor, x2: torch.Tensor | None = None,
                 dtype: torch.dtype | None = None) -> torch.Tensor:
        if self.name == "rbf":
            return rbf(x1, x2, self.gamma, dtype)
        if self.name == "nngp":
            return nngp(x1, x2, self.depth, self.w_var, self.b_var, dtype)
        return ntk(x1, x2, self.depth, self.w_var, self.b_var, dtype)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "KernelSpec":
        known = {k: data[k] for k in ("name", "depth", "w_var", "b_var", "gamma") if k in data}
        return cls(**known)


@torch.no_grad()
def kernel_matrix(spec: KernelSpec, x1: torch.Tensor, x2: torch.Tensor, block: int = 2048,
                  dtype: torch.dtype | None = None) -> torch.Tensor:
    """spec(x1, x2) computed `block` rows of x1 at a time (bounded memory for large evaluation sets)."""
    parts = [spec(x1[i:i + block], x2, dtype=dtype) for i in range(0, len(x1), block)]
    return torch.cat(parts) if parts else x1.new_zeros(0, len(x2))


def ridge_solve(k_ss: torch.Tensor, y: torch.Tensor, ridge: float) -> torch.Tensor:
    """α = (K + ridge · tr(K)/n · I)⁻¹ y, the kernel ridge regression weights (Cholesky, LU if that fails).

    Scaling the ridge by the mean diagonal makes one `ridge` value fit every kernel and image size.
    """
    n = k_ss.shape[0]
    reg = ridge * torch.diagonal(k_ss).mean().clamp_min(1e-12)
    a = k_ss + reg * torch.eye(n, dtype=k_ss.dtype, device=k_ss.device)
    chol, info = torch.linalg.cholesky_ex(a)
    if int(info) == 0:
        return torch.cholesky_solve(y.to(a.dtype), chol)
    return torch.linalg.solve(a, y.to(a.dtype))


def krr_predict(spec: KernelSpec, x_support: torch.Tensor, y_support: torch.Tensor, x_query: torch.Tensor,
                ridge: float = 1e-6, dtype: torch.dtype = torch.float64, block: int = 2048) -> torch.Tensor:
    """Kernel ridge regression predictions for x_query from a labelled support set (no gradients)."""
    with torch.no_grad():
        k_ss = spec(x_support, dtype=dtype)
        alpha = ridge_solve(k_ss, y_support, ridge)
        k_qs = kernel_matrix(spec, x_query, x_support, block=block, dtype=dtype)
        return k_qs @ alpha

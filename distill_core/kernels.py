"""Closed-form kernels: the NNGP and NTK of fully connected ReLU networks, and an RBF kernel.

The ReLU kernels are the infinite-width limits of an MLP in the NTK parametrisation with `depth` hidden ReLU layers
and a linear read-out, every layer h = sqrt(w_var / fan_in) · W a + sqrt(b_var) · b with W, b ~ N(0, 1):

    K⁰(x, y) = w_var · x·y / d + b_var                         (first pre-activation)
    K^l      = w_var · √(K^{l-1}_xx K^{l-1}_yy) · J1(θ) / 2π + b_var
    Θ^l      = K^l + w_var · (π − θ) / 2π · Θ^{l-1},   Θ⁰ = K⁰   (arc-cosine recursion, cos θ = ρ)

with J1(θ) = sin θ + (π − θ) cos θ. KIP (kernel inducing points) and the `krr` evaluation protocol use these as
the "method's kernel". Inputs are any N×… tensors (flattened to N×d); every function is batched over both sides,
differentiable with respect to its inputs, float32 by default and float64 when asked (`dtype=torch.float64`).

Float32 is accurate where it matters: the diagonal (θ = 0) comes from its closed form, not from arccos of a
rounded ρ, so it agrees with float64 to ~1e-7; the layer's backward is written out so that the gradient stays
finite at ρ = ±1 (duplicate images); on CUDA, TF32 and autocast are switched off inside the kernels.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Callable, Iterator

import torch

from .errors import InvalidInputError, UnknownNameError

KernelFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
KERNEL_NAMES = ("ntk", "nngp", "rbf")


def _flat(x: torch.Tensor, dtype: torch.dtype | None) -> torch.Tensor:
    """N×… -> N×d in the working dtype: `dtype` when given, else float64 inputs stay float64 and anything else
    (integers, float16, bfloat16) becomes float32 — the kernels are never computed in half precision."""
    x = x.reshape(len(x), -1)
    if dtype is not None:
        return x.to(dtype)
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


@contextmanager
def full_precision(device: torch.device) -> Iterator[None]:
    """On CUDA, no TF32 matrix products and no autocast inside: a TF32 Gram matrix carries ~1e-3 relative
    error, which the arc-cosine recursion amplifies near ρ = 1. Elsewhere this does nothing."""
    if device.type != "cuda":
        yield
        return
    previous = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        with torch.autocast("cuda", enabled=False):
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = previous


def _sin_floor(dtype: torch.dtype) -> float:
    """Smallest sin θ used in the derivative of θ: it keeps the NTK's gradient finite at ρ = ±1 (where the true
    derivative of arccos is infinite) without touching any value."""
    return 1e-3 if dtype == torch.float32 else 1e-6


class _ArcCosLayer(torch.autograd.Function):
    """One ReLU layer of the NNGP/NTK recursion, fused, with a hand-written backward.

    Forward, with norm = √(K_xx K_yy), ρ = K/norm clamped to [−1, 1] and θ = arccos ρ:
        K' = c · norm · (sin θ + (π − θ) ρ) + b_var,   Θ' = K' + c · (π − θ) · Θ      (c = w_var / 2π)
    Backward uses dJ1/dρ = π − θ exactly (autograd through sin θ and arccos separately would subtract two
    infinities at ρ = ±1) and d(π − θ)/dρ = 1/sin θ with sin θ floored, so every gradient is finite. The
    fusion also saves half the element-wise passes and intermediate tensors of the autograd version.
    """

    @staticmethod
    def forward(ctx, k, sa, sb, theta, c: float, b_var: float):  # type: ignore[override]
        norm = torch.outer(sa, sb)
        rho = torch.div(k, norm).clamp_(-1.0, 1.0)
        one = torch.ones((), dtype=k.dtype, device=k.device)
        sin = torch.addcmul(one, rho, rho, value=-1.0).clamp_(min=0.0).sqrt_()  # sin θ = √(1 − ρ²) ≥ 0
        pm = torch.arccos(rho).neg_().add_(math.pi)            # π − θ
        k_new = torch.addcmul(sin, pm, rho).mul_(norm)         # norm · J1, in its own buffer
        k_new.mul_(c).add_(b_var)
        ctx.c = c
        ctx.save_for_backward(sa, sb, rho, pm, sin, theta)
        if theta is None:
            return k_new
        return k_new, torch.addcmul(k_new, pm, theta, value=c)

    @staticmethod
    def backward(ctx, g_k, g_theta=None):  # type: ignore[override]
        sa, sb, rho, pm, sin, theta = ctx.saved_tensors
        c = ctx.c
        ntk_part = theta is not None and g_theta is not None
        if ntk_part:
            g_tc = g_theta * c
            total_c = torch.add(g_tc, g_k, alpha=c)            # Θ' contains K'
        else:
            total_c = g_k * c
        g_in = total_c * pm                                    # ∂/∂K through ρ, J1 part (dJ1/dρ = π − θ)
        g_norm = total_c.mul_(sin)                             # ∂/∂norm at fixed K, J1 part (J1 − ρ dJ1/dρ)
        g_prev = None
        if ntk_part:
            # (π − θ) part: d(π − θ)/dρ = 1/sin θ, floored; ρ = K / (sa ⊗ sb)
            extra = torch.mul(g_tc, theta).div_(sin.clamp_min(_sin_floor(sin.dtype)))
            extra.div_(sa.unsqueeze(1)).div_(sb.unsqueeze(0))
            g_in.add_(extra)
            g_norm.addcmul_(extra, rho, value=-1.0)
            g_prev = g_tc.mul_(pm)
        return g_in, g_norm @ sb, g_norm.T @ sa, g_prev, None, None


class _ScaledGram(torch.autograd.Function):
    """scale · a bᵀ + shift, with a backward that does one matrix product per input that needs a gradient — and
    one in all for a b that is a itself ((g + gᵀ) a), where autograd would do two."""

    @staticmethod
    def forward(ctx, a, b, scale: float, shift: float):  # type: ignore[override]
        ctx.scale = scale
        ctx.same = b is a
        ctx.save_for_backward(a, b)
        return (a @ b.T).mul_(scale).add_(shift)

    @staticmethod
    def backward(ctx, g):  # type: ignore[override]
        a, b = ctx.saved_tensors
        if ctx.same:
            return (g + g.T) @ a * ctx.scale, None, None, None
        g_a = (g @ b).mul_(ctx.scale) if ctx.needs_input_grad[0] else None
        g_b = (g.T @ a).mul_(ctx.scale) if ctx.needs_input_grad[1] else None
        return g_a, g_b, None, None


def relu_kernels(x1: torch.Tensor, x2: torch.Tensor | None = None, depth: int = 3, w_var: float = 2.0,
                 b_var: float = 0.01, dtype: torch.dtype | None = None, want_ntk: bool = True,
                 shared_prefix: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(NNGP, NTK) between rows of x1 (N×…) and x2 (M×…, default x1) for a `depth`-hidden-layer ReLU MLP.

    Returns two N×M tensors (the NTK is None when `want_ntk` is False, which saves a third of the work).
    Self-pairs — the diagonal when x2 is None or is x1, and the main diagonal when `shared_prefix` says that x2
    is the first M rows of x1 (KIP's joint support+target kernel) — are set from the closed form at θ = 0
    (the variance halves through each ReLU), exact in float32 too: computed through arccos, a float32 ρ a few
    ulps below 1 gives θ ≈ 3e-4 and an NTK diagonal ~1e-4 too small per layer.
    """
    if depth < 0:
        raise InvalidInputError(f"kernel depth must be 0 or more, got {depth}")
    symmetric = x2 is None or x2 is x1
    a = _flat(x1, dtype)
    b = a if symmetric else _flat(x2, a.dtype)  # type: ignore[arg-type]
    if a.shape[1] != b.shape[1]:
        raise InvalidInputError(f"kernel inputs have {a.shape[1]} and {b.shape[1]} features")
    if shared_prefix and not symmetric and len(b) > len(a):
        raise InvalidInputError("shared_prefix needs x2 to be the first rows of x1")
    d = a.shape[1]
    with full_precision(a.device):
        # first pre-activation: covariance and the two diagonals (the variance of each input)
        k = _ScaledGram.apply(a, b, w_var / d, b_var)
        da = a.square().sum(1) * (w_var / d) + b_var
        db = da if symmetric else b.square().sum(1) * (w_var / d) + b_var
        theta_ntk = k if want_ntk else None
        c = w_var / (2.0 * math.pi)
        diag_k = db
        diag_t = db
        for _ in range(depth):
            sa = da.clamp_min(1e-30).sqrt()
            sb = sa if symmetric else db.clamp_min(1e-30).sqrt()
            if want_ntk:
                k, theta_ntk = _ArcCosLayer.apply(k, sa, sb, theta_ntk, c, b_var)
            else:
                k = _ArcCosLayer.apply(k, sa, sb, None, c, b_var)
            # self-pairs: θ = 0, so J1 = π and the variance halves through the ReLU
            da = da * (0.5 * w_var) + b_var
            db = da if symmetric else db * (0.5 * w_var) + b_var
            diag_k = db
            diag_t = diag_k + diag_t * (0.5 * w_var)
        if symmetric or shared_prefix:
            k = torch.diagonal_scatter(k, diag_k)
            if want_ntk:
                theta_ntk = torch.diagonal_scatter(theta_ntk, diag_t)
    return k, theta_ntk


def nngp(x1: torch.Tensor, x2: torch.Tensor | None = None, depth: int = 3, w_var: float = 2.0, b_var: float = 0.01,
         dtype: torch.dtype | None = None, shared_prefix: bool = False) -> torch.Tensor:
    """NNGP kernel (output covariance at initialisation) of a wide fully connected ReLU network."""
    return relu_kernels(x1, x2, depth, w_var, b_var, dtype, want_ntk=False, shared_prefix=shared_prefix)[0]


def ntk(x1: torch.Tensor, x2: torch.Tensor | None = None, depth: int = 3, w_var: float = 2.0, b_var: float = 0.01,
        dtype: torch.dtype | None = None, shared_prefix: bool = False) -> torch.Tensor:
    """Neural tangent kernel of a wide fully connected ReLU network (NTK parametrisation)."""
    return relu_kernels(x1, x2, depth, w_var, b_var, dtype, want_ntk=True,  # type: ignore[return-value]
                        shared_prefix=shared_prefix)[1]


def rbf(x1: torch.Tensor, x2: torch.Tensor | None = None, gamma: float = 1.0,
        dtype: torch.dtype | None = None, shared_prefix: bool = False) -> torch.Tensor:
    """exp(−gamma · ‖x − y‖² / d): an RBF kernel whose bandwidth is per feature, so it suits any image size.
    Self-pairs (see `relu_kernels`) are exactly 1."""
    symmetric = x2 is None or x2 is x1
    a = _flat(x1, dtype)
    b = a if symmetric else _flat(x2, a.dtype)  # type: ignore[arg-type]
    d = a.shape[1]
    with full_precision(a.device):
        sq = a.square().sum(1, keepdim=True) + b.square().sum(1).unsqueeze(0) - 2.0 * (a @ b.T)
        k = torch.exp(-gamma * sq.clamp_min(0.0) / d)
        if symmetric or shared_prefix:
            k = torch.diagonal_scatter(k, torch.ones(min(k.shape), dtype=k.dtype, device=k.device))
    return k


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

    def __call__(self, x1: torch.Tensor, x2: torch.Tensor | None = None, dtype: torch.dtype | None = None,
                 shared_prefix: bool = False) -> torch.Tensor:
        """The kernel between rows of x1 and x2 (default x1); `shared_prefix`: x2 is the first rows of x1."""
        if self.name == "rbf":
            return rbf(x1, x2, self.gamma, dtype, shared_prefix)
        if self.name == "nngp":
            return nngp(x1, x2, self.depth, self.w_var, self.b_var, dtype, shared_prefix)
        return ntk(x1, x2, self.depth, self.w_var, self.b_var, dtype, shared_prefix)

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


class _RidgeSolve(torch.autograd.Function):
    """α = (K + λ̄ I)⁻¹ y with λ̄ = ridge · tr(K)/n, by Cholesky (LU when K is not positive definite).

    The backward reuses the factorisation: with v = A⁻¹ ∂α (A = Aᵀ), ∂y = v and ∂K = −v αᵀ plus the ridge's share
    on the diagonal — two triangular solves with C right-hand sides, where autograd through the Cholesky factor
    would do n×n solves and products (a fifth of a KIP step at IPC 50).
    """

    @staticmethod
    def forward(ctx, k_ss, y, ridge: float):  # type: ignore[override]
        n = k_ss.shape[0]
        reg = ridge * torch.diagonal(k_ss).mean().clamp_min(1e-12)
        a = k_ss + reg * torch.eye(n, dtype=k_ss.dtype, device=k_ss.device)
        y = y.to(a.dtype)
        chol, info = torch.linalg.cholesky_ex(a)
        if int(info) == 0:
            alpha = torch.cholesky_solve(y, chol)
            ctx.solve = lambda rhs: torch.cholesky_solve(rhs, chol)
        else:
            lu, pivots = torch.linalg.lu_factor(a)
            alpha = torch.linalg.lu_solve(lu, pivots, y)
            ctx.solve = lambda rhs: torch.linalg.lu_solve(lu, pivots, rhs, adjoint=True)
        ctx.ridge, ctx.n = ridge, n
        ctx.save_for_backward(alpha)
        return alpha

    @staticmethod
    def backward(ctx, g_alpha):  # type: ignore[override]
        (alpha,) = ctx.saved_tensors
        v = ctx.solve(g_alpha)
        g_y = v if ctx.needs_input_grad[1] else None
        g_k = None
        if ctx.needs_input_grad[0]:
            g_k = -(v @ alpha.T)
            g_k.diagonal().add_(torch.diagonal(g_k).sum() * (ctx.ridge / ctx.n))
        return g_k, g_y, None


def ridge_solve(k_ss: torch.Tensor, y: torch.Tensor, ridge: float) -> torch.Tensor:
    """α = (K + ridge · tr(K)/n · I)⁻¹ y, the kernel ridge regression weights (Cholesky, LU if that fails).

    Scaling the ridge by the mean diagonal makes one `ridge` value fit every kernel and image size. Differentiable
    in K and y, with a backward that reuses the factorisation.
    """
    return _RidgeSolve.apply(k_ss, y, ridge)


def krr_predict(spec: KernelSpec, x_support: torch.Tensor, y_support: torch.Tensor, x_query: torch.Tensor,
                ridge: float = 1e-6, dtype: torch.dtype = torch.float64, block: int = 2048) -> torch.Tensor:
    """Kernel ridge regression predictions for x_query from a labelled support set (no gradients)."""
    with torch.no_grad():
        k_ss = spec(x_support, dtype=dtype)
        alpha = ridge_solve(k_ss, y_support, ridge)
        k_qs = kernel_matrix(spec, x_query, x_support, block=block, dtype=dtype)
        return k_qs @ alpha

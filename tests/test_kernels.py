"""Closed-form ReLU NNGP / NTK against Monte-Carlo estimates from wide random networks; RBF sanity."""
from __future__ import annotations

import math

import pytest
import torch

from distill_core.errors import InvalidInputError, UnknownNameError
from distill_core.kernels import KernelSpec, kernel_matrix, krr_predict, nngp, ntk, rbf, relu_kernels

W_VAR, B_VAR = 2.0, 0.1


def _inputs(n: int = 6, d: int = 16, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=torch.float64)


def _random_mlp(d: int, width: int, depth: int, outputs: int, g: torch.Generator) -> list[tuple]:
    """Standard-normal weights and biases of a depth-hidden-layer MLP (scaled at use: NTK parametrisation)."""
    dims = [d] + [width] * depth + [outputs]
    return [(torch.randn(a, b, generator=g, dtype=torch.float64, requires_grad=True),
             torch.randn(b, generator=g, dtype=torch.float64, requires_grad=True)) for a, b in zip(dims[:-1], dims[1:])]


def _rel_err(est: torch.Tensor, exact: torch.Tensor) -> torch.Tensor:
    """|est − exact| on the scale of each pair, √(K(x, x) K(y, y))."""
    d = exact.diagonal().sqrt()
    return (est - exact).abs() / (d[:, None] * d[None, :])


def _forward(x: torch.Tensor, params: list[tuple]) -> torch.Tensor:
    h = x
    for i, (w, b) in enumerate(params):
        if i:
            h = torch.relu(h)
        h = h @ w * math.sqrt(W_VAR / w.shape[0]) + b * math.sqrt(B_VAR)
    return h


@pytest.mark.parametrize("depth", [1, 3])
def test_nngp_matches_monte_carlo_of_wide_relu_networks(depth):
    x = _inputs()
    exact = nngp(x, depth=depth, w_var=W_VAR, b_var=B_VAR, dtype=torch.float64)
    g = torch.Generator().manual_seed(1)
    est = torch.zeros_like(exact)
    nets, outputs = 24, 128
    with torch.no_grad():
        for _ in range(nets):
            f = _forward(x, _random_mlp(x.shape[1], 1024, depth, outputs, g))
            est += f @ f.T / outputs
    est /= nets
    rel = _rel_err(est, exact)
    assert float(rel.max()) < 0.1 and float(rel.mean()) < 0.04
    # a neighbouring depth is clearly further from the estimate than the right one
    wrong = nngp(x, depth=depth + 1, w_var=W_VAR, b_var=B_VAR, dtype=torch.float64)
    assert float(_rel_err(est, wrong).mean()) > 2 * float(rel.mean())


def test_ntk_matches_empirical_ntk_of_a_wide_network():
    x = _inputs(5)
    depth = 2
    exact = ntk(x, depth=depth, w_var=W_VAR, b_var=B_VAR, dtype=torch.float64)
    g = torch.Generator().manual_seed(2)
    est = torch.zeros_like(exact)
    nets = 4
    for _ in range(nets):
        params = _random_mlp(x.shape[1], 2048, depth, 1, g)
        flat = [p for pair in params for p in pair]
        out = _forward(x, params)[:, 0]
        rows = []
        for i in range(len(x)):
            grads = torch.autograd.grad(out[i], flat, retain_graph=True)
            rows.append(torch.cat([gr.reshape(-1) for gr in grads]))
        jac = torch.stack(rows)
        est += jac @ jac.T
    est /= nets
    rel = _rel_err(est, exact)
    assert float(rel.max()) < 0.1 and float(rel.mean()) < 0.04
    wrong = ntk(x, depth=depth + 1, w_var=W_VAR, b_var=B_VAR, dtype=torch.float64)
    assert float(_rel_err(est, wrong).mean()) > 2 * float(rel.mean())
    # the NTK is the NNGP plus positive derivative terms
    assert bool((exact > nngp(x, depth=depth, w_var=W_VAR, b_var=B_VAR, dtype=torch.float64) + 1e-9).all())


def test_relu_kernels_closed_forms_and_batching():
    x, y = _inputs(4, seed=3), _inputs(3, seed=4)
    k, t = relu_kernels(x, y, depth=2, w_var=W_VAR, b_var=B_VAR)
    assert k.shape == t.shape == (4, 3)
    # depth 0 is the linear kernel; NNGP diagonal follows K <- w_var/2 K + b_var
    lin = nngp(x, y, depth=0, w_var=W_VAR, b_var=B_VAR)
    assert torch.allclose(lin, W_VAR * x @ y.T / x.shape[1] + B_VAR)
    kd = nngp(x, depth=2, w_var=W_VAR, b_var=B_VAR).diagonal()
    d0 = W_VAR * x.square().sum(1) / x.shape[1] + B_VAR
    expect = (d0 * W_VAR / 2 + B_VAR) * W_VAR / 2 + B_VAR
    assert torch.allclose(kd, expect, rtol=1e-8)
    # a cross kernel equals the block of the joint kernel, and row blocks agree with kernel_matrix
    joint = nngp(torch.cat([x, y]), depth=2, w_var=W_VAR, b_var=B_VAR)
    assert torch.allclose(joint[:4, 4:], k, rtol=1e-9)
    spec = KernelSpec("ntk", depth=2, w_var=W_VAR, b_var=B_VAR)
    assert torch.allclose(kernel_matrix(spec, x, y, block=3), t, rtol=1e-9)


def test_float32_default_float64_available_and_gradients_finite():
    x = torch.rand(5, 1, 8, 8)
    k32 = ntk(x)
    k64 = ntk(x, dtype=torch.float64)
    assert k32.dtype == torch.float32 and k64.dtype == torch.float64
    assert torch.allclose(k32.double(), k64, rtol=1e-5)
    # identical rows (correlation exactly 1 off the diagonal) must not give NaN or infinite gradients
    xs = x.clone().requires_grad_(True)
    k = ntk(torch.cat([xs, xs]))
    k.sum().backward()
    assert torch.isfinite(xs.grad).all() and xs.grad.abs().sum() > 0
    # PSD up to round-off
    assert float(torch.linalg.eigvalsh(k64).min()) > -1e-8


@pytest.mark.parametrize("fn", [ntk, nngp, rbf])
def test_float32_self_pairs_are_exact(mnist5k, fn):
    """The diagonal in float32 within 1e-5 relative of float64 (through arccos it was ~1e-3 off for the NTK)."""
    x = mnist5k.normalize(mnist5k.x_train[:48])
    targets = mnist5k.normalize(mnist5k.x_train[100:160])
    exact = fn(x.double(), dtype=torch.float64)
    d64 = exact.diagonal()
    for k32 in (fn(x), fn(x, x), fn(torch.cat([x, targets]), x, shared_prefix=True)):
        assert k32.dtype == torch.float32 and k32.shape[1] == 48
        rel = (k32.diagonal().double() - d64).abs() / d64
        assert float(rel.max()) < 1e-5, float(rel.max())
    # and the rest of the matrix (distinct images) agrees to float32 precision
    full = fn(torch.cat([x, targets]), x, shared_prefix=True).double()
    ref = fn(torch.cat([x, targets]).double(), x.double(), dtype=torch.float64)
    assert float(((full - ref).abs() / ref.abs().clamp_min(1e-3)).max()) < 2e-5


def test_self_pairs_follow_the_closed_form_recursion():
    x = _inputs(6, seed=8)
    d0 = W_VAR * x.square().sum(1) / x.shape[1] + B_VAR
    kd, td = d0.clone(), d0.clone()
    for _ in range(3):  # θ = 0: K ← w_var/2 · K + b_var, Θ ← K + w_var/2 · Θ
        kd = kd * W_VAR / 2 + B_VAR
        td = kd + td * W_VAR / 2
    k, t = relu_kernels(x.float(), depth=3, w_var=W_VAR, b_var=B_VAR)
    assert torch.allclose(k.diagonal().double(), kd, rtol=1e-6) and torch.allclose(t.diagonal().double(), td, rtol=1e-6)
    with pytest.raises(InvalidInputError, match="shared_prefix"):
        ntk(x[:2], x, shared_prefix=True)


def test_hand_written_backward_matches_finite_differences():
    a = torch.randn(5, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(0), requires_grad=True)
    b = torch.randn(4, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(1), requires_grad=True)
    assert torch.autograd.gradcheck(lambda p, q: relu_kernels(p, q, depth=3, w_var=W_VAR, b_var=B_VAR), (a, b))
    assert torch.autograd.gradcheck(lambda p: relu_kernels(p, depth=2, w_var=W_VAR, b_var=B_VAR), (a,))
    assert torch.autograd.gradcheck(lambda p: ntk(p, p[:3], depth=2, shared_prefix=True), (a,))
    assert torch.autograd.gradcheck(lambda p: nngp(p, p[:3], depth=3, shared_prefix=True), (a,))
    # float32 gradients agree with float64 ones
    x = torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    grads = []
    for dt in (torch.float32, torch.float64):
        xs = x.to(dt).clone().requires_grad_(True)
        ntk(torch.cat([xs, xs.flip(0) * 0.5]), xs, shared_prefix=True).square().sum().backward()
        grads.append(xs.grad.double())
    assert torch.allclose(grads[0], grads[1], rtol=1e-4, atol=1e-6 * float(grads[1].abs().max()))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_kernels_ignore_tf32_and_autocast(mnist5k):
    x = mnist5k.normalize(mnist5k.x_train[:256])
    ref = ntk(x.double(), dtype=torch.float64)
    before = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = True
    try:
        with torch.autocast("cuda", dtype=torch.bfloat16):
            k = ntk(x.cuda())
        assert torch.backends.cuda.matmul.allow_tf32 is True  # restored after the kernel
    finally:
        torch.backends.cuda.matmul.allow_tf32 = before
    assert k.dtype == torch.float32
    rel = (k.double().cpu() - ref).abs() / ref.abs().clamp_min(1e-3)
    assert float(rel.diagonal().max()) < 1e-5 and float(rel.max()) < 1e-4


def test_rbf_sanity():
    from sklearn.metrics.pairwise import rbf_kernel

    x, y = _inputs(5, d=10, seed=5), _inputs(4, d=10, seed=6)
    k = rbf(x, y, gamma=0.7)
    assert torch.allclose(k, torch.from_numpy(rbf_kernel(x.numpy(), y.numpy(), gamma=0.7 / 10)), rtol=1e-10)
    kxx = rbf(x)
    assert torch.allclose(kxx.diagonal(), torch.ones(5, dtype=torch.float64))
    assert torch.allclose(kxx, kxx.T) and bool(((kxx > 0) & (kxx <= 1)).all())
    assert float(torch.linalg.eigvalsh(kxx).min()) > 0
    near, far = x[:1] + 0.1, x[:1] + 3.0
    assert float(rbf(x[:1], near)) > float(rbf(x[:1], far))


def test_krr_interpolates_its_support_and_spec_errors():
    x = _inputs(8, seed=7)
    y = torch.eye(8, dtype=torch.float64)
    pred = krr_predict(KernelSpec("ntk", depth=2), x, y, x, ridge=1e-10)
    assert torch.allclose(pred, y, atol=1e-5)
    with pytest.raises(UnknownNameError, match="unknown kernel"):
        KernelSpec("poly")
    with pytest.raises(InvalidInputError):
        KernelSpec("ntk", w_var=0.0)
    assert KernelSpec.from_dict(KernelSpec("nngp", depth=4).to_dict()).label == "nngp-fc4"

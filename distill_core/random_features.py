"""Random-feature kernels of ConvNets, and kernel ridge regression on features (RFAD and FRePo share it).

A ConvNet drawn at initialisation with Gaussian weights (variance `w_var / fan_in`, bias std `b_std`) and no
normalisation has, as its width grows, the ConvNet's NNGP as the expected inner product of its last-layer features.
RFAD (Loo et al., NeurIPS 2022) estimates that kernel with a few such networks: the features of `M` networks
are concatenated and scaled by 1/√(M·D), so that Φ Φᵀ averages their inner products, and the kernel adds the
read-out layer of the NNGP: K = w_var · Φ Φᵀ + b_var. FRePo (Zhou et al., NeurIPS 2022) regresses on the plain
inner products of one trained network's features instead. Both then predict real targets with ridge regression
from the support set, where the ridge is relative to the mean diagonal (as KIP's): (K_ss + ridge · tr(K_ss)/n · I).
"""
from __future__ import annotations

import math

import torch

from .data import ImageSet
from .models import build_seeded


def random_convnet(dataset: ImageSet, width: int, depth: int, seed: int, device: torch.device | str = "cpu",
                   w_var: float = 2.0, b_std: float = 0.1) -> torch.nn.Module:
    """A ConvNet of `depth` blocks and `width` channels without normalisation, weights ~ N(0, w_var / fan_in) and
    biases ~ N(0, b_std²) drawn from `seed` alone (the NNGP parametrisation RFAD's code samples); frozen."""
    net = build_seeded(dataset, "convnet", seed=seed, device="cpu", width=width, depth=depth, norm="none")
    gen = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
                fan_in = module.weight[0].numel()
                module.weight.normal_(0.0, math.sqrt(w_var / fan_in), generator=gen)
                if module.bias is not None:
                    module.bias.normal_(0.0, b_std, generator=gen)
    net.requires_grad_(False)
    net.eval()
    return net.to(device)


def embed_in_slices(net: torch.nn.Module, x: torch.Tensor, chunk: int = 0) -> torch.Tensor:
    """`net.embed(x)` in slices of at most `chunk` images (0: one pass). On a CPU, slices of ~32 images keep the
    activations in cache and run about twice as fast (as in `methods.dm`); the result does not depend on it."""
    if chunk <= 0 or len(x) <= chunk:
        return net.embed(x)
    return torch.cat([net.embed(part) for part in x.split(chunk)])


def stacked_features(nets: list[torch.nn.Module], x: torch.Tensor, chunk: int = 0) -> torch.Tensor:
    """The last-layer features of every network, side by side, scaled by 1/√(M·D): N × (M·D)."""
    feats = [embed_in_slices(net, x, chunk) for net in nets]
    return torch.cat(feats, 1) / math.sqrt(len(feats) * feats[0].shape[1])


def readout_kernel(f1: torch.Tensor, f2: torch.Tensor, w_var: float = 2.0, b_var: float = 0.01) -> torch.Tensor:
    """The NNGP of a read-out layer on features: w_var · f1 f2ᵀ + b_var."""
    return w_var * (f1 @ f2.T) + b_var


def krr_weights(k_ss: torch.Tensor, y: torch.Tensor, ridge: float) -> torch.Tensor:
    """(K_ss + ridge · tr(K_ss)/n · I)⁻¹ y, solved in float64 (the support kernel is small; features in float32
    make it nearly singular at a small ridge) and returned in y's dtype; differentiable in K_ss and y."""
    k = k_ss.double()
    n = k.shape[0]
    reg = ridge * torch.diagonal(k).mean().clamp_min(1e-12)
    a = k + reg * torch.eye(n, dtype=k.dtype, device=k.device)
    return torch.linalg.solve(a, y.double()).to(y.dtype)


def krr_from_features(f_support: torch.Tensor, y_support: torch.Tensor, f_target: torch.Tensor, ridge: float,
                      w_var: float | None = None, b_var: float = 0.0) -> torch.Tensor:
    """Predictions for the targets by kernel ridge regression from the support set, on features: the plain
    linear kernel f fᵀ (FRePo) or, with `w_var`, the read-out NNGP w_var · f fᵀ + b_var (RFAD)."""
    if w_var is None:
        k_ss, k_ts = f_support @ f_support.T, f_target @ f_support.T
    else:
        k_ss = readout_kernel(f_support, f_support, w_var, b_var)
        k_ts = readout_kernel(f_target, f_support, w_var, b_var)
    return k_ts @ krr_weights(k_ss, y_support, ridge)

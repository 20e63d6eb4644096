"""ZCA whitening of a set's standardised images, fitted on its training split (KIP's relative regulariser).

`with_zca` gives the same images (shared, not copied) whose `normalize()` also whitens; the plain set is unchanged.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from .errors import InvalidInputError
from .imageset import SPLITS, ImageSet, PixelStore, _store

ZCA_STRENGTH = 0.1  # regulariser: ZCA_STRENGTH × the mean eigenvalue of the training covariance (KIP's relative form)
ZCA_MAX_DIM = 4096  # C·H·W above which whitening (a dense d×d matrix) is refused


@dataclass(eq=False)
class ZCAWhitening:
    """A ZCA whitening of standardised images, fitted on a training split:
    w = (z - mean) · W with W = U diag((s + λ)^-1/2) Uᵀ, s the covariance eigenvalues, λ = strength · mean(s)."""

    mean: torch.Tensor      # d, float64
    matrix: torch.Tensor    # d×d, float64, symmetric
    inverse: torch.Tensor   # d×d, float64: U diag((s + λ)^1/2) Uᵀ
    eigenvalues: torch.Tensor  # s, descending
    regularizer: float      # λ (absolute)
    strength: float
    _cast: dict = field(default_factory=dict, repr=False)

    def _on(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        key = (x.device, x.dtype)
        hit = self._cast.get(key)
        if hit is None:
            hit = tuple(t.to(device=x.device, dtype=x.dtype) for t in (self.mean, self.matrix, self.inverse))
            self._cast[key] = hit
        return hit  # type: ignore[return-value]

    def whiten(self, z: torch.Tensor) -> torch.Tensor:
        mean, matrix, _ = self._on(z)
        flat = z.reshape(z.shape[0], -1)
        return ((flat - mean) @ matrix).reshape(z.shape)

    def unwhiten(self, w: torch.Tensor) -> torch.Tensor:
        mean, _, inverse = self._on(w)
        flat = w.reshape(w.shape[0], -1)
        return (flat @ inverse + mean).reshape(w.shape)


def fit_zca(store: PixelStore, mean: tuple[float, ...], std: tuple[float, ...],
            strength: float = ZCA_STRENGTH) -> ZCAWhitening:
    """Fit ZCA on a training split after per-channel standardisation (covariance in float64, blockwise)."""
    c = store.shape[1]
    d = int(np.prod(store.shape[1:]))
    if d > ZCA_MAX_DIM:
        raise InvalidInputError(f"ZCA whitening is limited to images of at most {ZCA_MAX_DIM} values (C×H×W); "
                                f"these have {d}")
    n = store.shape[0]
    if n < 2:
        raise InvalidInputError("ZCA whitening needs at least 2 training images")
    m = torch.tensor(mean, dtype=torch.float64).view(1, c, 1, 1)
    s = torch.tensor(std, dtype=torch.float64).view(1, c, 1, 1)
    total = torch.zeros(d, dtype=torch.float64)
    gram = torch.zeros(d, d, dtype=torch.float64)
    for block in store.chunks():
        z = ((block - m) / s).reshape(len(block), d)
        total += z.sum(0)
        gram += z.T @ z
    mu = total / n
    cov = gram / n - torch.outer(mu, mu)
    cov = (cov + cov.T) / 2
    eig, vec = torch.linalg.eigh(cov)
    eig = eig.clamp_min(0.0).flip(0)
    vec = vec.flip(1)
    lam = float(strength) * float(eig.mean())
    if lam <= 0:
        raise InvalidInputError("ZCA whitening needs training images that are not all the same")
    shifted = eig + lam
    matrix = (vec * shifted.rsqrt()) @ vec.T
    inverse = (vec * shifted.sqrt()) @ vec.T
    return ZCAWhitening(mu, matrix, inverse, eig, lam, float(strength))


def with_zca(ds: ImageSet, strength: float = ZCA_STRENGTH) -> ImageSet:
    """The same images (shared, not copied) with ZCA whitening, fitted on the training split, in normalize()."""
    whitening = fit_zca(_store(ds, "train") or PixelStore(ds.x_train), ds.mean, ds.std, strength)
    stores = {k: _store(ds, k) for k in SPLITS}
    return ImageSet(ds.name, stores["train"] or ds.x_train, ds.y_train, stores["test"] or ds.x_test, ds.y_test,
                    list(ds.class_names), ds.mean, ds.std,
                    {**ds.meta, "zca": True, "zca_strength": float(strength), "zca_regularizer": whitening.regularizer},
                    x_val=stores["val"] if stores["val"] is not None else ds.x_val, y_val=ds.y_val,
                    whitening=whitening)

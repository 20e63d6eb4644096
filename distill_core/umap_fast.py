"""Speed-ups for a first UMAP map on a small CPU (no UI code here).

A first map of 4,000 images is a PCA to 50 dimensions, all pairwise distances, the 15 nearest neighbours of every
point, then the layout. Three of those steps had avoidable costs:

- `Projection` / `fit_projection`: exact PCA from the D×D covariance (one matrix product and the top eigenvectors
  of a symmetric matrix) instead of scikit-learn's randomized SVD, which makes several passes over the data with
  QR factorisations in between (for 3,600 × 784 pixels: ~0.5 s instead of ~4 s on a loaded 2-core machine);
- `fast_knn_indices`: umap sorts every full row of the distance matrix (a mergesort of 4,000 values per point) to
  keep 15; `np.argpartition` keeps them in linear time, and rows with ties at the cut are sorted exactly as umap
  does, so the neighbours are the same;
- umap's all-pairs distances for small data (see `vectorised_small_data_distances`).

Each patch replaces one umap function with one that returns the same result, and is only installed when umap's
layout is the one it was written for.
"""
from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass
from typing import Iterator

import numpy as np

COVARIANCE_MAX_DIMS = 2048   # above this, the D×D eigenproblem costs more than a randomized SVD


_BLAS_LOCK = threading.Lock()
_BLAS_USERS = 0
_BLAS_LIMIT: object = None


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """numpy/scipy's BLAS on one thread for a block. A map's matrices are small (a 784×784 eigenproblem takes
    0.4 s on one thread); on a shared, loaded 2-core machine a second BLAS thread spin-waits for a core and makes
    the same call 10-15× slower (measured: 6.6 s instead of 0.4 s at a load average of 11). The limit is
    process-wide, so overlapping blocks (several sessions placing points) share one: the first sets it, the last
    lifts it."""
    global _BLAS_USERS, _BLAS_LIMIT
    try:
        from threadpoolctl import threadpool_limits  # scikit-learn's own dependency
    except ImportError:  # pragma: no cover - scikit-learn always brings it
        yield
        return
    with _BLAS_LOCK:
        if _BLAS_USERS == 0:
            _BLAS_LIMIT = threadpool_limits(limits=1, user_api="blas")
        _BLAS_USERS += 1
    try:
        yield
    finally:
        with _BLAS_LOCK:
            _BLAS_USERS -= 1
            if _BLAS_USERS == 0 and _BLAS_LIMIT is not None:
                _BLAS_LIMIT.restore_original_limits()
                _BLAS_LIMIT = None


@dataclass
class Projection:
    """A fitted PCA: x ↦ (x - mean) · componentsᵀ (float32). Picklable, with scikit-learn's `transform` name."""

    mean: np.ndarray            # (D,) float32
    components: np.ndarray      # (k, D) float32, rows ordered by decreasing variance
    explained_variance_ratio: float

    def transform(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        return ((x - self.mean) @ self.components.T).astype(np.float32, copy=False)


def fit_projection(x: np.ndarray, k: int, seed: int = 0) -> Projection:
    """The top-`k` principal components of the rows of `x` (N×D). Exact (covariance eigenvectors) up to
    COVARIANCE_MAX_DIMS dimensions, randomized SVD above; signs fixed so the largest entry of each is positive."""
    from scipy.linalg import eigh

    x = np.asarray(x, dtype=np.float32)
    n, d = x.shape
    k = int(max(1, min(k, d, n - 1)))
    mean = x.mean(axis=0, dtype=np.float64).astype(np.float32)
    xc = x - mean
    total = float(np.einsum("ij,ij->", xc, xc, dtype=np.float64))
    if d <= COVARIANCE_MAX_DIMS:
        cov = (xc.T @ xc).astype(np.float64)
        vals, vecs = eigh(cov, subset_by_index=[d - k, d - 1], driver="evr")
        order = np.argsort(vals)[::-1]
        comps, kept = vecs[:, order].T, float(np.clip(vals[order], 0, None).sum())
    else:
        from sklearn.decomposition import PCA

        pca = PCA(n_components=k, svd_solver="randomized", iterated_power=4, random_state=seed).fit(x)
        comps, kept = pca.components_.astype(np.float64), float(pca.explained_variance_.sum() * (n - 1))
    biggest = np.argmax(np.abs(comps), axis=1)
    comps = comps * np.sign(comps[np.arange(len(comps)), biggest])[:, None]
    return Projection(mean, comps.astype(np.float32), kept / total if total > 0 else 0.0)


def knn_indices(dmat: np.ndarray, n_neighbors: int) -> np.ndarray:
    """Indices (int32, N×k) of the k smallest entries of each row of a dense distance matrix, in the order of a
    stable sort (umap's `fast_knn_indices` result), in O(N²) instead of O(N² log N)."""
    dmat = np.asarray(dmat)
    n, m = dmat.shape
    k = int(n_neighbors)
    if k >= m:
        return np.argsort(dmat, axis=1, kind="stable")[:, :k].astype(np.int32)
    part = np.argpartition(dmat, k - 1, axis=1)[:, :k]
    vals = np.take_along_axis(dmat, part, axis=1)
    order = np.lexsort((part, vals), axis=1)            # by distance, then index: a stable sort's order
    out = np.take_along_axis(part, order, axis=1)
    kth = np.take_along_axis(vals, order[:, -1:], axis=1)
    tied = np.flatnonzero((dmat <= kth).sum(axis=1) > k)  # ties at the cut: which ones a stable sort keeps
    if len(tied):
        out[tied] = np.argsort(dmat[tied], axis=1, kind="stable")[:, :k]
    return out.astype(np.int32)


def install_fast_knn() -> bool:
    """Route umap's small-data neighbour search to `knn_indices`. Returns whether the patch is in place."""
    try:
        import umap.umap_ as umap_module
    except Exception:  # noqa: BLE001 - no umap or another layout: umap's own search still works
        return False
    current = getattr(umap_module, "fast_knn_indices", None)
    if current is None:
        return False
    if getattr(current, "_argpartition", False):
        return True

    def fast_knn_indices(X, n_neighbors):  # noqa: N803 - umap's signature
        return knn_indices(X, n_neighbors)

    fast_knn_indices._argpartition = True
    umap_module.fast_knn_indices = fast_knn_indices
    return True


def install_vectorised_small_data_distances() -> bool:
    """For fewer than 4,096 points umap computes every pairwise distance by handing its numba `euclidean` to
    scikit-learn's `pairwise_distances`, which then calls it once per pair from Python: about 20 s for the 4,000
    points of mnist-5k on a CPU. Route that one case (umap's euclidean, dense arrays, no extra arguments) to
    scikit-learn's vectorised euclidean distance: the same distances, in a fraction of a second. Also used when
    new points are placed. Returns whether the patch is in place."""
    try:
        import scipy.sparse
        import umap.umap_ as umap_module
        from umap.distances import named_distances
    except Exception:  # noqa: BLE001 - another umap layout: the slow path still works
        return False
    original = umap_module.pairwise_distances
    if getattr(original, "_vectorised_euclidean", False):
        return True
    numba_euclidean = named_distances.get("euclidean")

    def pairwise_distances(X, Y=None, metric="euclidean", **kwds):  # noqa: N803 - sklearn's signature
        if (metric is numba_euclidean and not kwds and not scipy.sparse.issparse(X)
                and (Y is None or not scipy.sparse.issparse(Y))):
            return original(X, Y, metric="euclidean")
        return original(X, Y, metric=metric, **kwds)

    pairwise_distances._vectorised_euclidean = True
    umap_module.pairwise_distances = pairwise_distances
    return True

"""The first-map speed-ups: exact PCA projection and the argpartition neighbour search (same results as before)."""
from __future__ import annotations

import numpy as np
import pytest

from distill_core import umap_fast


def test_projection_matches_scikit_learn_pca():
    from sklearn.decomposition import PCA

    rng = np.random.default_rng(0)
    x = (rng.normal(size=(300, 40)) * np.linspace(5, 0.1, 40)).astype(np.float32)  # distinct variances
    proj = umap_fast.fit_projection(x, 10)
    ref = PCA(10, svd_solver="full").fit(x)
    assert proj.components.shape == (10, 40) and proj.components.dtype == np.float32
    z, z_ref = proj.transform(x), ref.transform(x)
    # the same subspace and coordinates up to each component's sign
    signs = np.sign((z * z_ref).sum(axis=0))
    np.testing.assert_allclose(z, z_ref * signs, atol=2e-3 * np.abs(z_ref).max())
    assert proj.explained_variance_ratio == pytest.approx(ref.explained_variance_ratio_.sum(), rel=1e-4)
    # signs are fixed: the largest entry of each component is positive, so a refit gives the same map input
    assert (proj.components[np.arange(10), np.abs(proj.components).argmax(axis=1)] > 0).all()
    np.testing.assert_array_equal(umap_fast.fit_projection(x, 10).components, proj.components)


def test_projection_caps_components_and_handles_wide_data(monkeypatch):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(12, 30)).astype(np.float32)
    assert umap_fast.fit_projection(x, 50).components.shape == (11, 30)
    monkeypatch.setattr(umap_fast, "COVARIANCE_MAX_DIMS", 8)  # the randomized path for very wide features
    wide = umap_fast.fit_projection(rng.normal(size=(200, 30)).astype(np.float32), 5)
    assert wide.components.shape == (5, 30) and 0 < wide.explained_variance_ratio < 1


def test_knn_indices_equal_a_stable_full_sort_with_ties():
    rng = np.random.default_rng(2)
    d = rng.random((300, 300)).astype(np.float32)
    d[:, 50:60] = d[:, [7]]          # ties at many rows, some of them at the 15th place
    d[5] = 0.25                      # a row of equal distances
    ref = np.argsort(d, axis=1, kind="mergesort")[:, :15]
    out = umap_fast.knn_indices(d, 15)
    assert out.dtype == np.int32
    np.testing.assert_array_equal(out, ref)
    np.testing.assert_array_equal(umap_fast.knn_indices(d[:, :10], 15),  # fewer columns than neighbours
                                  np.argsort(d[:, :10], axis=1, kind="stable"))


def test_umap_uses_the_fast_neighbour_search():
    import umap.umap_ as umap_module

    assert umap_fast.install_fast_knn() and umap_fast.install_fast_knn()   # idempotent
    assert getattr(umap_module.fast_knn_indices, "_argpartition", False)
    d = np.random.default_rng(3).random((120, 120))
    np.testing.assert_array_equal(umap_module.fast_knn_indices(d, 15),  # umap's own: a mergesort of each row
                                  np.argsort(d, axis=1, kind="mergesort")[:, :15])


def test_one_blas_thread_limits_and_restores():
    from threadpoolctl import threadpool_info

    def blas_threads():
        return [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]

    before = blas_threads()
    with umap_fast.one_blas_thread():
        assert all(n == 1 for n in blas_threads())
        with umap_fast.one_blas_thread():   # nested / overlapping blocks share the limit
            assert all(n == 1 for n in blas_threads())
        assert all(n == 1 for n in blas_threads())
    assert blas_threads() == before

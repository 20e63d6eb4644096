"""Feature spaces, their disk cache, and UMAP maps (the UMAP tests are slow: numba compiles on first use)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from bar_patterns import bar_patterns
from distill_core import embed, embed_features, embed_umap, embed_warm
from distill_core.errors import DistillError, InvalidInputError


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("DISTILL_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "distill-cache"))


def test_sample_indices_is_stratified_seeded_and_sorted():
    labels = np.repeat(np.arange(4), [100, 50, 30, 20])
    idx = embed.sample_indices(labels, 60)
    assert len(idx) <= 60 and np.all(np.diff(idx) > 0)
    counts = np.bincount(labels[idx], minlength=4)
    assert counts.min() >= 1 and counts[0] > counts[3]
    np.testing.assert_array_equal(idx, embed.sample_indices(labels, 60))
    np.testing.assert_array_equal(embed.sample_indices(labels, 1000), np.arange(200))


def test_dataset_key_is_stable_and_content_sensitive(digits):
    import dataclasses

    key = embed.dataset_key(digits)
    assert key == embed.dataset_key(digits) and key.startswith("digits-")
    other = dataclasses.replace(digits, x_train=digits.x_train.flip(0))
    assert embed.dataset_key(other) != key


def test_feature_spaces(digits):
    x = digits.x_train[:7]
    px = embed.feature_space(digits, "pixels").features(x)
    assert px.dtype == np.float32 and px.shape == (7, 64)
    rnd = embed.feature_space(digits, "convnet-random").features(x)
    assert rnd.dtype == np.float32 and rnd.shape[0] == 7 and np.isfinite(rnd).all()
    embed.clear_memory_cache()
    np.testing.assert_allclose(embed.feature_space(digits, "convnet-random").features(x), rnd, atol=1e-6)
    with pytest.raises(DistillError, match="unknown feature space"):
        embed.feature_space(digits, "resnet")
    with pytest.raises(InvalidInputError, match="expects"):
        embed.feature_space(digits, "pixels").features(torch.zeros(2, 3, 8, 8))


def _patterns():
    return bar_patterns("patterns", seed=0)


def test_trained_feature_net_is_cached_on_disk():
    ds = _patterns()
    embed.clear_memory_cache()
    fs = embed.feature_space(ds, "convnet-trained")
    assert fs.info["test_acc"] > 0.9 and fs.info["epochs"] == 30, fs.info
    files = list(embed.cache_dir().glob(f"{embed.dataset_key(ds)}-convnet-trained-*.pt"))
    assert len(files) == 1
    assert not list(embed.cache_dir().glob(".*tmp*")), "no temporary file left behind"
    feats = fs.features(ds.x_test[:5])
    embed.clear_memory_cache()
    assert embed.trained_net_cached(ds)
    again = embed.feature_space(ds, "convnet-trained")
    assert again.info.get("cached") is True
    np.testing.assert_allclose(again.features(ds.x_test[:5]), feats, atol=1e-5)
    pool = embed.train_features(ds, "convnet-trained")
    assert pool.features.shape[0] == len(ds.y_train) and len(pool.labels) == len(pool.indices)
    assert len(list(embed.cache_dir().glob(f"{embed.dataset_key(ds)}-convnet-trained-pool-*.npz"))) == 1


@pytest.mark.slow
def test_umap_map_is_fitted_once_cached_and_places_new_points(digits):
    thread = embed.warm_up()
    assert thread.join(180) is None and embed.is_warm(), embed.warm_info()
    embed.clear_memory_cache()
    assert not embed.is_cached(digits, "pixels", n_max=400)
    emb = embed.get_embedding(digits, "pixels", n_max=400)
    assert embed.is_cached(digits, "pixels", n_max=400)
    assert emb.coords.shape == (len(emb.indices), 2) and emb.coords.dtype == np.float32
    assert len(emb.indices) <= 400 and not emb.from_disk
    assert len(list(embed.cache_dir().glob("*-pixels-umap400-*.joblib"))) == 1
    assert embed.get_embedding(digits, "pixels", n_max=400) is emb  # in memory

    embed.clear_memory_cache()
    loaded = embed.get_embedding(digits, "pixels", n_max=400)
    assert loaded.from_disk
    np.testing.assert_array_equal(loaded.coords, emb.coords)

    new = digits.x_test[:30]
    a = loaded.transform(new, memo=False)
    b = loaded.transform(new, memo=False)
    assert a.shape == (30, 2) and a.dtype == np.float32
    np.testing.assert_allclose(a, b, atol=1e-5)  # seeded transform
    np.testing.assert_allclose(loaded.transform(new), a, atol=1e-5)

    # training images land near their own map positions (relative to the map's size)
    own = loaded.transform(digits.x_train[torch.from_numpy(loaded.indices[:40])], memo=False)
    spread = np.ptp(loaded.coords, axis=0).max()
    assert np.median(np.linalg.norm(own - loaded.coords[:40], axis=1)) < 0.1 * spread

    with pytest.raises(InvalidInputError):
        loaded.transform(torch.zeros(1, 1, 9, 9))
    with pytest.raises(InvalidInputError, match="NaN"):
        loaded.transform(torch.full((1, 1, 8, 8), float("nan")))


def test_small_maps_compute_distances_vectorised():
    """umap's all-pairs path for small data goes through scikit-learn's vectorised euclidean distance (the same
    distances as umap's own numba function, not one Python call per pair)."""
    import umap.umap_ as umap_module
    from sklearn.metrics import pairwise_distances
    from umap.distances import euclidean

    embed_umap._umap()
    assert getattr(umap_module.pairwise_distances, "_vectorised_euclidean", False)
    x = np.random.default_rng(0).normal(size=(200, 20)).astype(np.float32)
    fast = umap_module.pairwise_distances(x, metric=euclidean)
    np.testing.assert_allclose(fast, pairwise_distances(x, metric=euclidean), atol=1e-5)
    np.testing.assert_allclose(umap_module.pairwise_distances(x[:5], x, metric=euclidean),
                               fast[:5], atol=1e-5)


def test_feature_net_recipe_is_capped(monkeypatch):
    """The trained feature ConvNet costs the same on any large dataset: a stratified sample of at most
    TRAIN_MAX_IMAGES images, TRAIN_STEPS steps (fewer on a tiny set, at most TRAIN_MAX_EPOCHS passes)."""
    ds = _patterns()
    monkeypatch.setattr(embed_features, "TRAIN_MAX_IMAGES", 30)
    monkeypatch.setattr(embed_features, "TRAIN_STEPS", 12)
    net, info = embed_features._train_net(ds)
    assert info["train_images"] <= 30 and info["steps"] == 12 and info["epochs"] == 12.0
    monkeypatch.setattr(embed_features, "TRAIN_STEPS", 1000)
    _, info = embed_features._train_net(ds)
    assert info["steps"] == embed.TRAIN_MAX_EPOCHS and info["epochs"] == embed.TRAIN_MAX_EPOCHS  # 1 batch/epoch
    assert 0 <= info["test_acc"] <= 1


@pytest.mark.slow
def test_trained_map_is_cached_per_fingerprint_and_space_without_the_feature_pool():
    import dataclasses

    ds = dataclasses.replace(_patterns(), name="patterns-map")  # its own fingerprint: no other test's files
    embed.clear_memory_cache()
    key = embed.dataset_key(ds)
    emb = embed.get_embedding(ds, "convnet-trained", n_max=60)
    maps = list(embed.cache_dir().glob(f"{key}-convnet-trained-umap60-*.joblib"))
    assert len(maps) == 1 and embed.is_cached(ds, "convnet-trained", n_max=60)
    assert not list(embed.cache_dir().glob(f"{key}-convnet-trained-pool-*")), "the map computed the whole pool"
    assert not embed.is_cached(ds, "convnet-random", n_max=60)  # another space: another map
    embed.clear_memory_cache()
    again = embed.get_embedding(ds, "convnet-trained", n_max=60)
    assert again.from_disk and again.feature_space.info.get("cached") is True
    np.testing.assert_array_equal(again.coords, emb.coords)
    np.testing.assert_allclose(again.transform(ds.x_test[:3], memo=False), emb.transform(ds.x_test[:3], memo=False),
                               atol=1e-4)
    # other content (another fingerprint) is never served this map
    other = dataclasses.replace(ds, x_train=ds.x_train.flip(0))
    assert embed.dataset_key(other) != key and not embed.is_cached(other, "convnet-trained", n_max=60)


@pytest.mark.slow
def test_warm_up_fits_the_default_datasets_map_onto_disk(digits, monkeypatch):
    """What app.py does at server start: the default dataset's map is fitted in the background and cached on disk,
    so the page (and the next server) only loads it."""
    embed.clear_memory_cache()
    for f in embed.cache_dir().glob(f"{embed.dataset_key(digits)}-pixels-umap{embed.MAP_MAX_POINTS}-*"):
        f.unlink()
    assert not embed.is_cached(digits, "pixels")
    monkeypatch.setattr(embed_warm, "_WARM_ASKED", set())  # as in a fresh server process
    thread = embed.warm_up(["digits"], spaces=("pixels",))
    assert thread.join(300) is None and not thread.is_alive() and "error" not in embed.warm_info()
    assert embed.is_cached(digits, "pixels")
    embed.clear_memory_cache()
    assert embed.get_embedding(digits, "pixels").from_disk

"""2-D UMAP maps of a dataset's real training images, cached in memory and on disk.

A map (`get_embedding`) is UMAP fitted once on (a stratified sample of at most `MAP_MAX_POINTS`) real training
images of a space, keyed by dataset fingerprint + space + version; everything else (distilled images, coreset
picks, centroids, snapshots) is placed with `Embedding.transform`.
"""
from __future__ import annotations

import hashlib
import threading
import time
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import umap_fast
from .data import ImageSet
from .embed_background import _demanded, _pause_point
from .embed_common import (EMBED_VERSION, _MAPS, Progress, _try_cache_write, cache_dir, check_space, dataset_key,
                           sample_indices)
from .embed_features import FeatureSpace, _cached_pool, feature_space, trained_net_cached
from .embed_umap import _fast_transform, _new_reducer, _one_numba_thread, _umap
from .errors import DistillError, InvalidInputError

MAP_MAX_POINTS = 4000        # real points on a map (below umap's 4096 exact-neighbour threshold)
PCA_DIMS = 50


@dataclass
class Embedding:
    """A UMAP map of real training images in one feature space; `transform` places any other images on it."""

    dataset_key: str
    space: str
    indices: np.ndarray          # training-set indices of the mapped real images
    labels: np.ndarray
    coords: np.ndarray           # float32 N×2
    pca: Any
    reducer: Any
    fit_seconds: float = 0.0     # the whole fit: network training and features (when needed) + PCA + UMAP
    from_disk: bool = False
    feature_seconds: float = 0.0  # parts of fit_seconds: the map's features (training excluded) ...
    layout_seconds: float = 0.0   # ... and PCA + UMAP
    feature_space: FeatureSpace | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _memo: OrderedDict = field(default_factory=OrderedDict, repr=False)

    def reduce(self, feats: np.ndarray) -> np.ndarray:
        feats = np.asarray(feats, dtype=np.float32)
        return feats if self.pca is None else self.pca.transform(feats).astype(np.float32)

    def transform_features(self, feats: np.ndarray) -> np.ndarray:
        """2-D coordinates (float32) of feature vectors of this space."""
        feats = np.asarray(feats, dtype=np.float32)
        if len(feats) == 0:
            return np.zeros((0, 2), dtype=np.float32)
        if not np.isfinite(feats).all():
            raise InvalidInputError("images with NaN or infinite values cannot be placed on the map")
        _one_numba_thread()
        with self._lock, warnings.catch_warnings(), umap_fast.one_blas_thread():
            z = self.reduce(feats)
            warnings.simplefilter("ignore")
            return np.asarray(self.reducer.transform(z), dtype=np.float32)

    def transform(self, images: torch.Tensor, memo: bool = True) -> np.ndarray:
        """2-D coordinates (float32 N×2) of pixel-space images (distilled images, picks, centroids, snapshots).

        Results are remembered by content (a redraw places the same images instantly); umap's transform is
        seeded, so the same images always land on the same spot.
        """
        if self.feature_space is None:
            raise DistillError("this map has no feature space attached")
        x = torch.as_tensor(images).detach().float().cpu().contiguous()
        digest = hashlib.blake2b(x.numpy().tobytes(), digest_size=16).hexdigest() + str(tuple(x.shape))
        if memo:
            with self._lock:
                if digest in self._memo:
                    self._memo.move_to_end(digest)
                    return self._memo[digest].copy()
        coords = self.transform_features(self.feature_space.features(x))
        if memo:
            with self._lock:
                self._memo[digest] = coords
                while len(self._memo) > 256:
                    self._memo.popitem(last=False)
        return coords.copy()


def _umap_version() -> str:
    try:
        from importlib.metadata import version

        return version("umap-learn")
    except Exception:
        return "x"


def _map_path(ds: ImageSet, space: str, n_max: int) -> Path:
    return cache_dir() / f"{dataset_key(ds)}-{space}-umap{n_max}-v{EMBED_VERSION}-umap{_umap_version()}.joblib"


def is_cached(ds: ImageSet, space: str = "pixels", n_max: int = MAP_MAX_POINTS) -> bool:
    """True when the map of `space` is ready without fitting (in memory or on disk) — and, for the trained space,
    without training its network."""
    check_space(space)
    with _MAPS.lock:
        if (dataset_key(ds), space, int(n_max)) in _MAPS.items:
            return True
    if space == "convnet-trained" and not trained_net_cached(ds):
        return False
    return _map_path(ds, space, int(n_max)).is_file()


def get_embedding(ds: ImageSet, space: str = "pixels", n_max: int = MAP_MAX_POINTS,
                  progress: Progress = None) -> Embedding:
    """The UMAP map of a dataset's real training images in `space` (fitted once; cached in memory and on disk)."""
    check_space(space)
    if int(n_max) < 10:
        raise InvalidInputError(f"a map needs at least 10 real points, got n_max={n_max}")
    key = (dataset_key(ds), space, int(n_max))
    with _demanded(ds, space):  # background work on another map holds still meanwhile; on this one it goes on
        emb = _MAPS.get_or_make(key, lambda: _load_or_fit(ds, space, int(n_max), progress))
        if emb.feature_space is None:
            emb.feature_space = feature_space(ds, space, progress)
    return emb


def _load_or_fit(ds: ImageSet, space: str, n_max: int, progress: Progress) -> Embedding:
    import joblib

    idx = sample_indices(ds.y_train, n_max)
    path = _map_path(ds, space, n_max)
    if path.is_file():
        try:
            _umap()  # the pickled reducer needs umap importable (and its numba caching switched on)
            blob = joblib.load(path)
            if blob.get("version") == EMBED_VERSION and np.array_equal(blob["indices"], idx):
                return Embedding(dataset_key(ds), space, idx, ds.y_train.numpy()[idx], blob["coords"],
                                 blob["pca"], _fast_transform(blob["reducer"]), blob.get("fit_seconds", 0.0),
                                 from_disk=True)
        except Exception:  # stale or corrupt cache: fit again and overwrite
            pass
    t0 = time.perf_counter()
    t_feat = t0
    if space == "pixels":
        feats = ds.x_train[torch.from_numpy(idx)].reshape(len(idx), -1).numpy().astype(np.float32)
    else:
        # the map needs only its own points' features: the whole feature pool (up to FEATURE_POOL_MAX images,
        # for nearest neighbours) is used when it is already at hand, and is not computed for the map
        pool = _cached_pool(ds, space)
        pos = np.searchsorted(pool.indices, idx) if pool is not None else None
        if pool is not None and np.array_equal(pool.indices[np.clip(pos, 0, len(pool.indices) - 1)], idx):
            feats = pool.features[pos]
        else:
            fs = feature_space(ds, space, progress)
            if progress:
                progress(f"computing {space} features of the {len(idx)} mapped images")
            t_feat = time.perf_counter()
            feats = fs.features(ds.x_train[torch.from_numpy(idx)])
    t_feat_end = time.perf_counter()
    _pause_point()
    t_layout = time.perf_counter()
    with umap_fast.one_blas_thread():
        emb = _fit_map(ds, space, idx, feats, path, t0, progress)
    emb.feature_seconds = round(t_feat_end - t_feat, 2)
    emb.layout_seconds = round(time.perf_counter() - t_layout, 2)
    return emb


def _fit_map(ds: ImageSet, space: str, idx: np.ndarray, feats: np.ndarray, path: Path, t0: float,
             progress: Progress) -> Embedding:
    """PCA + UMAP on the map's features, written to the disk cache."""
    import joblib

    pca = None
    if feats.shape[1] > PCA_DIMS:
        # exact PCA from the covariance (umap_fast.fit_projection): a fraction of a randomized SVD's time
        pca = umap_fast.fit_projection(feats, PCA_DIMS)
        z = pca.transform(feats)
    else:
        z = feats
    if progress:
        progress(f"fitting UMAP on {len(idx)} real images ({space}); cached afterwards")
    _one_numba_thread()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reducer = _fast_transform(_new_reducer(len(z)).fit(z))
    coords = np.asarray(reducer.embedding_, dtype=np.float32)
    seconds = round(time.perf_counter() - t0, 2)
    blob = {"version": EMBED_VERSION, "space": space, "indices": idx, "coords": coords, "pca": pca,
            "reducer": reducer, "fit_seconds": seconds}
    _try_cache_write(path, lambda tmp: joblib.dump(blob, tmp))
    return Embedding(dataset_key(ds), space, idx, ds.y_train.numpy()[idx], coords, pca, reducer, seconds)

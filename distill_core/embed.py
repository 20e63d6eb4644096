"""Feature spaces and UMAP maps of a dataset (no UI code here): the public entry, gathered from

- `embed_common`: the spaces' names, the dataset fingerprint, the disk and in-memory caches, `torch_threads`;
- `embed_features`: feature spaces and the features of the real training images (the trained feature ConvNet);
- `embed_maps`: 2-D UMAP maps and their cache (`get_embedding`, `Embedding.transform`);
- `embed_background`: background work that steps aside for distillations and pages;
- `embed_umap` and `embed_warm`: umap set up once, and the warm-up thread started with the server.

Callers import this module; a test that patches a name patches it in the module that looks it up.
"""
from __future__ import annotations

from .embed_background import HOLD_POLL_S, background_should_hold, background_work
from .embed_common import (CACHE_ENV, COMPUTE_THREADS, EMBED_VERSION, SPACES, Progress, cache_dir, check_space,
                           clear_memory_cache, dataset_key, sample_indices, torch_threads)
from .embed_features import (FEATURE_BATCH, FEATURE_POOL_MAX, FEATURE_WIDTH, TRAIN_BATCH, TRAIN_LR, TRAIN_MAX_EPOCHS,
                             TRAIN_MAX_IMAGES, TRAIN_STEPS, FeaturePool, FeatureSpace, PlainAdam, feature_space,
                             train_features, trained_net_cached)
from .embed_maps import MAP_MAX_POINTS, PCA_DIMS, Embedding, get_embedding, is_cached
from .embed_umap import UMAP_PARAMS
from .embed_warm import SERVER_WARM_SPACES, is_warm, join_warm_up, warm_info, warm_up

__all__ = [
    "CACHE_ENV", "COMPUTE_THREADS", "EMBED_VERSION", "FEATURE_BATCH", "FEATURE_POOL_MAX", "FEATURE_WIDTH",
    "HOLD_POLL_S", "MAP_MAX_POINTS", "PCA_DIMS", "SERVER_WARM_SPACES", "SPACES", "TRAIN_BATCH", "TRAIN_LR",
    "TRAIN_MAX_EPOCHS", "TRAIN_MAX_IMAGES", "TRAIN_STEPS", "UMAP_PARAMS",
    "Embedding", "FeaturePool", "FeatureSpace", "PlainAdam", "Progress",
    "background_should_hold", "background_work", "cache_dir", "check_space", "clear_memory_cache", "dataset_key",
    "feature_space", "get_embedding", "is_cached", "is_warm", "join_warm_up", "sample_indices", "torch_threads",
    "train_features", "trained_net_cached", "warm_info", "warm_up",
]

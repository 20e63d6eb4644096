"""Feature spaces of a dataset (`SPACES`) and the features of its real training images.

- `pixels`: the flattened pixels (PCA to at most 50 dimensions before UMAP);
- `convnet-random`: a randomly initialised, seeded ConvNet-3 (width 32) — `embed()` features;
- `convnet-trained`: the same network trained briefly (TRAIN_STEPS Adam steps on at most 2,000 real training
  images: a few seconds on a CPU whatever the dataset's size). It is trained once per dataset fingerprint
  (`dataset_key`) and its weights are cached on disk (`cache_dir()`), written to a temporary name and renamed.

Training steps and feature batches are the points where background work steps aside (`embed_background`).
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch

from .data import ImageSet
from .embed_background import _demanded, _pause_point
from .embed_common import (COMPUTE_THREADS, EMBED_VERSION, _NETS, _POOLS, Progress, _try_cache_write,
                           cache_dir, check_space, dataset_key, sample_indices, torch_threads)
from .errors import InvalidInputError

FEATURE_POOL_MAX = 20000     # real images whose features are computed (nearest neighbours, typicality)
FEATURE_WIDTH = 32           # width of the feature ConvNets (CPU-friendly)
TRAIN_MAX_IMAGES = 2000      # the feature ConvNet learns from a stratified sample of at most this many images,
TRAIN_STEPS = 60             # ... for this many Adam steps (fewer on a tiny set: at most TRAIN_MAX_EPOCHS passes);
#                              60 instead of 100 keeps the map's classes as far apart (benchmarks/embedding_speed.py)
TRAIN_MAX_EPOCHS = 30
TRAIN_BATCH = 64
TRAIN_LR = 2e-3
FEATURE_BATCH = 128          # images per forward when features are extracted (small batches stay in the CPU's cache)


def _batched(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, batch: int = FEATURE_BATCH) -> np.ndarray:
    outs = []
    for i in range(0, len(x), batch):
        _pause_point()
        outs.append(fn(x[i:i + batch]).float().cpu())
    if not outs:
        return np.zeros((0, 0), dtype=np.float32)
    return torch.cat(outs).numpy().astype(np.float32, copy=False)


def _feature_net(ds: ImageSet, seed: int = 0) -> torch.nn.Module:
    from .models import build_seeded

    return build_seeded(ds, "convnet", seed=seed, width=FEATURE_WIDTH, depth=3, norm="instancenorm").eval()


class PlainAdam:
    """Adam (Kingma & Ba; torch.optim.Adam's update without weight decay or amsgrad) in a few tensor operations.

    torch.optim's optimisers import torch._dynamo when the first one is built: 3-6 s on a small CPU, which a
    fresh process would pay inside the first trained-ConvNet map. This one imports nothing."""

    def __init__(self, params: Iterable[torch.nn.Parameter], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        self.params = [p for p in params if p.requires_grad]
        self.lr, self.betas, self.eps, self.t = float(lr), betas, float(eps), 0
        self.m = [torch.zeros_like(p) for p in self.params]
        self.v = [torch.zeros_like(p) for p in self.params]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        self.t += 1
        b1, b2 = self.betas
        step_size = self.lr / (1 - b1 ** self.t)
        root_c2 = (1 - b2 ** self.t) ** 0.5
        for p, m, v in zip(self.params, self.m, self.v):
            if p.grad is None:
                continue
            m.mul_(b1).add_(p.grad, alpha=1 - b1)
            v.mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
            p.addcdiv_(m, v.sqrt().div_(root_c2).add_(self.eps), value=-step_size)


def _train_net(ds: ImageSet, progress: Progress = None, seed: int = 0) -> tuple[torch.nn.Module, dict]:
    """Train the feature ConvNet with Adam for TRAIN_STEPS mini-batches of TRAIN_BATCH drawn from a stratified
    sample of at most TRAIN_MAX_IMAGES real training images (at most TRAIN_MAX_EPOCHS passes over a small set).

    The cost is the same for every dataset larger than a few thousand images (6,400 image passes: a few
    seconds on a CPU), and the network still separates the classes well enough for a map (its accuracy on at most
    1,000 test images is recorded as `test_acc`: about 0.9 on mnist-5k, see benchmarks/embedding_speed.py)."""
    from .evaluate import accuracy

    net = _feature_net(ds, seed)
    idx = torch.from_numpy(sample_indices(ds.y_train, TRAIN_MAX_IMAGES, seed))
    x, y = ds.normalize(ds.x_train[idx]), ds.y_train[idx]
    gen = torch.Generator().manual_seed(seed)
    opt = PlainAdam(net.parameters(), lr=TRAIN_LR)
    per_epoch = -(-len(x) // TRAIN_BATCH)
    steps = min(TRAIN_STEPS, TRAIN_MAX_EPOCHS * per_epoch)
    t0 = time.perf_counter()
    test = torch.from_numpy(sample_indices(ds.y_test, 1000, seed))
    with torch_threads(COMPUTE_THREADS):
        net.train()
        step = _train_steps(net, opt, x, y, gen, steps, progress)
        net.eval()
        seconds = round(time.perf_counter() - t0, 2)
        acc = accuracy(net, ds.normalize(ds.x_test[test]), ds.y_test[test], batch_size=FEATURE_BATCH)
    info = {"steps": step, "epochs": round(step / per_epoch, 2), "train_images": len(x), "seconds": seconds,
            "test_acc": acc}
    return net, info


def _train_steps(net: torch.nn.Module, opt: "PlainAdam", x: torch.Tensor, y: torch.Tensor,
                 gen: torch.Generator, steps: int, progress: Progress) -> int:
    step = 0
    while step < steps:
        order = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), TRAIN_BATCH):
            if step >= steps:
                break
            _pause_point()
            if progress and step % 25 == 0:
                progress(f"training the feature ConvNet on {len(x)} real images: step {step + 1}/{steps}")
            b = order[i:i + TRAIN_BATCH]
            loss = torch.nn.functional.cross_entropy(net(x[b]), y[b])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
    return step


@dataclass
class FeatureSpace:
    """Maps pixel-space images (N×C×H×W) of one dataset to feature vectors."""

    name: str
    dataset: ImageSet
    net: torch.nn.Module | None = None
    info: dict = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def features(self, images: torch.Tensor) -> np.ndarray:
        """Float32 features (N×D) of images in pixel space."""
        images = torch.as_tensor(images).detach().float().cpu()
        if images.dim() == 3:
            images = images.unsqueeze(0)
        if tuple(images.shape[1:]) != self.dataset.image_shape:
            raise InvalidInputError(f"images of shape {tuple(images.shape[1:])} cannot be placed in the "
                                    f"{self.dataset.name} feature space, which expects {self.dataset.image_shape}")
        if self.net is None:
            return images.reshape(len(images), -1).numpy().astype(np.float32, copy=True)
        # one forward at a time per network (a page waiting here lets background work on it go on); no autograd;
        # torch's threads for this call only
        with _demanded(self.dataset, self.name), self._lock, torch.inference_mode(), torch_threads(COMPUTE_THREADS):
            return _batched(lambda b: self.net.embed(self.dataset.normalize(b)), images)


def feature_space(ds: ImageSet, space: str = "pixels", progress: Progress = None) -> FeatureSpace:
    """The feature space `space` of a dataset; a trained network is trained once and cached on disk."""
    check_space(space)
    if space == "pixels":
        return FeatureSpace("pixels", ds)
    key = (dataset_key(ds), space)
    with _demanded(ds, space):
        return _NETS.get_or_make(key, lambda: _make_space(ds, space, progress))


def _make_space(ds: ImageSet, space: str, progress: Progress) -> FeatureSpace:
    if space == "convnet-random":
        return FeatureSpace(space, ds, _feature_net(ds, seed=0), {"seed": 0, "width": FEATURE_WIDTH})
    path = _net_path(ds)
    net = _feature_net(ds)
    if path.is_file():
        try:
            blob = torch.load(path, map_location="cpu", weights_only=True)
            net.load_state_dict(blob["state_dict"])
            info = {k: float(v) for k, v in blob.get("info", {}).items()}
            return FeatureSpace(space, ds, net.eval(), {**info, "cached": True})
        except Exception:  # a stale or corrupt cache file is replaced
            net = _feature_net(ds)
    net, info = _train_net(ds, progress)
    blob = {"state_dict": net.state_dict(), "info": {k: torch.tensor(float(v)) for k, v in info.items()}}
    _try_cache_write(path, lambda tmp: torch.save(blob, tmp))
    return FeatureSpace(space, ds, net, {**info, "cached": False})


@dataclass
class FeaturePool:
    """Features of (a stratified sample of at most FEATURE_POOL_MAX) real training images in one space."""

    space: str
    indices: np.ndarray       # training-set indices
    labels: np.ndarray
    features: np.ndarray      # float32 N×D


def train_features(ds: ImageSet, space: str = "pixels", progress: Progress = None) -> FeaturePool:
    """Features of the real training images (cached in memory, and on disk for network spaces)."""
    check_space(space)
    key = (dataset_key(ds), space)
    with _demanded(ds, space):
        return _POOLS.get_or_make(key, lambda: _make_pool(ds, space, progress))


def _pool_path(ds: ImageSet, space: str) -> Path:
    return cache_dir() / f"{dataset_key(ds)}-{space}-pool-v{EMBED_VERSION}.npz"


def _cached_pool(ds: ImageSet, space: str) -> FeaturePool | None:
    """The feature pool of a network space when it is in memory or on disk (None: it would have to be computed)."""
    key = (dataset_key(ds), space)
    with _POOLS.lock:
        if key in _POOLS.items:
            return _POOLS.items[key]
    if space != "pixels" and _pool_path(ds, space).is_file() and \
            (space != "convnet-trained" or trained_net_cached(ds)):
        return train_features(ds, space)
    return None


def _make_pool(ds: ImageSet, space: str, progress: Progress) -> FeaturePool:
    idx = sample_indices(ds.y_train, FEATURE_POOL_MAX)
    labels = ds.y_train.numpy()[idx]
    if space == "pixels":
        feats = ds.x_train[torch.from_numpy(idx)].reshape(len(idx), -1).numpy().astype(np.float32, copy=False)
        return FeaturePool(space, idx, labels, feats)
    fs = feature_space(ds, space, progress)
    path = _pool_path(ds, space)
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as z:
                if np.array_equal(z["indices"], idx):
                    return FeaturePool(space, idx, labels, z["features"].astype(np.float32))
        except Exception:
            pass
    if progress:
        progress(f"computing {space} features of {len(idx)} real images")
    feats = fs.features(ds.x_train[torch.from_numpy(idx)])

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.savez(fh, indices=idx, features=feats.astype(np.float16))
    _try_cache_write(path, write)
    return FeaturePool(space, idx, labels, feats)


def _net_path(ds: ImageSet) -> Path:
    return cache_dir() / f"{dataset_key(ds)}-convnet-trained-v{EMBED_VERSION}.pt"


def trained_net_cached(ds: ImageSet) -> bool:
    """True when the trained feature ConvNet of a dataset is in memory or on disk (no training needed)."""
    with _NETS.lock:
        if (dataset_key(ds), "convnet-trained") in _NETS.items:
            return True
    return _net_path(ds).is_file()

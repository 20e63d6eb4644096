"""Feature spaces and UMAP maps of a dataset (no UI code here).

Feature spaces (`SPACES`):
- `pixels`: the flattened pixels (PCA to at most 50 dimensions before UMAP);
- `convnet-random`: a randomly initialised, seeded ConvNet-3 (width 32) — `embed()` features;
- `convnet-trained`: the same network trained briefly (TRAIN_STEPS Adam steps on at most 2,000 real training
  images: a few seconds on a CPU whatever the dataset's size). It is trained once per dataset fingerprint
  (`dataset_key`) and its weights are cached on disk (`cache_dir()`), written to a temporary name and renamed.

A map (`get_embedding`) is UMAP fitted once on (a stratified sample of at most `MAP_MAX_POINTS`) real training
images of a space, cached in memory and on disk keyed by dataset fingerprint + space + version; everything else
(distilled images, coreset picks, centroids, snapshots) is placed with `Embedding.transform`.

umap-learn compiles its numba code on first use (20-40 s on a small CPU). `warm_up()` does that in a background
thread and asks numba to keep the compiled code on disk, so later processes start in about a second. At server
start it also trains the default dataset's feature ConvNet and fits its map (`SERVER_WARM_SPACES`), as background
work that steps aside: it holds still while a distillation runs or while a page waits for another map, and a
page asking for the same map joins the work in progress instead of starting it again.

Torch's thread count is set per call (`torch_threads`), never left changed for the rest of the process.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import threading
import time
import warnings
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional

import numpy as np
import torch

from .atomic import write_atomically
from .data import ImageSet
from . import umap_fast
from .errors import DistillError, InvalidInputError, UnknownNameError

EMBED_VERSION = 3           # 2: exact-PCA projection, feature ConvNet on a capped sample; 3: 60 training steps
CACHE_ENV = "DISTILL_CACHE_DIR"
MAP_MAX_POINTS = 4000        # real points on a map (below umap's 4096 exact-neighbour threshold)
FEATURE_POOL_MAX = 20000     # real images whose features are computed (nearest neighbours, typicality)
PCA_DIMS = 50
FEATURE_WIDTH = 32           # width of the feature ConvNets (CPU-friendly)
TRAIN_MAX_IMAGES = 2000      # the feature ConvNet learns from a stratified sample of at most this many images,
TRAIN_STEPS = 60             # ... for this many Adam steps (fewer on a tiny set: at most TRAIN_MAX_EPOCHS passes);
#                              60 instead of 100 keeps the map's classes as far apart (benchmarks/embedding_speed.py)
TRAIN_MAX_EPOCHS = 30
TRAIN_BATCH = 64
TRAIN_LR = 2e-3
FEATURE_BATCH = 128          # images per forward when features are extracted (small batches stay in the CPU's cache)
COMPUTE_THREADS = 1          # torch threads of feature-network training and extraction: small convolutions, where
#                              a second thread mostly waits for a core on a shared 2-core CPU
UMAP_PARAMS = {"n_neighbors": 15, "min_dist": 0.1, "n_epochs": 200, "random_state": 0, "transform_seed": 42}
_MEMORY_ITEMS = 8            # maps / feature pools kept in memory per kind

SERVER_WARM_SPACES = ("pixels", "convnet-trained")   # what app.py warms for the default dataset

SPACES: dict[str, str] = {
    "pixels": "pixels (PCA to 50 dimensions)",
    "convnet-random": "features of a random ConvNet-3 (seed 0)",
    "convnet-trained": "features of a ConvNet-3 trained on the real training images (cached on disk)",
}

Progress = Optional[Callable[[str], None]]


def cache_dir() -> Path:
    """Where feature networks, feature pools and fitted maps are cached ($DISTILL_CACHE_DIR or ~/.cache)."""
    base = os.environ.get(CACHE_ENV)
    return (Path(base) if base else Path.home() / ".cache" / "distill-lab") / "features"


def check_space(space: str) -> str:
    if space not in SPACES:
        raise UnknownNameError(f"unknown feature space {space!r}; choose one of {', '.join(SPACES)}")
    return space


# ------------------------------------------------------------------------------------------ helpers

_KEYS: dict[int, tuple[weakref.ref, str]] = {}
_KEYS_LOCK = threading.Lock()


def dataset_key(ds: ImageSet) -> str:
    """A short, file-name-safe fingerprint of a dataset's training split and of the space models see it in
    (name + content hash + whether it is ZCA-whitened)."""
    with _KEYS_LOCK:
        hit = _KEYS.get(id(ds))
        if hit is not None and hit[0]() is ds:
            return hit[1]
    h = hashlib.blake2b(digest_size=8)
    h.update(repr((ds.name, tuple(ds.x_train.shape), list(ds.class_names), bool(ds.meta.get("zca")))).encode())
    x = ds.x_train.detach().cpu().contiguous()
    step = max(1, len(x) // 2000)
    h.update(x[::step].numpy().tobytes())
    h.update(ds.y_train.detach().cpu().numpy().tobytes())
    slug = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in ds.name)[-32:]
    key = f"{slug}-{h.hexdigest()}"
    with _KEYS_LOCK:
        _KEYS[id(ds)] = (weakref.ref(ds), key)
    return key


def sample_indices(labels: np.ndarray | torch.Tensor, n_max: int, seed: int = 0) -> np.ndarray:
    """Sorted indices of a stratified, seeded sample of at most `n_max` items (all of them when fewer)."""
    labels = labels.numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    n = len(labels)
    if n <= n_max:
        return np.arange(n, dtype=np.int64)
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    quota = np.maximum(1, np.floor(counts * n_max / n)).astype(int)
    while quota.sum() > n_max:  # rounding up the tiny classes may overshoot
        quota[np.argmax(quota)] -= 1
    picks = [rng.permutation(np.flatnonzero(labels == c))[:q] for c, q in zip(classes, quota)]
    return np.sort(np.concatenate(picks)).astype(np.int64)


def _try_cache_write(path: Path, write: Callable[[Path], None]) -> None:
    """Write a cache file; a cache that cannot be written (read-only home, full disk) only costs speed."""
    try:
        write_atomically(path, write)
    except OSError:
        pass


class _LRU:
    """A small thread-safe LRU dict with one lock per key, so a costly value is computed once."""

    def __init__(self, size: int):
        self.size = size
        self.items: OrderedDict[Any, Any] = OrderedDict()
        self.lock = threading.Lock()
        self.key_locks: dict[Any, threading.Lock] = {}

    def get_or_make(self, key: Any, make: Callable[[], Any]) -> Any:
        with self.lock:
            if key in self.items:
                self.items.move_to_end(key)
                return self.items[key]
            key_lock = self.key_locks.setdefault(key, threading.Lock())
        with key_lock:
            with self.lock:
                if key in self.items:
                    return self.items[key]
            value = make()
            with self.lock:
                self.items[key] = value
                while len(self.items) > self.size:
                    self.items.popitem(last=False)
                self.key_locks.pop(key, None)
            return value

    def clear(self) -> None:
        with self.lock:
            self.items.clear()


_NETS = _LRU(_MEMORY_ITEMS)
_POOLS = _LRU(_MEMORY_ITEMS)
_MAPS = _LRU(_MEMORY_ITEMS)


def clear_memory_cache() -> None:
    """Forget the in-memory networks, feature pools and maps (the disk cache stays)."""
    for lru in (_NETS, _POOLS, _MAPS):
        lru.clear()


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Torch intra-op threads of the calling thread set to `n` for a block, and restored afterwards (even on an
    error). Torch's setting also seeds threads that start using torch during the block, so the block is kept to
    the computation that needs it instead of changing the count for the rest of the process."""
    n = max(1, int(n))
    before = torch.get_num_threads()
    if before == n:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# ------------------------------------------------------------------------ background work that steps aside

_BACKGROUND = threading.local()   # .work: the (dataset key, space) a background thread prepares; .stats
_DEMAND: dict[tuple[str, str], int] = {}   # (dataset key, space) -> page calls waiting for it
_DEMAND_LOCK = threading.Lock()
HOLD_POLL_S = 0.1


@contextlib.contextmanager
def _demanded(ds: ImageSet, space: str) -> Iterator[None]:
    """Marks (dataset, space) as wanted by a page call for a block (background threads mark nothing)."""
    if getattr(_BACKGROUND, "work", None) is not None:
        yield
        return
    key = (dataset_key(ds), space)
    with _DEMAND_LOCK:
        _DEMAND[key] = _DEMAND.get(key, 0) + 1
    try:
        yield
    finally:
        with _DEMAND_LOCK:
            _DEMAND[key] -= 1
            if not _DEMAND[key]:
                del _DEMAND[key]


def _jobs_running() -> int:
    from .jobs import running_jobs  # noqa: PLC0415 - jobs imports the methods; only needed here

    return running_jobs()


def background_should_hold(work: tuple[str, str]) -> bool:
    """Whether background work on `work` should wait: a distillation is running, or a page waits for another
    map — unless a page waits for this very work (then it goes on at full speed)."""
    with _DEMAND_LOCK:
        if work in _DEMAND:
            return False
        others = bool(_DEMAND)
    return others or _jobs_running() > 0


def _pause_point() -> None:
    """Called between small pieces of work (training steps, feature batches): in a background thread, wait while
    `background_should_hold`; in a page's call, return at once."""
    work = getattr(_BACKGROUND, "work", None)
    if work is None:
        return
    stats = _BACKGROUND.stats
    while background_should_hold(work):
        stats["holds"] += 1
        t = time.perf_counter()
        time.sleep(HOLD_POLL_S)
        stats["held_s"] += time.perf_counter() - t


@contextlib.contextmanager
def background_work(ds: ImageSet, space: str) -> Iterator[dict[str, float]]:
    """Run the block as background work preparing (ds, space) in the calling thread: it steps aside at every
    `_pause_point` while `background_should_hold`, on one torch thread. Yields live stats: `holds` (pauses) and
    `held_s` (seconds spent holding)."""
    stats = {"holds": 0, "held_s": 0.0}
    _BACKGROUND.work, _BACKGROUND.stats = (dataset_key(ds), space), stats
    try:
        with torch_threads(COMPUTE_THREADS):
            yield stats
    finally:
        _BACKGROUND.work = None


# ------------------------------------------------------------------------------------ feature spaces

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


# -------------------------------------------------------------------------------------------- UMAP

_UMAP_MOD: Any = None
_UMAP_LOCK = threading.Lock()
_WARM = threading.Event()
_WARM_THREAD: threading.Thread | None = None
_WARM_INFO: dict[str, Any] = {}
_WARM_ASKED: set[tuple[str, str]] = set()


def _enable_numba_disk_cache() -> int:
    """Ask numba to keep umap/pynndescent's compiled code on disk (many of their functions do not by default)."""
    import sys

    try:
        from numba.core.dispatcher import Dispatcher
    except Exception:
        return 0
    count = 0
    for name, mod in list(sys.modules.items()):
        if not name.startswith(("umap", "pynndescent")) or mod is None:
            continue
        for value in list(vars(mod).values()):
            try:
                if isinstance(value, Dispatcher) and type(value._cache).__name__ == "NullCache":
                    value.enable_caching()
                    count += 1
            except Exception:  # numba internals differ: caching is only a speed-up
                continue
    return count


def _umap() -> Any:
    """The umap module, imported once (with numba disk caching switched on)."""
    global _UMAP_MOD
    with _UMAP_LOCK:
        if _UMAP_MOD is None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                import umap  # noqa: PLC0415 - slow import, done lazily
            _WARM_INFO["numba_cached_functions"] = _enable_numba_disk_cache()
            _WARM_INFO["vectorised_small_data_distances"] = umap_fast.install_vectorised_small_data_distances()
            _WARM_INFO["argpartition_knn"] = umap_fast.install_fast_knn()
            _UMAP_MOD = umap
    return _UMAP_MOD


def _one_numba_thread() -> None:
    """Run umap's parallel numba loops in the calling thread: on a small shared CPU, waking a thread pool for
    each tiny loop costs more than the loop (about 40 ms per call under load)."""
    try:
        import numba

        numba.set_num_threads(1)  # thread-local setting
    except Exception:
        pass


def _new_reducer(n_points: int) -> Any:
    params = dict(UMAP_PARAMS)
    params["n_neighbors"] = max(2, min(params["n_neighbors"], n_points - 1))
    return _umap().UMAP(n_components=2, metric="euclidean", n_jobs=1, **params)


def _fast_transform(reducer: Any) -> Any:
    """umap's exact (small-data) transform calls its numba metric once per pair through sklearn; the string
    'euclidean' lets sklearn compute the same distances vectorised (about 20× faster for 100 points)."""
    if getattr(reducer, "_small_data", False) and getattr(reducer, "metric", None) == "euclidean" \
            and not getattr(reducer, "_sparse_data", False):
        reducer._input_distance_func = "euclidean"
    return reducer


def warm_up(datasets: Iterable[str] = (), spaces: Iterable[str] = ("pixels",)) -> threading.Thread:
    """Compile umap's numba code on a tiny array in a daemon thread, then fit (or load from the disk cache) the
    maps of `datasets` × `spaces` so their first map is ready. Idempotent: cheap to call on every app rerun; a
    thread starts only for work not asked for before. Returns the thread; `is_warm()` tells when umap is ready.

    A space with a feature network to train (convnet-trained) comes last and runs as background work: one torch
    thread, holding still between training steps and feature batches while a distillation runs or a page waits
    for another map (`background_should_hold`); a page asking for the same map waits for this work (it is not
    done twice) and the work then goes on at full speed."""
    global _WARM_THREAD
    todo = [(d, s) for d in datasets for s in spaces]
    with _UMAP_LOCK:
        new = [k for k in todo if k not in _WARM_ASKED]
        if _WARM_THREAD is not None and not new:
            return _WARM_THREAD
        _WARM_ASKED.update(new)
        previous = _WARM_THREAD
        thread = threading.Thread(target=_warm, args=(new, previous), name="distill-umap-warm-up", daemon=True)
        _WARM_THREAD = thread
    thread.start()
    return thread


def _warm(todo: list[tuple[str, str]], previous: threading.Thread | None) -> None:
    """Maps asked for first (loading a cached map and placing a few points needs only umap's transform code, so
    the first map is ready sooner), then a tiny fit + transform so every code path umap uses is compiled."""
    t0 = time.perf_counter()
    try:
        if previous is not None:
            previous.join()
        _one_numba_thread()
        from .data import load_dataset

        quick = [(d, s) for d, s in todo if s != "convnet-trained"]
        for name, space in quick:
            ds = load_dataset(name)
            get_embedding(ds, space).transform(ds.x_train[:4], memo=False)
        if not _WARM.is_set():
            x = np.random.default_rng(0).random((64, 8), dtype=np.float32)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                reducer = _fast_transform(_new_reducer(len(x)).fit(x))
                reducer.transform(x[:4] + 0.05)
            _WARM_INFO["compile_seconds"] = round(time.perf_counter() - t0, 2)
            _WARM.set()
        for name, space in todo:
            if (name, space) not in quick:
                _warm_in_background(load_dataset(name), space)
    except Exception as exc:  # warming is best effort; the real call reports any real problem
        _WARM_INFO["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        _WARM_INFO["seconds"] = round(time.perf_counter() - t0, 2)


def _warm_in_background(ds: ImageSet, space: str) -> None:
    """Train the feature network of `space` (or load it), compute the map's features and fit the map (or load
    it), as background work that steps aside (see `_pause_point`). Seconds spent and held go to `warm_info()`."""
    t0 = time.perf_counter()
    stats: dict[str, float] = {}
    try:
        with background_work(ds, space) as stats:
            get_embedding(ds, space)
    finally:
        _WARM_INFO.setdefault("background", {})[f"{ds.name}/{space}"] = {
            "seconds": round(time.perf_counter() - t0, 2), "held_s": round(stats.get("held_s", 0.0), 2)}


def join_warm_up(timeout: float | None = None) -> bool:
    """Wait for the warm-up thread (tests, shutdown: no thread left inside torch or numba at exit). True when
    no warm-up work is left."""
    with _UMAP_LOCK:
        thread = _WARM_THREAD
    if thread is not None:
        thread.join(timeout)
        return not thread.is_alive()
    return True


def is_warm() -> bool:
    """True once umap's numba code is compiled (or loaded from numba's disk cache) in this process."""
    return _WARM.is_set()


def warm_info() -> dict[str, Any]:
    return dict(_WARM_INFO, warm=_WARM.is_set())


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


def _net_path(ds: ImageSet) -> Path:
    return cache_dir() / f"{dataset_key(ds)}-convnet-trained-v{EMBED_VERSION}.pt"


def trained_net_cached(ds: ImageSet) -> bool:
    """True when the trained feature ConvNet of a dataset is in memory or on disk (no training needed)."""
    with _NETS.lock:
        if (dataset_key(ds), "convnet-trained") in _NETS.items:
            return True
    return _net_path(ds).is_file()


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

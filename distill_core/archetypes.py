"""Inspecting summaries against the real data (pure compute, no UI code).

- `nearest_real`: the nearest real training images to any images, with distances, in pixel space or a feature
  space of `embed` (exact brute-force search, float64 distances). Pixel vectors are **contrast-normalised** by
  default (each image minus its mean, divided by its standard deviation): raw pixel distances favour images of
  similar brightness, so a dim distilled image would otherwise be "nearest" to the thinnest, darkest real images
  (mostly 1s) rather than to those of the same shape. `RECOMMENDED_SPACE` explains the better choice;
- `class_means`, `difference_from_mean`: the class mean image and how far an image is from it;
- `typicality`: the real images of a class ordered by similarity to the class archetype (the class centroid in the
  feature space, or any image such as a distilled one): cosine similarity, or minus the Euclidean distance;
  `Typicality.most(k)` / `.least(k)` give the most and least typical exemplars; `rank_in_class` places any scored
  image among the real images of its class (rank and percentile);
- `prototype_summary`: the summary of a registered selector (class mean, medoids, k-means, coreset pickers), made
  on demand and cached in memory.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from .data import ImageSet
from .errors import DistillError, InvalidInputError, UnknownNameError
from .summary import Summary

METRICS = ("euclidean", "cosine")
RECOMMENDED_SPACE = "convnet-trained"
WHY_RECOMMENDED = ("The trained ConvNet's features are the recommended space: they compare images by the strokes "
                   "and shapes a network uses to tell the classes apart, not by raw brightness, so a dim or "
                   "high-contrast distilled image is matched with the real images that share its shape.")
RAW_PIXELS_WARNING = ("Raw pixel distances favour images of similar overall brightness: a dim or low-contrast "
                      "image is then nearest to the thinnest, darkest real images (often 1s), whatever its shape.")


def space_label(space: str, normalize: bool = True) -> str:
    """How a space is named in tables and manifests (pixels say whether they were contrast-normalised)."""
    if space == "pixels":
        return "pixels (contrast-normalised)" if normalize else "pixels (raw)"
    return space


def contrast_normalize(vectors: np.ndarray) -> np.ndarray:
    """Each row minus its mean, divided by its standard deviation (a uniform row becomes zeros)."""
    v = vectors.astype(np.float64, copy=True)
    v -= v.mean(1, keepdims=True)
    sd = v.std(1, keepdims=True)
    return v / np.where(sd > 1e-12, sd, 1.0)


def _check_metric(metric: str) -> str:
    if metric not in METRICS:
        raise UnknownNameError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
    return metric


def _as2d(x: np.ndarray | torch.Tensor) -> np.ndarray:
    arr = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    return arr.reshape(len(arr), -1).astype(np.float64, copy=False)


def pairwise_distances(queries: np.ndarray | torch.Tensor, reference: np.ndarray | torch.Tensor,
                       metric: str = "euclidean") -> np.ndarray:
    """Q×N distances (float64): Euclidean, or cosine distance 1 − cos."""
    _check_metric(metric)
    q, r = _as2d(queries), _as2d(reference)
    if q.shape[1] != r.shape[1]:
        raise InvalidInputError(f"cannot compare vectors of {q.shape[1]} and {r.shape[1]} dimensions")
    if metric == "cosine":
        qn = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
        rn = r / np.maximum(np.linalg.norm(r, axis=1, keepdims=True), 1e-12)
        return np.clip(1.0 - qn @ rn.T, 0.0, 2.0)
    return np.sqrt(squared_distances(q, r))


def squared_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances between the rows of a and b (float64, clipped at 0)."""
    a = a.astype(np.float64, copy=False)
    b = b.astype(np.float64, copy=False)
    return np.maximum((a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T), 0.0)


def nearest_neighbours(queries: np.ndarray | torch.Tensor, reference: np.ndarray | torch.Tensor, k: int = 5,
                       metric: str = "euclidean", chunk: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest rows of `reference` for each query: (indices Q×k int64, distances Q×k float64), nearest first."""
    r = _as2d(reference)
    if len(r) == 0:
        raise InvalidInputError("there are no reference images to search")
    k = max(1, min(int(k), len(r)))
    q = _as2d(queries)
    idx_out = np.zeros((len(q), k), dtype=np.int64)
    dist_out = np.zeros((len(q), k), dtype=np.float64)
    for i in range(0, len(q), chunk):
        d = pairwise_distances(q[i:i + chunk], r, metric)
        part = np.argpartition(d, k - 1, axis=1)[:, :k]
        pd = np.take_along_axis(d, part, axis=1)
        order = np.lexsort((part, pd), axis=1)  # by distance, ties by index
        idx_out[i:i + chunk] = np.take_along_axis(part, order, axis=1)
        dist_out[i:i + chunk] = np.take_along_axis(pd, order, axis=1)
    return idx_out, dist_out


@dataclass
class Neighbours:
    """Nearest real training images: row q holds the neighbours of query q, nearest first."""

    indices: np.ndarray      # Q×k training-set indices
    distances: np.ndarray    # Q×k
    space: str
    metric: str


def _reference(ds: ImageSet, space: str, normalize: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(training indices, labels, vectors) searched in `space`: all training pixels (contrast-normalised when
    `normalize`), or the feature pool."""
    from .embed import check_space, train_features

    check_space(space)
    if space == "pixels":
        px = ds.x_train.reshape(len(ds.x_train), -1).numpy()
        return np.arange(len(ds.y_train)), ds.y_train.numpy(), contrast_normalize(px) if normalize else px
    pool = train_features(ds, space)
    return pool.indices, pool.labels, pool.features


def _features(ds: ImageSet, images: torch.Tensor, space: str, normalize: bool = True) -> np.ndarray:
    """Query vectors of `images` in `space` (pixels contrast-normalised when `normalize`, like the reference)."""
    if space == "pixels":
        px = images.reshape(len(images), -1).numpy()
        return contrast_normalize(px) if normalize else px
    from .embed import feature_space

    return feature_space(ds, space).features(images)


def _check_images(ds: ImageSet, images: torch.Tensor) -> torch.Tensor:
    images = torch.as_tensor(images).detach().float().cpu()
    if images.dim() == 3:
        images = images.unsqueeze(0)
    if images.dim() != 4 or tuple(images.shape[1:]) != ds.image_shape:
        raise InvalidInputError(f"images of shape {tuple(images.shape[1:])} do not match {ds.name}, "
                                f"which has {ds.image_shape}")
    if not torch.isfinite(images).all():
        raise InvalidInputError("the images contain NaN or infinite values")
    return images


def nearest_real(ds: ImageSet, images: torch.Tensor, k: int = 5, space: str = "pixels",
                 metric: str = "euclidean", labels: Sequence[int] | torch.Tensor | None = None,
                 normalize: bool = True) -> Neighbours:
    """The `k` nearest real training images to each image (restricted to the image's own class when `labels`);
    in pixel space both sides are contrast-normalised unless `normalize=False`."""
    _check_metric(metric)
    images = _check_images(ds, images)
    ref_idx, ref_labels, ref = _reference(ds, space, normalize)
    q = _features(ds, images, space, normalize)
    label = space_label(space, normalize)
    if labels is None:
        idx, dist = nearest_neighbours(q, ref, k, metric)
        return Neighbours(ref_idx[idx], dist, label, metric)
    labels = np.asarray(torch.as_tensor(labels).cpu().numpy()).reshape(-1)
    if len(labels) != len(q):
        raise InvalidInputError(f"{len(labels)} labels for {len(q)} images")
    k_eff = max(1, min(int(k), int(np.bincount(ref_labels, minlength=ds.num_classes).min()) or 1))
    out_idx = np.zeros((len(q), k_eff), dtype=np.int64)
    out_dist = np.zeros((len(q), k_eff), dtype=np.float64)
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        cols = np.flatnonzero(ref_labels == c)
        if len(cols) == 0:
            raise InvalidInputError(f"class {c} has no real training images to compare with")
        idx, dist = nearest_neighbours(q[rows], ref[cols], k_eff, metric)
        out_idx[rows] = ref_idx[cols[idx]]
        out_dist[rows] = dist
    return Neighbours(out_idx, out_dist, label, metric)


def class_means(ds: ImageSet) -> torch.Tensor:
    """Mean training image of every class (num_classes×C×H×W)."""
    return torch.stack([ds.x_train[ds.y_train == c].mean(0) for c in range(ds.num_classes)])


def difference_from_mean(ds: ImageSet, images: torch.Tensor, labels: Sequence[int] | torch.Tensor
                         ) -> tuple[torch.Tensor, np.ndarray]:
    """(image − its class mean, per image; the Euclidean pixel distance of each image to its class mean)."""
    images = _check_images(ds, images)
    labels = torch.as_tensor(labels).long().reshape(-1)
    if len(labels) != len(images):
        raise InvalidInputError(f"{len(labels)} labels for {len(images)} images")
    diff = images - class_means(ds)[labels]
    return diff, diff.reshape(len(diff), -1).norm(dim=1).double().numpy()


# --------------------------------------------------------------------------------------- typicality

@dataclass
class Typicality:
    """Real training images of one class, most typical first, with their scores (higher = more typical)."""

    class_index: int
    class_name: str
    space: str
    metric: str
    archetype: str
    indices: np.ndarray      # training-set indices, most typical first
    scores: np.ndarray       # cosine similarity, or minus the Euclidean distance, to the archetype

    def most(self, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
        return self.indices[:k], self.scores[:k]

    def least(self, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
        """The `k` least typical, least typical first."""
        return self.indices[::-1][:k], self.scores[::-1][:k]

    def rows(self) -> list[dict]:
        return [{"class": self.class_name, "class_index": self.class_index, "rank": r + 1,
                 "train_index": int(i), "score": float(s), "space": self.space, "metric": self.metric,
                 "archetype": self.archetype} for r, (i, s) in enumerate(zip(self.indices, self.scores))]


def similarity(vectors: np.ndarray, archetype: np.ndarray, metric: str = "cosine") -> np.ndarray:
    """Score of each row against one archetype vector: cosine similarity, or minus the Euclidean distance."""
    d = pairwise_distances(vectors, np.asarray(archetype).reshape(1, -1), metric)[:, 0]
    return 1.0 - d if metric == "cosine" else -d


def typicality(ds: ImageSet, c: int, space: str = "pixels", archetype: torch.Tensor | None = None,
               metric: str = "cosine", archetype_name: str | None = None, normalize: bool = True) -> Typicality:
    """Rank the real images of class `c` by similarity to its archetype in `space`.

    The default archetype is the class centroid in that space (for pixels: the mean of the contrast-normalised
    images, or the class mean image with `normalize=False`); pass an image (C×H×W, e.g. a distilled one) to rank
    by similarity to it instead.
    """
    _check_metric(metric)
    if not 0 <= int(c) < ds.num_classes:
        raise InvalidInputError(f"class index {c} is outside 0..{ds.num_classes - 1}")
    ref_idx, ref_labels, ref = _reference(ds, space, normalize)
    mask = ref_labels == int(c)
    vecs = ref[mask].astype(np.float64)
    if archetype is None:
        arch = vecs.mean(0)
        name = archetype_name or "class centroid"
    else:
        img = _check_images(ds, archetype)[:1]
        arch = _features(ds, img, space, normalize)[0]
        name = archetype_name or "given image"
    scores = similarity(vecs, arch, metric)
    order = np.lexsort((ref_idx[mask], -scores))  # most typical first, ties by index
    return Typicality(int(c), str(ds.class_names[int(c)]), space_label(space, normalize), metric, name,
                      ref_idx[mask][order], scores[order])


def score_images(ds: ImageSet, images: torch.Tensor, labels: Sequence[int] | torch.Tensor, space: str = "pixels",
                 metric: str = "cosine", normalize: bool = True) -> np.ndarray:
    """Typicality score of arbitrary images (distilled, picked) against their class centroid in `space`."""
    _check_metric(metric)
    images = _check_images(ds, images)
    labels = np.asarray(torch.as_tensor(labels).cpu().numpy()).reshape(-1)
    if len(labels) != len(images):
        raise InvalidInputError(f"{len(labels)} labels for {len(images)} images")
    _, ref_labels, ref = _reference(ds, space, normalize)
    q = _features(ds, images, space, normalize)
    out = np.zeros(len(images), dtype=np.float64)
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        centroid = ref[ref_labels == c].astype(np.float64).mean(0)
        out[rows] = similarity(q[rows], centroid, metric)
    return out


def rank_in_class(ds: ImageSet, scores: Sequence[float] | np.ndarray, labels: Sequence[int] | torch.Tensor,
                  space: str = "pixels", metric: str = "cosine", normalize: bool = True
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(rank, percentile) of typicality scores (from `score_images` in the same space and metric) among the real
    training images of each score's class: rank 1 + how many real images score higher; percentile = % of the
    class's real images scoring at or below it."""
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    labels = np.asarray(torch.as_tensor(labels).cpu().numpy()).reshape(-1)
    if len(labels) != len(scores):
        raise InvalidInputError(f"{len(labels)} labels for {len(scores)} scores")
    ranks = np.zeros(len(scores), dtype=np.int64)
    pct = np.zeros(len(scores), dtype=np.float64)
    for c in np.unique(labels):
        real = np.sort(typicality(ds, int(c), space, metric=metric, normalize=normalize).scores)
        rows = np.flatnonzero(labels == c)
        tol = 1e-9 * np.maximum(1.0, np.abs(scores[rows]))
        above = len(real) - np.searchsorted(real, scores[rows] + tol, side="right")
        at_or_below = np.searchsorted(real, scores[rows] + tol, side="right")
        ranks[rows] = 1 + above
        pct[rows] = 100.0 * at_or_below / max(1, len(real))
    return ranks, pct


# ------------------------------------------------------------------------------------ prototypes

PROTOTYPE_METHODS = ("mean", "medoids", "kmeans", "herding", "kcenter", "facility")
_PROTO_CACHE: OrderedDict[tuple, Summary] = OrderedDict()
_PROTO_LOCK = threading.Lock()


def prototype_summary(ds: ImageSet, name: str, ipc: int = 1, seed: int = 0) -> tuple[Summary | None, str]:
    """(the summary of selector `name` at `ipc`, '') or (None, why not) when it is not registered or cannot run.

    Selectors that make at most N images per class (the class mean) are asked for min(ipc, N). Cached in memory.
    """
    from .embed import dataset_key
    from .methods import METHODS, create_method

    cls = METHODS.get(name)
    if cls is None:
        return None, f"'{name}' is not available (not registered in this version)"
    if cls.kind != "selector":
        return None, f"'{name}' is a distiller, not a selector"
    if cls.max_ipc is not None:
        ipc = min(int(ipc), int(cls.max_ipc))
    key = (dataset_key(ds), name, int(ipc), int(seed))
    with _PROTO_LOCK:
        if key in _PROTO_CACHE:
            return _PROTO_CACHE[key], ""
    try:
        method = create_method(name, ds, int(ipc), seed=seed, device="cpu")
        method.step()
        summary = method.summary()
    except DistillError as exc:
        return None, f"'{name}' could not run: {exc}"
    with _PROTO_LOCK:
        _PROTO_CACHE[key] = summary
        while len(_PROTO_CACHE) > 32:
            _PROTO_CACHE.popitem(last=False)
    return summary, ""

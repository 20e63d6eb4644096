"""The classic summaries a distilled set is compared with: they *pick* or *average* real images, per class.

| name | what it returns per class | kind |
|---|---|---|
| `mean` | the class-mean composite image (IPC 1 only) | average |
| `kmeans` | k-means centroids: the mean image of each of IPC clusters | average |
| `medoids` | the real image nearest each k-means centroid (distinct) | pick |
| `herding` | greedy picks whose running mean stays closest to the class mean (Welling 2009; iCaRL) | pick |
| `kcenter` | k-center greedy: a seeded first pick, then always the image farthest from those picked | pick |
| `facility` | facility-location maximisation, Σ_i max_{j∈S} sim(i, j), by lazy greedy (Minoux) | pick |

Every selector except `mean` works in a chosen feature space (`space`): `pixels`, `convnet-random` or
`convnet-trained` (see `distill_core.embed`). Clusters and distances are computed there; the returned images are
always real pixel images (or, for `kmeans`, the pixel means of the clusters found in that space, which in the
pixel space are exactly the centroids). All are seeded; `herding` and `facility` are deterministic.
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np
import torch

from ..archetypes import squared_distances as pairwise_sq_dists
from ..errors import InvalidInputError
from ..summary import Summary
from .base import Method, MethodConfig, register_method

SPACE_NAMES = ("pixels", "convnet-random", "convnet-trained")


@dataclass
class SelectorConfig(MethodConfig):
    """`space`: where distances are measured (pixels, or the embedding of a random or trained ConvNet)."""

    space: str = "pixels"

    def validate(self) -> None:
        super().validate()
        if self.space not in SPACE_NAMES:
            raise InvalidInputError(f"space must be one of {', '.join(SPACE_NAMES)}, got {self.space!r}")


@dataclass
class KMeansConfig(SelectorConfig):
    n_init: int = 4        # k-means restarts per class (the best inertia wins)
    max_iter: int = 300

    def validate(self) -> None:
        super().validate()
        if self.n_init < 1 or self.max_iter < 1:
            raise InvalidInputError("n_init and max_iter must be at least 1")


@dataclass
class FacilityConfig(SelectorConfig):
    max_pool: int = 8000   # candidates per class (a seeded sample above this; the similarity matrix is n²)

    def validate(self) -> None:
        super().validate()
        if self.max_pool < 1:
            raise InvalidInputError("max_pool must be at least 1")


# ------------------------------------------------------------------------------- selection algorithms

def herding_order(features: np.ndarray, k: int) -> np.ndarray:
    """Indices of k distinct rows chosen greedily so that the mean of the chosen rows tracks the mean of all."""
    x = features.astype(np.float64, copy=False)
    mu = x.mean(0)
    total = np.zeros_like(mu)
    free = np.ones(len(x), dtype=bool)
    order = []
    for t in range(1, k + 1):
        err = np.square(mu[None, :] - (total[None, :] + x) / t).sum(1)
        err[~free] = np.inf
        i = int(np.argmin(err))
        order.append(i)
        free[i] = False
        total += x[i]
    return np.asarray(order, dtype=np.int64)


def kcenter_greedy(features: np.ndarray, k: int, first: int) -> np.ndarray:
    """k-center greedy: start at row `first`, then repeatedly add the row farthest from everything chosen."""
    x = features.astype(np.float64, copy=False)
    chosen = [int(first)]
    nearest = pairwise_sq_dists(x, x[first:first + 1])[:, 0]
    for _ in range(1, k):
        nearest[chosen] = -1.0  # never pick twice (duplicates of a chosen image have distance 0 anyway)
        i = int(np.argmax(nearest))
        chosen.append(i)
        nearest = np.minimum(nearest, pairwise_sq_dists(x, x[i:i + 1])[:, 0])
    return np.asarray(chosen, dtype=np.int64)


def facility_similarity(features: np.ndarray) -> np.ndarray:
    """Non-negative similarities for facility location: the largest squared distance minus each one."""
    d = pairwise_sq_dists(features, features)
    return d.max() - d


def facility_objective(sim: np.ndarray, chosen: np.ndarray) -> float:
    """f(S) = Σ_i max_{j ∈ S} sim[i, j] (0 for the empty set)."""
    if len(chosen) == 0:
        return 0.0
    return float(sim[:, chosen].max(1).sum())


def facility_lazy_greedy(sim: np.ndarray, k: int) -> np.ndarray:
    """Maximise the facility-location function with the lazy greedy algorithm.

    Gains of a submodular function only shrink as the set grows, so a stale gain is an upper bound: pop the best
    stale candidate, refresh its gain, and accept it if it still beats the next stale bound. Ties go to the lowest
    index, so the result is deterministic.
    """
    n = sim.shape[0]
    cover = np.zeros(n)
    heap = [(-float(g), j) for j, g in enumerate(sim.sum(0))]
    heapq.heapify(heap)
    chosen: list[int] = []
    while len(chosen) < k and heap:
        _, j = heapq.heappop(heap)
        gain = float(np.maximum(sim[:, j] - cover, 0.0).sum())
        if not heap or gain >= -heap[0][0] - 1e-9 * max(1.0, abs(gain)):
            chosen.append(j)
            cover = np.maximum(cover, sim[:, j])
        else:
            heapq.heappush(heap, (-gain, j))
    return np.asarray(chosen, dtype=np.int64)


# ------------------------------------------------------------------------------------------ methods

class _PerClassSelector(Method):
    """Shared work: features of each class's training images, one pass per class, a summary of real images."""

    kind = "selector"
    family = "selection"
    Config = SelectorConfig

    def _features(self, images: torch.Tensor) -> np.ndarray:
        space = getattr(self.config, "space", "pixels")
        if space == "pixels":
            return images.reshape(len(images), -1).numpy().astype(np.float64)
        from ..embed import feature_space  # imported late: embed pulls in the UMAP machinery

        return feature_space(self.dataset, space).features(images).astype(np.float64)

    def _class_seed(self) -> int:
        return int(torch.randint(0, 2**31 - 1, (1,), generator=self.generator))

    def _step(self) -> dict[str, float]:
        picks: list[torch.Tensor] = []
        images: list[torch.Tensor] = []
        scores: list[float] = []
        for c in range(self.dataset.num_classes):
            idx = self.dataset.class_indices(c)
            x = self.dataset.x_train[idx]
            local, image, score = self.select_class(x, self._features(x))
            if local is not None:
                picks.append(idx[torch.as_tensor(local, dtype=torch.long)])
            images.append(image if image is not None else x[torch.as_tensor(local, dtype=torch.long)])
            scores.append(score)
        self._indices = torch.cat(picks) if picks else None
        self._images = torch.cat(images)
        return {self.score_name: float(np.mean(scores))}

    score_name = "score"

    def select_class(self, x: torch.Tensor, feats: np.ndarray) -> tuple[np.ndarray | None, torch.Tensor | None, float]:
        """(indices into the class's images, or None; images when they are not picked as they are; a score)."""
        raise NotImplementedError

    def summary(self) -> Summary:
        if self.steps_done == 0:
            self.step()
        labels = torch.arange(self.dataset.num_classes).repeat_interleave(self.ipc)
        meta = {"space": getattr(self.config, "space", "pixels")}
        if self._indices is not None:
            meta["indices"] = self._indices.tolist()
        return self._make_summary(self._images, labels, **meta)


@register_method
class ClassMean(_PerClassSelector):
    name = "mean"
    description = "The class-mean image: the average of every training image of the class (one per class)."
    Config = MethodConfig
    max_ipc = 1
    score_name = "mean_pixel_std"

    def select_class(self, x, feats):
        return None, x.mean(0, keepdim=True), float(x.std(0).mean())


@register_method
class KMeansCentroids(_PerClassSelector):
    name = "kmeans"
    description = "k-means centroids: each class clustered into IPC groups; each group's mean image."
    Config = KMeansConfig
    score_name = "inertia"

    def cluster(self, feats: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        """(cluster of each row, centroids in feature space, inertia) with a seeded k-means."""
        from sklearn.cluster import KMeans

        km = KMeans(n_clusters=self.ipc, n_init=self.config.n_init, max_iter=self.config.max_iter,
                    random_state=self._class_seed())
        assign = km.fit_predict(feats)
        return assign, km.cluster_centers_, float(km.inertia_)

    def select_class(self, x, feats):
        assign, _, inertia = self.cluster(feats)
        means = torch.stack([x[torch.from_numpy(np.flatnonzero(assign == k))].mean(0) for k in range(self.ipc)])
        return None, means, inertia


@register_method
class KMeansMedoids(KMeansCentroids):
    name = "medoids"
    description = "k-means medoids: the real image nearest each k-means centroid of the class."
    score_name = "inertia"

    def select_class(self, x, feats):
        _, centres, inertia = self.cluster(feats)
        d = pairwise_sq_dists(centres, feats)
        chosen: list[int] = []
        for k in np.argsort(d.min(1)):  # the tightest centres choose first; each image serves one centre
            row = d[k].copy()
            row[chosen] = np.inf
            chosen.append(int(np.argmin(row)))
        order = np.argsort(np.argsort(d.min(1)))  # back to centre order
        return np.asarray(chosen, dtype=np.int64)[order], None, inertia


@register_method
class Herding(_PerClassSelector):
    name = "herding"
    description = "Herding: greedy picks whose running mean stays as close as possible to the class mean."
    score_name = "mean_error"

    def select_class(self, x, feats):
        order = herding_order(feats, self.ipc)
        err = float(np.linalg.norm(feats[order].mean(0) - feats.mean(0)))
        return order, None, err


@register_method
class KCenter(_PerClassSelector):
    name = "kcenter"
    description = "k-center greedy: each pick is the image farthest from those already picked (covers the class)."
    score_name = "radius"

    def select_class(self, x, feats):
        first = int(torch.randint(0, len(feats), (1,), generator=self.generator))
        chosen = kcenter_greedy(feats, self.ipc, first)
        radius = float(np.sqrt(pairwise_sq_dists(feats, feats[chosen]).min(1).max()))
        return chosen, None, radius


@register_method
class FacilityLocation(_PerClassSelector):
    name = "facility"
    description = ("Facility location: submodular selection that maximises how well every image is represented "
                   "by its most similar pick (lazy greedy).")
    Config = FacilityConfig
    score_name = "coverage"

    def select_class(self, x, feats):
        pool = np.arange(len(feats))
        limit = max(self.config.max_pool, self.ipc)
        if len(pool) > limit:  # bound the n² similarity matrix
            pool = np.sort(torch.randperm(len(pool), generator=self.generator)[:limit].numpy())
        sim = facility_similarity(feats[pool])
        chosen = facility_lazy_greedy(sim, self.ipc)
        coverage = facility_objective(sim, chosen) / max(1e-12, float(sim.max()) * len(pool))
        return pool[chosen], None, coverage

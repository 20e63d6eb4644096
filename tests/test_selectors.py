"""The classic selectors: class mean, k-means centroids and medoids, herding, k-center, facility location."""
from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import torch

from distill_core.cli import main
from distill_core.errors import InvalidInputError
from distill_core.methods import create_method
from distill_core.methods.selectors import (facility_lazy_greedy, facility_objective, facility_similarity,
                                            herding_order, kcenter_greedy, pairwise_sq_dists)

PICKERS = ("medoids", "herding", "kcenter", "facility")
ALL = ("mean", "kmeans") + PICKERS


def _flat(x: torch.Tensor) -> np.ndarray:
    return x.reshape(len(x), -1).numpy().astype(np.float64)


@pytest.mark.parametrize("name", PICKERS)
@pytest.mark.parametrize("ipc", [1, 7])
def test_pickers_return_ipc_distinct_real_images_of_each_class(digits, name, ipc):
    s = create_method(name, digits, ipc, seed=3).summary()
    assert len(s) == ipc * digits.num_classes
    assert s.labels.tolist() == [c for c in range(digits.num_classes) for _ in range(ipc)]
    idx = torch.tensor(s.meta["indices"])
    assert len(set(idx.tolist())) == len(idx)                    # distinct training images
    assert torch.equal(digits.y_train[idx], s.labels)            # each from its own class
    assert torch.equal(digits.x_train[idx], s.images)            # the images themselves, unchanged


def test_class_mean_is_the_average_image_and_only_ipc_1(digits):
    s = create_method("mean", digits, 1).summary()
    for c in range(digits.num_classes):
        assert torch.allclose(s.images[c], digits.x_train[digits.y_train == c].mean(0), atol=1e-6)
    with pytest.raises(InvalidInputError, match="at most 1 image"):
        create_method("mean", digits, 2)


def test_kmeans_centroids_are_cluster_means(digits):
    s1 = create_method("kmeans", digits, 1).summary()
    mean = create_method("mean", digits, 1).summary()
    assert torch.allclose(s1.images, mean.images, atol=1e-5)  # one cluster: the class mean
    s = create_method("kmeans", digits, 5, seed=1).summary()
    x0 = _flat(digits.x_train[digits.y_train == 0])
    cents = _flat(s.images[:5])
    assign = pairwise_sq_dists(x0, cents).argmin(1)
    assert sorted(set(assign.tolist())) == [0, 1, 2, 3, 4]
    for k in range(5):  # a converged k-means: each centroid is the mean of the images nearest it
        assert np.allclose(cents[k], x0[assign == k].mean(0), atol=1e-4)
    # k-means inertia beats 5 random images used as centres
    rnd = _flat(create_method("random", digits, 5, seed=1).summary().images[:5])
    assert pairwise_sq_dists(x0, cents).min(1).sum() < pairwise_sq_dists(x0, rnd).min(1).sum()


def test_medoid_is_nearest_real_image_to_its_centroid(digits):
    cents = create_method("kmeans", digits, 4, seed=2).summary()
    meds = create_method("medoids", digits, 4, seed=2).summary()
    for c in (0, 5):
        x = _flat(digits.x_train[digits.y_train == c])
        d = pairwise_sq_dists(_flat(cents.images[4 * c:4 * c + 4]), _flat(meds.images[4 * c:4 * c + 4]))
        nearest_possible = pairwise_sq_dists(_flat(cents.images[4 * c:4 * c + 4]), x).min(1)
        assert np.allclose(np.diag(d), nearest_possible)  # each centroid got its nearest image (all distinct here)


def test_herding_mean_error_shrinks_as_k_grows(digits):
    x = _flat(digits.x_train[digits.y_train == 3])
    order = herding_order(x, 40)
    errs = [np.linalg.norm(x[order[:k]].mean(0) - x.mean(0)) for k in (1, 2, 5, 10, 20, 40)]
    assert all(a > b for a, b in zip(errs, errs[1:])), errs
    rnd = np.random.default_rng(0).choice(len(x), 20, replace=False)
    assert errs[4] < 0.5 * np.linalg.norm(x[rnd].mean(0) - x.mean(0))  # far better than a random 20
    # the method's picks are this order's prefix: herding at IPC k is nested in IPC k+1
    s5, s3 = create_method("herding", digits, 5).summary(), create_method("herding", digits, 3).summary()
    assert s5.meta["indices"][:3] == s3.meta["indices"][:3]


def test_kcenter_covers_better_than_random(digits):
    x = _flat(digits.x_train[digits.y_train == 7])
    chosen = kcenter_greedy(x, 10, first=0)
    assert len(set(chosen.tolist())) == 10 and chosen[0] == 0
    radius = np.sqrt(pairwise_sq_dists(x, x[chosen]).min(1).max())
    rng = np.random.default_rng(0)
    random_radii = [np.sqrt(pairwise_sq_dists(x, x[rng.choice(len(x), 10, replace=False)]).min(1).max())
                    for _ in range(20)]
    assert radius < np.median(random_radii)
    # every greedy pick was the point farthest from the earlier ones
    for t in range(1, 10):
        d = pairwise_sq_dists(x, x[chosen[:t]]).min(1)
        assert np.isclose(d[chosen[t]], d.max())


def test_facility_lazy_greedy_equals_plain_greedy_and_beats_random():
    rng = np.random.default_rng(5)
    x = np.concatenate([rng.normal(m, 1.0, size=(30, 6)) for m in (0, 4, 8)])
    sim = facility_similarity(x)
    lazy = facility_lazy_greedy(sim, 6)
    plain: list[int] = []
    for _ in range(6):  # the textbook greedy: evaluate every candidate each round
        gains = [facility_objective(sim, np.array(plain + [j])) if j not in plain else -1 for j in range(len(x))]
        plain.append(int(np.argmax(gains)))
    assert lazy.tolist() == plain
    best = facility_objective(sim, lazy)
    randoms = [facility_objective(sim, rng.choice(len(x), 6, replace=False)) for _ in range(50)]
    assert best > max(randoms)
    # greedy is within (1 - 1/e) of the optimum; for 2 picks of 12 points the optimum is checkable
    small = facility_similarity(x[::8])
    opt = max(facility_objective(small, np.array(p)) for p in itertools.combinations(range(len(small)), 2))
    assert facility_objective(small, facility_lazy_greedy(small, 2)) >= (1 - 1 / np.e) * opt


def test_facility_method_objective_beats_random(digits):
    fac = create_method("facility", digits, 5).summary()
    rnd = create_method("random", digits, 5, seed=0).summary()
    for c in range(digits.num_classes):
        idx = torch.nonzero(digits.y_train == c).flatten()
        sim = facility_similarity(_flat(digits.x_train[idx]))
        pos = {int(i): k for k, i in enumerate(idx)}
        f = facility_objective(sim, np.array([pos[i] for i in fac.meta["indices"][5 * c:5 * c + 5]]))
        r = facility_objective(sim, np.array([pos[i] for i in rnd.meta["indices"][5 * c:5 * c + 5]]))
        assert f > r


@pytest.mark.parametrize("name", ALL)
def test_same_seed_same_summary(digits, name):
    ipc = 1 if name == "mean" else 4
    a = create_method(name, digits, ipc, seed=11).summary()
    b = create_method(name, digits, ipc, seed=11).summary()
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)


def test_seed_changes_the_seeded_selectors(digits):
    for name in ("kcenter",):
        a = create_method(name, digits, 4, seed=1).summary()
        b = create_method(name, digits, 4, seed=2).summary()
        assert a.meta["indices"] != b.meta["indices"]


def test_feature_space_changes_the_picks(digits):
    pix = create_method("herding", digits, 5).summary()
    conv = create_method("herding", digits, 5, overrides={"space": "convnet-random"}).summary()
    assert conv.meta["space"] == "convnet-random" and len(set(conv.meta["indices"])) == 50
    assert conv.meta["indices"] != pix.meta["indices"]
    with pytest.raises(InvalidInputError, match="space must be one of"):
        create_method("herding", digits, 5, overrides={"space": "hog"})


@pytest.mark.parametrize("name", ALL)
def test_ipc_larger_than_a_class_is_refused(digits, name):
    with pytest.raises(InvalidInputError):
        create_method(name, digits, min(digits.class_counts()) + 1)


def test_cli_runs_a_selector(digits, tmp_path, capsys):
    assert main(["distill", "--dataset", "digits", "--method", "facility", "--ipc", "3", "--out",
                 str(tmp_path / "fac"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["method"] == "facility" and out["ipc"] == 3 and (tmp_path / "fac" / "summary.pt").is_file()


def _spy_on_facility(monkeypatch) -> list[np.ndarray]:
    """Record the candidate features each class's facility selection works on (its pool)."""
    from distill_core.methods import selectors

    pools: list[np.ndarray] = []
    real = selectors.facility_similarity

    def spy(features):
        pools.append(np.array(features))
        return real(features)

    monkeypatch.setattr(selectors, "facility_similarity", spy)
    return pools


def test_facility_samples_a_seeded_pool_above_max_pool(digits, monkeypatch):
    """Above `max_pool` candidates per class, facility location runs on a seeded sample of that many (the
    similarity matrix is n²); the picks are the lazy-greedy optimum of that sample."""
    pools = _spy_on_facility(monkeypatch)
    s = create_method("facility", digits, 3, seed=1, overrides={"max_pool": 25}).summary()
    assert len(pools) == digits.num_classes
    for c, pool in enumerate(pools):
        x = _flat(digits.x_train[digits.y_train == c])
        assert pool.shape == (25, x.shape[1]) and len(x) > 25
        # the pool is distinct real images of the class, and the picks are its greedy optimum
        rows = {r.tobytes() for r in x}
        assert len({r.tobytes() for r in pool}) == 25 and all(r.tobytes() in rows for r in pool)
        greedy = facility_lazy_greedy(facility_similarity(pool), 3)
        assert np.allclose(_flat(s.images[3 * c:3 * c + 3]), pool[greedy])
    idx = torch.tensor(s.meta["indices"])
    assert torch.equal(digits.y_train[idx], s.labels) and torch.equal(digits.x_train[idx], s.images)

    # seeded: the same seed draws the same pools, another seed other pools (and so other picks)
    assert create_method("facility", digits, 3, seed=1, overrides={"max_pool": 25}).summary().meta["indices"] == \
        s.meta["indices"]
    other = create_method("facility", digits, 3, seed=2, overrides={"max_pool": 25}).summary()
    assert other.meta["indices"] != s.meta["indices"]

    # every class fits a pool of 10,000: all candidates are used, so the seed no longer matters
    pools.clear()
    full = [create_method("facility", digits, 3, seed=k, overrides={"max_pool": 10_000}).summary() for k in (1, 2)]
    assert [len(p) for p in pools[:digits.num_classes]] == digits.class_counts()
    assert full[0].meta["indices"] == full[1].meta["indices"]

    # a pool never holds fewer candidates than the picks it must make
    pools.clear()
    tiny = create_method("facility", digits, 4, seed=1, overrides={"max_pool": 1}).summary()
    assert {len(p) for p in pools} == {4} and len(set(tiny.meta["indices"])) == 40
    # sampling costs coverage: the full class's greedy covers it better than a pool of 25's picks
    x0 = _flat(digits.x_train[digits.y_train == 0])
    sim = facility_similarity(x0)
    pos = {r.tobytes(): i for i, r in enumerate(x0)}
    picks = lambda summary: np.array([pos[r.tobytes()] for r in _flat(summary.images[:3])])  # noqa: E731
    assert facility_objective(sim, picks(full[0])) > facility_objective(sim, picks(s))

"""Archetypes (nearest real images, typicality) against brute-force references; stimulus zip and CSV."""
from __future__ import annotations

import csv
import io
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from distill_core import archetypes, stimuli
from distill_core.errors import DistillError, InvalidInputError


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("DISTILL_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "distill-cache"))


def _brute_knn(q: np.ndarray, r: np.ndarray, k: int, metric: str) -> tuple[np.ndarray, np.ndarray]:
    idx = np.zeros((len(q), k), dtype=np.int64)
    dist = np.zeros((len(q), k))
    for i, a in enumerate(q):
        if metric == "euclidean":
            d = np.array([np.sqrt(((a - b) ** 2).sum()) for b in r])
        else:
            d = np.array([1 - a @ b / (np.linalg.norm(a) * np.linalg.norm(b)) for b in r])
        order = sorted(range(len(r)), key=lambda j: (d[j], j))[:k]
        idx[i], dist[i] = order, d[order]
    return idx, dist


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_nearest_neighbours_match_brute_force(metric):
    rng = np.random.default_rng(0)
    ref, q = rng.random((300, 17)), rng.random((23, 17))
    idx, dist = archetypes.nearest_neighbours(q, ref, k=7, metric=metric, chunk=5)
    bidx, bdist = _brute_knn(q, ref, 7, metric)
    np.testing.assert_array_equal(idx, bidx)
    np.testing.assert_allclose(dist, bdist, atol=1e-9)


def test_nearest_neighbours_k_larger_than_reference_and_self_match():
    ref = np.random.default_rng(1).random((4, 3))
    idx, dist = archetypes.nearest_neighbours(ref, ref, k=10)
    assert idx.shape == (4, 4)
    np.testing.assert_array_equal(idx[:, 0], np.arange(4))
    np.testing.assert_allclose(dist[:, 0], 0, atol=1e-7)


def _flat(x: torch.Tensor, normalize: bool) -> np.ndarray:
    """Brute-force reference vectors: raw pixels, or each image standardised (mean 0, standard deviation 1)."""
    v = x.reshape(len(x), -1).double().numpy()
    if normalize:
        v = v - v.mean(1, keepdims=True)
        sd = v.std(1, keepdims=True)
        v = v / np.where(sd > 0, sd, 1.0)
    return v


@pytest.mark.parametrize("normalize", [True, False])
def test_nearest_real_pixels_finds_the_training_image_itself(digits, normalize):
    picks = torch.tensor([0, 5, 100, 700])
    nb = archetypes.nearest_real(digits, digits.x_train[picks], k=3, normalize=normalize)
    np.testing.assert_array_equal(nb.indices[:, 0], picks.numpy())
    np.testing.assert_allclose(nb.distances[:, 0], 0, atol=1e-6)
    flat = _flat(digits.x_train, normalize)
    bidx, bdist = _brute_knn(flat[picks.numpy()] + 0.0, flat, 3, "euclidean")
    np.testing.assert_allclose(nb.distances, bdist, atol=1e-6)
    assert nb.space == ("pixels (contrast-normalised)" if normalize else "pixels (raw)")


@pytest.mark.parametrize("normalize", [True, False])
def test_nearest_real_restricted_to_class(digits, normalize):
    noise = torch.rand(6, *digits.image_shape, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([0, 1, 2, 3, 4, 5])
    nb = archetypes.nearest_real(digits, noise, k=4, labels=labels, normalize=normalize)
    assert (digits.y_train[torch.from_numpy(nb.indices)] == labels[:, None]).all()
    for q in range(6):  # the same as a brute-force search inside the class
        cls = torch.nonzero(digits.y_train == labels[q]).flatten().numpy()
        flat = _flat(digits.x_train[cls], normalize)
        bidx, _ = _brute_knn(_flat(noise[q:q + 1], normalize), flat, 4, "euclidean")
        np.testing.assert_array_equal(nb.indices[q], cls[bidx[0]])


def test_a_dim_image_finds_its_own_shape_after_contrast_normalisation(digits):
    """Real images at 15 % of their brightness (as KIP's dim images are): contrast-normalised pixels still find
    each image itself first; raw pixels find other, darker images instead (half of them of another class)."""
    picks = [int(torch.nonzero(digits.y_train == c).flatten()[0]) for c in range(10)]
    dim = digits.x_train[picks] * 0.15
    norm = archetypes.nearest_real(digits, dim, k=1)
    assert norm.indices[:, 0].tolist() == picks
    raw = archetypes.nearest_real(digits, dim, k=1, normalize=False)
    assert not set(raw.indices[:, 0].tolist()) & set(picks)
    assert int((digits.y_train[torch.from_numpy(raw.indices[:, 0])] != torch.arange(10)).sum()) >= 4


def test_nearest_real_in_a_feature_space(digits):
    nb = archetypes.nearest_real(digits, digits.x_train[:3], k=2, space="convnet-random", metric="cosine")
    np.testing.assert_array_equal(nb.indices[:, 0], [0, 1, 2])
    assert nb.space == "convnet-random" and nb.distances.shape == (3, 2)


@pytest.mark.parametrize("normalize", [True, False])
def test_typicality_matches_brute_force(digits, normalize):
    c = 3
    for metric in ("cosine", "euclidean"):
        table = archetypes.typicality(digits, c, "pixels", metric=metric, normalize=normalize)
        idx = torch.nonzero(digits.y_train == c).flatten().numpy()
        x = _flat(digits.x_train[idx], normalize)
        mean = x.mean(0)
        if metric == "cosine":
            ref = np.array([v @ mean / (np.linalg.norm(v) * np.linalg.norm(mean)) for v in x])
        else:
            ref = -np.array([np.linalg.norm(v - mean) for v in x])
        order = sorted(range(len(idx)), key=lambda j: (-ref[j], idx[j]))
        np.testing.assert_array_equal(table.indices, idx[order])
        np.testing.assert_allclose(table.scores, ref[order], atol=1e-9)
        assert np.all(np.diff(table.scores) <= 1e-12)
        most, most_s = table.most(3)
        least, least_s = table.least(3)
        np.testing.assert_array_equal(most, table.indices[:3])
        np.testing.assert_array_equal(least, table.indices[::-1][:3])
        assert most_s[0] >= least_s[0]


def test_typicality_with_an_image_as_archetype(digits):
    img_index = int(torch.nonzero(digits.y_train == 2).flatten()[4])
    table = archetypes.typicality(digits, 2, "pixels", archetype=digits.x_train[img_index])
    assert table.indices[0] == img_index and table.scores[0] == pytest.approx(1.0)
    rows = table.rows()
    assert rows[0]["rank"] == 1 and rows[0]["train_index"] == img_index and rows[0]["class"] == "2"


def test_score_images_and_difference_from_mean(digits):
    means = archetypes.class_means(digits)
    assert means.shape == (10, *digits.image_shape)
    labels = torch.arange(10)
    scores = archetypes.score_images(digits, means, labels, "pixels", "cosine", normalize=False)
    np.testing.assert_allclose(scores, 1.0, atol=1e-6)  # the centroid is the class mean itself
    diff, norms = archetypes.difference_from_mean(digits, means, labels)
    assert float(diff.abs().max()) < 1e-6 and np.allclose(norms, 0, atol=1e-5)
    x = digits.x_train[:5]
    diff, norms = archetypes.difference_from_mean(digits, x, digits.y_train[:5])
    np.testing.assert_allclose(norms, (x - means[digits.y_train[:5]]).reshape(5, -1).norm(dim=1).numpy(), rtol=1e-6)


def test_bad_inputs_are_clear_errors(digits):
    with pytest.raises(InvalidInputError, match="do not match"):
        archetypes.nearest_real(digits, torch.zeros(2, 1, 9, 9))
    with pytest.raises(DistillError, match="unknown metric"):
        archetypes.typicality(digits, 0, metric="manhattan")
    with pytest.raises(DistillError, match="unknown feature space"):
        archetypes.typicality(digits, 0, space="nope")
    with pytest.raises(InvalidInputError, match="outside"):
        archetypes.typicality(digits, 10)
    with pytest.raises(InvalidInputError, match="NaN"):
        archetypes.nearest_real(digits, torch.full((1, *digits.image_shape), float("nan")))


def test_prototype_summary_unknown_selector_is_a_note(digits):
    summary, why = archetypes.prototype_summary(digits, "no-such-selector", 2)
    assert summary is None and "not available" in why
    summary, why = archetypes.prototype_summary(digits, "random", 2)
    assert summary is not None and len(summary) == 20 and why == ""


# ---------------------------------------------------------------------------------------------- stimuli

def _summary(digits):
    from distill_core.methods import create_method

    return create_method("random", digits, 2, seed=0).summary()


@pytest.mark.parametrize("mode,channels", [("greyscale", "L"), ("rgb", "RGB")])
def test_stimulus_zip_unpacks_to_pngs_and_a_matching_manifest(digits, mode, channels):
    summary = _summary(digits)
    scores = archetypes.score_images(digits, summary.images, summary.labels)
    items = stimuli.stimuli_from_summary(summary, run_id="run-1", typicality=scores)
    table = archetypes.typicality(digits, 0)
    idx, sc = table.most(2)
    items += stimuli.stimuli_from_real(digits, idx, sc, source="most typical")
    data = stimuli.stimulus_zip(items, size=40, mode=mode, resample="nearest")
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        names = set(zf.namelist())
        rows = list(csv.DictReader(io.StringIO(zf.read("manifest.csv").decode("utf-8"))))
        assert len(rows) == len(items) == 22
        assert {r["file"] for r in rows} == names - {"manifest.csv", "README.txt"}
        for row, item in zip(rows, items):
            img = Image.open(io.BytesIO(zf.read(row["file"])))
            assert img.format == "PNG" and img.size == (40, 40) and img.mode == channels
            assert row["class"] == item.class_name and row["method"] == item.method
            assert float(row["typicality"]) == pytest.approx(item.typicality, abs=1e-5)
        assert rows[0]["run_id"] == "run-1" and rows[0]["ipc"] == "2" and rows[0]["seed"] == "0"
        assert rows[-1]["source"] == "selected real image" and rows[-1]["source_detail"] == "most typical"
        assert rows[-1]["train_index"] == str(int(idx[1]))
        assert {r["source"] for r in rows[:20]} == {"selected real image"}  # random picks are real images
        assert list(rows[0]) == stimuli.MANIFEST_COLUMNS


def test_stimulus_pixels_survive_export(digits):
    img = torch.zeros(1, 8, 8)
    img[0, 2, 3] = 1.0
    data = stimuli.stimulus_zip([stimuli.Stimulus(img, "0", 0, "test")], size=16, resample="nearest")
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        arr = np.asarray(Image.open(io.BytesIO(zf.read(zf.namelist()[0]))))
    assert arr.shape == (16, 16) and arr[4:6, 6:8].min() == 255 and arr.sum() == 255 * 4


def test_stimulus_options_are_checked():
    one = [stimuli.Stimulus(torch.zeros(1, 8, 8), "a", 0, "m")]
    with pytest.raises(InvalidInputError, match="size"):
        stimuli.stimulus_zip(one, size=2)
    with pytest.raises(InvalidInputError, match="colour mode"):
        stimuli.stimulus_zip(one, mode="cmyk")
    with pytest.raises(InvalidInputError, match="no images"):
        stimuli.stimulus_zip([])


def test_typicality_csv(digits):
    tables = [archetypes.typicality(digits, c) for c in range(3)]
    rows = list(csv.DictReader(io.StringIO(stimuli.typicality_csv(tables))))
    assert len(rows) == sum(len(t.indices) for t in tables)
    assert rows[0]["rank"] == "1" and rows[0]["class"] == "0"
    assert int(rows[0]["train_index"]) == int(tables[0].indices[0])
    assert set(rows[0]) == set(stimuli.TYPICALITY_COLUMNS)

"""Stimulus export for experiments: sources, manifest, equalisation, stable IDs, trial lists, methods text.

A KIP run, k-means centroids and medoids of `digits`, exported with mean luminance and RMS contrast equalised."""
from __future__ import annotations

import csv
import io
import zipfile
from collections import Counter

import numpy as np
import pytest
import torch
from PIL import Image

from distill_core import archetypes, stimuli
from distill_core.errors import InvalidInputError
from distill_core.methods import create_method

TARGET_MEAN, TARGET_RMS = 0.45, 0.18


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("DISTILL_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture(scope="module")
def kip_summary(digits):
    method = create_method("kip", digits, 2, seed=3, overrides={"init": "noise"})
    for _ in range(15):
        method.step()
    return method.summary()


def _selector(digits, name, ipc=2):
    m = create_method(name, digits, ipc, seed=0)
    m.step()
    return m.summary()


def _items(digits, kip_summary, space="pixels"):
    items = []
    for run_id, summary in (("kip-run", kip_summary), ("kmeans-run", _selector(digits, "kmeans")),
                            ("medoids-run", _selector(digits, "medoids"))):
        scores = archetypes.score_images(digits, summary.images, summary.hard_labels, space)
        ranks, pct = archetypes.rank_in_class(digits, scores, summary.hard_labels, space)
        part = stimuli.stimuli_from_summary(summary, run_id=run_id, typicality=scores, dataset=digits,
                                            settings={"init": "noise"} if run_id == "kip-run" else None)
        for s, r, p in zip(part, ranks, pct):
            s.typicality_rank, s.typicality_percentile = int(r), float(p)
            s.typicality_space, s.typicality_metric = archetypes.space_label(space), "cosine"
        items += part
    return items


def _read(data: bytes):
    zf = zipfile.ZipFile(io.BytesIO(data))
    rows = list(csv.DictReader(io.StringIO(zf.read("manifest.csv").decode("utf-8"))))
    return zf, rows


def test_kip_kmeans_medoids_zip_equalised(digits, kip_summary):
    items = _items(digits, kip_summary)
    opts = stimuli.StimulusOptions(size=32, mode="greyscale", resample="bilinear", mean_luminance=TARGET_MEAN,
                                   rms_contrast=TARGET_RMS)
    data = stimuli.stimulus_zip(items, options=opts, participants=len(items), design="latin")
    zf, rows = _read(data)
    assert len(rows) == len(items) == 60
    assert list(rows[0]) == stimuli.MANIFEST_COLUMNS
    # sources: learned pixels, averages of real images, real images
    by_run = {run: {r["source"] for r in rows if r["run_id"] == run} for run in ("kip-run", "kmeans-run", "medoids-run")}
    assert by_run == {"kip-run": {"distilled"}, "kmeans-run": {"averaged real images"},
                      "medoids-run": {"selected real image"}}
    kmeans_rows = [r for r in rows if r["run_id"] == "kmeans-run"]
    assert {r["source_detail"] for r in kmeans_rows} == {"k-means centroid"} and not any(r["train_index"] for r in kmeans_rows)
    medoid_rows = [r for r in rows if r["run_id"] == "medoids-run"]
    for r in medoid_rows:  # a medoid is the real training image it names
        idx = int(r["train_index"])
        assert digits.y_train[idx] == int(r["class_index"])
    kip_rows = [r for r in rows if r["run_id"] == "kip-run"]
    assert {r["steps"] for r in kip_rows} == {"15"} and {r["seed"] for r in kip_rows} == {"3"}
    assert {r["dataset"] for r in rows} == {"digits"}
    # every column filled where it applies
    for r in rows:
        for col in ("file", "stimulus_id", "class", "class_index", "source", "method", "dataset", "ipc", "run_id",
                    "index", "typicality", "typicality_space", "typicality_metric", "typicality_rank",
                    "typicality_percentile", "mean_luminance", "rms_contrast", "width", "height", "mode",
                    "library_version"):
            assert r[col] != "", (col, r)
        assert r["typicality_space"] == "pixels (contrast-normalised)" and r["typicality_metric"] == "cosine"
        n_class = int((digits.y_train == int(r["class_index"])).sum())
        assert 1 <= int(r["typicality_rank"]) <= n_class + 1 and 0 <= float(r["typicality_percentile"]) <= 100
    # equalised: every PNG within 1 % of the targets
    for r in rows:
        arr = np.asarray(Image.open(io.BytesIO(zf.read(r["file"]))), dtype=np.float64) / 255.0
        assert arr.shape == (32, 32)
        assert abs(arr.mean() - TARGET_MEAN) <= 0.01 * TARGET_MEAN, r["file"]
        assert abs(arr.std() - TARGET_RMS) <= 0.01 * TARGET_RMS, r["file"]
        assert float(r["mean_luminance"]) == pytest.approx(arr.mean(), abs=1e-5)
    # trial lists: each stimulus equally often at every position
    trials = list(csv.DictReader(io.StringIO(zf.read("trials.csv").decode("utf-8"))))
    assert len(trials) == len(items) ** 2
    per_position = Counter((t["trial"], t["stimulus_id"]) for t in trials)
    assert set(per_position.values()) == {1} and len(per_position) == len(items) ** 2
    readme = zf.read("README.txt").decode("utf-8")
    for words in ("kip", "digits", "15 optimisation steps", "seed 3", "init=noise", "mean luminance 0.45",
                  "RMS contrast 0.18", "k-means centroid", "Williams"):
        assert words in readme, words


def test_rank_and_percentile_against_the_real_images(digits):
    table = archetypes.typicality(digits, 4)
    real = digits.x_train[torch.as_tensor(table.indices[[0, len(table.indices) // 2, -1]])]
    scores = archetypes.score_images(digits, real, [4, 4, 4])
    ranks, pct = archetypes.rank_in_class(digits, scores, [4, 4, 4])
    n = len(table.indices)
    assert ranks.tolist() == [1, n // 2 + 1, n]
    assert pct[0] == pytest.approx(100.0) and pct[2] == pytest.approx(100.0 / n)


def test_ids_are_stable_across_selections(digits, kip_summary):
    items = _items(digits, kip_summary)
    full = {s.stimulus_id: stimuli.stimulus_file(s) for s in items}
    assert len(full) == len(items)
    picked = stimuli.select_stimuli(items, classes=[3, 7])
    assert {s.class_index for s in picked} == {3, 7} and len(picked) == 12
    hand = stimuli.select_stimuli(items, ids=[items[5].stimulus_id, items[40].stimulus_id])
    assert [s.stimulus_id for s in hand] == [items[5].stimulus_id, items[40].stimulus_id]
    for subset in (picked, hand, items[::-1]):
        _, rows = _read(stimuli.stimulus_zip(subset, size=16))
        assert {r["stimulus_id"]: r["file"] for r in rows} == {s.stimulus_id: full[s.stimulus_id] for s in subset}
    again = _items(digits, kip_summary)  # made afresh: same IDs
    assert [s.stimulus_id for s in again] == [s.stimulus_id for s in items]
    with pytest.raises(InvalidInputError, match="unknown stimulus"):
        stimuli.select_stimuli(items, ids=["nope"])


@pytest.mark.parametrize("design", stimuli.DESIGNS)
@pytest.mark.parametrize("n", [5, 6])
def test_trial_orders_are_balanced(design, n):
    orders = stimuli.trial_orders(n, 3 * n, design, seed=1)
    assert len(orders) == 3 * n and all(sorted(o) == list(range(n)) for o in orders)
    for pos in range(n):
        assert Counter(o[pos] for o in orders) == {i: 3 for i in range(n)}
    if design == "latin" and n % 2 == 0:  # Williams: every ordered pair of neighbours once per square
        pairs = Counter((o[t], o[t + 1]) for o in orders[:n] for t in range(n - 1))
        assert set(pairs.values()) == {1} and len(pairs) == n * (n - 1)
    if design == "shuffle":
        assert stimuli.trial_orders(n, 3 * n, design, seed=1) == orders
        assert stimuli.trial_orders(n, 3 * n, design, seed=2) != orders
    partial = stimuli.trial_orders(n, n + 2, design, seed=0)
    for pos in range(n):
        counts = Counter(o[pos] for o in partial)
        assert max(counts.values()) - min(counts.get(i, 0) for i in range(n)) <= 1


def test_invert_padding_background():
    img = torch.zeros(1, 8, 8)
    img[0, 2:6, 2:6] = 1.0
    s = stimuli.Stimulus(img, "a", 0, "m", run_id="r", index=0)
    opts = stimuli.StimulusOptions(size=16, resample="nearest", invert=True, padding=4, background="#ff0000")
    arr = np.asarray(stimuli.render_stimulus(s.image, opts))
    assert arr.shape == (24, 24)
    assert arr[0, 0] == round(255 * 0.2126)               # red, as grey luminance
    assert arr[4, 4] == 255 and arr[12, 12] == 0          # inverted: the square is dark, its surround bright
    rgb = np.asarray(stimuli.render_stimulus(s.image, stimuli.StimulusOptions(16, "rgb", "nearest", padding=2,
                                                                              background="0.5")))
    assert rgb.shape == (20, 20, 3) and tuple(rgb[0, 0]) == (128, 128, 128)


def test_bad_options_are_clear_errors():
    one = [stimuli.Stimulus(torch.zeros(1, 8, 8), "a", 0, "m")]
    with pytest.raises(InvalidInputError, match="uniform image"):
        stimuli.stimulus_zip(one, options=stimuli.StimulusOptions(size=16, rms_contrast=0.2))
    with pytest.raises(InvalidInputError, match="background"):
        stimuli.stimulus_zip(one, options=stimuli.StimulusOptions(size=16, padding=2, background="blue"))
    with pytest.raises(InvalidInputError, match="mean luminance"):
        stimuli.StimulusOptions(mean_luminance=1.5).check()
    with pytest.raises(InvalidInputError, match="padding"):
        stimuli.StimulusOptions(padding=-1).check()
    with pytest.raises(InvalidInputError, match="participants"):
        stimuli.stimulus_zip(one, size=16, participants=0.5)
    with pytest.raises(InvalidInputError, match="design"):
        stimuli.trial_orders(3, 3, "abba")
    half = torch.zeros(1, 8, 8)
    half[0, :, :1] = 1.0   # one bright column: a mean of 0.9 with contrast 0.45 cannot fit in [0, 1]
    with pytest.raises(InvalidInputError, match="cannot reach"):
        stimuli.stimulus_zip([stimuli.Stimulus(half, "a", 0, "m")],
                             options=stimuli.StimulusOptions(size=16, mean_luminance=0.9, rms_contrast=0.45))


def test_original_file_names_of_uploads(digits):
    import copy

    ds = copy.copy(digits)
    ds.meta = dict(digits.meta, train_files=[f"class/{i}.png" for i in range(len(digits.y_train))])
    items = stimuli.stimuli_from_real(ds, [5, 9], source="most typical")
    _, rows = _read(stimuli.stimulus_zip(items, size=16))
    assert [r["original_file"] for r in rows] == ["class/5.png", "class/9.png"]
    assert {r["source"] for r in rows} == {"selected real image"} and {r["source_detail"] for r in rows} == {"most typical"}

"""Exports: the PNG grid, the animated GIF of snapshots and the zip of a run folder are valid files."""
from __future__ import annotations

import io
import zipfile

import pytest
import torch
from PIL import Image

from distill_core import exports
from distill_core.errors import InvalidInputError, RunFormatError
from distill_core.methods import create_method
from distill_core.runs import load_run, save_run


@pytest.fixture()
def summary(digits):
    return create_method("random", digits, 3, seed=0).summary()


def test_png_grid_is_a_png_with_one_row_per_class(summary):
    data = exports.png_grid(summary.images, summary.class_names, summary.hard_labels)
    img = Image.open(io.BytesIO(data))
    assert img.format == "PNG"
    img.load()
    tile = max(8, min(64, 8 * 4))
    assert img.height == 10 * (tile + 2) + 2  # ten classes, one row each
    assert img.width == 64 + 3 * (tile + 2) + 2


def test_gif_evolution_is_an_animated_gif(summary):
    g = torch.Generator().manual_seed(0)
    snaps = [summary.images + 0.1 * torch.randn(summary.images.shape, generator=g) for _ in range(5)]
    data = exports.gif_evolution(snaps, [0, 10, 20, 30, 40], summary.class_names, summary.hard_labels)
    img = Image.open(io.BytesIO(data))
    assert img.format == "GIF" and img.n_frames == 5 and img.is_animated
    assert img.info.get("loop") == 0


def test_gif_thins_many_snapshots(summary):
    snaps = [summary.images.half()] * 100
    data = exports.gif_evolution(snaps, list(range(100)), summary.class_names, max_frames=10)
    assert Image.open(io.BytesIO(data)).n_frames == 10


def test_gif_of_one_snapshot_and_errors(summary):
    assert Image.open(io.BytesIO(exports.gif_evolution([summary.images], [7], summary.class_names))).format == "GIF"
    with pytest.raises(InvalidInputError):
        exports.gif_evolution([], [], summary.class_names)
    with pytest.raises(InvalidInputError):
        exports.gif_evolution([summary.images], [1, 2], summary.class_names)
    with pytest.raises(InvalidInputError):
        exports.png_grid(torch.zeros(0, 1, 8, 8), summary.class_names)


def test_zip_of_a_run_folder_round_trips(summary, tmp_path):
    run = save_run(tmp_path / "runs" / "r1", summary, {"steps": 1, "seed": 0})
    data = exports.zip_run_folder(run)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.testzip() is None
        names = set(zf.namelist())
        assert {"r1/config.json", "r1/summary.pt", "r1/grid.png", "r1/metrics.jsonl"} <= names
        zf.extractall(tmp_path / "unzipped")
    record = load_run(tmp_path / "unzipped" / "r1")
    assert torch.equal(record.summary.images, summary.images)


def test_zip_refuses_a_folder_that_is_not_a_run(tmp_path):
    with pytest.raises(RunFormatError):
        exports.zip_run_folder(tmp_path)

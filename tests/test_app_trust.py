"""Small pieces of the app that keep users' trust: no server paths in messages, projector-sized GIFs, a smoothed
live accuracy, downloads whose bytes exist before the button is drawn."""
from __future__ import annotations

import io

import pytest
import torch
from PIL import Image

from distill_core import exports


def test_server_temp_paths_are_stripped_from_messages():
    from ui.errors import describe, strip_server_paths
    from distill_core.errors import InvalidInputError

    assert strip_server_paths("image /tmp/distill-upload-k2j3/shapes/cats/1.png cannot be read") == \
        "image shapes/cats/1.png cannot be read"
    assert strip_server_paths("folder /tmp/distill-upload-k2j3 is empty") == "folder a temporary file is empty"
    assert strip_server_paths("keep /home/me/data/x.png") == "keep /home/me/data/x.png"  # the user's own path
    assert "/tmp" not in describe(InvalidInputError("cannot read '/tmp/distill-upload-ab/c/d.png'"))
    assert "/tmp" not in describe(OSError("[Errno 2] No such file: /tmp/tmpab12/x"))


def test_the_gif_is_projector_sized_with_crisp_pixels():
    from ui.downloads import PROJECTOR_WIDTH, projector_gif

    torch.manual_seed(0)
    snaps = [torch.rand(10, 1, 8, 8) for _ in range(4)]
    small = exports.gif_evolution(snaps, [0, 1, 2, 3], [str(i) for i in range(10)])
    big = projector_gif(small)
    with Image.open(io.BytesIO(small)) as a, Image.open(io.BytesIO(big)) as b:
        assert a.size[0] < PROJECTOR_WIDTH <= b.size[0]
        factor = b.size[0] // a.size[0]
        assert b.size == (a.size[0] * factor, a.size[1] * factor) and b.n_frames == a.n_frames == 4
        a.seek(1)
        b.seek(1)
        pa, pb = a.convert("RGB"), b.convert("RGB")
        # nearest neighbour: every enlarged pixel is a copy of its source pixel
        for x, y in ((5, 5), (a.size[0] // 2, a.size[1] // 3), (a.size[0] - 3, a.size[1] // 2)):
            assert pb.getpixel((x * factor + factor // 2, y * factor + factor // 2)) == pa.getpixel((x, y))
        assert b.info.get("duration") == a.info.get("duration")
    assert projector_gif(big) == big  # already wide enough: unchanged


def test_live_accuracy_is_smoothed_with_a_band():
    from ui.plots import accuracy_figure, smoothed_accuracy

    pts = [{"step": 10 * i, "acc": a, "protocol": "quick", "epochs": 40}
           for i, a in enumerate([0.80, 0.814, 0.80, 0.814, 0.80, 0.814])]
    band = smoothed_accuracy(pts, window=4)
    assert [b["n"] for b in band] == [1, 2, 3, 4, 4, 4]
    assert band[-1]["mean"] == pytest.approx(0.807) and band[-1]["std"] == pytest.approx(0.007)
    fig = accuracy_figure(pts, references={"random picks": 0.5, "full data": 0.95})
    names = [t.name for t in fig.data]
    assert any("mean of last" in n for n in names) and any("± std" in n for n in names)
    assert sorted(round(s["y0"], 1) for s in fig.layout.shapes) == [50.0, 95.0]


def test_cached_bytes_are_built_once_per_key():
    from ui import downloads

    calls = []

    def make() -> bytes:
        calls.append(1)
        return b"x" * 10

    key = f"test.{id(calls)}"
    assert downloads.cached_bytes(key, make) is downloads.cached_bytes(key, make)
    assert len(calls) == 1


def test_reference_lines_are_computed_once_in_the_background(digits, monkeypatch):
    from distill_core import jobs, references

    from toy_methods import wait_for

    cache: dict = {}
    monkeypatch.setattr(references, "_REFS", cache)  # empty (other tests of this process may have filled it)

    assert jobs.reference_accuracies("digits", 2, "krr", None) == {}  # nothing to compute from: nothing known
    first = jobs.reference_accuracies("digits", 2, "krr", None, dataset=digits)
    assert wait_for(lambda: "full data" in jobs.reference_accuracies("digits", 2, "krr", None), 120)
    refs = jobs.reference_accuracies("digits", 2, "krr", None, dataset=digits)
    assert first == {} or "random picks" in first
    assert 0.3 < refs["random picks"] < refs["full data"] <= 1.0
    assert jobs.reference_accuracies("digits", 2, "krr", None) == refs  # cached, not recomputed
    assert cache[("digits", 2, "krr", None)] == refs  # measured into the cache the test emptied

"""AppTest: the embedding, archetypes and benchmark pages, and the upload flow (no traceback ever reaches the page)."""
from __future__ import annotations

import io
import json
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from streamlit.testing.v1 import AppTest

from distill_core.archetypes import PROTOTYPE_METHODS
from distill_core.methods import METHODS
from ui import maps

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("DISTILL_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "distill-cache"))


@pytest.fixture
def runs_dir(tmp_path, monkeypatch, digits):
    """A runs folder with a selector run and a 'distiller' run that has snapshots."""
    from distill_core.methods import create_method
    from distill_core.runs import save_run

    root = tmp_path / "runs"
    monkeypatch.setenv("DISTILL_RUNS_DIR", str(root))
    summary = create_method("random", digits, 2, seed=0).summary()
    save_run(root / "digits-random", summary, {"steps": 1, "seed": 0})
    g = torch.Generator().manual_seed(1)
    noise = torch.rand(summary.images.shape, generator=g)
    steps = torch.tensor([0, 5, 10, 20])
    snaps = torch.stack([(1 - t) * noise + t * summary.images for t in (0.0, 0.3, 0.7, 1.0)]).half()
    summary.method = "fake-distiller"
    summary.meta = {"seed": 0}
    save_run(root / "digits-fake", summary, {"steps": 20, "seed": 0}, snapshots={"steps": steps, "images": snaps})
    return root


def _page(name: str, timeout: float = 120) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app_pages" / name), default_timeout=timeout)
    at.session_state["dataset"] = "digits"
    return at


def _clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


@pytest.mark.slow
def test_embedding_page_with_runs_prototypes_and_trajectories(runs_dir):
    at = _page("embedding.py")
    at.session_state["embedding.runs"] = ["digits-fake", "digits-random"]
    at.session_state["embedding.protos"] = list(PROTOTYPE_METHODS)  # class means and every registered selector
    at.session_state["embedding.trace"] = True
    at.session_state["embedding.animate"] = True
    at.run()
    _clean(at)
    charts = at.get("plotly_chart")
    assert len(charts) == 1
    fig = json.loads(charts[0].proto.spec)
    names = [d.get("name", "") for d in fig["data"]]
    assert sum(d.get("type") == "scattergl" for d in fig["data"]) >= 10  # one per class at least
    assert "class means" in names and any(n.startswith("fake-distiller") for n in names)
    for name in PROTOTYPE_METHODS:
        if name in METHODS:  # a selector that is not registered is reported in a caption instead
            assert maps.OVERLAY_LABELS.get(name, name) in names, (name, names)
    paths = [d for d in fig["data"] if d.get("legendgroup") == "tr-digits-fake"]
    assert [d["name"] for d in paths] == [f"class {c} · image 1" for c in range(10)]  # one path per image
    assert paths[0]["legendgrouptitle"]["text"] == "paths · digits-fake"
    assert len(fig["frames"]) == 4  # one frame per snapshot
    captions = " ".join(c.value for c in at.caption)
    assert "no snapshots to trace" in captions, captions
    t0 = time.perf_counter()
    at.run()  # a redraw reuses the cached map and the placed points
    _clean(at)
    assert time.perf_counter() - t0 < 20


def test_map_selection_shows_images(digits):
    from ui import maps

    event = {"selection": {"points": [{"customdata": [0, 5]}, {"customdata": [1, 0]}, {"customdata": [0, 5]},
                                      {"customdata": [9, 9]}, {"x": 1}]}}
    pts = maps.selected_points(event)
    assert pts == [(0, 5), (1, 0), (9, 9)]
    ov = maps.Overlay("means", "star", torch.zeros(2, 1, 8, 8), np.array([0, 1]), np.zeros((2, 2)), ["m0", "m1"])
    items = maps.selected_images(pts, digits, [ov])
    assert len(items) == 2 and items[1][1] == "m0"
    assert torch.equal(items[0][0], digits.x_train[5])
    assert maps.selected_points(None) == [] and maps.selected_points({"selection": {}}) == []
    assert maps.thumbnail(digits.x_train[0], 40).shape == (40, 40)


def test_archetypes_page(runs_dir):
    at = _page("archetypes.py")
    at.session_state["archetypes.runs"] = ["digits-fake"]
    at.session_state["archetypes.protos"] = ["mean", "medoids"]
    at.session_state["archetypes.space"] = "pixels"
    at.run()
    _clean(at)
    md = [m.value for m in at.markdown]
    assert "**class mean**" in md and any(m.startswith("**Most typical**") for m in md)
    assert any(m.startswith("**Least typical**") for m in md)
    assert {b.key for b in at.get("download_button")} >= {"archetypes.dl.csv", "archetypes.dl.zip"}
    captions = " ".join(c.value for c in at.caption)
    assert "nearest real, pixels" in captions
    at.selectbox(key="archetypes.arch").set_value("digits-fake #1")
    at.selectbox(key="archetypes.class").set_value(3)
    at.run()
    _clean(at)
    assert any("archetype: digits-fake #1" in m.value for m in at.markdown)


def test_archetypes_stimulus_export_contents(runs_dir, digits):
    from distill_core import stimuli
    from distill_core.runs import load_run
    from ui import archetype_view

    record = load_run(runs_dir / "digits-fake")
    items = archetype_view.stimulus_list(digits, [record], ["mean"], 2, 1, "pixels", "cosine")
    assert len(items) == 20 + 10 + 2 * 10
    data = stimuli.stimulus_zip(items, 32, "rgb")
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        manifest = zf.read("manifest.csv").decode().splitlines()
        assert len(manifest) == len(items) + 1 and "digits-fake" in manifest[1]
        assert Image.open(io.BytesIO(zf.read(manifest[1].split(",")[0]))).size == (32, 32)


def test_benchmark_page_runs_saves_and_reopens(runs_dir):
    at = _page("benchmark.py", timeout=60)
    at.run()
    _clean(at)
    at.multiselect(key="benchmark.methods").set_value(["random"])
    at.multiselect(key="benchmark.ipcs").set_value([1, 2])
    at.number_input(key="benchmark.reps").set_value(1)
    at.number_input(key="benchmark.seeds").set_value(2)
    at.selectbox(key="benchmark.split").set_value("val")
    at.selectbox(key="benchmark.relabel").set_value("teacher-cutmix")  # the teacher rows' evaluation (none here)
    at.text_input(key="benchmark.settings").set_value("lr=0.3")
    at.button[0].click().run()  # a setting random does not have: refused in one line, nothing starts
    assert not at.exception and any("random has no setting 'lr'" in e.value for e in at.error)
    assert not at.get("progress")
    at.text_input(key="benchmark.settings").set_value("")
    at.button[0].click().run()  # the form's Start button
    _clean(at)
    deadline = time.time() + 240
    while time.time() < deadline:
        time.sleep(0.5)
        at.run()
        texts = [p.proto.text for p in at.get("progress")]
        if texts and texts[0].startswith("finished"):
            break
    _clean(at)
    assert texts and texts[0].startswith("finished: 2/2"), texts
    rows = at.dataframe[0].value
    assert list(rows["IPC"]) == [1, 2] and rows["accuracy %"].between(0, 100).all()
    assert list(rows["seeds"]) == [2, 2]
    assert any("validation split" in c.value and "2 distillation seeds" in c.value for c in at.caption)
    fig = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert fig["layout"]["yaxis"]["title"]["text"] == "validation accuracy (%)"
    at.button(key="benchmark.save").click().run()
    _clean(at)
    saved = list((runs_dir / "bench").glob("*.json"))
    saved_payload = json.loads(saved[0].read_text()) if len(saved) == 1 else {}
    assert saved_payload["rows"][0]["method"] == "random" and saved_payload["split"] == "val"
    assert saved_payload["relabel"] == "teacher-cutmix" and saved_payload["rows"][0]["relabel"] == "none"
    at.session_state["benchmark.source"] = "Open saved results"
    at.run()
    _clean(at)
    assert len(at.get("plotly_chart")) == 1


def test_benchmark_page_opens_cli_results_and_reports_bad_files(runs_dir):
    from distill_core.bench_results import bench_payload, save_bench

    payload = bench_payload("digits", "quick", [1, 10], "cpu", 3.0, [
        {"method": "random", "ipc": 1, "acc_mean": 0.5, "acc_std": 0.02, "reps": 2},
        {"method": "random", "ipc": 10, "acc_mean": 0.8, "acc_std": 0.01, "reps": 2},
        {"method": "mean", "ipc": 10, "acc_mean": None, "error": "method 'mean' makes at most 1 image(s)"}])
    save_bench(payload, runs_dir / "bench" / "a-cli.json")
    (runs_dir / "bench" / "b-broken.json").write_text("{not json")
    at = _page("benchmark.py")
    at.session_state["benchmark.source"] = "Open saved results"
    at.session_state["benchmark.saved"] = "a-cli.json"
    at.run()
    _clean(at)
    fig = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert fig["data"][0]["name"] == "random" and fig["data"][0]["y"] == [50.0, 80.0]
    assert "makes at most" in " ".join(at.dataframe[0].value["note"])
    assert fig["layout"]["yaxis"]["title"]["text"] == "test accuracy (%)"
    # a cross-architecture result on the validation split: one line per method and model, named so
    cross = bench_payload("digits", "quick", [1], "cpu", 3.0, [
        {"method": "random", "ipc": 1, "model": m, "split": "val", "acc_mean": a, "acc_std": 0.0, "reps": 1}
        for m, a in (("convnet", 0.5), ("mlp", 0.4))], split="val", models=["convnet", "mlp"])
    save_bench(cross, runs_dir / "bench" / "c-cross.json")
    at.run()
    at.selectbox(key="benchmark.saved").set_value("c-cross.json")
    at.run()
    _clean(at)
    fig = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert [t["name"] for t in fig["data"]] == ["random · convnet", "random · mlp"]
    assert fig["layout"]["yaxis"]["title"]["text"] == "validation accuracy (%)"
    assert list(at.dataframe[0].value.columns) == ["method", "IPC", "convnet", "mlp"]  # the cross-architecture view
    assert list(at.dataframe[0].value.loc[0, ["convnet", "mlp"]]) == ["50.0 ± 0.0", "40.0 ± 0.0"]
    assert list(at.dataframe[1].value["model"]) == ["convnet", "mlp"]
    at.selectbox(key="benchmark.saved").set_value("b-broken.json")
    at.run()
    assert not at.exception
    assert any("not valid JSON" in e.value for e in at.error)


# ------------------------------------------------------------------------------------------- upload flow

_UPLOAD_SCRIPT = """
import streamlit as st
from ui import upload
upload.upload_widget(expanded=True)
st.write("selected:", st.session_state.get("dataset"))
"""


def _folder(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    for c in ("ant", "bee", "cow"):
        (tmp_path / "imgs" / c).mkdir(parents=True)
        for i in range(5):
            Image.fromarray((rng.random((12, 12)) * 255).astype(np.uint8), "L").save(tmp_path / "imgs" / c / f"{i}.png")
    return tmp_path / "imgs"


def test_upload_widget_adds_and_selects_a_dataset(tmp_path):
    from distill_core.data import load_dataset, unregister_dataset

    folder = _folder(tmp_path)
    at = AppTest.from_string(_UPLOAD_SCRIPT, default_timeout=60)
    at.run()
    _clean(at)
    at.radio(key="upload.kind").set_value("server folder").run()
    at.text_input(key="upload.folder").set_value(str(folder))
    at.selectbox(key="upload.size").set_value(8)
    at.text_input(key="upload.name").set_value("bugs")
    at.run()
    at.button(key="upload.add").click().run()
    _clean(at)
    name = "upload:bugs (8px)"
    try:
        assert name in at.session_state["user_datasets"] and at.session_state["dataset"] == name
        assert load_dataset(name) is at.session_state["user_datasets"][name]
        assert any("Added" in s.value for s in at.success)
        at.text_input(key="upload.folder").set_value(str(tmp_path / "missing")).run()
        at.button(key="upload.add").click().run()
        assert not at.exception and any("does not exist" in e.value for e in at.error)
    finally:
        unregister_dataset(name)


def test_upload_helper_with_a_zip():
    buf = io.BytesIO()
    rng = np.random.default_rng(1)
    with zipfile.ZipFile(buf, "w") as zf:
        for c in ("x", "y"):
            for i in range(4):
                b = io.BytesIO()
                Image.fromarray((rng.random((9, 9, 3)) * 255).astype(np.uint8)).save(b, "PNG")
                zf.writestr(f"data/{c}/{i}.png", b.getvalue())
    script = f"""
import streamlit as st
from ui import upload
from distill_core.errors import DistillError
ds = upload.add_zip({buf.getvalue()!r}, "xy.zip", 8)
st.write(ds.name, len(st.session_state["user_datasets"]))
try:
    upload.add_zip(b"", "empty.zip", 8)
except DistillError as exc:
    st.error(str(exc))
"""
    at = AppTest.from_string(script, default_timeout=60)
    at.run()
    assert not at.exception
    assert at.session_state["dataset"] == "upload:xy (8px)"
    assert [e.value for e in at.error] == ["the zip file is empty"]
    from distill_core.data import unregister_dataset

    unregister_dataset("upload:xy (8px)")

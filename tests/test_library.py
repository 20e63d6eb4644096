"""The run library: one protocol per accuracy column, notes and renames stored in the run folder, re-run presets."""
from __future__ import annotations

import json

import pytest

from distill_core import library
from distill_core.errors import DistillError, InvalidInputError
from distill_core.runs import add_evaluation, list_runs, load_run, save_run
from ui import library_view


def _ev(protocol, acc, model="convnet", **extra):
    return {"protocol": protocol, "model": model, "reps": 2, "acc_mean": acc, "acc_std": 0.01, **extra}


@pytest.fixture
def lib(tmp_path, digits):
    """Three runs: quick then krr; krr only; quick only (and one on the validation split)."""
    from distill_core.methods import create_method

    root = tmp_path / "runs"
    summary = create_method("random", digits, 1, seed=0).summary()
    save_run(root / "a", summary, {"steps": 1, "seed": 0}, evaluations=[_ev("quick", 0.61), _ev("krr", 0.93, "ntk")])
    save_run(root / "b", summary, {"steps": 1, "seed": 1}, evaluations=[_ev("krr", 0.95, "ntk")])
    save_run(root / "c", summary, {"steps": 1, "seed": 2}, evaluations=[_ev("quick", 0.70)])
    add_evaluation(root / "c", _ev("quick", 0.99, split="val"))
    return root


def test_labels_name_protocol_model_and_split():
    assert library.evaluation_label(_ev("quick", 0.5)) == "quick · convnet"
    assert library.evaluation_label({"protocol": "krr"}) == "krr"
    assert library.evaluation_label(_ev("paper", 0.5, "mlp", split="val")) == "paper · mlp · val split"
    assert library.evaluation_label(_ev("paper", 0.5, split="test")) == "paper · convnet"


def test_a_column_never_mixes_protocols(lib):
    runs = library.library_runs(lib)
    assert library.protocol_labels(runs) == ["krr · ntk", "quick · convnet", "quick · convnet · val split"]
    by_run = {r["run"]: r for r in library_view.table_rows(lib, "quick · convnet", runs)}
    col = "accuracy % (quick · convnet)"
    assert (by_run["a"][col], by_run["b"][col], by_run["c"][col]) == (61.0, None, 70.0)  # the val figure is not it
    assert "protocol" not in by_run["a"] and by_run["a"]["± std"] == 1.0
    krr = {r["run"]: r["accuracy % (krr · ntk)"] for r in library_view.table_rows(lib, "krr · ntk", runs)}
    assert krr == {"a": 93.0, "b": 95.0, "c": None}
    latest = {r["run"]: r for r in library_view.table_rows(lib, library.LATEST, runs)}
    col = "accuracy % (latest, see protocol)"
    assert [(latest[n][col], latest[n]["protocol"]) for n in "abc"] == [
        (93.0, "krr · ntk"), (95.0, "krr · ntk"), (99.0, "quick · convnet · val split")]


def test_notes_are_stored_in_the_run_folder(lib):
    assert library.read_notes(lib / "a") == ""
    library.write_notes(lib / "a", "first try\nlr too high")
    assert (lib / "a" / library.NOTES_FILE).read_text() == "first try\nlr too high"
    assert library.read_notes(lib / "a") == "first try\nlr too high"
    assert not list((lib / "a").glob(".*tmp*")), "no temporary file left behind"
    row = {r["run"]: r for r in library_view.table_rows(lib)}["a"]
    assert row["notes"] == "first try…"
    assert load_run(lib / "a").summary.images.shape[0] == 10  # the run still loads
    library.write_notes(lib / "a", "  ")
    assert not (lib / "a" / library.NOTES_FILE).exists()
    with pytest.raises(InvalidInputError, match="limited"):
        library.write_notes(lib / "a", "x" * (library.NOTES_MAX_CHARS + 1))
    with pytest.raises(DistillError, match="not a run folder"):
        library.write_notes(lib / "nope", "text")


def test_rename_moves_the_folder_with_its_notes(lib):
    library.write_notes(lib / "a", "keep me")
    new = library.rename_run(lib / "a", "  baseline (lr 0.1)  ", root=lib)
    assert new.name == "baseline (lr 0.1)" and not (lib / "a").exists()
    assert library.read_notes(new) == "keep me"
    assert "baseline (lr 0.1)" in [r["name"] for r in list_runs(lib)]
    assert library.rename_run(new, "baseline (lr 0.1)", root=lib) == new.resolve()  # unchanged name: no-op
    for bad, why in (("b", "already exists"), ("", "empty"), (".hidden", "start with"), ("a/b", "not '/'"),
                     ("x" * 101, "limited")):
        with pytest.raises(InvalidInputError, match=why):
            library.rename_run(new, bad, root=lib)
    with pytest.raises(InvalidInputError, match="not inside"):
        library.rename_run(lib / "b", "b2", root=lib / "elsewhere")
    assert sorted(r["name"] for r in list_runs(lib)) == ["b", "baseline (lr 0.1)", "c"]


def test_rerun_request_fills_the_distill_page_with_the_runs_settings(tmp_path, digits):
    from distill_core.methods import create_method

    method = create_method("dm", digits, 2, seed=3, overrides={"batch_real": 16})
    out = save_run(tmp_path / "dm-run", method.summary(), {"steps": 7, "total_steps": 40, "seed": 3,
                                                            "method_config": method.config.to_dict()})
    cfg = json.loads((out / "config.json").read_text())
    cfg["method_config"]["lr"] = 2          # JSON may hold a float field as a whole number
    cfg["method_config"]["dsa"] = "yes"     # a value of the wrong type is left to the method's default
    (out / "config.json").write_text(json.dumps(cfg))
    preset, why = library_view.rerun_request(load_run(out))
    assert why == ""
    assert {k: preset[k] for k in ("method", "dataset", "ipc", "steps", "seed")} == {
        "method": "dm", "dataset": "digits", "ipc": 2, "steps": 40, "seed": 3}  # the planned steps, not the done
    assert preset["settings"]["batch_real"] == 16 and preset["settings"]["lr"] == 2.0
    assert isinstance(preset["settings"]["lr"], float) and "dsa" not in preset["settings"]
    assert "start" not in {k.lower() for k in preset}  # fills the page, never starts it
    cfg["method"] = "no-such-method"
    (out / "config.json").write_text(json.dumps(cfg))
    preset, why = library_view.rerun_request(load_run(out))
    assert preset is None and "not available" in why


@pytest.mark.slow
def test_library_page_rename_notes_and_rerun(tmp_path, monkeypatch, digits):
    """The library page in AppTest: name and notes saved from the form are there for a new session (a reload);
    "Re-run with these settings" opens the distill page filled in, with nothing started."""
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    from distill_core import job_slots
    from distill_core.methods import create_method

    app = str(Path(__file__).resolve().parent.parent / "app.py")
    root = tmp_path / "runs"
    monkeypatch.setenv("DISTILL_RUNS_DIR", str(root))
    method = create_method("dm", digits, 2, seed=7, overrides={"batch_real": 16})
    save_run(root / "dm-run", method.summary(), {"steps": 3, "total_steps": 40, "seed": 7,
                                                  "method_config": method.config.to_dict()},
             evaluations=[_ev("quick", 0.4), _ev("krr", 0.9, "ntk")])

    def library_page() -> AppTest:
        at = AppTest.from_file(app, default_timeout=120)
        at.run()
        at.switch_page("app_pages/library.py")
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        return at

    at = library_page()
    table = at.dataframe[0].value
    assert list(table["accuracy % (krr · ntk)"]) == [90.0]  # one protocol per column (a tie: alphabetical)
    assert "accuracy % (quick · convnet)" not in table
    at.text_input(key="library.name.dm-run").input("dm baseline")
    at.text_area(key="library.notes.dm-run").input("batch 16, blurry")
    next(b for b in at.button if b.label == "Save name and notes").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert (root / "dm baseline" / "notes.md").read_text() == "batch 16, blurry"
    assert at.selectbox(key="library.selected").value == "dm baseline"  # still open, under its new name

    at = library_page()   # a new session
    assert at.text_area(key="library.notes.dm baseline").value == "batch 16, blurry"
    before = set(map(id, job_slots._RUNNING))
    at.button(key="library.rerun").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == "Distill"
    ss = at.session_state
    assert (ss["dataset"], ss["distill.method"], ss["distill.ipc"], ss["distill.steps"], ss["distill.seed"]) == (
        "digits", "dm", 2, 40, 7)
    assert ss["distill.setting.dm.batch_real"] == 16
    assert set(map(id, job_slots._RUNNING)) == before   # filled in, not started
    assert any("Preset loaded: settings of run dm baseline" in m.value for m in at.info)


def test_atomic_writes_leave_the_old_file_or_the_new_one_and_no_temporary(tmp_path):
    """A write that fails half way leaves the previous file as it was and no temporary file behind."""
    from distill_core.atomic import write_atomically, write_text_atomically

    target = tmp_path / "sub" / "notes.md"
    write_text_atomically(target, "first", fsync=True)
    assert target.read_text(encoding="utf-8") == "first"

    def broken(tmp):
        tmp.write_text("half", encoding="utf-8")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomically(target, broken)
    assert target.read_text(encoding="utf-8") == "first"
    assert sorted(p.name for p in target.parent.iterdir()) == ["notes.md"]

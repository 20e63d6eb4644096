"""The bad-input corpus through the app (streamlit.testing AppTest), wherever the app takes that input:

- the run library opening broken run folders (corrupt, truncated, pickled, newer format, not JSON, ...);
- the distill page's settings (NaN / infinite / negative learning rates, IPC larger than a class, bad steps, an
  unknown dataset, a folder dataset of unreadable images, the server at its job cap);
- the upload widget, fed every zip of the upload corpus (tests/test_bad_uploads.py).

A clean answer: no exception element, an st.error (or st.warning for a value the page corrects) that says what is
wrong, the app keeps serving (the next run is clean), and nothing already saved or uploaded is lost.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

import bad_corpus as bc
from streamlit.testing.v1 import AppTest

from distill_core import jobs
from distill_core.runs import load_run

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 120


def _texts(elements) -> list[str]:
    return [str(e.value) for e in elements]


def _assert_clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


@pytest.fixture(autouse=True)
def _no_jobs_left():
    yield
    jobs.stop_all()
    assert jobs.running_jobs() == 0


# ------------------------------------------------------------------------------------------ run library

def _spoil_write(name: str, data: bytes | str):
    return lambda run, marker: (run / name).write_bytes(data if isinstance(data, bytes) else data.encode())


def _spoil_tensors(**t):
    return lambda run, marker: torch.save(t, run / "summary.pt")


def _spoil_config(**changes):
    return lambda run, marker: bc.edit_config(run, **changes)


LIBRARY_CASES = {
    "summary-garbage": (_spoil_write("summary.pt", bytes(range(256)) * 4), r"summary.pt .* not a readable"),
    "summary-truncated": (lambda run, m: (run / "summary.pt").write_bytes((run / "summary.pt").read_bytes()[:80]),
                          r"summary.pt .* not a readable"),
    "summary-empty": (_spoil_write("summary.pt", b""), r"summary.pt .* not a readable"),
    "summary-pickled-object": (lambda run, marker: bc.evil_pt(run / "summary.pt", marker),
                               r"summary.pt .* refused"),
    "summary-raw-pickle": (lambda run, marker: bc.evil_pt(run / "summary.pt", marker, as_torch=False),
                           r"summary.pt .* (refused|not a readable)"),
    "snapshots-pickled-object": (lambda run, marker: bc.evil_pt(run / "snapshots.pt", marker),
                                 r"snapshots.pt .* refused"),
    "summary-nan": (_spoil_tensors(images=torch.full((10, 1, 8, 8), float("nan")), labels=torch.arange(10)),
                    r"NaN or infinite"),
    "summary-labels-out-of-range": (_spoil_tensors(images=torch.rand(10, 1, 8, 8), labels=torch.arange(10) + 3),
                                    r"labels outside"),
    "summary-missing": (lambda run, m: (run / "summary.pt").unlink(), r"config.json and summary.pt"),
    "config-not-json": (_spoil_write("config.json", "{not json"), r"not valid JSON"),
    "config-a-list": (_spoil_write("config.json", "[1, 2, 3]"), r"not a JSON object"),
    "config-binary": (_spoil_write("config.json", b"\xff\xfe\x00\x01"), r"not valid JSON"),
    "newer-format-version": (_spoil_config(format_version=99), r"run format 99, newer"),
    "class-names-not-a-list": (_spoil_config(class_names=3), r"class_names"),
    "ipc-not-a-number": (_spoil_config(ipc="many"), r"ipc"),
}


@pytest.mark.parametrize("case", list(LIBRARY_CASES))
def test_library_opens_a_broken_run_cleanly(case, tmp_path, monkeypatch):
    spoil, expect = LIBRARY_CASES[case]
    runs = tmp_path / "runs"
    monkeypatch.setenv("DISTILL_RUNS_DIR", str(runs))
    marker = tmp_path / "PWNED"
    good = bc.good_run(runs / "a-good")
    good_images = load_run(good).summary.images.clone()
    bad = bc.good_run(runs / f"z-{case}")
    spoil(bad, marker)
    before = sorted(p.name for p in runs.rglob("*"))

    at = AppTest.from_file(str(ROOT / "app_pages" / "library.py"), default_timeout=TIMEOUT).run()
    _assert_clean(at)
    at.selectbox(key="library.selected").set_value(bad.name).run()
    _assert_clean(at)
    errors = _texts(at.error)
    assert any(re.search(expect, e) for e in errors), errors
    assert not marker.exists(), "a pickled object in a run folder was executed"

    # the app keeps serving: the good run opens in the same session, without an error
    at.selectbox(key="library.selected").set_value(good.name).run()
    _assert_clean(at)
    assert not at.error, _texts(at.error)
    # nothing already saved is lost or changed
    assert sorted(p.name for p in runs.rglob("*")) == before
    assert torch.equal(load_run(good).summary.images, good_images)
    assert not marker.exists()


# ------------------------------------------------------------------------------------------ distill page

def _distill_page(monkeypatch, tmp_path, dataset: str | None = None, **state) -> AppTest:
    monkeypatch.setenv("DISTILL_RUNS_DIR", str(tmp_path / "runs"))
    at = AppTest.from_file(str(ROOT / "app_pages" / "distill.py"), default_timeout=TIMEOUT)
    if dataset is not None:
        at.session_state["dataset"] = dataset
    for key, value in state.items():
        at.session_state[key.replace("__", ".")] = value
    return at.run()


def _start(at: AppTest) -> AppTest:
    """Press Start as a person can: not at all while it is disabled (the page then says why)."""
    if at.button(key="distill.start").disabled:
        return at
    return at.button(key="distill.start").click().run()


def _saved_run(tmp_path) -> tuple[Path, torch.Tensor]:
    path = bc.good_run(tmp_path / "runs" / "earlier")
    return path, load_run(path).summary.images.clone()


def _after(at: AppTest, saved: tuple[Path, torch.Tensor]) -> None:
    """The app keeps serving and nothing saved is lost."""
    at.run()
    _assert_clean(at)
    assert at.button(key="distill.start") is not None
    assert torch.equal(load_run(saved[0]).summary.images, saved[1])


@pytest.mark.parametrize("value,expect", [
    # a number widget holding NaN/inf reports 0.0 to the script: either way the run is refused with a reason
    (float("nan"), r"finite|positive"), (float("inf"), r"finite|positive"),
    (float("-inf"), r"finite|negative|positive"),
    (-0.5, r"negative|positive"), (0.0, r"positive"),
], ids=["nan", "inf", "-inf", "negative", "zero"])
def test_distill_refuses_bad_learning_rates(value, expect, tmp_path, monkeypatch):
    saved = _saved_run(tmp_path)
    at = _distill_page(monkeypatch, tmp_path, "digits", distill__method="kip", distill__ipc=1, distill__steps=5)
    at.session_state["distill.setting.kip.lr"] = value
    at.run()
    _start(at)
    _assert_clean(at)
    errors = _texts(at.error) + _texts(at.warning)
    assert any(re.search(expect, e) for e in errors), errors
    assert at.button(key="distill.start").disabled
    assert jobs.running_jobs() == 0
    _after(at, saved)


def test_distill_refuses_ipc_larger_than_a_class(tmp_path, monkeypatch):
    saved = _saved_run(tmp_path)
    folder = bc.image_folder(tmp_path / "imgs", per_class=3, size=8)
    at = _distill_page(monkeypatch, tmp_path, f"folder:{folder}", distill__method="random", distill__ipc=5)
    _start(at)
    _assert_clean(at)
    texts = _texts(at.error) + _texts(at.warning)
    assert any(re.search(r"IPC 5 is larger than class", e) for e in texts), texts
    assert at.button(key="distill.start").disabled and jobs.running_jobs() == 0
    _after(at, saved)


@pytest.mark.parametrize("builder,expect", [
    (lambda root: {f"{c}/x{i}.png": b"junk" * 20 for c in "ab" for i in range(3)}, r"no readable images"),
    (lambda root: {f"only/x{i}.png": bc.png_bytes(seed=i) for i in range(4)}, r"at least 2 classes"),
    (lambda root: {f"{c}/x{i}.png": bc.png_bytes(size=2, seed=i) for c in "ab" for i in range(3)}, r"smaller than"),
    (lambda root: {}, r"no readable images"),
], ids=["corrupt-images", "one-class", "images-too-small", "empty-folder"])
def test_distill_with_an_unreadable_folder_dataset(builder, expect, tmp_path, monkeypatch):
    saved = _saved_run(tmp_path)
    root = tmp_path / "imgs"
    root.mkdir()
    for rel, data in builder(root).items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    at = _distill_page(monkeypatch, tmp_path, f"folder:{root}", distill__method="random", distill__ipc=1)
    _assert_clean(at)
    assert any(re.search(expect, e) for e in _texts(at.error)), _texts(at.error)
    assert at.button(key="distill.start").disabled  # nothing to start from
    assert jobs.running_jobs() == 0
    _after(at, saved)


def test_distill_with_an_unknown_dataset(tmp_path, monkeypatch):
    saved = _saved_run(tmp_path)
    at = _distill_page(monkeypatch, tmp_path, "imagenet-21k")
    _assert_clean(at)
    assert any("unknown dataset 'imagenet-21k'" in e for e in _texts(at.error)), _texts(at.error)
    assert at.button(key="distill.start").disabled
    _after(at, saved)


@pytest.mark.parametrize("key,value", [
    ("distill.steps", 0), ("distill.steps", -10), ("distill.steps", 10 ** 9), ("distill.ipc", 0),
    ("distill.ipc", -3), ("distill.ipc", "ten"), ("distill.ipc", float("nan")), ("distill.seed", -1),
], ids=["steps-zero", "steps-negative", "steps-above-limit", "ipc-zero", "ipc-negative", "ipc-text", "ipc-nan",
        "seed-negative"])
def test_distill_shows_out_of_range_numbers_and_refuses_them_with_a_warning(key, value, tmp_path, monkeypatch):
    """A whole number out of range stays shown as it is and Start is disabled with the reason (never silently
    replaced); a value that is no number at all is replaced by the default, with a warning."""
    saved = _saved_run(tmp_path)
    method = "random"
    if key == "distill.steps":  # a selector ignores steps (its Steps box is disabled): a distiller reads them
        method = "kip"
    at = _distill_page(monkeypatch, tmp_path, "digits", distill__method=method, **{key.replace(".", "__"): value})
    _assert_clean(at)
    warnings = _texts(at.warning) + _texts(at.error)
    assert any(key.split(".")[-1] in w.lower() for w in warnings), warnings
    shown = at.session_state[key]
    assert isinstance(shown, int)
    if isinstance(value, int):
        assert shown == value and at.button(key="distill.start").disabled
    else:
        assert shown >= 1 and not at.button(key="distill.start").disabled
    _start(at)
    if isinstance(value, int):
        assert jobs.running_jobs() == 0  # nothing ran
    else:  # the default that replaced a non-number ran (as shown), and ends by itself
        from toy_methods import wait_for

        assert wait_for(lambda: jobs.running_jobs() == 0, 60)
    _after(at, saved)


def test_distill_with_an_unknown_method_falls_back(tmp_path, monkeypatch):
    at = _distill_page(monkeypatch, tmp_path, "digits", distill__method="no-such-method")
    _assert_clean(at)
    from distill_core.methods import METHODS

    assert at.session_state["distill.method"] in METHODS


def test_distill_at_the_job_cap_says_busy(tmp_path, monkeypatch, digits):
    saved = _saved_run(tmp_path)
    bc.patch_limits(monkeypatch, max_concurrent_jobs=1)
    other = jobs.start_job(jobs.JobSpec("random", "digits", ipc=1, eval_protocol="none"), digits)
    # a selector finishes at once; hold the slot with a long distiller instead when one is registered
    other.join(10)
    from toy_methods import registered

    with registered():
        blocker = jobs.start_job(jobs.JobSpec("toy", "digits", ipc=1, steps=1_000_000,
                                              settings={"delay_s": 0.01}, eval_protocol="none"), digits)
        at = _distill_page(monkeypatch, tmp_path, "digits", distill__method="random", distill__ipc=1)
        _start(at)
        _assert_clean(at)
        assert any(e.startswith("busy") and "try again" in e for e in _texts(at.error)), _texts(at.error)
        assert blocker.state().active  # the other session's job is untouched
        blocker.stop()
        _start(at)  # the slot is free now: the same session may start
        _assert_clean(at)
        assert not any(e.startswith("busy") for e in _texts(at.error)), _texts(at.error)
    _after(at, saved)


# ------------------------------------------------------------------------------------------ upload widget

def _upload_script():
    from ui.upload import upload_widget

    upload_widget(expanded=True)


def _zip_cases():
    """The upload corpus, less the cases the widget cannot produce: it offers fixed image sizes only (an image
    size below them is refused by the library, tested in test_bad_uploads.py)."""
    from test_bad_uploads import ZIP_CASES
    from ui.upload import SIZE_CHOICES

    return [c for c in ZIP_CASES if c.image_size in SIZE_CHOICES]


@pytest.mark.parametrize("case", _zip_cases(), ids=[c.id for c in _zip_cases()])
def test_upload_widget_answers_every_zip_cleanly(case, tmp_path, monkeypatch):
    from ui import upload

    data = case.make(tmp_path)
    at = AppTest.from_function(_upload_script, default_timeout=TIMEOUT).run()
    _assert_clean(at)

    # a good upload first: it must survive the bad one
    at.get("file_uploader")[0].set_value(("good.zip", bc.image_zip_bytes(), "application/zip"))
    at.selectbox(key=upload.KEY_SIZE).set_value(8).run()
    at.button(key="upload.add").click().run()
    _assert_clean(at)
    assert _texts(at.success), _texts(at.error)
    good_names = set(at.session_state["user_datasets"])

    if case.limits:  # after the good upload, which the small limits would refuse
        bc.patch_limits(monkeypatch, **case.limits)

    at.get("file_uploader")[0].set_value((f"{case.id}.zip", data, "application/zip")).run()
    at.button(key="upload.add").click().run()
    _assert_clean(at)
    if case.expect is None:
        assert _texts(at.success) and not at.error, _texts(at.error)
    else:
        errors = _texts(at.error)
        assert len(errors) == 1 and re.search(case.expect, errors[0]), errors
        assert "Traceback" not in errors[0] and "\n" not in errors[0]
    assert good_names <= set(at.session_state["user_datasets"])  # the earlier upload is still there
    at.run()
    _assert_clean(at)

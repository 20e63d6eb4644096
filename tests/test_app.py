"""The app through streamlit.testing (AppTest): every page opens without an exception; the distill page runs a
start -> steps -> pause -> resume -> stop cycle through its own controls; bad input gives st.error, never a
traceback; the library lists, opens and deletes runs; learn presets open the distill page configured."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from streamlit.testing.v1 import AppTest

from distill_core import job_slots, jobs
from distill_core.data import ImageSet
from distill_core.methods import create_method
from distill_core.runs import list_runs, save_run
from toy_methods import registered, wait_for

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
MY_PAGES = ["app_pages/home.py", "app_pages/distill.py", "app_pages/library.py", "app_pages/learn.py"]


@pytest.fixture()
def toy():
    with registered() as cls:
        yield cls
    jobs.stop_all()


def _app() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    return at


def _open(at: AppTest, page: str) -> AppTest:
    at.switch_page(page)
    at.run()
    return at


def _no_exception(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def _errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


def _warnings(at: AppTest) -> list[str]:
    return [w.value for w in at.warning]



_LAST: dict = {}


def _session_job():
    """The job the AppTest session started last (recorded by the _track_jobs fixture)."""
    return _LAST.get("job")


@pytest.fixture(autouse=True)
def _track_jobs(monkeypatch):
    original = jobs.Job.start

    def start(self):
        _LAST["job"] = self
        return original(self)

    monkeypatch.setattr(jobs.Job, "start", start)
    yield
    _LAST.clear()
    jobs.stop_all()


@pytest.mark.parametrize("page", MY_PAGES)
def test_each_page_opens_without_exception(page):
    at = _open(_app(), page)
    _no_exception(at)
    assert not _errors(at)
    assert at.title  # every page has a title
    assert at.sidebar.selectbox(key="dataset").value == "digits"


def test_navigation_lists_existing_page_files():
    from ui import nav

    listed = {p.path for p in nav.existing_pages()}
    assert set(MY_PAGES) <= listed
    assert all((ROOT / p).is_file() for p in listed)
    assert {p.path for p in nav.PAGES} - listed == {p.path for p in nav.PAGES if not (ROOT / p.path).is_file()}


def test_sidebar_lists_embedded_datasets_first_and_uploads(digits):
    at = _app()
    assert at.sidebar.selectbox(key="dataset").value == "digits"
    options = at.sidebar.selectbox(key="dataset").options
    assert options[:2] == ["digits", "mnist-5k"]
    at.session_state["user_datasets"] = {"my-upload": digits}
    at.run()
    assert "my-upload (uploaded)" in at.sidebar.selectbox(key="dataset").options
    assert any("Device" in c.value for c in at.sidebar.caption)


def test_distill_page_lists_every_registered_method(toy):
    from distill_core.methods import METHODS

    at = _open(_app(), "app_pages/distill.py")
    labels = at.selectbox(key="distill.method").options
    from distill_core.methods import by_family, family_label

    assert {label.split(" · ")[-1] for label in labels} == set(METHODS)
    assert list(labels) == [family_label(n) for n in by_family()]  # grouped by family: "Kernel · kip"


def test_start_steps_pause_resume_stop_through_the_page(toy):
    at = _open(_app(), "app_pages/distill.py")
    at.selectbox(key="distill.method").set_value("toy").run()
    assert at.number_input(key="distill.steps").value == toy.default_steps  # the method's default
    at.number_input(key="distill.ipc").set_value(2)
    at.number_input(key="distill.steps").set_value(100_000)
    at.session_state["distill.setting.toy.delay_s"] = 0.005
    at.button(key="distill.start").click().run()
    _no_exception(at)
    assert not _errors(at)
    job = _session_job()
    assert job is not None and job.spec.method == "toy" and job.spec.ipc == 2 and job.spec.steps == 100_000
    assert job.spec.settings == {"delay_s": 0.005}
    assert at.button(key="distill.start").disabled and not at.button(key="distill.stop").disabled
    assert wait_for(lambda: job.state().step >= 5)
    at.run()
    assert at.get("progress") and _images(at)  # progress and the per-class grid
    at.button(key="distill.pause").click().run()
    assert job.state().status == jobs.PAUSED
    assert not at.button(key="distill.resume").disabled
    at.button(key="distill.resume").click().run()
    assert job.state().status == jobs.RUNNING
    step = job.state().step
    assert wait_for(lambda: job.state().step > step)
    at.button(key="distill.stop").click().run()
    _no_exception(at)
    state = job.state()
    assert state.status == jobs.STOPPED and not job.alive
    assert not at.button(key="distill.start").disabled
    assert at.select_slider  # the replay slider over the stored snapshots
    assert not [t for t in __import__("threading").enumerate() if t.name.startswith("distill-job-")]


def test_a_short_run_finishes_and_is_autosaved_once(toy):
    at = _open(_app(), "app_pages/distill.py")
    at.selectbox(key="distill.method").set_value("toy").run()
    at.number_input(key="distill.steps").set_value(15)
    at.button(key="distill.start").click().run()
    job = _session_job()
    assert jobs.job_wait(job, 30).status == jobs.FINISHED
    assert job.join(30)  # the worker saves once the final evaluation is in
    at.run()
    _no_exception(at)
    assert len(_images(at)) == 1  # the grid once (the replay's), not the live grid and the replay's
    assert len(at.get("download_button")) == 3
    runs = list_runs()
    assert len(runs) == 1 and runs[0]["method"] == "toy" and runs[0]["steps"] == 15
    assert any(runs[0]["name"] in m.value for m in at.markdown)  # the saved name is shown
    assert not [b for b in at.button if b.key == "distill.save"]  # nothing left to save by hand
    assert job.autosave() == job.saved_path and len(list_runs()) == 1  # once
    _open(at, "app_pages/library.py")
    _no_exception(at)
    assert at.selectbox(key="library.selected").value == runs[0]["name"]
    assert _images(at)


def test_bad_input_gives_st_error_not_a_traceback(toy, digits):
    tiny = _tiny_dataset(digits, per_class=3)
    at = _app()
    at.session_state["user_datasets"] = {tiny.name: tiny}
    at.run()
    at.sidebar.selectbox(key="dataset").set_value(tiny.name).run()
    _open(at, "app_pages/distill.py")
    at.selectbox(key="distill.method").set_value("toy").run()
    at.number_input(key="distill.ipc").set_value(5).run()
    _no_exception(at)
    assert at.button(key="distill.start").disabled
    assert any("IPC 5 is larger than class" in w for w in _warnings(at))
    assert jobs.running_jobs() == 0

    at.number_input(key="distill.ipc").set_value(1)
    at.session_state["distill.setting.toy.lr"] = float("nan")
    at.run()
    _no_exception(at)
    # the number widget turns NaN into 0.0; either way the core's message is shown, never a traceback
    assert at.button(key="distill.start").disabled
    assert any(("finite" in w or "must be positive" in w) and "lr" in w for w in _warnings(at))
    assert jobs.running_jobs() == 0


def test_out_of_range_values_stay_shown_and_start_says_why(toy):
    at = _app()
    at.session_state["distill.ipc"] = 10_000
    at.session_state["distill.steps"] = "many"
    _open(at, "app_pages/distill.py")
    _no_exception(at)
    assert at.number_input(key="distill.ipc").value == 10_000  # shown as it is, never replaced silently
    assert at.button(key="distill.start").disabled
    assert any("IPC 10000" in w for w in _warnings(at))
    from distill_core.methods import METHODS
    default = METHODS[at.session_state["distill.method"]].default_steps
    assert at.number_input(key="distill.steps").value == default  # not a number at all: the default, with a warning
    assert any("steps 'many' is not a whole number" in w for w in _warnings(at))


def test_busy_server_gives_a_clear_error(toy, digits, monkeypatch):
    from distill_core.limits import Limits

    monkeypatch.setattr(job_slots, "LIMITS", Limits(max_concurrent_jobs=1))  # where the cap is read
    other = jobs.start_job(jobs.JobSpec("toy", "digits", ipc=1, steps=100_000, settings={"delay_s": 0.01},
                                        eval_protocol="none"), digits)
    at = _open(_app(), "app_pages/distill.py")
    at.selectbox(key="distill.method").set_value("toy").run()
    at.button(key="distill.start").click().run()
    _no_exception(at)
    assert any("busy" in e and "try again" in e for e in _errors(at))
    other.stop()


def test_library_lists_opens_and_deletes_a_cli_style_run(digits):
    from distill_core.runs import default_runs_dir

    summary = create_method("random", digits, 2, seed=0).summary()
    path = save_run(default_runs_dir() / "digits-random-ipc2-test", summary, {"steps": 1, "seed": 0},
                    evaluations=[{"protocol": "quick", "model": "convnet", "reps": 1, "acc_mean": 0.5,
                                  "acc_std": 0.0}])
    at = _open(_app(), "app_pages/library.py")
    _no_exception(at)
    table = at.dataframe[0].value
    assert list(table["run"]) == [path.name] and list(table["accuracy % (quick · convnet)"]) == [50.0]
    assert at.button(key="library.delete").disabled  # not before confirming
    at.checkbox(key=f"library.confirm.{path.name}").check().run()
    at.button(key="library.delete").click().run()
    _no_exception(at)
    assert not path.exists()
    assert any("No runs yet" in i.value for i in at.info)


def test_library_shows_a_broken_run_as_an_error_not_a_crash(digits):
    from distill_core.runs import default_runs_dir

    summary = create_method("random", digits, 1, seed=0).summary()
    path = save_run(default_runs_dir() / "broken", summary, {"steps": 1})
    (path / "summary.pt").write_bytes(b"not a tensor file")
    at = _open(_app(), "app_pages/library.py")
    _no_exception(at)
    assert any("not a readable" in e for e in _errors(at))


def test_learn_presets_open_the_distill_page_configured():
    from ui import learn

    at = _open(_app(), "app_pages/learn.py")
    _no_exception(at)
    available = [(t, i, p) for t in learn.TOPICS for i, p in enumerate(t.presets) if p.available]
    missing = [(t, i, p) for t in learn.TOPICS for i, p in enumerate(t.presets) if not p.available]
    for t, i, _ in missing:
        assert at.button(key=f"learn.{t.key}.{i}").disabled
    assert available  # `random` at least
    topic, i, preset = available[-1]
    at.button(key=f"learn.{topic.key}.{i}").click().run()
    _no_exception(at)
    assert at.session_state["distill.method"] == preset.method
    assert at.number_input(key="distill.ipc").value == preset.ipc
    assert at.selectbox(key="distill.method").value.startswith(preset.method)


def test_every_preset_is_a_valid_configuration():
    """A preset's settings pass its method's own checks (a preset that cannot start would only fail on Start)."""
    from distill_core.methods import METHODS
    from ui import learn

    for preset in learn.all_presets():
        if preset.available:
            req = preset.as_request()
            METHODS[req["method"]].Config.from_overrides(req["dataset"], dict(req["settings"]))


def test_home_shows_the_example_run():
    at = _app()
    _no_exception(at)
    if (ROOT / "assets" / "example-run" / "config.json").is_file():
        assert not _errors(at)
        assert "Test accuracy" not in [m.label for m in at.metric]


def _images(at: AppTest) -> list:
    """st.image elements on the page (AppTest has no typed accessor for them)."""
    found = []

    def walk(node) -> None:
        if type(node).__name__ == "Image" or getattr(node, "type", None) == "imgs":
            found.append(node)
        for child in getattr(node, "children", {}).values():
            walk(child)

    walk(at.main)
    return found


def _tiny_dataset(ds: ImageSet, per_class: int) -> ImageSet:
    idx = torch.cat([torch.nonzero(ds.y_train == c).flatten()[:per_class] for c in range(ds.num_classes)])
    return ImageSet("tiny-upload", ds.x_train[idx], ds.y_train[idx], ds.x_test[:50], ds.y_test[:50],
                    list(ds.class_names), ds.mean, ds.std, {})


def test_untouched_settings_follow_the_dataset_defaults(toy, monkeypatch):
    from dataclasses import dataclass

    from toy_methods import ToyConfig

    @dataclass
    class PerDataset(ToyConfig):
        @classmethod
        def for_dataset(cls, name: str) -> "PerDataset":
            return cls(lr=0.2 if name == "digits" else 0.3)

    monkeypatch.setattr(toy, "Config", PerDataset)
    at = _app()
    _open(at, "app_pages/distill.py")
    at.selectbox(key="distill.method").set_value("toy").run()
    assert at.session_state["distill.setting.toy.lr"] == 0.2
    assert at.session_state["distill.setting.toy.delay_s"] == 0.0
    at.session_state["distill.setting.toy.delay_s"] = 0.5  # the user's own value stays
    at.session_state["dataset"] = "mnist-5k"
    at.run()
    _no_exception(at)
    assert at.session_state["distill.setting.toy.lr"] == 0.3
    assert at.session_state["distill.setting.toy.delay_s"] == 0.5


@pytest.mark.parametrize("key, value, reason", [
    ("distill.ipc", 5000, "IPC 5000"),
    ("distill.ipc", 0, "IPC"),
    ("distill.steps", 0, "steps must be a positive whole number, got 0"),
    ("distill.steps", 2_000_000, "above the limit"),
])
def test_an_invalid_shown_value_disables_start_with_the_reason(toy, key, value, reason):
    at = _open(_app(), "app_pages/distill.py")
    at.selectbox(key="distill.method").set_value("toy").run()
    assert not at.button(key="distill.start").disabled
    at.number_input(key=key).set_value(value).run()
    _no_exception(at)
    assert at.number_input(key=key).value == value  # the page keeps showing what was typed
    assert at.button(key="distill.start").disabled
    assert any(reason in w and w.startswith("Start is disabled") for w in _warnings(at)), _warnings(at)
    assert _session_job() is None and jobs.running_jobs() == 0


def test_the_value_that_runs_is_the_value_shown(toy):
    at = _open(_app(), "app_pages/distill.py")
    at.selectbox(key="distill.method").set_value("toy").run()
    at.number_input(key="distill.steps").set_value(0).run()
    at.number_input(key="distill.steps").set_value(37).run()
    at.number_input(key="distill.ipc").set_value(3).run()
    at.button(key="distill.start").click().run()
    job = _session_job()
    assert job.spec.steps == 37 and job.spec.ipc == 3 and job.total_steps == 37
    assert any("IPC 3, 37 steps" in i.value for i in at.info)
    jobs.job_wait(job, 30)


def test_a_reload_reattaches_and_a_stranger_sees_nothing(toy):
    at = _open(_app(), "app_pages/distill.py")
    at.selectbox(key="distill.method").set_value("toy").run()
    at.number_input(key="distill.steps").set_value(100_000)
    at.session_state["distill.setting.toy.delay_s"] = 0.005
    at.button(key="distill.start").click().run()
    job = _session_job()
    token = at.query_params["run"]
    assert jobs.valid_token(token) and jobs.registry().get(token) is job

    reload = AppTest.from_file(APP, default_timeout=120)  # a new session with the same URL
    reload.query_params["run"] = token
    reload.run()
    _open(reload, "app_pages/distill.py")
    _no_exception(reload)
    assert reload.get("progress") and reload.button(key="distill.start").disabled
    assert not reload.button(key="distill.stop").disabled

    for made_up in (None, jobs.new_token(), token[:-1] + ("A" if token[-1] != "A" else "B"), "1", "../etc"):
        other = AppTest.from_file(APP, default_timeout=120)
        if made_up is not None:
            other.query_params["run"] = made_up
        other.run()
        _open(other, "app_pages/distill.py")
        _no_exception(other)
        assert not other.get("progress") and other.button(key="distill.stop").disabled
        assert "run" not in other.query_params or other.query_params["run"] == made_up
    assert job.state().active

    reload.button(key="distill.stop").click().run()  # the reloaded page controls the same job
    assert job.state().status == jobs.STOPPED
    assert wait_for(lambda: job.saved_path is not None, 30)  # a stopped run is autosaved too
    assert [r["name"] for r in list_runs()] == [job.saved_path.name]

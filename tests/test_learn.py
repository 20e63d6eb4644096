"""Learn-page presets: valid for their method and dataset, estimated from measured step times, started by one
click; the time estimate grows with steps and IPC."""
from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from distill_core import estimates, job_slots, jobs
from distill_core.data import load_dataset
from distill_core.methods import METHODS, create_method

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _no_jobs_left():
    yield
    jobs.stop_all()


def _presets():
    from ui import learn

    return [p for p in learn.all_presets() if p.available]


def test_every_preset_creates_its_method_and_fits_a_minute():
    from ui import learn

    presets = _presets()
    assert len(presets) >= 10
    assert len({p.key for p in presets}) == len(presets) and all(p.key for p in presets)
    for preset in presets:
        req = preset.as_request()
        assert req[learn.START_FLAG] is True and req["settings"] == preset.settings  # nothing silently dropped
        ds = load_dataset(req["dataset"])
        method = create_method(req["method"], ds, req["ipc"], seed=req["seed"], overrides=dict(req["settings"]))
        for name, value in req["settings"].items():
            assert getattr(method.config, name) == value
        secs = preset.expected_seconds()
        assert secs is not None and 0 < secs <= learn.MAX_PRESET_S, (preset.title, secs)
    distillers = [p for p in presets if p.kind == "distiller"]
    assert all(p.settings.get("init") in ("real", "noise") for p in distillers)  # stated, not left to defaults
    from_noise = {p.method for p in distillers if p.settings["init"] == "noise"}
    assert {m for m in ("kip", "dc", "dsa") if m in METHODS} <= from_noise  # their evolution is visible


def test_init_is_a_choice_of_every_distiller():
    import dataclasses

    for name, cls in METHODS.items():
        if cls.kind != "distiller":
            continue
        fields = {f.name: f for f in dataclasses.fields(cls.Config)}
        if "init" in fields:
            assert tuple(fields["init"].metadata["choices"]) == ("real", "herding", "noise"), name


@pytest.mark.parametrize("method,dataset", [("kip", "digits"), ("dm", "mnist-5k"), ("dc", "fashion-mnist"),
                                            ("kip", "cifar10")])
def test_estimate_is_monotone_in_steps_and_ipc(method, dataset):
    ipcs = [1, 2, 5, 10, 20, 30, 50, 80, 200]
    for steps in (1, 50, 1000):
        row = [estimates.estimate_seconds(method, dataset, ipc, steps) for ipc in ipcs]
        assert all(b >= a for a, b in zip(row, row[1:])), row
    for ipc in ipcs:
        col = [estimates.estimate_seconds(method, dataset, ipc, steps) for steps in (0, 1, 10, 100, 5000)]
        assert all(b > a for a, b in zip(col[1:], col[2:])) and col[0] <= col[1]


def test_estimate_follows_the_measured_table():
    for (method, dataset, ipc), secs in estimates.STEP_SECONDS.items():
        got = estimates.estimate_seconds(method, dataset, ipc, 100)
        assert got >= 100 * secs - 1e-9
    a, b = estimates.STEP_SECONDS[("kip", "digits", 1)], estimates.STEP_SECONDS[("kip", "digits", 10)]
    assert estimates.seconds_per_step("kip", "digits", 4) == pytest.approx(a + (b - a) * 3 / 9)
    assert estimates.seconds_per_step("kip", "mnist", 10) == pytest.approx(estimates.seconds_per_step("kip", "mnist-5k", 10))
    assert estimates.seconds_per_step("kip", "cifar10", 10) > estimates.seconds_per_step("kip", "mnist-5k", 10)
    assert estimates.estimate_seconds("nope", "digits", 1, 10) is None
    assert estimates.estimate_seconds("kmeans", "digits", 5, 1, kind="selector") == estimates.SELECTOR_SECONDS
    # a teacher trained on first use counts (rded and random-soft pick in one pass, after it)
    assert estimates.estimate_seconds("rded", "digits", 10, 1, kind="selector") == estimates.SELECTOR_SECONDS + 13.0
    assert estimates.estimate_seconds("random-soft", "mnist", 10, 1, kind="selector") > 30


def test_frepo_wide_pool_at_ipc10_is_estimated_as_minutes():
    """FRePo's fast profile widens its pool to 128 channels at IPC 10 on 28×28 greyscale sets (minutes, not
    seconds, on this CPU): the estimate follows that profile and the app warns before starting it."""
    from distill_core.profiles import iterations

    steps = iterations("frepo", "fashion-mnist", "fast", 10)
    seconds = estimates.estimate_seconds("frepo", "fashion-mnist", 10, steps)
    assert estimates.needs_warning(seconds) and seconds > 5 * estimates.estimate_seconds("frepo", "fashion-mnist", 1, steps)
    assert estimates.seconds_per_step("frepo", "fashion-mnist", 50) >= estimates.seconds_per_step("frepo", "fashion-mnist", 10)


def test_estimate_note_warns_above_two_minutes():
    from ui import learn

    text, warn = learn.estimate_note("kip", "digits", 1, 100)
    assert not warn and "Expected time" in text
    slow_steps = int(estimates.WARN_ABOVE_S / estimates.seconds_per_step("dm", "mnist-5k", 10)) + 10
    text, warn = learn.estimate_note("dm", "mnist-5k", 10, slow_steps)
    assert warn and "min" in text and "dm" in text
    assert estimates.describe_seconds(None) == "unknown" and estimates.describe_seconds(30) == "about 30 s"


def test_an_upload_gets_an_estimate_scaled_by_its_image_size():
    """An uploaded dataset has no measured row: the page passes its pixels and borrows mnist-5k's, scaled."""
    from ui import learn

    text, _ = learn.estimate_note("dm", "upload-cats", 10, 100)
    assert "No timing has been measured" in text  # without its image size there is nothing to go by
    small = estimates.estimate_seconds("dm", "upload-cats", 10, 100, pixels=784)
    big = estimates.estimate_seconds("dm", "upload-cats", 10, 100, pixels=3 * 32 * 32)
    assert small == pytest.approx(estimates.estimate_seconds("dm", "mnist-5k", 10, 100))
    assert big == pytest.approx(small * 3072 / 784)
    text, _ = learn.estimate_note("dm", "upload-cats", 10, 100, pixels=784)
    assert text.startswith("Expected time") and estimates.describe_seconds(small) in text


def test_a_preset_button_starts_a_job():
    """One click on the learn page: the distill page opens configured and the run is already going."""
    from ui import learn

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.run()
    at.switch_page("app_pages/learn.py")
    at.run()
    assert not at.exception
    topic, i, preset = next((t, i, p) for t in learn.TOPICS for i, p in enumerate(t.presets)
                            if p.available and p.method == "kip")
    assert "about" in at.button(key=f"learn.{topic.key}.{i}").label  # the expected time is on the button
    before = {id(j) for j in list(job_slots._RUNNING)}
    at.button(key=f"learn.{topic.key}.{i}").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == "Distill"
    assert at.session_state["distill.method"] == preset.method
    assert at.session_state[f"distill.setting.{preset.method}.init"] == "noise"
    started = [j for j in list(job_slots._RUNNING) if id(j) not in before]
    assert len(started) == 1
    spec = started[0].spec
    assert (spec.method, spec.dataset, spec.ipc, spec.steps) == (preset.method, preset.dataset, preset.ipc,
                                                                 preset.steps)
    assert spec.settings == preset.settings and spec.settings["init"] == "noise"
    assert at.button(key="distill.start").disabled and not at.button(key="distill.stop").disabled
    assert any("Started" in m.value for m in at.info)


def test_step_table_flags_rows_the_profiles_have_outgrown():
    """benchmarks/presets --step-table sets each fresh median beside the estimate table's row: within 2x either
    way it is quiet, beyond it says STALE (FRePo's width-128 step once ran 8x the table's width-32 figure)."""
    from benchmarks.presets import table_comment

    key = ("frepo", "mnist-5k", 10)
    table = estimates.STEP_SECONDS[key]
    assert table_comment(key, table) == f"  # table: {table:.4f} s, 1.0x"
    assert table_comment(key, 1.9 * table).endswith("1.9x")
    assert table_comment(key, 2.5 * table).endswith("2.5x: STALE")
    assert table_comment(key, 0.4 * table).endswith("0.4x: STALE")
    assert table_comment(("frepo", "nowhere", 10), 1.0) == "  # not in the table"


def test_every_distiller_has_measured_step_times_on_both_measured_sets():
    """Each distiller's run on digits and on 28×28 sets (mnist-5k, fashion-mnist) gets an estimate, not 'unknown':
    the step-time table has its rows at IPC 1 and 10 on both measured datasets."""
    from distill_core.methods import METHODS

    distillers = [name for name, cls in METHODS.items() if cls.kind == "distiller"]
    assert {"kip", "dm", "dc", "dsa", "mtt", "frepo", "tesla"} <= set(distillers)
    for name in distillers:
        for dataset in ("digits", "mnist-5k"):
            for ipc in (1, 10):
                assert (name, dataset, ipc) in estimates.STEP_SECONDS, (name, dataset, ipc)
        assert estimates.estimate_seconds(name, "fashion-mnist", 10, 100) is not None, name


def test_first_expert_training_is_stated_beside_the_estimate_not_in_it():
    """An MTT run on Fashion-MNIST takes minutes, but its first one also trains the experts (about 20 minutes on
    this CPU, once): the note says so, and the estimate itself stays the repeat run's."""
    from ui import learn

    steps = 200
    per_run = estimates.estimate_seconds("mtt", "fashion-mnist", 1, steps)
    assert per_run == pytest.approx(steps * estimates.seconds_per_step("mtt", "fashion-mnist", 1))
    text, warn = learn.estimate_note("mtt", "fashion-mnist", 1, steps)
    assert warn and estimates.describe_seconds(per_run) in text
    assert "also trains its experts" in text and "about 20 min more, once" in text
    text, _ = learn.estimate_note("dm", "fashion-mnist", 1, steps)
    assert "experts" not in text
    text, _ = learn.estimate_note("mtt", "digits", 1, 10)  # digits: the 26 s are inside the estimate
    assert "experts" not in text and estimates.first_use_seconds("mtt", "digits") is None


def test_stored_experts_or_teacher_drop_out_of_the_estimate():
    """When the page knows the experts are stored, the estimate is the run's alone and says so; when it knows they
    are missing, their training is inside the estimate (this run trains them)."""
    from ui import learn

    steps = 200
    per_run = estimates.estimate_seconds("mtt", "fashion-mnist", 1, steps)
    assert estimates.estimate_seconds("mtt", "fashion-mnist", 1, steps, stored=True) == pytest.approx(per_run)
    assert estimates.first_use_seconds("mtt", "fashion-mnist", stored=True) is None
    assert estimates.first_use_seconds("mtt", "fashion-mnist", stored=False) == 1200.0
    text, _ = learn.estimate_note("mtt", "fashion-mnist", 1, steps, stored=True)
    assert "Its experts are stored, not trained again" in text and estimates.describe_seconds(per_run) in text and "20 min" not in text
    text, warn = learn.estimate_note("mtt", "fashion-mnist", 1, steps, stored=False)
    assert warn and estimates.describe_seconds(per_run + 1200.0) in text and "includes about 20 min" in text
    # digits: the 26 s of expert training are in the estimate unless the experts are stored; a teacher likewise
    with_setup = estimates.estimate_seconds("mtt", "digits", 1, 10)
    assert with_setup - estimates.estimate_seconds("mtt", "digits", 1, 10, stored=True) == pytest.approx(26.0)
    assert estimates.estimate_seconds("mtt", "digits", 1, 10, stored=False) == pytest.approx(with_setup)
    assert estimates.estimate_seconds("rded", "fashion-mnist", 10, 1, "selector", stored=True) \
        == pytest.approx(estimates.estimate_seconds("rded", "fashion-mnist", 10, 1, "selector") - 80.0)


def test_distill_page_estimate_knows_whether_the_experts_are_stored(tmp_path, monkeypatch, digits):
    """The distill page looks in the experts folder: with none stored the estimate counts their training (26 s on
    digits), with them stored it does not and says so."""
    import torch

    from distill_core.experts import experts_folder
    from distill_core.methods.mtt import MTTConfig

    monkeypatch.setenv("DISTILL_EXPERTS_DIR", str(tmp_path / "experts"))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.run()
    at.switch_page("app_pages/distill.py")
    at.run()
    at.selectbox(key="distill.method").set_value("mtt").run()
    at.number_input(key="distill.steps").set_value(100).run()

    def note() -> str:
        lines = [m.value for m in [*at.caption, *at.warning] if "xpected" in m.value]
        assert len(lines) == 1, lines
        return lines[0]

    ipc = int(at.number_input(key="distill.ipc").value)
    missing = note()
    per_run = estimates.estimate_seconds("mtt", "digits", ipc, 100, stored=True)
    assert estimates.describe_seconds(per_run + 26.0) in missing and "stored" not in missing
    cfg = MTTConfig.for_dataset("digits", "fast", ipc)
    _, folder = experts_folder(digits, cfg.expert_spec())
    folder.mkdir(parents=True)
    for i in range(cfg.num_experts):  # the check reads each file's epochs, not its values
        trajectory = torch.zeros(cfg.expert_train_epochs + 1, 4)
        torch.save({"trajectory": trajectory, "meta": {}}, folder / f"expert_{i:03d}.pt")
    at.run()
    stored = note()
    assert estimates.describe_seconds(per_run) in stored and "Its experts are stored, not trained again" in stored
    assert not at.exception


def test_learn_page_presets_drop_the_experts_training_once_they_are_stored(tmp_path, monkeypatch, digits):
    """A trajectory preset's button counts its experts' training (26 s on digits) only while they are missing:
    with the preset's own experts stored, its estimate is the run's steps alone, and the page shows that."""
    import torch

    from distill_core.experts import experts_folder
    from ui import learn

    monkeypatch.setenv("DISTILL_EXPERTS_DIR", str(tmp_path / "experts"))
    preset = next(p for p in _presets() if p.method == "mtt")
    assert preset.stored() is False
    missing = preset.expected_seconds(stored=preset.stored())
    assert missing == pytest.approx(preset.expected_seconds())  # unknown and missing both count the training
    cls = METHODS["mtt"]
    cfg = cls.Config.from_overrides(preset.dataset, preset.as_request(start=False)["settings"], ipc=preset.ipc)
    _, folder = experts_folder(digits, cfg.expert_spec())
    folder.mkdir(parents=True)
    for i in range(cfg.num_experts):  # the check reads each file's epochs, not its values
        torch.save({"trajectory": torch.zeros(cfg.expert_train_epochs + 1, 4), "meta": {}},
                   folder / f"expert_{i:03d}.pt")
    assert preset.stored() is True
    assert preset.expected_seconds(stored=True) == pytest.approx(missing - 26.0)
    assert next(p for p in _presets() if p.method == "random").stored() is None  # trains nothing first

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.run()
    at.switch_page("app_pages/learn.py")
    at.run()
    labels = [b.label for b in at.button if preset.title in b.label]
    assert labels == [f"Try it: {preset.title} ({learn.describe_seconds(missing - 26.0)})"], labels
    assert not at.exception


def test_full_mnist_and_kmnist_share_fashion_mnists_first_use_training():
    """Full MNIST and KMNIST train their experts and teacher on as many 28×28 images with the same recipes as
    Fashion-MNIST, so their estimates state the same first-use training (not nothing, not mnist-5k's)."""
    from distill_core.methods import METHODS
    from ui import learn

    for name in ("mnist", "kmnist"):
        for method in ("mtt", "tesla", "datm"):
            assert estimates.first_use_seconds(method, name) == estimates.first_use_seconds(method, "fashion-mnist")
            assert METHODS[method].Config.for_dataset(name, "fast", 1).expert_spec() \
                == METHODS[method].Config.for_dataset("fashion-mnist", "fast", 1).expert_spec()
        text, _ = learn.estimate_note("mtt", name, 1, 100)
        assert "about 20 min more, once" in text
        assert estimates.estimate_seconds("rded", name, 10, 1, "selector") \
            == pytest.approx(estimates.estimate_seconds("rded", "fashion-mnist", 10, 1, "selector"))
        assert METHODS["rded"].Config.for_dataset(name, "fast", 10).teacher_spec() \
            == METHODS["rded"].Config.for_dataset("fashion-mnist", "fast", 10).teacher_spec()
    assert estimates.first_use_seconds("mtt", "cifar10") is None  # colour sets: nothing measured, nothing claimed

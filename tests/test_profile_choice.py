"""The distill page's profile choice below the widgets: the job builds its Config under the chosen profile and
records it; the page's defaults (settings and steps) follow the profile, the dataset and the IPC; the paper
profile on a CPU warns with its expected time."""
from __future__ import annotations

import pytest

from distill_core import profiles
from distill_core.data import load_dataset
from distill_core.errors import InvalidInputError
from distill_core.jobs import Job, JobSpec, check_spec
from ui import distill_view as view
from distill_core.methods import METHODS


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def test_the_job_builds_its_config_under_the_chosen_profile_and_records_it(digits):
    _, fast, _ = check_spec(JobSpec("dm", "digits", 10, steps=5), digits)
    _, paper, _ = check_spec(JobSpec("dm", "digits", 10, steps=5, profile="paper"), digits)
    assert (fast.profile, fast.width, fast.batch_real) == ("fast", 64, 64)
    assert (paper.profile, paper.width, paper.batch_real) == ("paper", 128, 256)
    # by-IPC settings are settled at the run's IPC (mtt paper: 30 student steps at IPC 10, 50 at IPC 1)
    assert check_spec(JobSpec("mtt", "digits", 10, steps=5, profile="paper"), digits)[1].syn_steps == 30
    assert check_spec(JobSpec("mtt", "digits", 1, steps=5, profile="paper"), digits)[1].syn_steps == 50
    with pytest.raises(InvalidInputError, match="unknown profile 'slow'"):
        check_spec(JobSpec("dm", "digits", 10, steps=5, profile="slow"), digits)
    job = Job(JobSpec("dm", "digits", 2, steps=3, profile="paper", eval_protocol="none"), digits)
    config = job.run_config()
    assert config["profile"] == "paper" and config["method_config"]["width"] == 128


def test_page_defaults_follow_profile_dataset_and_ipc():
    dm = METHODS["dm"]
    assert view.default_steps(dm, "digits", "fast", 10) == 300
    assert view.default_steps(dm, "digits", "fast", 50) == 200
    assert view.default_steps(dm, "digits", "paper", 10) == 20000
    assert view.config_defaults(dm, "mnist-5k", "paper", 10)["width"] == 128
    assert view.config_defaults(dm, "mnist-5k", "fast", 10)["width"] == 32
    # dc/dsa count networks, each matched outer_loop times: 10 networks × 10 updates at IPC 10 (fast)
    dc = METHODS["dc"]
    assert view.default_steps(dc, "digits", "fast", 10) == profiles.iterations("dc", "digits", "fast", 10) * 10
    assert view.default_steps(METHODS["random"], "digits", "paper", 10) == 1
    # a benchmark dataset is not sized: the profile's values stand
    assert view.page_defaults(METHODS["kip"], "digits", "fast", 10).notes == []


def test_the_paper_profile_on_a_cpu_warns_with_the_expected_time():
    note, warn = view.time_note("dm", "digits", 10, 20000, profile="paper", device_type="cpu")
    assert warn and note.startswith("Paper profile on a CPU: This run is expected to take about")
    assert "20,000 steps of dm" in note
    note, warn = view.time_note("kip", "digits", 10, 1000, profile="paper", device_type="cpu")
    assert warn and "Paper profile on a CPU" in note                 # short by the fast timings: still said
    note, warn = view.time_note("kip", "digits", 10, 1000, profile="paper", device_type="cuda")
    assert not warn and "Paper profile" not in note
    note, warn = view.time_note("kip", "digits", 10, 1000, profile="fast", device_type="cpu")
    assert not warn and note.startswith("Expected time")

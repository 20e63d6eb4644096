"""The server-wide job registry: jobs keyed by unguessable tokens outlive the session that started them, are
found again by token only, stop after an idle timeout once nobody holds them, and autosave once."""
from __future__ import annotations

import pytest

from distill_core import job_slots, jobs
from distill_core.jobs import JobRegistry, JobSpec
from distill_core.runs import list_runs, load_run

from toy_methods import job_threads, registered, wait_for

LONG = JobSpec("toy", "digits", ipc=1, steps=1_000_000, settings={"delay_s": 0.002}, eval_protocol="none")


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture()
def toy():
    with registered() as cls:
        yield cls
    jobs.stop_all()


def test_tokens_are_unguessable_and_checked():
    tokens = {jobs.new_token() for _ in range(200)}
    assert len(tokens) == 200 and all(jobs.valid_token(t) and len(t) == 24 for t in tokens)
    for bad in (None, 1, "", "1", "abc", "../../etc/passwd", "x" * 65, "token with spaces here!!"):
        assert not jobs.valid_token(bad)


def test_a_job_outlives_its_holder_until_the_idle_timeout(toy, digits):
    clock = Clock()
    reg = JobRegistry(idle_timeout_s=60, clock=clock)
    token = jobs.new_token()
    job = reg.start(token, LONG, digits, holder="tab-1")
    assert reg.get(token) is job and reg.holders(token) == 1
    reg.release(token, "tab-1")  # the tab closes (or reloads)
    clock.t += 59
    assert reg.sweep() == 0 and job.state().active
    assert reg.attach(token, "tab-2") is job  # the reloaded tab finds it: the idle timer stops
    clock.t += 3600
    assert reg.sweep() == 0 and job.state().active
    reg.release(token, "tab-2")
    clock.t += 60
    assert reg.sweep() == 1
    assert wait_for(lambda: not job.alive, 15) and job.state().status == jobs.STOPPED
    assert reg.get(token) is None and reg.attach(token, "tab-3") is None
    assert jobs.running_jobs() == 0 and not job_threads()


def test_unknown_and_made_up_tokens_find_nothing(toy, digits):
    reg = JobRegistry(idle_timeout_s=60)
    token = jobs.new_token()
    job = reg.start(token, LONG, digits, holder="owner")
    for other in (jobs.new_token(), token[:-1] + ("a" if token[-1] != "a" else "b"), token.upper(), "", None):
        assert reg.get(other) is None and reg.attach(other, "stranger") is None
    assert reg.holders(token) == 1  # a stranger's attempts hold nothing
    with pytest.raises(jobs.DistillError, match="already in use"):
        reg.start(token, LONG, digits, holder="stranger")
    with pytest.raises(jobs.DistillError, match="invalid job token"):
        reg.start("short", LONG, digits)
    job.stop()


def test_an_unheld_job_still_counts_against_the_cap(toy, digits, monkeypatch):
    from distill_core.limits import Limits

    monkeypatch.setattr(job_slots, "LIMITS", Limits(max_concurrent_jobs=1))  # where the cap is read
    reg = JobRegistry(idle_timeout_s=600)
    token = jobs.new_token()
    job = reg.start(token, LONG, digits, holder="tab")
    reg.release(token, "tab")
    with pytest.raises(jobs.BusyError):
        reg.start(jobs.new_token(), LONG, digits, holder="other")
    job.stop()


def test_the_sweeper_thread_stops_an_abandoned_job(toy, digits):
    reg = JobRegistry(idle_timeout_s=0.3)
    token = jobs.new_token()
    job = reg.start(token, LONG, digits, holder="tab")
    reg.release(token, "tab")
    assert wait_for(lambda: not job.alive, 15)
    assert job.state().status == jobs.STOPPED and len(reg) == 0


def test_entries_are_bounded_finished_ones_dropped_first(toy, digits):
    reg = JobRegistry(idle_timeout_s=600, max_entries=3)
    short = JobSpec("toy", "digits", ipc=1, steps=3, eval_protocol="none")
    done = []
    for _ in range(3):
        token = jobs.new_token()
        jobs.job_wait(reg.start(token, short, digits, holder="tab"), 20)
        done.append(token)
    running = jobs.new_token()
    reg.start(running, LONG, digits, holder="tab")
    assert len(reg) == 3 and reg.get(running) is not None and reg.get(done[0]) is None
    reg.stop_all()


def test_finished_and_stopped_runs_autosave_once(toy, digits, tmp_path):
    reg = JobRegistry(idle_timeout_s=600)
    job = reg.start(jobs.new_token(), JobSpec("toy", "digits", ipc=2, steps=12, eval_protocol="none"), digits,
                    holder="tab", autosave_dir=tmp_path)
    jobs.job_wait(job, 20)
    assert job.join(20) and job.saved_path is not None
    assert job.autosave() == job.saved_path and job.state().saved_path == str(job.saved_path)
    record = load_run(job.saved_path)
    assert record.config["status"] == jobs.FINISHED and record.config["steps"] == 12
    stopped = reg.start(jobs.new_token(), LONG, digits, holder="tab", autosave_dir=tmp_path)
    assert wait_for(lambda: stopped.state().step >= 3)
    stopped.stop()
    assert stopped.saved_path is not None and load_run(stopped.saved_path).config["status"] == jobs.STOPPED
    assert len(list_runs(tmp_path)) == 2


def test_a_failed_autosave_is_a_message(toy, digits, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    job = jobs.start_job(JobSpec("toy", "digits", ipc=1, steps=3, eval_protocol="none"), digits,
                         autosave_dir=blocker)
    jobs.job_wait(job, 20)
    assert job.join(20)
    state = job.state()
    assert state.saved_path is None and state.save_error and "cannot create run folder" in state.save_error


def test_check_spec_matches_what_the_job_runs(toy, digits):
    cls, config, steps = jobs.check_spec(JobSpec("toy", "digits", ipc=3, steps=37, settings={"lr": 0.5}), digits)
    assert cls.name == "toy" and config.lr == 0.5 and steps == 37
    assert jobs.check_spec(JobSpec("random", "digits", ipc=3, steps=37), digits)[2] == 1
    smallest = min(digits.class_counts())
    with pytest.raises(jobs.DistillError, match=f"IPC {smallest + 1}"):
        jobs.check_spec(JobSpec("toy", "digits", ipc=smallest + 1), digits)

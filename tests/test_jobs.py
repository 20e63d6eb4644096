"""The job layer: a method in a background thread with pause/resume/stop, a global cap, error capture."""
from __future__ import annotations

import time

import pytest

from distill_core import job_slots, jobs
from distill_core.errors import DistillError, InvalidInputError
from distill_core.jobs import JobSpec, job_wait, start_job
from distill_core.runs import load_run

from toy_methods import job_threads, registered, wait_for


@pytest.fixture()
def toy():
    with registered() as cls:
        yield cls
    jobs.stop_all()




def test_runs_to_the_end_with_metrics_snapshots_and_accuracy(toy, digits):
    job = start_job(JobSpec("toy", "digits", ipc=2, steps=30, eval_epochs=2, eval_every_s=0.2), digits)
    state = job_wait(job, 30)
    assert state.status == jobs.FINISHED and state.step == 30 and state.error is None
    assert state.images.shape == (20, 1, 8, 8) and state.labels.tolist() == sorted(state.labels.tolist())
    assert [r["step"] for r in state.metrics] == list(range(1, 31))
    assert state.snapshot_steps[0] == 0 and state.snapshot_steps[-1] == 30
    assert state.eta_s == 0.0 and state.progress == 1.0
    assert job.join(30)  # the evaluator ends after measuring the final step
    state = job.state()
    assert state.accuracy and state.accuracy[-1]["step"] == 30 and 0 <= state.accuracy[-1]["acc"] <= 1
    assert not job_threads()


def test_pause_resume_stop_and_no_thread_left(toy, digits):
    job = start_job(JobSpec("toy", "digits", ipc=1, steps=100_000, settings={"delay_s": 0.005},
                            eval_protocol="none"), digits)
    assert wait_for(lambda: job.state().step >= 5)
    job.pause()
    assert wait_for(lambda: job.state().status == jobs.PAUSED)
    time.sleep(0.1)  # the step in flight when pausing may still land
    paused_at = job.state().step
    time.sleep(0.3)
    assert job.state().step == paused_at and job.state().active
    job.resume()
    assert wait_for(lambda: job.state().step > paused_at + 3)
    assert job.state().status == jobs.RUNNING
    job.stop()
    state = job.state()
    assert state.status == jobs.STOPPED and not state.active and not job.alive
    assert jobs.running_jobs() == 0 and not job_threads()


def test_stop_while_paused(toy, digits):
    job = start_job(JobSpec("toy", "digits", ipc=1, steps=100_000, settings={"delay_s": 0.005},
                            eval_protocol="none"), digits)
    assert wait_for(lambda: job.state().step >= 2)
    job.pause()
    job.stop(timeout=5)
    assert job.state().status == jobs.STOPPED and not job.alive


def test_global_cap_raises_busy(toy, digits, monkeypatch):
    from distill_core.limits import Limits
    monkeypatch.setattr(job_slots, "LIMITS", Limits(max_concurrent_jobs=1, job_torch_threads=1))  # read there
    spec = JobSpec("toy", "digits", ipc=1, steps=100_000, settings={"delay_s": 0.01}, eval_protocol="none")
    first = start_job(spec, digits)
    with pytest.raises(jobs.BusyError, match="busy .* try again"):
        start_job(spec, digits)
    first.stop()
    second = start_job(spec, digits)  # the slot is free again
    second.stop()
    assert jobs.running_jobs() == 0


def test_errors_in_the_worker_become_a_status(toy, digits):
    job = start_job(JobSpec("toy", "digits", ipc=1, steps=50, settings={"fail_at": 3}, eval_protocol="none"),
                    digits)
    state = job_wait(job, 20)
    assert state.status == jobs.FAILED and state.error == "unexpected RuntimeError: toy failure on purpose"
    assert state.step == 2 and not state.active
    assert job.join(5) and jobs.running_jobs() == 0


def test_divergence_message_is_the_core_one(toy, digits):
    job = start_job(JobSpec("toy", "digits", ipc=1, steps=50, settings={"lr": 1e30}, eval_protocol="none"), digits)
    state = job_wait(job, 20)
    assert state.status == jobs.FAILED and "diverged" in state.error


@pytest.mark.parametrize("spec, message", [
    (JobSpec("toy", "digits", ipc=10_000), "IPC"),
    (JobSpec("toy", "digits", ipc=0), "IPC"),
    (JobSpec("toy", "digits", ipc=1, steps=0), "steps"),
    (JobSpec("toy", "digits", ipc=1, settings={"lr": float("nan")}), "finite"),
    (JobSpec("toy", "digits", ipc=1, settings={"nope": 1}), "unknown setting"),
    (JobSpec("no-such-method", "digits", ipc=1), "unknown method"),
    (JobSpec("toy", "digits", ipc=1, seed=-1), "seed"),
    (JobSpec("toy", "digits", ipc=1, eval_protocol="nope"), "unknown evaluation protocol"),
])
def test_bad_specs_fail_before_any_thread(toy, digits, spec, message):
    with pytest.raises(DistillError, match=message):
        start_job(spec, digits)
    assert jobs.running_jobs() == 0 and not job_threads()


def test_selector_job_and_save(toy, digits, tmp_path):
    job = start_job(JobSpec("random", "digits", ipc=3, eval_epochs=2), digits)
    state = job_wait(job, 20)
    assert state.status == jobs.FINISHED and state.step == 1 and state.total_steps == 1
    assert job.join(30)
    path = job.save(runs_dir=tmp_path)
    record = load_run(path)
    assert record.config["method"] == "random" and record.config["source"] == "app"
    assert record.evaluations and record.evaluations[0]["source"] == "app-live"
    assert len(record.summary) == 30


def test_saved_distiller_run_has_snapshots(toy, digits, tmp_path):
    job = start_job(JobSpec("toy", "digits", ipc=1, steps=12, eval_protocol="none"), digits)
    job_wait(job, 20)
    record = load_run(job.save(out_dir=tmp_path / "r"))
    assert record.snapshots is not None and record.snapshots["steps"].tolist()[-1] == 12
    assert len(record.metrics) == 12 and record.config["steps"] == 12


def test_state_is_a_consistent_copy(toy, digits):
    job = start_job(JobSpec("toy", "digits", ipc=1, steps=100_000, eval_protocol="none"), digits)
    assert wait_for(lambda: job.state().step > 20)
    s = job.state()
    n = len(s.metrics)
    time.sleep(0.1)
    assert len(s.metrics) == n  # a snapshot does not change under the reader
    assert len(s.metrics) <= jobs.MAX_PLOT_POINTS + 1
    job.stop()


def test_bad_spec_type_is_refused(toy, digits):
    with pytest.raises(InvalidInputError):
        start_job(JobSpec("toy", "digits", ipc=1, eval_every_s=float("nan")), digits)

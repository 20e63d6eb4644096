"""Concurrency at the job layer: five sessions press Start at once; the global cap admits
LIMITS.max_concurrent_jobs of them and tells the rest "busy"; when the sessions end (their slots are released, as
Streamlit's session-scoped cache does on disconnect) and the registry's idle timeout has passed (0 s here) every
worker and evaluator thread is gone."""
from __future__ import annotations

import threading
import time

import pytest

from distill_core import jobs
from distill_core.errors import DistillError
from distill_core.jobs import BusyError, JobSpec
from distill_core.limits import LIMITS
from ui.state import JobSlot, _release_slot  # the app's per-session slot and its on_release hook

from toy_methods import job_threads, registered, wait_for

SESSIONS = 5




@pytest.fixture()
def toy(monkeypatch):
    monkeypatch.setattr(jobs.registry(), "idle_timeout_s", 0.0)  # a released job stops at once
    with registered() as cls:
        yield cls
    jobs.stop_all()


def _press_start_together(slots, spec, dataset) -> list[object]:
    """Every session presses Start at the same moment; returns each one's Job or the exception it got."""
    results: list[object] = [None] * len(slots)
    barrier = threading.Barrier(len(slots))

    def press(i: int) -> None:
        barrier.wait()
        try:
            results[i] = slots[i].start(spec, dataset)
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            results[i] = exc

    threads = [threading.Thread(target=press, args=(i,)) for i in range(len(slots))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results


@pytest.mark.parametrize("round_", range(3))
def test_five_sessions_get_the_cap_then_busy_and_leave_no_thread(toy, digits, round_):
    assert jobs.running_jobs() == 0 and not job_threads()
    slots = [JobSlot() for _ in range(SESSIONS)]
    spec = JobSpec("toy", "digits", ipc=1, steps=1_000_000, seed=round_, settings={"delay_s": 0.002},
                   eval_every_s=0.3, eval_epochs=1)
    results = _press_start_together(slots, spec, digits)

    started = [r for r in results if isinstance(r, jobs.Job)]
    busy = [r for r in results if isinstance(r, BusyError)]
    assert len(started) == min(SESSIONS, LIMITS.max_concurrent_jobs), results
    assert len(busy) == SESSIONS - len(started), results
    for exc in busy:
        assert str(exc).startswith("busy") and "try again" in str(exc)
    assert jobs.running_jobs() == len(started)
    assert wait_for(lambda: all(j.state().step >= 3 for j in started))
    assert all(j.state().status == jobs.RUNNING for j in started)
    # each running session owns its own job
    assert len({id(s.job) for s in slots if s.job is not None}) == len(started)

    # a busy session that presses Start again is still refused while the others run
    idle = next(s for s in slots if s.job is None)
    with pytest.raises(BusyError):
        idle.start(spec, digits)

    # the sessions end: Streamlit releases their session-scoped slot
    for slot in slots:
        _release_slot(slot)
    assert wait_for(lambda: not job_threads(), 15), [t.name for t in job_threads()]
    assert jobs.running_jobs() == 0
    assert all(j.state().status == jobs.STOPPED for j in started)


def test_a_freed_slot_is_taken_by_the_next_session(toy, digits):
    spec = JobSpec("toy", "digits", ipc=1, steps=1_000_000, settings={"delay_s": 0.002}, eval_protocol="none")
    slots = [JobSlot() for _ in range(LIMITS.max_concurrent_jobs + 1)]
    for s in slots[:-1]:
        s.start(spec, digits)
    with pytest.raises(BusyError):
        slots[-1].start(spec, digits)
    slots[0].close()
    assert wait_for(lambda: jobs.running_jobs() < LIMITS.max_concurrent_jobs, 15)
    job = slots[-1].start(spec, digits)
    assert job.state().active
    for s in slots:
        s.close()
    assert wait_for(lambda: not job_threads(), 15) and jobs.running_jobs() == 0


def test_a_session_cannot_run_two_jobs(toy, digits):
    spec = JobSpec("toy", "digits", ipc=1, steps=1_000_000, settings={"delay_s": 0.002}, eval_protocol="none")
    slot = JobSlot()
    slot.start(spec, digits)
    with pytest.raises(DistillError, match="already running"):
        slot.start(spec, digits)
    assert jobs.running_jobs() == 1
    slot.close()
    assert wait_for(lambda: not job_threads(), 15)


def test_real_method_jobs_also_end_their_threads(digits):
    """KIP with its live evaluator: stopping mid-evaluation still ends both threads promptly."""
    spec = JobSpec("kip", "digits", ipc=1, steps=1_000_000, eval_every_s=0.2)
    started = [jobs.start_job(spec, digits) for _ in range(LIMITS.max_concurrent_jobs)]
    with pytest.raises(BusyError):
        jobs.start_job(spec, digits)
    assert wait_for(lambda: all(j.state().step >= 2 for j in started), 60)
    t0 = time.monotonic()
    jobs.stop_all(timeout=20)
    assert time.monotonic() - t0 < 20
    assert wait_for(lambda: not job_threads(), 20), [t.name for t in job_threads()]
    assert jobs.running_jobs() == 0


def test_benchmarks_and_distillations_share_one_cap(toy, digits):
    """A benchmark runs distillations too: it takes a slot under the same cap (it had a cap of its own)."""
    from distill_core.bench_results import BenchJob

    spec = JobSpec("toy", "digits", ipc=1, steps=1_000_000, settings={"delay_s": 0.002}, eval_protocol="none")
    distills = [jobs.start_job(spec, digits) for _ in range(LIMITS.max_concurrent_jobs - 1)]
    bench = BenchJob(digits, ["toy"], [1], steps=1_000_000).start()
    assert jobs.running_jobs() == LIMITS.max_concurrent_jobs
    with pytest.raises(BusyError, match="busy"):
        jobs.start_job(spec, digits)
    with pytest.raises(BusyError, match="busy"):
        BenchJob(digits, ["toy"], [1], steps=10).start()
    bench.stop(wait=True, timeout=20)
    assert bench.join(20) and jobs.running_jobs() == len(distills)
    late = jobs.start_job(spec, digits)  # the benchmark's slot is free again
    jobs.stop_all()
    assert late.state().status == jobs.STOPPED
    assert wait_for(lambda: not job_threads() and not any(t.name == "distill-bench" for t in threading.enumerate()))
    assert jobs.running_jobs() == 0

"""Drive the app's job layer the way the distill page does, for N minutes, and report what a user would feel.

    python -m benchmarks.app_jobs                  # 10 minutes, KIP on digits IPC 10 (another distiller if no kip)
    python -m benchmarks.app_jobs --minutes 1      # shorter, on a busy machine
    python -m benchmarks.app_jobs --json           # the last line is one JSON object

Jobs run back to back (start -> run to the end or --job-seconds -> stop); between them the reader polls
`Job.state()` every --poll seconds (the page's redraw interval, ui.distill_view.REDRAW_S) and, when a poll sees a
new version of the images, renders the per-class grid and encodes it as PNG, as a redraw does. Reported:

- time from Start (`start_job`) to the first grid (the initial images) and to the first *updated* grid (after the
  first optimisation step), cold (first job of the process, before any warm-up) and warm (what the app sees: it
  warms up in the background when the server starts, `distill_core.jobs.warm_up`);
- redraw rate: polls that saw a new step per second, at the page's polling rate (the ceiling is 1 / poll);
- how long a state read and a grid render take (a redraw must never wait for the loop);
- process memory (RSS) at the start (after warm-up) and at the end, and the growth between them.

Targets: <= 1 s to the first grid on a CPU, >= 2 redraws/s, memory growth < 50 MB.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import time

import torch

from distill_core import exports
from distill_core.data import load_dataset
from distill_core.jobs import JobSpec, start_job, warm_up
from distill_core.methods import METHODS

PAGE_POLL_S = 0.4  # = ui.distill_view.REDRAW_S (not imported: that module imports streamlit)


def rss_mb() -> float:
    """Resident set size of this process in MB (Linux /proc; else the peak from getrusage)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as fh:
            pages = int(fh.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2 ** 20
    except (OSError, ValueError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def pick_method(requested: str | None) -> str:
    if requested:
        return requested
    for name in ("kip", "dm", "dc"):
        if name in METHODS:
            return name
    distillers = sorted(n for n, c in METHODS.items() if c.kind == "distiller")
    if not distillers:
        raise SystemExit("no distiller is registered")
    return distillers[0]


def time_to_grid(job, t0: float, timeout: float = 60.0) -> tuple[float | None, float | None]:
    """Seconds from `t0` (just before start_job) until the first images, and until the first images after a step
    (polled every 5 ms)."""
    first = updated = None
    while time.perf_counter() - t0 < timeout:
        s = job.state()
        if first is None and s.images is not None:
            first = time.perf_counter() - t0
        if s.images is not None and s.step >= 1:
            updated = time.perf_counter() - t0
            break
        if not s.active:
            break
        time.sleep(0.005)
    return first, updated


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0, help="how long to drive jobs (default 10)")
    parser.add_argument("--method", default=None, help="default: kip, else dm, else dc, else any distiller")
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--ipc", type=int, default=10)
    parser.add_argument("--steps", type=int, default=None, help="steps per job (default: the method's)")
    parser.add_argument("--job-seconds", type=float, default=60.0, help="stop a job after this long")
    parser.add_argument("--poll", type=float, default=PAGE_POLL_S, help="seconds between state reads")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    method = pick_method(args.method)
    rss_import = rss_mb()
    ds = load_dataset(args.dataset)
    spec = JobSpec(method, args.dataset, ipc=args.ipc, steps=args.steps)

    # cold: the very first job of the process pays torch's first-use costs
    t0 = time.perf_counter()
    cold_job = start_job(spec, ds)
    cold_first, cold_updated = time_to_grid(cold_job, t0)
    cold_job.stop()
    warm_s = warm_up(args.dataset)
    rss_start = rss_mb()

    firsts: list[float] = []
    updateds: list[float] = []
    reads: list[float] = []
    renders: list[float] = []
    polls = fresh = jobs_run = steps_total = 0
    t_begin = time.perf_counter()
    deadline = t_begin + 60 * args.minutes
    poll_time = 0.0
    while time.perf_counter() < deadline:
        t0 = time.perf_counter()
        job = start_job(spec, ds)
        jobs_run += 1
        first, updated = time_to_grid(job, t0)
        if first is not None:
            firsts.append(first)
        if updated is not None:
            updateds.append(updated)
        t_job = time.perf_counter()
        last_version = -1
        while time.perf_counter() < deadline and time.perf_counter() - t_job < args.job_seconds:
            t_poll = time.perf_counter()
            t0 = time.perf_counter()
            s = job.state()
            reads.append(time.perf_counter() - t0)
            polls += 1
            if s.version != last_version and s.images is not None:
                fresh += 1
                last_version = s.version
                t0 = time.perf_counter()
                exports.grid_image(s.images, s.class_names, s.labels).save(io.BytesIO(), format="PNG")
                renders.append(time.perf_counter() - t0)
            if not s.active:
                break
            time.sleep(max(0.0, args.poll - (time.perf_counter() - t_poll)))
        poll_time += time.perf_counter() - t_job
        steps_total += job.state().step
        job.stop()
    elapsed = time.perf_counter() - t_begin
    rss_end = rss_mb()

    def ms(values: list[float], q: float) -> float | None:
        if not values:
            return None
        values = sorted(values)
        return round(1000 * values[min(len(values) - 1, int(q * len(values)))], 2)

    result = {
        "method": method, "dataset": args.dataset, "ipc": args.ipc, "steps_per_job": spec.steps or
        METHODS[method].default_steps, "minutes": round(elapsed / 60, 2), "jobs": jobs_run,
        "steps": steps_total, "steps_per_s": round(steps_total / max(poll_time, 1e-9), 1),
        "torch_threads_main": torch.get_num_threads(), "poll_s": args.poll,
        "cold_first_grid_s": cold_first and round(cold_first, 3),
        "cold_first_updated_grid_s": cold_updated and round(cold_updated, 3),
        "warm_up_s": round(warm_s, 2),
        "first_grid_s_median": firsts and round(statistics.median(firsts), 3),
        "first_grid_s_max": firsts and round(max(firsts), 3),
        "first_updated_grid_s_median": updateds and round(statistics.median(updateds), 3),
        "first_updated_grid_s_max": updateds and round(max(updateds), 3),
        "polls": polls, "redraws": fresh, "polls_per_s": round(polls / max(poll_time, 1e-9), 2),
        "redraws_per_s": round(fresh / max(poll_time, 1e-9), 2),
        "state_read_ms_p50": ms(reads, 0.5), "state_read_ms_p99": ms(reads, 0.99),
        "grid_render_ms_p50": ms(renders, 0.5), "grid_render_ms_p99": ms(renders, 0.99),
        "rss_mb_after_import": round(rss_import, 1), "rss_mb_start": round(rss_start, 1),
        "rss_mb_end": round(rss_end, 1), "rss_growth_mb": round(rss_end - rss_start, 1),
    }
    if args.json:
        print(json.dumps(result))
        return
    print(f"{method} on {args.dataset}, IPC {args.ipc}: {jobs_run} jobs, {steps_total:,} steps in "
          f"{result['minutes']} min ({result['steps_per_s']} steps/s while polled)")
    print(f"Start -> first grid: cold {result['cold_first_grid_s']} s (first updated "
          f"{result['cold_first_updated_grid_s']} s); warm median {result['first_grid_s_median']} s, max "
          f"{result['first_grid_s_max']} s; first updated grid median {result['first_updated_grid_s_median']} s, "
          f"max {result['first_updated_grid_s_max']} s")
    print(f"Redraws: {result['redraws_per_s']}/s of {result['polls_per_s']} polls/s (poll every {args.poll} s); "
          f"state read p50 {result['state_read_ms_p50']} ms, p99 {result['state_read_ms_p99']} ms; "
          f"grid render p50 {result['grid_render_ms_p50']} ms, p99 {result['grid_render_ms_p99']} ms")
    print(f"RSS: {result['rss_mb_start']} MB at the start (after warm-up), {result['rss_mb_end']} MB at the end "
          f"(growth {result['rss_growth_mb']} MB)")


if __name__ == "__main__":
    main()

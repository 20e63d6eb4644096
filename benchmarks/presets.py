"""Wall-clock seconds of every learn-page preset, run the way the app runs it (one run each).

    python -m benchmarks.presets                 # every available preset: seconds to finish, and the estimate
    python -m benchmarks.presets --pairs assets/learn   # also store each noise preset's step-0 and last grid
    python -m benchmarks.presets --step-table    # seconds per step of the distillers (the estimate's data)

Each preset becomes the `JobSpec` the distill page builds from it (method, dataset, IPC, steps, seed, settings,
device auto, the page's periodic evaluation) and runs as a background job, exactly as a click on its button
starts it; the time is from `start_job` to the job's end (its final evaluation excluded, as on the page, where
the grid is done when the steps are). `--step-table` times a few steps of each distiller per dataset and IPC
after one untimed step and prints the rows of `distill_core.estimates.STEP_SECONDS`, each with the table's value
and the ratio (flagged STALE beyond 2x either way: the profile changed, the estimate did not).
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from distill_core import exports
from distill_core.data import load_dataset
from distill_core.jobs import JobSpec, job_wait, start_job, stop_all
from distill_core.methods import METHODS, create_method
from distill_core.profiles import DISTILLERS


def _save_pair(job, preset, folder: Path) -> None:
    """The first and the last stored snapshot of a job as grids: KEY-before.png and KEY-after.png."""
    steps, images = job.snapshots()
    summary = job.summary()
    if len(steps) < 2 or summary is None or not preset.key:
        return
    folder.mkdir(parents=True, exist_ok=True)
    for name, grid in (("before", images[0]), ("after", images[-1])):
        data = exports.png_grid(grid.float(), summary.class_names, summary.hard_labels, tile=28)
        (folder / f"{preset.key}-{name}.png").write_bytes(data)


def run_presets(limit_s: float, pairs: Path | None = None, keys: list[str] | None = None) -> None:
    from distill_core.estimates import estimate_seconds
    from ui.learn import all_presets

    print("| preset | method | dataset | IPC | steps | init | seconds | estimate (s) | final accuracy |")
    print("|---|---|---|---|---|---|---|---|---|")
    for preset in all_presets():
        if not preset.available or (keys and preset.key not in keys):
            continue
        req = preset.as_request()
        spec = JobSpec(req["method"], req["dataset"], req["ipc"], req["steps"], req["seed"], req["settings"])
        ds = load_dataset(spec.dataset)
        t0 = time.perf_counter()
        job = start_job(spec, ds)
        state = job_wait(job, timeout=limit_s)
        seconds = time.perf_counter() - t0
        if state.active:
            job.stop(wait=True, timeout=10)
        deadline = time.monotonic() + 120
        while job.alive and time.monotonic() < deadline:  # the evaluator measures the final summary
            time.sleep(0.1)
        final = job.state().last_accuracy
        acc = f"{100 * final['acc']:.1f} % ({final['protocol']})" if final else "—"
        est = estimate_seconds(spec.method, spec.dataset, spec.ipc, state.total_steps, preset.kind)
        print(f"| {preset.title} | {spec.method} | {spec.dataset} | {spec.ipc} | {state.total_steps} | "
              f"{req['settings'].get('init', '—')} | {seconds:.1f}{' (stopped)' if state.active else ''} | "
              f"{'—' if est is None else f'{est:.0f}'} | {acc} |", flush=True)
        if pairs is not None and req["settings"].get("init") == "noise":
            _save_pair(job, preset, pairs)
        stop_all()


STALE_RATIO = 2.0  # a row measured this many times faster or slower than the table's is flagged


def table_comment(key: tuple[str, str, int], seconds: float) -> str:
    """' # table: 0.27 s, 7.9x: STALE' — how a fresh measurement compares with the estimate table's row, so a
    profile change that made a method slower or faster (and the app's estimate wrong) shows."""
    from distill_core.estimates import STEP_SECONDS

    if key not in STEP_SECONDS:
        return "  # not in the table"
    ratio = seconds / STEP_SECONDS[key]
    stale = ratio > STALE_RATIO or ratio < 1 / STALE_RATIO
    return f"  # table: {STEP_SECONDS[key]:.4f} s, {ratio:.1f}x{': STALE' if stale else ''}"


def step_table(datasets: list[str], ipcs: list[int], steps: int, methods: list[str]) -> None:
    print("# seconds per step, one torch thread, median of "
          f"{steps} steps after one untimed step (method, dataset, ipc): seconds")
    for name in methods:
        if name not in METHODS:
            continue
        for dataset in datasets:
            ds = load_dataset(dataset)
            for ipc in ipcs:
                method = create_method(name, ds, ipc, seed=0, device="cpu")
                method.step()
                times = []
                for _ in range(steps):
                    t0 = time.perf_counter()
                    method.step()
                    times.append(time.perf_counter() - t0)
                median = statistics.median(times)
                print(f'    ("{name}", "{dataset}", {ipc}): {median:.4f},{table_comment((name, dataset, ipc), median)}',
                      flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--step-table", action="store_true", help="time steps per method/dataset/IPC instead")
    parser.add_argument("--datasets", nargs="+", default=["digits", "mnist-5k"])
    parser.add_argument("--ipc", type=int, nargs="+", default=[1, 10])
    parser.add_argument("--steps", type=int, default=5, help="timed steps per row of --step-table")
    parser.add_argument("--methods", nargs="+",
                        default=[m for m in DISTILLERS if m in METHODS and METHODS[m].kind == "distiller"],
                        help="distillers of --step-table")
    parser.add_argument("--presets", nargs="+", default=None, help="run only the presets with these keys")
    parser.add_argument("--pairs", type=Path, default=None, help="folder for the before/after grids")
    parser.add_argument("--limit", type=float, default=600.0, help="stop a preset after this many seconds")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    if args.step_table:
        step_table(args.datasets, args.ipc, args.steps, args.methods)
    else:
        run_presets(args.limit, args.pairs, args.presets)


if __name__ == "__main__":
    main()

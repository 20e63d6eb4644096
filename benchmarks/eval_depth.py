"""Accuracy of ConvNets of several depths trained on the same summaries: how deep the evaluation network should be
for a dataset's image size (the `quick` protocol with only its ConvNet depth changed).

    python -m benchmarks.eval_depth                                   # digits, validation split, depths 1-3
    python -m benchmarks.eval_depth --methods random herding kip --ipc 10 --seeds 2
    python -m benchmarks.eval_depth --json                            # the last line is one JSON object

Each method distils (or selects) its summary once per seed with its profile's settings and steps; the summary is
then judged by `--reps` freshly initialised ConvNets of each depth (seeds 0..reps-1). Printed: mean ± std over the
seeds (each seed the mean of its networks) and the per-seed means. On 8×8 digits a third block instance-normalises
2×2 maps, which is why `models.default_depth` gives small images two blocks.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import statistics

from distill_core import evaluate
from distill_core.data import load_dataset
from distill_core.methods import create_method
from distill_core.pipeline import default_steps


def summaries(dataset, method: str, ipc: int, seeds: int) -> list:
    """One summary per distillation seed 0..seeds-1, each run for its profile's steps."""
    out = []
    for seed in range(seeds):
        run = create_method(method, dataset, ipc, seed=seed)
        if run.kind == "distiller":
            for _ in range(default_steps(run)):
                run.step()
        out.append(run.summary())
    return out


def judged(dataset, summary, depth: int, reps: int, split: str) -> float:
    """Mean accuracy of `reps` ConvNets of `depth` blocks trained on the summary under `quick`."""
    base = evaluate.PROTOCOLS["quick"]
    evaluate.PROTOCOLS["quick"] = dataclasses.replace(base, depth=depth)
    try:
        return evaluate.evaluate_summary(summary, dataset, "quick", reps=reps, device="cpu", split=split).acc_mean
    finally:
        evaluate.PROTOCOLS["quick"] = base


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--methods", nargs="+", default=["random", "herding", "random-soft", "rded", "kip", "dm"])
    parser.add_argument("--ipc", nargs="+", type=int, default=[1, 10])
    parser.add_argument("--depths", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--split", default="val", choices=["val", "test"])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    dataset = load_dataset(args.dataset)
    results: dict = {}
    for method in args.methods:
        for ipc in args.ipc:
            runs = summaries(dataset, method, ipc, args.seeds)
            for depth in args.depths:
                accs = [100 * judged(dataset, s, depth, args.reps, args.split) for s in runs]
                spread = statistics.pstdev(accs) if len(accs) > 1 else 0.0
                results[f"{method} ipc{ipc} depth{depth}"] = accs
                print(f"{method:12s} IPC {ipc:3d}  depth {depth}: {statistics.mean(accs):5.1f} ± {spread:4.1f}  "
                      f"({', '.join(f'{a:.1f}' for a in accs)})", flush=True)
    if args.json:
        print(json.dumps(results))
    return results


if __name__ == "__main__":
    main()

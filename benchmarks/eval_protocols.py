"""Time per model and accuracy of the evaluation protocols for `random` summaries on mnist-5k.

    python -m benchmarks.eval_protocols               # quick at IPC 1, 10, 50 and paper at IPC 10
    python -m benchmarks.eval_protocols --paper-reps 0  # skip the (slow on CPU) paper protocol

Prints a markdown table: protocol, IPC, models trained, median seconds per model, accuracy mean ± std.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from distill_core.data import load_dataset
from distill_core.evaluate import evaluate_summary
from distill_core.methods import create_method


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="mnist-5k")
    parser.add_argument("--ipc", type=int, nargs="+", default=[1, 10, 50])
    parser.add_argument("--quick-reps", type=int, default=3)
    parser.add_argument("--paper-ipc", type=int, default=10)
    parser.add_argument("--paper-reps", type=int, default=1)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    ds = load_dataset(args.dataset)
    jobs = [("quick", ipc, args.quick_reps) for ipc in args.ipc]
    if args.paper_reps > 0:
        jobs.append(("paper", args.paper_ipc, args.paper_reps))
    print(f"{args.dataset}, random summaries (seed 0), torch {torch.__version__}, {torch.get_num_threads()} threads\n")
    print("| protocol | IPC | models | median s/model | accuracy % |")
    print("|---|---|---|---|---|")
    for protocol, ipc, reps in jobs:
        summary = create_method("random", ds, ipc, seed=0).summary()
        per_model: list[float] = []
        last = [time.perf_counter()]

        def lap(_rep: int, _acc: float) -> None:
            now = time.perf_counter()
            per_model.append(now - last[0])
            last[0] = now

        result = evaluate_summary(summary, ds, protocol, reps=reps, seed=0, device=args.device, on_model_done=lap)
        print(f"| {protocol} | {ipc} | {result.reps} | {statistics.median(per_model):.1f} | "
              f"{100 * result.acc_mean:.1f} ± {100 * result.acc_std:.1f} |", flush=True)


if __name__ == "__main__":
    main()

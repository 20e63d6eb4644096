"""Step times of every distiller at IPC 1 and 10 on mnist-5k, with their default settings.

    python -m benchmarks.step_times                         # dm, dc, dsa, mtt (and kip when registered)
    python -m benchmarks.step_times --methods dm dc --ipc 1 --steps 5 --threads 1

For each method and IPC: build it with the dataset's defaults, run `--warmup` steps untimed (mtt's first step loads
its experts, training them if none are stored), then time `--steps` steps. Prints a markdown table: median and mean
seconds per step, the default number of steps, and mean × default steps (what `distill` would spend optimising;
the evaluation comes on top). Gradient matching at IPC 10 alternates steps with and without inner-loop training,
so its mean is the figure to multiply.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from distill_core.data import load_dataset
from distill_core.methods import METHODS, create_method
from distill_core.pipeline import default_steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="mnist-5k")
    parser.add_argument("--methods", nargs="+", default=None, help="default: dm dc dsa mtt, and kip if registered")
    parser.add_argument("--ipc", type=int, nargs="+", default=[1, 10])
    parser.add_argument("--steps", type=int, default=10, help="timed steps per method and IPC")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: leave torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    methods = args.methods or [m for m in ("dm", "dc", "dsa", "mtt", "kip") if m in METHODS]

    ds = load_dataset(args.dataset)
    print(f"{ds.name}, default settings, device {args.device}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; {args.steps} timed steps after {args.warmup} untimed\n")
    print("| method | IPC | median s/step | mean s/step | default steps | mean × default steps (s) |")
    print("|---|---|---|---|---|---|")
    for name in methods:
        for ipc in args.ipc:
            method = create_method(name, ds, ipc, seed=0, device=args.device)
            for _ in range(args.warmup):
                method.step()
            times = []
            for _ in range(args.steps):
                t0 = time.perf_counter()
                method.step()
                times.append(time.perf_counter() - t0)
            med, mean, n = statistics.median(times), statistics.fmean(times), default_steps(method)
            print(f"| {name} | {ipc} | {med:.3f} | {mean:.3f} | {n} | {mean * n:.0f} |", flush=True)


if __name__ == "__main__":
    main()

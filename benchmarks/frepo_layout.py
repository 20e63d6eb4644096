"""FRePo's step time with its pool in the contiguous (NCHW) and the channels-last memory layout.

    python -m benchmarks.frepo_layout                              # fashion-mnist IPC 1 and 10, fast profile
    python -m benchmarks.frepo_layout --dataset digits --ipc 1 10 --steps 20

A FRePo step runs a real batch (`target_batch` images) and the synthetic set through one ConvNet of the pool and
trains that network one step; at the `fast` profile's width 128 on 28×28 images these convolutions are nearly all of
the step. For each IPC two copies of the method are built from the same seed, one per layout, and their steps are
interleaved (one of each in turn) so that a busy machine slows both alike. Prints the median seconds per step of each
and their ratio, and each copy's last loss for reference: one step computes the same numbers in both layouts
(tests/test_frepo.py checks it), but FRePo's ridge of 1e-6 magnifies the float rounding of the reordered sums, so
the two runs drift apart over steps (close after ten steps on Fashion-MNIST, far apart on digits at IPC 10).
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from distill_core.data import load_dataset
from distill_core.methods import create_method


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--ipc", type=int, nargs="+", default=[1, 10])
    parser.add_argument("--steps", type=int, default=10, help="timed steps per layout and IPC")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the app's job setting: 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    ds = load_dataset(args.dataset)
    print(f"{ds.name}, frepo fast profile, torch {torch.__version__}, {torch.get_num_threads()} thread(s); "
          f"{args.steps} timed steps per layout after one untimed, interleaved\n")
    print("| IPC | contiguous s/step | channels-last s/step | speed-up | loss (contiguous / channels-last) |")
    print("|---|---|---|---|---|")
    for ipc in args.ipc:
        runs = {layout: create_method("frepo", ds, ipc, seed=0, overrides={"channels_last": layout})
                for layout in (False, True)}
        times: dict[bool, list[float]] = {False: [], True: []}
        losses: dict[bool, float] = {}
        for layout, method in runs.items():
            method.step()
        for _ in range(args.steps):
            for layout, method in runs.items():
                t0 = time.perf_counter()
                losses[layout] = float(method.step()["loss"])
                times[layout].append(time.perf_counter() - t0)
        plain, last = statistics.median(times[False]), statistics.median(times[True])
        print(f"| {ipc} | {plain:.3f} | {last:.3f} | {plain / last:.2f}x | {losses[False]:.4f} / {losses[True]:.4f} |",
              flush=True)


if __name__ == "__main__":
    main()

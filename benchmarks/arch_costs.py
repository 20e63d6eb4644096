"""What one evaluation network costs per architecture: seconds per training epoch and for the test pass.

    OMP_NUM_THREADS=1 python -m benchmarks.arch_costs --dataset fashion-mnist --ipc 10
    OMP_NUM_THREADS=1 python -m benchmarks.arch_costs --models resnet18 --epochs 5 --protocol paper

Trains each architecture of the cross-architecture set (`bench --models ...`) for a few epochs on a `random`
summary under a protocol's width, times every epoch and one pass over the evaluation split, and prints a markdown
table: median seconds per epoch, seconds for the test pass, and the time one evaluation network would take at the
protocol's plain and augmented epoch counts (median epoch × epochs + test pass; augmentation adds a few percent
on top). Use it to plan a cross-architecture table before starting one.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from distill_core.data import load_dataset
from distill_core.evaluate import PROTOCOLS, accuracy, network_depth, split_data, train_network
from distill_core.methods import create_method
from distill_core.models import MODELS, build_seeded


def epoch_and_test_seconds(dataset, summary, model_name: str, protocol, epochs: int,
                           split: str = "test") -> tuple[list[float], float]:
    """Seconds of each of `epochs` training epochs, and of one pass over the split, for one fresh network."""
    net = build_seeded(dataset, model_name, seed=0, width=protocol.width,
                       depth=network_depth(protocol, dataset, model_name))
    x = dataset.normalize(summary.images.float())
    y = summary.labels
    laps: list[float] = []
    last = [time.perf_counter()]

    def lap(_epoch: int, _opt) -> None:
        now = time.perf_counter()
        laps.append(now - last[0])
        last[0] = now

    train_network(net, x, y, protocol, epochs, torch.Generator().manual_seed(0), on_epoch_end=lap)
    x_eval, y_eval = split_data(dataset, split)
    start = time.perf_counter()
    accuracy(net, dataset.normalize(x_eval), y_eval)
    return laps, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--ipc", type=int, default=10)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--protocol", default="quick", choices=["quick", "paper"])
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per architecture")
    args = parser.parse_args()
    if args.epochs < 1:
        parser.error("--epochs must be at least 1")

    ds = load_dataset(args.dataset)
    proto = PROTOCOLS[args.protocol]
    summary = create_method("random", ds, args.ipc, seed=0).summary()
    print(f"{args.dataset}, IPC {args.ipc}, `{args.protocol}` widths (width {proto.width}), torch "
          f"{torch.__version__}, {torch.get_num_threads()} thread(s), {args.epochs} timed epochs\n")
    print(f"| model | s / epoch (median) | test pass s | one network: {proto.epochs} plain epochs | "
          f"{proto.epochs_augmented} augmented epochs |")
    print("|---|---|---|---|---|")
    for name in args.models:
        laps, test_s = epoch_and_test_seconds(ds, summary, name, proto, args.epochs)
        per_epoch = statistics.median(laps)
        plain = per_epoch * proto.epochs + test_s
        augmented = per_epoch * proto.epochs_augmented + test_s
        print(f"| {name} | {per_epoch:.3f} | {test_s:.1f} | {plain / 60:.1f} min | {augmented / 60:.1f} min |",
              flush=True)


if __name__ == "__main__":
    main()

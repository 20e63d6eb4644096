"""Do the upload-sized defaults (`distill_core.upload_defaults`) hold up on a small dataset? KIP on a digits
subset of 20 training images per class (as a small upload would have), IPC 2, three settings, judged with the
`krr` protocol on the full digits test split (360 images, so the comparison is not drowned by a tiny test set):

- the fast profile as it is (1,000 steps, its learning rates),
- the sized defaults (a quarter of the steps, learning rates ×2),
- the sized steps with the profile's learning rates (what the larger rates buy).

    python -m benchmarks.upload_defaults_check [--per-class 20] [--seeds 3]

Prints one line per setting: mean ± std test accuracy over the seeds and the seconds each run took. Timings on a
shared CPU are noisy.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from distill_core.data import ImageSet, load_dataset
from distill_core.evaluate import evaluate_summary
from distill_core.methods import create_method, get_method
from distill_core.methods.base import config_defaults
from distill_core.pipeline import DistillRun
from distill_core.upload_defaults import sized_defaults


def subset(ds: ImageSet, per_class: int, seed: int = 0) -> ImageSet:
    """The first `per_class` training images of each class (after a seeded shuffle); test split unchanged."""
    g = torch.Generator().manual_seed(seed)
    picks = []
    for c in range(ds.num_classes):
        idx = torch.nonzero(ds.y_train == c).flatten()
        picks.append(idx[torch.randperm(len(idx), generator=g)[:per_class]])
    idx = torch.cat(picks)
    x = ds.x_train[idx]
    mean = tuple(float(v) for v in x.mean(dim=(0, 2, 3)))
    std = tuple(float(v) for v in x.std(dim=(0, 2, 3)))
    return ImageSet(f"upload:digits-{per_class} (8px)", x, ds.y_train[idx], ds.x_test, ds.y_test,
                    list(ds.class_names), mean, std, {})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-class", type=int, default=20)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--ipc", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    small = subset(load_dataset("digits"), args.per_class)
    base = config_defaults(get_method("kip").Config, small.name, "fast", args.ipc)
    plain = base.to_dict()
    sized = sized_defaults(plain, 1000, small.class_counts(), args.ipc)
    runs = {"fast profile (1000 steps)": ({}, 1000),
            f"sized ({sized.steps} steps, lr ×2)": ({k: v for k, v in sized.settings.items() if v != plain[k]},
                                                    sized.steps),
            f"sized steps, profile lr ({sized.steps})": (
                {k: v for k, v in sized.settings.items() if v != plain[k] and not k.startswith("lr")}, sized.steps)}
    for label, (overrides, steps) in runs.items():
        accs, secs = [], []
        for seed in range(args.seeds):
            t0 = time.perf_counter()
            method = create_method("kip", small, args.ipc, seed=seed, device="cpu", overrides=overrides)
            summary = DistillRun(method, steps).run()
            secs.append(time.perf_counter() - t0)
            accs.append(evaluate_summary(summary, small, "krr", device="cpu").acc_mean)
        sd = statistics.stdev(accs) if len(accs) > 1 else 0.0
        print(f"{label:36s} krr test acc {100 * statistics.mean(accs):5.1f} ± {100 * sd:4.1f} %   "
              f"{statistics.median(secs):5.1f} s/run (median)")


if __name__ == "__main__":
    main()

"""Load time and resident memory of a dataset: after loading, after each split is first read as float32, and the
ZCA variant's fitting time.

    python -m benchmarks.dataset_memory                      # fashion-mnist (Debian's package or the data root)
    python -m benchmarks.dataset_memory --dataset mnist-5k --no-zca

Prints a markdown table: stage, seconds, resident memory (MiB, growth over the process before loading), and the
bytes the image tensors hold (`ImageSet.nbytes()`).
"""
from __future__ import annotations

import argparse
import time


def _rss_mib() -> float:
    """Resident set size of this process (Linux /proc; 0 elsewhere)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--no-zca", action="store_true", help="skip fitting the ZCA variant")
    args = parser.parse_args()

    import sklearn.model_selection  # noqa: F401 - imported before the baseline: the loaders import it too
    import torch

    from distill_core.data import load_dataset

    torch.set_num_threads(1)
    base = _rss_mib()
    rows = []

    def record(stage: str, seconds: float, ds) -> None:
        rows.append((stage, seconds, _rss_mib() - base, ds.nbytes() / 2 ** 20))

    t = time.perf_counter()
    ds = load_dataset(args.dataset, data_root=args.data_root)
    record("loaded (images as stored)", time.perf_counter() - t, ds)
    for split in ("train", "val", "test"):
        t = time.perf_counter()
        ds.split(split)[0].sum()
        record(f"x_{split} read as float32", time.perf_counter() - t, ds)
    if not args.no_zca:
        t = time.perf_counter()
        z = load_dataset(args.dataset, data_root=args.data_root, zca=True)
        z.normalize(z.x_test[:10])
        record(f"ZCA fitted (λ = {z.whitening.regularizer:.4f})", time.perf_counter() - t, ds)
    print(f"{ds.describe()}; torch {torch.__version__}, 1 thread; process before loading: {base:.0f} MiB\n")
    print("| stage | seconds | resident growth MiB | image tensors MiB |")
    print("|---|---|---|---|")
    for stage, seconds, grow, held in rows:
        print(f"| {stage} | {seconds:.2f} | {grow:.0f} | {held:.1f} |")


if __name__ == "__main__":
    main()

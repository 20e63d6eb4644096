"""KIP step time at several IPCs, and how close it runs to the machine's matrix-product speed.

    python -m benchmarks.kip_speed                     # mnist-5k, IPC 1 10 50, 20 timed steps each
    python -m benchmarks.kip_speed --ipc 50 --steps 40 --device cuda

One KIP step builds the kernel between the support set (n = C·IPC images) and a fresh target batch (m images),
solves an n×n ridge system and back-propagates to the images. Its arithmetic is dominated by the Gram product
(n+m)×d · d×n, done once forward and twice backward, so we count

    FLOPs/step ≈ 6·(n+m)·n·d + n³/3 (Cholesky) + 2·n²·C + 2·m·n·C (solve, prediction), ×3 for the last three

(d = pixels per image, C = classes) and divide by the median step time. The same run times plain float32 matrix
products — one of the Gram's own shape and one large square one — so the two GFLOP/s figures are comparable.
Element-wise work of the arc-cosine recursion (arccos, sqrt over (n+m)·n entries per layer) is not counted; it is
real work that keeps KIP below the matrix-product rate at small n.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from distill_core.data import load_dataset
from distill_core.device import resolve_device
from distill_core.methods import create_method


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()
    elif device.type == "mps":
        torch.mps.synchronize()


def median_seconds(fn, reps: int, device: torch.device, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def kip_step_flops(n: int, m: int, d: int, c: int) -> float:
    forward_gram = 2.0 * (n + m) * n * d
    solve = n ** 3 / 3.0 + 2.0 * n * n * c + 2.0 * m * n * c
    return 3.0 * forward_gram + 3.0 * solve


def matmul_gflops(rows: int, inner: int, cols: int, reps: int, device: torch.device) -> float:
    a = torch.randn(rows, inner, device=device)
    b = torch.randn(inner, cols, device=device)
    sec = median_seconds(lambda: a @ b, reps, device)
    return 2.0 * rows * inner * cols / sec / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="mnist-5k")
    parser.add_argument("--ipc", type=int, nargs="+", default=[1, 10, 50])
    parser.add_argument("--steps", type=int, default=20, help="timed steps per IPC (after 3 warm-up steps)")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    device = resolve_device(args.device)
    ds = load_dataset(args.dataset)
    c, d = ds.num_classes, ds.x_train[0].numel()
    square = 2048 if device.type != "cpu" else 1024
    peak = matmul_gflops(square, square, square, 10, device)
    print(f"{args.dataset}: d = {d}, C = {c}; device {device}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    print(f"plain float32 matrix product {square}×{square}×{square}: {peak:.1f} GFLOP/s\n")
    print("| IPC | support n | target m | median step ms | KIP GFLOP/s | Gram-shape matmul GFLOP/s | "
          f"{square}³ matmul GFLOP/s | matmul ÷ KIP |")
    print("|---|---|---|---|---|---|---|---|")
    for ipc in args.ipc:
        kip = create_method("kip", ds, ipc, seed=0, device=device)
        n, m = c * ipc, c * kip._per_class
        sec = median_seconds(kip.step, args.steps, device)
        achieved = kip_step_flops(n, m, d, c) / sec / 1e9
        same_shape = matmul_gflops(n + m, d, n, max(10, args.steps), device)
        print(f"| {ipc} | {n} | {m} | {1000 * sec:.1f} | {achieved:.1f} | {same_shape:.1f} | {peak:.1f} | "
              f"{peak / achieved:.2f}× |", flush=True)


if __name__ == "__main__":
    main()

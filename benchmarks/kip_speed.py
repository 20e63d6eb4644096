"""KIP step time at several IPCs, and how close it runs to the machine's matrix-product speed.

    python -m benchmarks.kip_speed                     # mnist-5k, IPC 1 10 50, 20 timed steps each
    python -m benchmarks.kip_speed --ipc 50 --steps 40 --device cuda

One KIP step builds the kernel between the support set (n = C·IPC images) and a fresh target batch (m images),
solves an n×n ridge system and back-propagates to the images. Its arithmetic is dominated by the Gram product
(n+m)×d · d×n, done once forward and twice backward, so we count

    FLOPs/step ≈ 6·(n+m)·n·d + n³/3 (Cholesky) + 2·n²·C + 2·m·n·C (solve, prediction), ×3 for the last three

(d = pixels per image, C = classes) and divide by the median step time. The same run times plain float32 matrix
products — one of the Gram's own shape and one large square one — so the two GFLOP/s figures are comparable, and
"Gram-shape matmul ÷ KIP" is the step time over the time of its nominal matrix work done as plain products.
(KIP builds K_ss and K_ts as two kernels, so its backward skips the target images' gradient and does
2·m·n·d fewer FLOPs than counted: the count is the step's nominal work, not what it executes.)
Element-wise work of the arc-cosine recursion (arccos, sqrt over (n+m)·n entries per layer) is not counted; it is
real work that keeps KIP below the matrix-product rate at small n.

`--compare` also times KIP's earlier step: one kernel between cat([support, targets]) and the support, its
recursion written as plain autograd operations (every element-wise operation a separate pass forward and
backward, a clamped arccos). Steps of both kinds are interleaved so that a busy machine slows both alike; the
table then shows both medians.
"""
from __future__ import annotations

import argparse
import math
import statistics
import time

import torch

from distill_core.data import load_dataset
from distill_core.device import resolve_device
from distill_core.kernels import ridge_solve
from distill_core.methods import create_method
from distill_core.methods.kip import centred_one_hot


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


class UnfusedNTK:
    """The NTK recursion as separate autograd operations, for timing against the library's fused layer."""

    def __init__(self, depth: int = 3, w_var: float = 2.0, b_var: float = 0.01):
        self.depth, self.w_var, self.b_var = depth, w_var, b_var

    def __call__(self, x1: torch.Tensor, x2: torch.Tensor | None = None, shared_prefix: bool = False) -> torch.Tensor:
        a = x1.reshape(len(x1), -1)
        b = a if x2 is None else x2.reshape(len(x2), -1)
        d, w, c = a.shape[1], self.w_var, self.w_var / (2.0 * math.pi)
        k = (a @ b.T) * (w / d) + self.b_var
        da = a.square().sum(1) * (w / d) + self.b_var
        db = b.square().sum(1) * (w / d) + self.b_var
        theta = k
        for _ in range(self.depth):
            norm = torch.sqrt(da).unsqueeze(1) * torch.sqrt(db).unsqueeze(0)
            rho = (k / norm).clamp(-1.0 + 1e-6, 1.0 - 1e-6)
            pm = math.pi - torch.arccos(rho)
            k = norm * (torch.sqrt(1.0 - rho * rho) + pm * rho) * c + self.b_var
            theta = k + theta * pm * c
            da, db = da * (0.5 * w) + self.b_var, db * (0.5 * w) + self.b_var
        return theta


def use_earlier_step(kip) -> None:
    """Make `kip` take its steps as KIP did before the fused layer: a joint kernel, unfused recursion."""
    unfused = UnfusedNTK(kip.spec.depth, kip.spec.w_var, kip.spec.b_var)

    def loss(x_target: torch.Tensor, y_target_idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n = len(kip.x)
        k = unfused(torch.cat([kip.x, x_target]), kip.x)
        pred = k[n:] @ ridge_solve(k[:n], kip.y, kip.config.ridge)
        y_t = centred_one_hot(y_target_idx, kip.dataset.num_classes, kip.dtype).to(kip.device)
        return 0.5 * (pred - y_t).square().sum(1).mean(), pred

    kip.loss = loss


def interleaved_medians(fns: list, reps: int, device: torch.device, warmup: int = 3) -> list[float]:
    """Median seconds of each function, called in turn so that load changes hit them alike."""
    for _ in range(warmup):
        for fn in fns:
            fn()
    _sync(device)
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(reps):
        for i, fn in enumerate(fns):
            t0 = time.perf_counter()
            fn()
            _sync(device)
            times[i].append(time.perf_counter() - t0)
    return [statistics.median(t) for t in times]


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
    parser.add_argument("--compare", action="store_true",
                        help="also time steps with the unfused autograd recursion (interleaved)")
    args = parser.parse_args()

    device = resolve_device(args.device)
    ds = load_dataset(args.dataset)
    c, d = ds.num_classes, ds.x_train[0].numel()
    square = 2048 if device.type != "cpu" else 1024
    peak = matmul_gflops(square, square, square, 10, device)
    print(f"{args.dataset}: d = {d}, C = {c}; device {device}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    print(f"plain float32 matrix product {square}×{square}×{square}: {peak:.1f} GFLOP/s\n")
    cols = "| IPC | support n | target m | median step ms | "
    if args.compare:
        cols += "earlier step (joint, unfused) ms | "
    print(cols + f"KIP GFLOP/s | Gram-shape matmul GFLOP/s | {square}³ matmul GFLOP/s | Gram-shape matmul ÷ KIP |")
    print("|---" * (8 + int(args.compare)) + "|")
    for ipc in args.ipc:
        kip = create_method("kip", ds, ipc, seed=0, device=device)
        n, m = c * ipc, c * kip._per_class
        if args.compare:
            other = create_method("kip", ds, ipc, seed=0, device=device)
            use_earlier_step(other)
            sec, unfused = interleaved_medians([kip.step, other.step], args.steps, device)
        else:
            sec = median_seconds(kip.step, args.steps, device)
        achieved = kip_step_flops(n, m, d, c) / sec / 1e9
        same_shape = matmul_gflops(n + m, d, n, max(10, args.steps), device)
        extra = f"{1000 * unfused:.1f} | " if args.compare else ""
        print(f"| {ipc} | {n} | {m} | {1000 * sec:.1f} | {extra}{achieved:.1f} | {same_shape:.1f} | {peak:.1f} | "
              f"{same_shape / achieved:.2f}× |", flush=True)


if __name__ == "__main__":
    main()

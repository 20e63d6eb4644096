"""One command for a GPU: step times, achieved TFLOP/s and peak memory of every distiller, and DM batched vs per class.

    python -m benchmarks.gpu_suite                 # on a GPU: paper settings, IPC 1/10/50, ≤ 8 minutes
    python -m benchmarks.gpu_suite --quick         # tiny sizes (CPU: well under 2 minutes), for a smoke test
    python -m benchmarks.gpu_suite --json report.json --methods dm mtt --ipc 10

What it measures, on one device:

- `matmul`: the device's own dense float32 matmul rate (n×n, timed after a warm-up, TF32 as torch is set), the
  yardstick for the rest.
- `cells`: for each distiller (kip, dm, dc, dsa, mtt) × IPC × dataset — Fashion-MNIST (the real training split when
  its files are found, otherwise random images of its shape) and CIFAR-shaped random tensors (3×32×32, 10 classes)
  — the median seconds per `step()` after warm-up steps, the floating-point operations of one step counted by
  `torch.utils.flop_counter.FlopCounterMode` (matmuls and convolutions, forward and backward), the TFLOP/s that
  makes and its fraction of the matmul rate, and the peak memory of the cell (`torch.cuda.max_memory_allocated`)
  beside `distill_core.memory.estimate_peak_bytes` when that module exists.
- `dm_compare`: DM's batched step against a per-class loop with separate real and synthetic passes
  (`benchmarks.dm_speed`), same network, data and augmentation draw, same device.

MTT reads expert trajectories: the suite writes two seeded random-walk experts of the right shape into a temporary
folder (a step's cost does not depend on what the experts learned), so nothing is trained. A cell whose first step
is slow gets fewer timed steps, and cells still waiting when the time budget (`--budget-s`) is spent are reported
as skipped, so the command finishes in time. The report is a JSON object (the last line printed, and `--json FILE`)
preceded by markdown tables. `--quick` uses random images of both shapes (no files read), a few per class, tiny
method settings (`QUICK_OVERRIDES`) and one timed step per cell: it checks that everything runs and reports, not
speed.
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import torch

DISTILLERS = ("kip", "dm", "dc", "dsa", "mtt")

# --quick: tiny settings so every method's step takes milliseconds on a CPU (the shapes of the computation stay)
QUICK_OVERRIDES: dict[str, dict[str, Any]] = {
    "kip": {"target_batch": 40},
    "dm": {"width": 8, "batch_real": 8},
    "dc": {"width": 8, "batch_real": 8, "outer_loop": 2, "inner_loop": 1, "batch_train": 32},
    "dsa": {"width": 8, "batch_real": 8, "outer_loop": 2, "inner_loop": 1, "batch_train": 32},
    "mtt": {"width": 8, "syn_steps": 2, "expert_epochs": 1, "max_start_epoch": 1, "expert_train_epochs": 2,
            "batch_syn": 0},
}
MTT_SUITE = {"num_experts": 2}  # two experts serve the timing as well as a hundred


# ------------------------------------------------------------------------------------------------ data

def _image_set(name: str, x: torch.Tensor, y: torch.Tensor, class_names: list[str], source: str):
    """An ImageSet over uint8 images (test split: a tenth of them), statistics from its training part."""
    import numpy as np

    from distill_core.data import _from_arrays

    n = len(y)
    test = np.arange(n)[::10]
    train = np.setdiff1d(np.arange(n), test)
    return _from_arrays(name, x.numpy(), y.numpy(), class_names, train, test, {"source": source})


def random_set(name: str, shape: tuple[int, int, int], per_class: int, classes: int = 10, seed: int = 0):
    """Random uint8 images of `shape`, `per_class` per class (the CIFAR-shaped stand-in)."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (classes * per_class, *shape), generator=gen, dtype=torch.uint8)
    y = torch.arange(classes).repeat_interleave(per_class)
    return _image_set(name, x, y, [str(c) for c in range(classes)], "random")


def fashion_mnist(per_class: int | None):
    """The real Fashion-MNIST (all of it, or its first `per_class` training images per class) when its files are
    found; otherwise random images of its shape under the same name."""
    from distill_core.data import load_dataset
    from distill_core.errors import DistillError

    try:
        full = load_dataset("fashion-mnist")
    except DistillError:
        return random_set("fashion-mnist", (1, 28, 28), per_class or 6000, seed=1), "random (files not found)"
    if per_class is None:
        return full, "fashion-mnist"
    raw = full.__dict__["_x_train_store"].raw
    picks = torch.cat([full.class_indices(c)[:per_class] for c in range(full.num_classes)])
    return _image_set("fashion-mnist", raw[picks], full.y_train[picks], list(full.class_names),
                      "fashion-mnist subset"), "fashion-mnist (subset)"


# ---------------------------------------------------------------------------------------------- timing

def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_rate(device: torch.device, n: int, repeats: int) -> dict[str, Any]:
    """Measured dense float32 matmul TFLOP/s (2n³ per product), median of `repeats` timed products."""
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=gen).to(device)
    b = torch.randn(n, n, generator=gen).to(device)
    for _ in range(3):
        a @ b
    sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        sync(device)
        times.append(time.perf_counter() - t0)
    sec = statistics.median(times)
    tf32 = bool(device.type == "cuda" and torch.backends.cuda.matmul.allow_tf32)
    return {"n": n, "dtype": "float32", "tf32": tf32, "seconds": sec, "tflops": 2 * n ** 3 / sec / 1e12}


def count_flops(fn: Callable[[], Any]) -> int:
    """Floating-point operations `fn()` runs (matmuls and convolutions, forward and backward)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def _estimate(method: str, dataset, ipc: int, config, device: torch.device) -> tuple[int | None, str | None]:
    """`distill_core.memory.estimate_peak_bytes` when the module exists: (bytes, None) or (None, why not)."""
    try:
        from distill_core import memory
    except ImportError:
        return None, "distill_core.memory is not available"
    try:
        shape = (len(dataset.y_train), *dataset.image_shape)
        value = memory.estimate_peak_bytes(method, shape, ipc, config, device)
        value = getattr(value, "total", value)  # an estimate object or a plain number
        return int(value), None
    except Exception as exc:  # the estimate is optional: its failure is reported, not fatal
        return None, f"{type(exc).__name__}: {exc}"


def write_experts(method, root: Path) -> None:
    """Two seeded random-walk trajectories of the student's shape where `method` (mtt) will look for its experts."""
    from distill_core.embed import dataset_key
    from distill_core.experts import flat_parameters, save_expert

    cfg = method.config
    spec = cfg.expert_spec().resolved(method.dataset.image_shape[1])
    folder = spec.folder(dataset_key(method.dataset), root)
    init = flat_parameters(method.student.model)
    gen = torch.Generator().manual_seed(0)
    for i in range(cfg.num_experts):
        walk = 1e-3 * torch.randn(cfg.expert_train_epochs, init.numel(), generator=gen)
        save_expert(folder / f"expert_{i:03d}.pt", torch.cat([init[None], init[None] + walk.cumsum(0)]),
                    {"seed": i, "suite": "random walk"})


def run_cell(name: str, dataset, ipc: int, device: torch.device, profile: str, overrides: dict[str, Any],
             experts_root: Path, warmup: int, steps: int, cell_seconds: float, matmul_tflops: float) -> dict[str, Any]:
    """Time one distiller at one IPC: warm-up, a FLOP count of one step, then up to `steps` timed steps."""
    from distill_core.methods import create_method

    row: dict[str, Any] = {"dataset": dataset.name, "method": name, "ipc": ipc, "status": "ok"}
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    over = dict(overrides)
    if name == "mtt":
        over["experts_dir"] = str(experts_root)
    method = create_method(name, dataset, ipc, seed=0, device=device, overrides=over, profile=profile)
    if name == "mtt":
        write_experts(method, experts_root)
        method.load_experts()
    row["settings"] = {k: v for k, v in method.config.to_dict().items() if k != "experts_dir"}
    for _ in range(warmup):
        method.step()
    sync(device)
    row["flops_per_step"] = count_flops(method.step)
    sync(device)
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < steps and (not times or time.perf_counter() - start + times[-1] <= cell_seconds):
        t0 = time.perf_counter()
        method.step()
        sync(device)
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    row.update({"steps_timed": len(times), "step_s_median": med, "step_s_min": min(times)})
    row["tflops"] = row["flops_per_step"] / med / 1e12
    row["fraction_of_matmul"] = row["tflops"] / matmul_tflops if matmul_tflops > 0 else None
    if device.type == "cuda":
        row["peak_bytes"] = int(torch.cuda.max_memory_allocated(device))
    else:
        row["peak_bytes"] = None  # torch does not track CPU allocations
    estimate, why = _estimate(name, dataset, ipc, method.config, device)
    row["estimate_bytes"] = estimate
    if why:
        row["estimate_note"] = why
    row["estimate_ratio"] = (row["peak_bytes"] / estimate) if (estimate and row["peak_bytes"]) else None
    del method
    return row


def dm_compare(dataset, ipc: int, device: torch.device, profile: str, overrides: dict[str, Any],
               repeats: int) -> dict[str, Any]:
    """DM's batched loss+backward against the per-class loop with separate real and synthetic passes."""
    from benchmarks.dm_speed import batched_loss, per_class_loss
    from distill_core.augment import SiameseAugment
    from distill_core.methods import create_method

    method = create_method("dm", dataset, ipc, seed=0, device=device, overrides=overrides, profile=profile)
    net = method.fresh_network(seed=0).requires_grad_(False)
    c = dataset.num_classes
    x_real, _ = method.real_batches(method.config.batch_real)
    draw = SiameseAugment.for_dataset(dataset.name).draw(torch.Generator().manual_seed(0), groups=c)
    on_cpu = device.type == "cpu"
    variants = {"batched": lambda x: batched_loss(net, x_real, x, draw, c, cpu_path=on_cpu),
                "per_class": lambda x: per_class_loss(net, x_real, x, draw, c)}
    images = {k: method.images.detach().clone().requires_grad_(True) for k in variants}
    results = {}
    for k, fn in variants.items():  # agreement, and warm-up
        loss = fn(images[k])
        loss.backward()
        results[k] = (float(loss.detach()), images[k].grad.clone())
    ref = results["per_class"][1]
    grad_diff = float((results["batched"][1] - ref).norm() / ref.norm().clamp_min(1e-30))
    times: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(repeats):
        for k, fn in variants.items():  # in turn, so a change of load hits both
            images[k].grad = None
            sync(device)
            t0 = time.perf_counter()
            fn(images[k]).backward()
            sync(device)
            times[k].append(time.perf_counter() - t0)
    b, p = statistics.median(times["batched"]), statistics.median(times["per_class"])
    return {"dataset": dataset.name, "ipc": ipc, "real_per_class": len(x_real) // c, "width": method.config.width,
            "batched_ms": 1000 * b, "per_class_ms": 1000 * p, "speedup": p / b, "repeats": repeats,
            "loss_batched": results["batched"][0], "loss_per_class": results["per_class"][0],
            "relative_grad_difference": grad_diff}


# ------------------------------------------------------------------------------------------------ main

def _fmt_bytes(n: int | None) -> str:
    return "—" if n is None else f"{n / 2 ** 20:.0f} MB"


def markdown(report: dict[str, Any]) -> str:
    mm = report["matmul"]
    lines = [f"device {report['device']['name']} ({report['device']['type']}), torch {report['torch']}, profile "
             f"{report['profile']}; matmul {mm['n']}² float32{' (TF32)' if mm['tf32'] else ''}: "
             f"{mm['tflops']:.3g} TFLOP/s", "",
             "| dataset | method | IPC | s/step (median) | GFLOP/step | TFLOP/s | of matmul | peak | estimate | status |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in report["cells"]:
        if r["status"] != "ok":
            lines.append(f"| {r['dataset']} | {r['method']} | {r['ipc']} | | | | | | | {r['status']}: "
                         f"{r.get('error', '')[:80]} |")
            continue
        frac = r["fraction_of_matmul"]
        lines.append(f"| {r['dataset']} | {r['method']} | {r['ipc']} | {r['step_s_median']:.4f} | "
                     f"{r['flops_per_step'] / 1e9:.3g} | {r['tflops']:.3g} | "
                     f"{'—' if frac is None else f'{100 * frac:.1f} %'} | {_fmt_bytes(r['peak_bytes'])} | "
                     f"{_fmt_bytes(r['estimate_bytes'])} | ok |")
    lines += ["", "| dataset | DM IPC | real/class | batched ms | per-class ms | per-class / batched |",
              "|---|---|---|---|---|---|"]
    for r in report["dm_compare"]:
        if "error" in r:
            lines.append(f"| {r['dataset']} | {r['ipc']} | | | | {r['error'][:80]} |")
            continue
        lines.append(f"| {r['dataset']} | {r['ipc']} | {r['real_per_class']} | {r['batched_ms']:.2f} | "
                     f"{r['per_class_ms']:.2f} | {r['speedup']:.2f}× |")
    lines.append(f"\n{report['seconds']:.0f} s in all")
    return "\n".join(lines)


def run_suite(quick: bool = False, device: str = "auto", methods: tuple[str, ...] = DISTILLERS,
              ipcs: tuple[int, ...] | None = None, profile: str | None = None, budget_s: float | None = None,
              log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Everything above; returns the report (see the module docstring)."""
    from distill_core.device import resolve_device

    t_start = time.perf_counter()
    dev = resolve_device(device)
    profile = profile or ("fast" if quick or dev.type != "cuda" else "paper")
    ipcs = tuple(ipcs or ((1, 2) if quick else (1, 10, 50)))
    budget = float(budget_s if budget_s is not None else (100 if quick else 420))
    say = log or (lambda _msg: None)
    if quick:  # random images of both shapes (no files to read), a few per class, one timed step per cell
        fm, fm_source = random_set("fashion-mnist", (1, 28, 28), max(ipcs) + 8, seed=1), "random (quick)"
        cifar = random_set("cifar10-shaped", (3, 32, 32), max(ipcs) + 8, seed=2)
        mm = matmul_rate(dev, 256, 5)
        warmup, steps, cell_s, dm_repeats = 0, 1, 5.0, 2
    else:
        fm, fm_source = fashion_mnist(per_class=None)
        cifar = random_set("cifar10-shaped", (3, 32, 32), 5000, seed=2)
        mm = matmul_rate(dev, 8192 if dev.type == "cuda" else 1024, 20)
        warmup, steps, cell_s, dm_repeats = 2, 10, 6.0, 10
    say(f"matmul: {mm['tflops']:.3g} TFLOP/s")
    datasets = [(fm, fm_source), (cifar, "random")]
    report: dict[str, Any] = {
        "suite": "gpu_suite", "quick": quick, "profile": profile, "torch": torch.__version__,
        "device": {"type": dev.type, "name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
                   "threads": torch.get_num_threads()},
        "matmul": mm, "datasets": [{"name": d.name, "source": s, "train": len(d.y_train),
                                    "shape": list(d.image_shape)} for d, s in datasets],
        "ipcs": list(ipcs), "methods": list(methods), "cells": [], "dm_compare": [], "budget_s": budget,
    }
    with tempfile.TemporaryDirectory(prefix="gpu-suite-experts-") as tmp:
        for ds, _ in datasets:
            for ipc in ipcs:
                for name in methods:
                    base = {"dataset": ds.name, "method": name, "ipc": ipc}
                    if time.perf_counter() - t_start > budget:
                        report["cells"].append({**base, "status": "skipped", "error": "time budget spent"})
                        continue
                    over = dict(QUICK_OVERRIDES.get(name, {})) if quick else {}
                    if name == "mtt":
                        over.update(MTT_SUITE)
                    try:
                        row = run_cell(name, ds, ipc, dev, profile, over, Path(tmp), warmup, steps, cell_s,
                                       mm["tflops"])
                    except Exception as exc:  # one failing cell (e.g. out of memory) does not end the suite
                        row = {**base, "status": "failed", "error": f"{type(exc).__name__}: {str(exc)[:300]}"}
                        if dev.type == "cuda":
                            torch.cuda.empty_cache()
                    report["cells"].append(row)
                    say(f"{ds.name} {name} ipc={ipc}: {row['status']}"
                        + (f", {row['step_s_median']:.4f} s/step, {row['tflops']:.3g} TFLOP/s"
                           if row["status"] == "ok" else f" ({row.get('error', '')[:120]})"))
        for ds, _ in datasets:
            for ipc in [i for i in ipcs if i > 1] or list(ipcs):
                over = dict(QUICK_OVERRIDES["dm"]) if quick else {}
                try:
                    if time.perf_counter() - t_start > budget + 60:
                        raise TimeoutError("time budget spent")
                    report["dm_compare"].append(dm_compare(ds, ipc, dev, profile, over, dm_repeats))
                except Exception as exc:
                    report["dm_compare"].append({"dataset": ds.name, "ipc": ipc,
                                                 "error": f"{type(exc).__name__}: {str(exc)[:300]}"})
    report["seconds"] = time.perf_counter() - t_start
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a smoke test; CPU: well under 2 minutes)")
    parser.add_argument("--device", default="auto", help="auto (CUDA when there is one), cuda, cpu")
    parser.add_argument("--methods", nargs="+", default=list(DISTILLERS))
    parser.add_argument("--ipc", type=int, nargs="+", default=None, help="default 1 10 50 (--quick: 1 2)")
    parser.add_argument("--profile", choices=("fast", "paper"), default=None,
                        help="method settings (default: paper on a GPU, fast otherwise)")
    parser.add_argument("--budget-s", type=float, default=None,
                        help="seconds after which waiting cells are skipped (default 420; --quick 100)")
    parser.add_argument("--json", default=None, help="also write the report to this file")
    args = parser.parse_args(argv)
    unknown = [m for m in args.methods if m not in DISTILLERS]
    if unknown:
        print(f"unknown method {unknown[0]!r}; choose from {', '.join(DISTILLERS)}", file=sys.stderr)
        return 2
    report = run_suite(args.quick, args.device, tuple(args.methods), tuple(args.ipc) if args.ipc else None,
                       args.profile, args.budget_s, log=lambda m: print(m, file=sys.stderr, flush=True))
    print(markdown(report))
    text = json.dumps(report, default=lambda o: o if not isinstance(o, float) or math.isfinite(o) else None)
    if args.json:
        Path(args.json).write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

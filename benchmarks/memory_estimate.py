"""Measured peak memory of one distillation step against `distill_core.memory`'s estimate (dm, dc, mtt, kip, two
sizes each).

    python -m benchmarks.memory_estimate [--cases dm-10 dm-50 ...] [--device cpu|cuda] [--json]

How it is measured. On a CPU, every case runs in a fresh process whose C allocator hands large blocks straight
back to the system (`MALLOC_MMAP_THRESHOLD_=65536`), so the resident size follows the live tensors. The process
loads the dataset (and, for mtt, its stored experts), takes two steps of the same method at IPC 1 (so loading code
and libraries is not counted), reads its resident size, resets the kernel's peak counter
(`/proc/self/clear_refs`), builds the method and takes two steps (the second has the optimiser's state in place),
then reads the peak (`VmHWM`): measured = peak − resident before. This counts everything the step allocates —
the normalised copy of the data the method keeps, activations, allocator slack and oneDNN scratch — which is what
the estimate is meant to bound. On CUDA it is `torch.cuda.max_memory_allocated()` over the same steps (the estimate
then also includes `memory.CUDA_OVERHEAD`, which allocated memory does not, so the comparison leaves it out).

The target is the estimate within 25 % of the measurement.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

# name -> (method, dataset, ipc, settings)
CASES: dict[str, tuple[str, str, int, dict]] = {
    "dm-10": ("dm", "mnist-5k", 10, {"width": 64, "batch_real": 64}),
    "dm-50": ("dm", "mnist-5k", 50, {"width": 64, "batch_real": 64}),
    "dc-10": ("dc", "mnist-5k", 10, {"width": 32, "batch_real": 32, "outer_loop": 2, "inner_loop": 1}),
    "dc-50": ("dc", "mnist-5k", 50, {"width": 32, "batch_real": 32, "outer_loop": 2, "inner_loop": 1}),
    "mtt-5": ("mtt", "mnist-5k", 10, {"width": 32, "syn_steps": 5, "batch_syn": 100, "num_experts": 1,
                                      "expert_train_epochs": 2, "max_start_epoch": 1, "expert_epochs": 1}),
    "mtt-10": ("mtt", "mnist-5k", 10, {"width": 32, "syn_steps": 10, "batch_syn": 100, "num_experts": 1,
                                       "expert_train_epochs": 2, "max_start_epoch": 1, "expert_epochs": 1}),
    "mtt-10-checkpoint": ("mtt", "mnist-5k", 10, {"width": 32, "syn_steps": 10, "batch_syn": 100, "num_experts": 1,
                                                  "expert_train_epochs": 2, "max_start_epoch": 1, "expert_epochs": 1,
                                                  "checkpoint": True}),
    "dm-50-sliced": ("dm", "mnist-5k", 50, {"width": 64, "batch_real": 64, "class_batch": 2}),
    "kip-10": ("kip", "mnist-5k", 10, {"target_batch": 1000}),
    "kip-50": ("kip", "mnist-5k", 50, {"target_batch": 1000}),
}

_CHILD = r"""
import json, re, sys, torch
torch.set_num_threads(1)
from distill_core.data import load_dataset
from distill_core.methods import create_method
from distill_core.memory import estimate, _effective_config

method_name, dataset_name, ipc, settings, device = json.loads(sys.argv[1])
dataset = load_dataset(dataset_name)
experts = None
if method_name == "mtt":  # trained (or loaded) before the measurement: they live on the host
    probe = create_method(method_name, dataset, ipc, seed=0, overrides=settings, device=device)
    probe.load_experts()
    experts = probe.experts
    del probe

# warm-up: a step at IPC 1 loads the code paths and libraries (their memory is not the step's)
warm = create_method(method_name, dataset, 1, seed=1, overrides=settings, device=device)
if experts is not None:
    warm.experts = experts
warm.step(); warm.step()
del warm
import gc; gc.collect()

def status(key):
    return int(re.search(key + r":\s+(\d+)", open("/proc/self/status").read()).group(1)) * 1024

cuda = device == "cuda"
if cuda:
    torch.cuda.synchronize(); base = torch.cuda.memory_allocated(); torch.cuda.reset_peak_memory_stats()
else:
    base = status("VmRSS"); open("/proc/self/clear_refs", "w").write("5")
method = create_method(method_name, dataset, ipc, seed=0, overrides=settings, device=device)
if experts is not None:
    method.experts = experts
for _ in range(2):
    method.step()
if cuda:
    torch.cuda.synchronize(); peak = torch.cuda.max_memory_allocated() - base
else:
    peak = status("VmHWM") - base
est = estimate(method_name, dataset, ipc, _effective_config(method), device)
parts = {k: v for k, v in est.parts.items() if k != "cuda overhead"}
print(json.dumps({"measured": peak, "estimate": sum(parts.values()), "parts": parts}))
"""


def measure(case: str, device: str = "cpu", experts_dir: str | None = None) -> dict:
    """Run one case in a fresh process; its measured and estimated peak bytes."""
    method, dataset, ipc, settings = CASES[case]
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", OMP_NUM_THREADS="1")
    if experts_dir:
        env["DISTILL_EXPERTS_DIR"] = experts_dir
    out = subprocess.run([sys.executable, "-c", _CHILD, json.dumps([method, dataset, ipc, settings, device])],
                         capture_output=True, text=True, env=env, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{case}: {out.stderr.strip().splitlines()[-1] if out.stderr.strip() else 'failed'}")
    row = json.loads(out.stdout.strip().splitlines()[-1])
    row.update(case=case, method=method, dataset=dataset, ipc=ipc, ratio=row["estimate"] / max(1, row["measured"]))
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as experts:
        for case in args.cases:
            rows.append(measure(case, args.device, experts))
            r = rows[-1]
            line = (f"{case:<18} estimate {r['estimate'] / 2**20:8.1f} MB  measured {r['measured'] / 2**20:8.1f} MB  "
                    f"estimate/measured {r['ratio']:.2f}")
            print(line, file=sys.stderr if args.json else sys.stdout, flush=True)
    if args.json:
        print(json.dumps({"device": args.device, "rows": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

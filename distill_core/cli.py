"""The command line: datasets, methods, distill, evaluate, bench, reproduce, experts (see DESIGN.md's CLI contract).

Errors exit non-zero with one line on stderr. With --json the last line printed on stdout is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from .distributed import (Dist, LauncherStopped, RankLost, init_from_env, is_main_process, launched, shutdown)
from .errors import DistillError, InvalidInputError
from .limits import LIMITS


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line (and exit status 2), without the usage block."""

    def error(self, message: str) -> None:  # type: ignore[override]
        if is_main_process():  # under torchrun every rank parses the same line: rank 0 says it once
            sys.stderr.write(f"error: {message} (see {self.prog} --help)\n")
        sys.exit(2)


def _dist(args: argparse.Namespace) -> Dist:
    """The ranks this command runs over (`Dist()`: one process)."""
    return getattr(args, "dist", None) or Dist()


def _download_first(dist: Dist, name: str, data_root: str | None, download: bool) -> None:
    """Under torchrun, rank 0 fetches a missing dataset before the other ranks read it (never N downloads into
    one folder at once)."""
    if not (dist.enabled and download):
        return
    from .data import load_dataset

    with dist.sync("downloading the dataset"):
        if dist.is_main:
            load_dataset(name, data_root=data_root, download=True)


def _emit(args: argparse.Namespace, payload: Any, text: str) -> None:
    if not is_main_process():
        return
    if getattr(args, "json", False):
        print(json.dumps(payload, default=str))
    else:
        print(text)


def _progress(total: int, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="step", file=sys.stderr, disable=None if is_main_process() else True,
                leave=False)


def _parse_params(pairs: Sequence[str] | None, lr: float | None) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise InvalidInputError(f"--param needs KEY=VALUE, got {pair!r}")
        key, value = pair.split("=", 1)
        params[key.strip()] = value.strip()
    if lr is not None:
        if not math.isfinite(lr) or lr <= 0:
            raise InvalidInputError(f"--lr must be a positive finite number, got {lr}")
        params["lr"] = lr
    return params


# ---------------------------------------------------------------------------------------- commands

def cmd_datasets(args: argparse.Namespace) -> int:
    from .data import list_datasets

    rows = list_datasets(args.data_root)
    lines = [f"{'name':<14} {'shape':<10} {'classes':>7}  {'available':<9}  description"]
    for r in rows:
        shape = "×".join(str(s) for s in r["shape"])
        status = "offline" if r["offline"] else ("yes" if r["available"] else "no")
        lines.append(f"{r['name']:<14} {shape:<10} {r['classes']:>7}  {status:<9}  {r['description']}")
    lines.append("Also: folder:PATH — class subfolders of images.")
    _emit(args, {"datasets": rows}, "\n".join(lines))
    return 0


def cmd_methods(args: argparse.Namespace) -> int:
    from .evaluate import protocol_names
    from .methods import METHODS

    rows = [{"name": n, "kind": c.kind, "family": c.family, "description": c.description,
             "default_steps": c.default_steps,
             "max_ipc": c.max_ipc, "settings": c.Config().to_dict()} for n, c in sorted(METHODS.items())]
    lines = [f"{r['name']:<10} {r['kind']:<10} {r['description']}" for r in rows]
    lines.append(f"Evaluation protocols: {', '.join(protocol_names())}")
    _emit(args, {"methods": rows, "protocols": protocol_names()}, "\n".join(lines))
    return 0


def cmd_distill(args: argparse.Namespace) -> int:
    from .bench import eval_seed
    from .data import load_dataset
    from .device import resolve_device
    from .evaluate import evaluate_sharded, protocol_names
    from .methods import create_method
    from .pipeline import Callbacks, DistillRun, default_steps
    from .runs import add_evaluation, default_runs_dir, new_run_name, save_run, snapshot_bytes, snapshot_capacity

    dist = _dist(args)
    _download_first(dist, args.dataset, args.data_root, args.download)
    with dist.sync("the setup"):
        device = resolve_device(args.device)
        if args.eval and args.eval not in protocol_names():
            raise InvalidInputError(f"unknown protocol {args.eval!r}; choose one of {', '.join(protocol_names())}")
        if args.eval_reps is not None and args.eval_reps < 1:
            raise InvalidInputError(f"--eval-reps must be at least 1, got {args.eval_reps}")
        dataset = load_dataset(args.dataset, data_root=args.data_root, download=args.download,
                               image_size=args.image_size, zca=args.zca)
        params = _parse_params(args.param, args.lr)
        if _memory_check(args, dataset, device, params):
            return 0
        method = create_method(args.method, dataset, args.ipc, seed=args.seed, device=device, overrides=params,
                               profile=args.profile)
        steps = args.steps if args.steps is not None else default_steps(method)
        if args.snapshots < 0:
            raise InvalidInputError(f"--snapshots must be 0 or more, got {args.snapshots}")
        if not args.snapshot_budget_mb >= 0 or args.snapshot_budget_mb == float("inf"):
            raise InvalidInputError(
                f"--snapshot-budget-mb must be a finite number of 0 or more, got {args.snapshot_budget_mb}")
        one = snapshot_bytes(dataset.num_classes * args.ipc, dataset.image_shape)
        keep = snapshot_capacity(args.snapshots, one, args.snapshot_budget_mb)  # bounds the history while it runs
        run = DistillRun(method, steps, snapshot_capacity=max(2, keep))
    # a method that shards (dm, dc, dsa) runs on every rank, on its classes; any other on rank 0 while the rest wait
    sharded = dist.enabled and bool(getattr(method, "shardable", False))
    if sharded:
        method.shard = dist  # type: ignore[attr-defined]
    if hasattr(method, "on_expert_progress") and dist.is_main:  # mtt trains its experts on first use
        _show_expert_training(method)
    bar = _progress(run.steps, f"{args.method} ipc={args.ipc}")

    def on_step(r: DistillRun, metrics: dict[str, float]) -> None:
        bar.update(1)
        if metrics:
            bar.set_postfix({k: f"{v:.4g}" for k, v in list(metrics.items())[:3]}, refresh=False)

    try:
        with dist.sync("the distillation") as box:
            if dist.is_main:
                box.value = run.run(Callbacks(on_step=on_step))
            elif sharded:
                run.run()
    finally:
        bar.close()
    summary = box.values[0]
    with dist.sync("writing the run folder") as box:
        if dist.is_main:
            out = Path(args.out) if args.out else default_runs_dir() / new_run_name(dataset.name, args.method,
                                                                                     args.ipc)
            config = {"steps": run.step_index, "seed": args.seed, "device": device.type,
                      "seconds": round(run.seconds, 3), "profile": args.profile,
                      "method_config": method.config.to_dict(), "data_root": args.data_root,
                      "image_size": args.image_size, "zca": args.zca,
                      "final_metrics": run.metrics[-1] if run.metrics else {}}
            if dist.enabled:
                config["world_size"] = dist.world_size
            box.value = (save_run(out, summary, config, run.metrics,
                                  run.snapshots.to_tensors() if args.snapshots else None,
                                  snapshot_budget_mb=args.snapshot_budget_mb), config)
    out, config = box.values[0]
    payload: dict[str, Any] = {"method": args.method, "dataset": dataset.name, "ipc": args.ipc,
                               "steps": config["steps"], "seconds": config["seconds"], "device": device.type,
                               "profile": args.profile, "out": str(out), "final_metrics": config["final_metrics"],
                               "world_size": dist.world_size}
    text = (f"{args.method} on {dataset.name}, IPC {args.ipc}: {config['steps']} steps in {config['seconds']:.1f}s "
            f"-> {out}")
    if args.eval:
        result = evaluate_sharded(dist, summary, dataset, args.eval, reps=args.eval_reps, seed=eval_seed(args.seed),
                                  device=device)
        evaluation = {"protocol": result.protocol, "model": result.model, "reps": result.reps,
                      "acc_mean": result.acc_mean, "acc_std": result.acc_std, "accs": result.accs,
                      "seconds": round(result.seconds, 3)}
        with dist.sync("recording the evaluation"):
            if dist.is_main:
                add_evaluation(out, evaluation)
        payload["eval"] = evaluation
        text += (f"\n{result.protocol} evaluation ({result.model}, {result.reps} reps): "
                 f"{100 * result.acc_mean:.2f}% ± {100 * result.acc_std:.2f}")
    _emit(args, payload, text)
    return 0


def _memory_check(args: argparse.Namespace, dataset: Any, device: Any, params: dict[str, Any]) -> bool:
    """Estimate the run's peak memory before any work. --dry-run: print it (and the expected time) and return True;
    otherwise refuse, with one clear message, a run that cannot fit in the device's available memory."""
    from . import profiles
    from .estimates import describe_seconds, estimate_seconds, first_use_seconds
    from .memory import available_bytes, check_fits, format_bytes, plan
    from .methods import get_method
    from .methods.base import check_ipc

    cls = get_method(args.method)
    check_ipc(cls, dataset, args.ipc)
    config = cls.Config.from_overrides(dataset.name, params, profile=args.profile, ipc=args.ipc)
    est = plan(args.method, dataset, args.ipc, config, device)
    available = available_bytes(device)
    if not args.dry_run:
        check_fits(est, available)
        return False
    steps = args.steps
    if steps is None:
        steps = profiles.iterations(args.method, dataset.name, args.profile, args.ipc) or cls.default_steps
        if args.method in ("dc", "dsa"):  # iterations count networks there, each matched outer_loop times
            steps *= int(getattr(config, "outer_loop", 0) or profiles.by_ipc(args.method, "outer_loop", dataset.name,
                                                                              args.profile, args.ipc))
    c, h, w = dataset.image_shape
    stored = cls.first_use_stored(dataset, config)  # experts or teacher stored already (None: trains nothing first)
    seconds = estimate_seconds(args.method, dataset.name, args.ipc, steps, cls.kind, pixels=c * h * w,
                               stored=stored) if device.type == "cpu" else None  # measured on a CPU
    fits = available is None or est.total <= 0.9 * available
    payload = {"method": args.method, "dataset": dataset.name, "ipc": args.ipc, "steps": steps, "device": device.type,
               "profile": args.profile, "dry_run": True, "memory": est.to_dict(), "available_bytes": available,
               "fits": fits, "seconds_estimate": seconds, "first_use_stored": stored}
    text = est.describe() + f"\navailable: {format_bytes(available) if available is not None else 'unknown'}" \
        f" ({'fits' if fits else 'does not fit'}); {steps} step{'' if steps == 1 else 's'}"
    if seconds is not None:
        text += f", expected time on this CPU: {describe_seconds(seconds)}"
        first = first_use_seconds(args.method, dataset.name, stored=stored)
        if first is not None:  # not stored: this run trains them first
            payload["first_use_seconds"] = first
            text += f" (and {describe_seconds(first)} before it, once, to train its experts: none are stored)"
        elif stored:
            text += " (what it trains first, its experts or teacher, is stored)"
    _emit(args, payload, text)
    return True


def _show_expert_training(method: Any) -> None:
    """A progress bar for the experts an `mtt` run trains on its first step (nothing shows when they are stored)."""
    cfg = method.config
    bars: list[Any] = []

    def on_progress(expert: int, epoch: int) -> None:
        if not bars:
            bars.append(_progress(cfg.num_experts * cfg.expert_train_epochs, "training experts (first use)"))
        bars[0].update(1)
        if expert == cfg.num_experts - 1 and epoch == cfg.expert_train_epochs:
            bars[0].close()

    method.on_expert_progress = on_progress


EXPERT_SETTINGS = ("width", "depth", "lr_teacher", "dsa")  # the mtt settings that decide how experts are trained


def cmd_experts(args: argparse.Namespace) -> int:
    from .data import load_dataset
    from .device import resolve_device
    from .experts import ensure_experts
    from .methods import get_method

    device = resolve_device(args.device)
    if args.num is not None and args.num < 1:
        raise InvalidInputError(f"--num must be at least 1, got {args.num}")
    if args.epochs is not None and args.epochs < 1:
        raise InvalidInputError(f"--epochs must be at least 1, got {args.epochs}")
    dataset = load_dataset(args.dataset, data_root=args.data_root, download=args.download, image_size=args.image_size,
                           zca=args.zca)
    params = _parse_params(args.param, None)
    unknown = sorted(set(params) - set(EXPERT_SETTINGS))
    if unknown:
        raise InvalidInputError(f"unknown expert setting {unknown[0]!r}; choose from {', '.join(EXPERT_SETTINGS)}")
    if args.dir is not None:
        params["experts_dir"] = args.dir
    cfg = get_method("mtt").Config.from_overrides(dataset.name, params, profile=args.profile)  # mtt's defaults
    num = args.num if args.num is not None else cfg.num_experts
    epochs = args.epochs if args.epochs is not None else cfg.expert_train_epochs
    bar = _progress(num * epochs, "experts")
    try:
        report = ensure_experts(dataset, num, epochs, cfg.expert_spec(),
                                root=cfg.experts_dir or None, device=device,
                                on_progress=lambda i, e: bar.update(1))
    finally:
        bar.close()
    payload = {"dataset": dataset.name, "device": device.type, "spec": cfg.expert_spec().key(), **report.to_dict()}
    text = (f"{len(report.experts)} expert(s) of {dataset.name}, {payload['epochs']} epochs each, in {report.folder}: "
            f"{report.trained} trained, {report.reused} reused ({report.seconds:.1f}s)")
    _emit(args, payload, text)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .bench import check_split
    from .data import load_dataset
    from .evaluate import evaluate_sharded
    from .relabel import relabel_phrase
    from .runs import add_evaluation, load_run

    dist = _dist(args)
    with dist.sync("the setup"):
        check_split(args.split)
        record = load_run(args.run_dir, with_snapshots=False)
        cfg = record.config
        dataset = load_dataset(cfg["dataset"], data_root=args.data_root or cfg.get("data_root"),
                               download=args.download, image_size=int(cfg.get("image_size") or 32),
                               zca=args.zca or bool(cfg.get("zca")))
        if dataset.class_names != record.summary.class_names:
            raise InvalidInputError(f"the run's classes do not match dataset {dataset.name}'s classes")
    result = evaluate_sharded(dist, record.summary, dataset, args.protocol, model=args.model, reps=args.reps,
                              seed=args.seed, device=args.device, split=args.split, relabel=args.relabel)
    evaluation = {"protocol": result.protocol, "model": result.model, "reps": result.reps,
                  "acc_mean": result.acc_mean, "acc_std": result.acc_std, "accs": result.accs,
                  "split": args.split, "seconds": round(result.seconds, 3),
                  "diverged": list(result.details.get("diverged", [])),
                  "relabel": result.details.get("relabel", "none")}
    with dist.sync("recording the evaluation"):
        if dist.is_main:
            add_evaluation(record.path, evaluation)
    payload = {"run": str(record.path), "method": cfg["method"], "dataset": cfg["dataset"], "ipc": cfg["ipc"],
               "eval": evaluation, "world_size": dist.world_size}
    text = (f"{cfg['method']} on {cfg['dataset']}, IPC {cfg['ipc']}: {result.protocol} ({result.model}, "
            f"{result.reps} reps, {args.split} split"
            + relabel_phrase(evaluation["relabel"])
            + f") {100 * result.acc_mean:.2f}% ± {100 * result.acc_std:.2f}")
    if evaluation["diverged"]:
        text += (f" — {len(evaluation['diverged'])} of {result.reps} networks diverged (NaN or infinite loss); "
                 "their accuracy is what the dead network scores")
    _emit(args, payload, text)
    return 0


def _bench_rows(args: argparse.Namespace, protocol: str) -> tuple[Any, list[Any], Any, float]:
    """Check bench/reproduce arguments, load the dataset, run the cells with a progress bar."""
    from tqdm import tqdm

    from .bench import check_models, check_split, run_bench
    from .data import load_dataset
    from .device import resolve_device
    from .evaluate import protocol_names
    from .methods import get_method
    from .profiles import check_profile

    dist = _dist(args)
    _download_first(dist, args.dataset, args.data_root, args.download)
    with dist.sync("the setup"):
        device = resolve_device(args.device)
        check_profile(args.profile)
        check_split(args.split)
        if protocol not in protocol_names():
            raise InvalidInputError(f"unknown protocol {protocol!r}; choose one of {', '.join(protocol_names())}")
        if any(i < 1 for i in args.ipc):
            raise InvalidInputError("every --ipc must be a positive whole number")
        if args.steps is not None and args.steps < 1:
            raise InvalidInputError(f"steps must be a positive whole number, got {args.steps}")
        if args.seeds < 1:
            raise InvalidInputError(f"--seeds must be at least 1, got {args.seeds}")
        if args.eval_reps is not None and args.eval_reps < 1:
            raise InvalidInputError(f"--eval-reps must be at least 1, got {args.eval_reps}")
        for name in args.methods:
            get_method(name)
        models = check_models(getattr(args, "models", None))
        dataset = load_dataset(args.dataset, data_root=args.data_root, download=args.download, zca=args.zca)
    bar = tqdm(total=len(args.methods) * len(args.ipc) * len(models), desc=args.command, unit="cell", file=sys.stderr,
               disable=None if dist.is_main else True)
    start = time.perf_counter()
    try:
        rows = run_bench(dataset, args.methods, args.ipc, steps=args.steps, protocol=protocol,
                         reps=args.eval_reps, seed=args.seed, device=device, on_row=lambda r: bar.update(1),
                         seeds=args.seeds, profile=args.profile, split=args.split, models=models, dist=dist,
                         relabel=args.relabel, overrides=_parse_params(getattr(args, "param", None), None))
    finally:
        bar.close()
    return dataset, rows, device, round(time.perf_counter() - start, 2)


def _write_out(path: str | None, payload: dict) -> None:
    if path and is_main_process():
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(payload, indent=2), encoding="utf-8")


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench import check_models, cross_arch_table, markdown_table
    from .bench_results import bench_payload

    dataset, rows, device, seconds = _bench_rows(args, args.eval)
    models = check_models(args.models)
    overrides = _parse_params(args.param, None)
    payload = bench_payload(dataset.name, args.eval, args.ipc, device.type, seconds, rows, profile=args.profile,
                            overrides=overrides, split=args.split, seeds=args.seeds, models=models,
                            relabel=args.relabel, world_size=_dist(args).world_size)
    _write_out(args.out, payload)
    table = markdown_table(rows, args.ipc) if models == ["convnet"] else cross_arch_table(rows, models)
    spread = f"mean ± std over {args.seeds} seeds" if args.seeds > 1 else "mean ± std over the evaluation networks"
    timing = "distill + eval seconds" if models == ["convnet"] else "columns: evaluating models"
    settings = "".join(f", {k}={v}" for k, v in overrides.items())
    _emit(args, payload, f"{dataset.name}, protocol {args.eval}, profile {args.profile}{settings}, {args.split} split "
                         f"(accuracy %, {spread}; {timing})\n\n{table}")
    return 0


def reproduce_rows(rows: list[Any], dataset_name: str) -> list[dict[str, Any]]:
    """Bench rows with the published value of each cell beside them: published, published_std, source and
    diff = ours − published (fractions; None where there is no published value or no accuracy of ours)."""
    from .published import published

    out = []
    for r in rows:
        row = r.to_dict()
        ref = published(dataset_name, r.method, r.ipc)
        row["published"] = ref.acc if ref else None
        row["published_std"] = ref.std if ref else None
        row["source"] = ref.source if ref else None
        row["diff"] = (round(r.acc_mean - ref.acc, 6) if ref is not None and r.acc_mean is not None else None)
        out.append(row)
    return out


def reproduce_table(rows: list[dict[str, Any]]) -> str:
    """One line per cell: ours, the published value, the difference (points) and the source; "—" where none."""
    dash = "—"

    def pct(v: float | None, std: float | None = None) -> str:
        if v is None:
            return dash
        return f"{100 * v:.1f}" + (f" ± {100 * std:.1f}" if std is not None else "")

    lines = ["| method | IPC | ours | published | diff | source |", "|---|---|---|---|---|---|"]
    for r in rows:
        ours = f"n/a ({r['error']})" if r.get("error") else pct(r["acc_mean"], r["acc_std"])
        diff = dash if r["diff"] is None else f"{100 * r['diff']:+.1f}"
        lines.append(f"| {r['method']} | {r['ipc']} | {ours} | {pct(r['published'], r['published_std'])} | "
                     f"{diff} | {r['source'] or dash} |")
    return "\n".join(lines)


def cmd_reproduce(args: argparse.Namespace) -> int:
    from .published import whole_dataset

    protocol = args.eval or "paper"
    dataset, bench_rows, device, seconds = _bench_rows(args, protocol)
    rows = reproduce_rows(bench_rows, dataset.name)
    whole = whole_dataset(dataset.name)
    payload = {"dataset": dataset.name, "protocol": protocol, "ipcs": args.ipc, "device": device.type,
               "profile": args.profile, "split": args.split, "seeds": args.seeds, "seconds": seconds,
               "whole_dataset": whole.to_dict() if whole else None, "world_size": _dist(args).world_size,
               "rows": rows}
    _write_out(args.out, payload)
    text = (f"{dataset.name}: ours ({protocol} protocol, {args.profile} profile, {args.seeds} seed(s), "
            f"{args.split} split) beside the published values (accuracy %)\n\n{reproduce_table(rows)}")
    if whole is not None:
        text += f"\n\nWhole training set, published: {100 * whole.acc:.1f} ({whole.source})"
    _emit(args, payload, text)
    return 0


# ------------------------------------------------------------------------------------------ parser

def build_parser() -> argparse.ArgumentParser:
    from .device import DEVICE_CHOICES
    from .profiles import PROFILES

    parser = _Parser(prog="python -m distill_core", description="distill-lab: dataset distillation from the shell")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def profile_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument("--profile", default="fast", choices=PROFILES,
                       help="method settings and default steps: fast (CPU-sized) or paper (published; for GPUs)")

    def split_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument("--split", default="test", choices=("test", "val"),
                       help="evaluate on the test split (reported figures) or the validation split (tuning)")

    def relabel_arg(p: argparse.ArgumentParser) -> None:
        from .relabel import RELABEL_MODES

        p.add_argument("--relabel", default="none", choices=RELABEL_MODES,
                       help="teacher: summaries labelled by a teacher (rded, random-soft) are evaluated with the "
                            "teacher relabelling every augmented batch, RDED's own evaluation; teacher-cutmix: the "
                            "same with CutMix after the augmentation, as RDED's students train; other rows unchanged")

    def common(p: argparse.ArgumentParser, data: bool = True) -> None:
        p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
        if data:
            p.add_argument("--data-root", default=None, help="folder of torchvision datasets "
                                                             "(default $DISTILL_DATA_ROOT or ~/.cache/distill-lab/data)")
            p.add_argument("--download", action="store_true", help="download a missing torchvision dataset")
            if p.prog.split()[-1] != "datasets":
                p.add_argument("--zca", action="store_true",
                               help="ZCA-whiten the images the networks see (fitted on the training split; pictures "
                                    "and exports stay in pixel space); `evaluate` takes it from the run")

    p = sub.add_parser("datasets", help="list datasets and whether they are available")
    common(p)
    p.set_defaults(func=cmd_datasets)

    p = sub.add_parser("methods", help="list distillers and selectors")
    common(p, data=False)
    p.set_defaults(func=cmd_methods)

    p = sub.add_parser("distill", help="run one method and save a run folder")
    p.add_argument("--dataset", required=True, help="a name from `datasets`, or folder:PATH")
    p.add_argument("--method", required=True, help="a name from `methods`")
    p.add_argument("--ipc", type=int, required=True, help="images per class")
    p.add_argument("--steps", type=int, default=None, help="optimisation steps (default: the method's)")
    p.add_argument("--seed", type=int, default=0)
    profile_arg(p)
    p.add_argument("--device", default="auto", choices=DEVICE_CHOICES)
    p.add_argument("--out", default=None, help="run folder to write (default runs/NAME)")
    p.add_argument("--eval", default=None, help="evaluate with this protocol after distilling (quick, paper, ...)")
    p.add_argument("--eval-reps", type=int, default=None, help="networks to train in the evaluation")
    p.add_argument("--param", action="append", metavar="KEY=VALUE", help="override a method setting (repeatable)")
    p.add_argument("--lr", type=float, default=None, help="the method's learning rate (same as --param lr=...)")
    p.add_argument("--image-size", type=int, default=32, help="side length for folder: datasets")
    p.add_argument("--snapshots", type=int, default=64, help="snapshots of the evolution to keep (0: none)")
    p.add_argument("--snapshot-budget-mb", type=float, default=LIMITS.snapshot_budget_mb,
                   help="most MB the snapshots may take (float16); fewer are kept, evenly spaced, the last always, "
                        "when more would not fit (default %(default)g)")
    p.add_argument("--dry-run", action="store_true",
                   help="print the run's estimated peak memory (and expected time) and exit without distilling")
    common(p)
    p.set_defaults(func=cmd_distill)

    p = sub.add_parser("evaluate", help="evaluate a saved run folder")
    p.add_argument("run_dir", help="a run folder written by `distill` or the app")
    p.add_argument("--protocol", default="quick")
    p.add_argument("--model", default="convnet", help="convnet, mlp, lenet, alexnet, vgg11 or resnet18 (cross-architecture check)")
    p.add_argument("--reps", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    split_arg(p)
    relabel_arg(p)
    p.add_argument("--device", default="auto", choices=DEVICE_CHOICES)
    common(p)
    p.set_defaults(func=cmd_evaluate)

    def cells(p: argparse.ArgumentParser, eval_default: str | None, eval_help: str) -> None:
        p.add_argument("--dataset", required=True)
        p.add_argument("--ipc", type=int, nargs="+", required=True)
        p.add_argument("--methods", nargs="+", required=True)
        p.add_argument("--steps", type=int, default=None, help="steps for every distiller (default: the profile's)")
        p.add_argument("--eval", default=eval_default, help=eval_help)
        p.add_argument("--eval-reps", type=int, default=None, help="evaluation networks per seed")
        p.add_argument("--seed", type=int, default=0, help="the first distillation seed")
        p.add_argument("--seeds", type=int, default=1,
                       help="distillation seeds per cell (seed, seed + 1, ...); figures are mean ± std over them")
        profile_arg(p)
        split_arg(p)
        relabel_arg(p)
        p.add_argument("--device", default="auto", choices=DEVICE_CHOICES)
        p.add_argument("--out", default=None, help="also write the results as JSON to this file")
        common(p)

    p = sub.add_parser("bench", help="methods × IPCs on one dataset, one protocol; a markdown table")
    cells(p, "quick", "evaluation protocol")
    p.add_argument("--param", action="append", metavar="KEY=VALUE",
                   help="a setting every method of the bench gets on top of its profile (repeatable; it must be a "
                        "setting of every method, e.g. --methods kip dm --param init=herding)")
    p.add_argument("--models", nargs="+", default=None, metavar="MODEL",
                   help="evaluating architectures (default convnet); several give a cross-architecture table: "
                        "convnet mlp lenet alexnet vgg11 resnet18")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("reproduce", help="methods × IPCs under the paper protocol, beside the published values")
    cells(p, None, "evaluation protocol (default paper; e.g. quick for a fast look)")
    p.set_defaults(func=cmd_reproduce)

    p = sub.add_parser("experts", help="train (or reuse) the expert trajectories that `mtt` distils from")
    p.add_argument("--dataset", required=True)
    p.add_argument("--num", type=int, default=None, help="experts to have (default: mtt's for the dataset)")
    p.add_argument("--epochs", type=int, default=None, help="epochs per expert (default: mtt's for the dataset)")
    p.add_argument("--param", action="append", metavar="KEY=VALUE",
                   help="an mtt setting that shapes the experts: width, depth, lr_teacher, dsa (repeatable)")
    p.add_argument("--dir", default=None, help="experts root (default $DISTILL_EXPERTS_DIR or "
                                               "~/.cache/distill-lab/experts)")
    profile_arg(p)
    p.add_argument("--device", default="auto", choices=DEVICE_CHOICES)
    p.add_argument("--image-size", type=int, default=32, help="side length for folder: datasets")
    common(p)
    p.set_defaults(func=cmd_experts)
    return parser


DISTRIBUTED_COMMANDS = ("distill", "evaluate", "bench", "reproduce")  # the commands spread over torchrun's ranks


def _report(message: str) -> None:
    """One error line on stderr, from rank 0 alone (every rank ends with the same message and exit code)."""
    if is_main_process():
        sys.stderr.write(f"error: {message}\n")
        sys.stderr.flush()


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    dist: Dist | None = None
    clean = True
    try:
        if launched() and args.command in DISTRIBUTED_COMMANDS:
            dist = args.dist = init_from_env(args.device)
        elif launched() and args.command == "experts" and os.environ.get("WORLD_SIZE", "1") != "1":
            raise InvalidInputError("`experts` runs in one process; start it with python -m distill_core, "
                                    "not torchrun")
        return int(args.func(args) or 0)
    except DistillError as exc:
        clean = not isinstance(exc, (RankLost, LauncherStopped))
        _report(str(exc))
        return int(getattr(exc, "exit_code", 2))
    except KeyboardInterrupt:
        clean = False
        _report("interrupted")
        return 130
    except Exception as exc:  # never a traceback for the user; DISTILL_DEBUG=1 shows it
        if os.environ.get("DISTILL_DEBUG"):
            raise
        _report(f"unexpected {type(exc).__name__}: {exc}")
        return 1
    finally:
        shutdown(dist, clean)

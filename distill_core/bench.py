"""Methods × IPCs on one dataset: same split and seeds, one evaluation protocol, a table of accuracy and time.

Every cell can run over several distillation seeds; a figure is then mean ± std over them, each seed judged by
its own evaluation networks. With several evaluation `models` (cross-architecture), each summary is distilled
once and judged by every model; `cross_arch_table` lays the rows out as method × IPC against the models.
Rows trained on soft labels (learned, or a teacher's) say so (`soft_labels`), and the tables mark them."""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from dataclasses import fields as dataclass_fields
from typing import TYPE_CHECKING, Any, Callable, Optional

import numpy as np

from .data import ImageSet
from .errors import DistillError, InvalidInputError
from .evaluate import evaluate_summary, network_reps
from .methods import create_method, get_method
from .pipeline import DistillRun, default_steps
from .profiles import check_profile
from .relabel import check_relabel, relabel_phrase, relabels
from .summary import Summary

if TYPE_CHECKING:
    from .distributed import Dist


EVAL_SEED_STRIDE = 1000  # distillation seed s is judged by networks seeded s·1000, s·1000 + 1, ... (its own)


def eval_seed(seed: int) -> int:
    """The first evaluation-network seed of distillation seed `seed` (seed 0 -> 0, as it always was)."""
    return int(seed) * EVAL_SEED_STRIDE


@dataclass
class BenchRow:
    """One (method, IPC) cell. With one seed, acc_mean ± acc_std is over the evaluation networks (`accs`); with
    several, over the seeds: each seed's own mean is in `seed_accs` (and its networks' accuracies in `seed_runs`)."""

    method: str
    ipc: int
    steps: int = 0
    acc_mean: float | None = None
    acc_std: float | None = None
    reps: int = 0
    distill_seconds: float = 0.0
    eval_seconds: float = 0.0
    error: str | None = None
    accs: list[float] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)
    seed_accs: list[float] = field(default_factory=list)
    seed_runs: list[list[float]] = field(default_factory=list)
    spread: str = "reps"   # what acc_std is taken over: "reps" (one seed) or "seeds"
    profile: str = "fast"
    split: str = "test"
    model: str = "convnet"             # the evaluating architecture
    soft_labels: str | None = None     # where the summary's soft labels came from ("teacher", "learned"); None: hard
    label_loss: str | None = None      # the loss the evaluation trained the labels with (ce, mse, soft_ce)
    lr: float | None = None            # the evaluation networks' learning rate (see `evaluate.network_lr`)
    diverged: int = 0                  # evaluation networks whose training loss became NaN or infinite
    relabel: str = "none"              # "teacher"/"teacher-cutmix": the teacher relabelled every batch (RDED's eval)
    overrides: dict = field(default_factory=dict)  # settings given on top of the profile (`bench --param`)

    def to_dict(self) -> dict:
        return asdict(self)


def diverged_networks(result) -> int:
    """How many of an `EvalResult`'s networks diverged (its record's `diverged` list)."""
    return len(result.details.get("diverged", []))


def relabel_of(summary: Summary, relabel: str) -> str:
    """The relabelling a bench's `relabel` gives this summary: "teacher" only where a teacher made its labels (the
    other rows of the same bench keep their fixed labels), else "none"."""
    check_relabel(relabel)
    return relabel if relabels(relabel) and (summary.meta or {}).get("soft_labels") == "teacher" else "none"


def parse_settings(text: str) -> dict[str, str]:
    """"KEY=VALUE, KEY=VALUE" (commas or new lines between pairs) as a dict of strings — the app's form of `bench
    --param`; values are converted and checked by `check_overrides`. One clear error for a pair without "=" or a key
    given twice."""
    settings: dict[str, str] = {}
    for pair in (p.strip() for p in str(text or "").replace("\n", ",").split(",")):
        if not pair:
            continue
        key, sep, value = pair.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise InvalidInputError(f"a setting is KEY=VALUE (e.g. init=herding), got {pair!r}")
        if key.strip() in settings:
            raise InvalidInputError(f"setting {key.strip()!r} is given twice")
        settings[key.strip()] = value.strip()
    return settings


def check_overrides(methods: list[str], overrides: dict[str, Any] | None, dataset_name: str,
                    profile: str = "fast") -> dict[str, Any]:
    """Settings to give every method of a bench on top of its profile, checked before any work: each must be a
    setting of every method (one some rows silently ignored would make the table claim what it did not measure)
    and a valid value for it."""
    overrides = dict(overrides or {})
    if not overrides:
        return overrides
    for name in methods:
        config_cls = get_method(name).Config
        known = {f.name for f in dataclass_fields(config_cls)}
        missing = [k for k in overrides if k not in known]
        if missing:
            raise InvalidInputError(f"{name} has no setting {', '.join(map(repr, missing))}: a bench's settings "
                                    f"(--param) must be settings of every method it runs (bench that method on its "
                                    f"own)")
        config_cls.from_overrides(dataset_name, overrides, profile=profile)  # a bad value is refused here
    return overrides


def check_split(split: str) -> str:
    """The split an evaluation reports on: "test" (figures) or "val" (tuning)."""
    if split not in ("test", "val"):
        raise InvalidInputError(f"split must be 'test' or 'val', got {split!r}")
    return split


def check_bench(dataset_name: str, methods: list[str], seeds: int, profile: str, split: str,
                models: list[str] | None, relabel: str, overrides: dict[str, Any] | None
                ) -> tuple[list[str], dict[str, Any]]:
    """Every setting of a bench checked before any work (one clear error each): the models and overrides to use."""
    check_profile(profile)
    check_split(split)
    check_relabel(relabel)
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise InvalidInputError(f"seeds must be a positive whole number, got {seeds!r}")
    models = check_models(models)
    for name in methods:  # unknown names fail before any work is done
        get_method(name)
    return models, check_overrides(methods, overrides, dataset_name, profile)


def run_cell(dataset: ImageSet, name: str, ipc: int, steps: int | None = None, protocol: str = "quick",
             reps: int | None = None, seeds: list[int] | None = None, device: str = "auto", profile: str = "fast",
             split: str = "test", should_stop: Optional[Callable[[], bool]] = None, model: str = "convnet",
             distilled: dict | None = None, relabel: str = "none",
             overrides: dict[str, Any] | None = None) -> BenchRow:
    """Distil and evaluate one (method, IPC) cell once per seed; seed s distils with seed s and is judged by its
    own `model` networks (seeded from `eval_seed(s)`). A cell the method cannot serve gets `error`.

    `distilled` (a dict the caller keeps per method and IPC) holds each seed's summary, so the same summaries are
    judged by several models without distilling them again."""
    seeds = [0] if seeds is None else [int(s) for s in seeds]
    row = BenchRow(name, int(ipc), seeds=seeds, profile=profile, split=split, model=model,
                   overrides=dict(overrides or {}))
    check_split(split)
    distilled = {} if distilled is None else distilled
    try:
        for s in seeds:
            if should_stop is not None and should_stop():
                break
            if s not in distilled:
                method = create_method(name, dataset, int(ipc), seed=s, device=device, profile=profile,
                                       overrides=overrides)
                run = DistillRun(method, steps or default_steps(method))
                run.run(should_stop=should_stop)
                distilled[s] = (run.summary(), run.step_index, run.seconds)
            summary, steps_done, distill_s = distilled[s]
            _add_distilled(row, steps_done, distill_s)
            row.soft_labels = soft_label_source(summary)
            row.relabel = relabel_of(summary, relabel)
            t0 = time.perf_counter()
            result = evaluate_summary(summary, dataset, protocol, model=model, reps=reps, seed=eval_seed(s),
                                      device=device, should_stop=should_stop, split=split, relabel=row.relabel)
            row.label_loss = result.details.get("label_loss")
            row.lr = result.details.get("lr")
            row.diverged += diverged_networks(result)
            _add_evaluated(row, result.accs, time.perf_counter() - t0)
        _finish(row, seeds)
    except DistillError as exc:
        row.error = str(exc)
    return row


def _add_distilled(row: BenchRow, steps: int, seconds: float) -> None:
    row.steps = int(steps)
    row.distill_seconds = round(row.distill_seconds + seconds, 3)


def _add_evaluated(row: BenchRow, accs: list[float], seconds: float) -> None:
    row.eval_seconds = round(row.eval_seconds + seconds, 3)
    row.seed_accs.append(float(np.mean(accs)))
    row.seed_runs.append([float(a) for a in accs])
    row.reps = len(accs)


def _finish(row: BenchRow, seeds: list[int]) -> None:
    """acc_mean ± acc_std of a cell whose seeds are all in (see `BenchRow`)."""
    if not row.seed_accs:
        return
    row.seeds = seeds[:len(row.seed_accs)]
    if len(row.seed_accs) == 1:
        row.accs = list(row.seed_runs[0])
        row.acc_mean, row.acc_std = row.seed_accs[0], float(np.std(row.accs))
    else:
        row.spread = "seeds"
        row.accs = [a for run_accs in row.seed_runs for a in run_accs]
        row.acc_mean, row.acc_std = float(np.mean(row.seed_accs)), float(np.std(row.seed_accs))


def run_bench(dataset: ImageSet, methods: list[str], ipcs: list[int], steps: int | None = None,
              protocol: str = "quick", reps: int | None = None, seed: int = 0, device: str = "auto",
              on_row: Optional[Callable[[BenchRow], None]] = None,
              should_stop: Optional[Callable[[], bool]] = None, seeds: int = 1, profile: str = "fast",
              split: str = "test", models: list[str] | None = None, dist: Optional["Dist"] = None,
              relabel: str = "none", overrides: dict[str, Any] | None = None) -> list[BenchRow]:
    """Run every (method, ipc) pair over `seeds` distillation seeds (seed, seed + 1, ...), judged by every one of
    `models` (default: convnet alone; one row per model, the summaries distilled once); a pair a method cannot
    serve (e.g. `mean` at IPC 10) gets `error`. With a `dist` of several ranks the work is spread over them
    (`run_bench_sharded`); the rows are the same. `relabel="teacher"`: teacher-labelled rows (rded, random-soft)
    are evaluated with the teacher relabelling every augmented batch (`distill_core.relabel`). `overrides`:
    settings every method gets on top of its profile (each must be a setting of every method)."""
    models, overrides = check_bench(dataset.name, methods, seeds, profile, split, models, relabel, overrides)
    seed_list = list(range(int(seed), int(seed) + seeds))
    if dist is not None and dist.enabled:
        rows = run_bench_sharded(dist, dataset, methods, ipcs, seed_list, steps, protocol, reps, device, profile,
                                 split, models, relabel, overrides)
        for row in rows:
            if on_row is not None:
                on_row(row)
        return rows
    rows: list[BenchRow] = []
    for name in methods:
        for ipc in ipcs:
            distilled: dict = {}
            for model in models:
                if should_stop is not None and should_stop():
                    return rows
                row = run_cell(dataset, name, int(ipc), steps, protocol, reps, seed_list, device, profile, split,
                               should_stop, model=model, distilled=distilled, relabel=relabel,
                               overrides=overrides)
                rows.append(row)
                if on_row is not None:
                    on_row(row)
    return rows


@dataclass
class _Distilled:
    """One (method, IPC, seed) distillation, as a work item's result."""

    summary: Summary | None
    steps: int = 0
    seconds: float = 0.0
    error: str | None = None


@dataclass
class _Evaluated:
    """One evaluation work item: one network (or a whole non-network protocol) on one distilled summary."""

    accs: list[float]
    seconds: float = 0.0
    error: str | None = None
    label_loss: str | None = None
    lr: float | None = None
    diverged: int = 0


def run_bench_sharded(dist: "Dist", dataset: ImageSet, methods: list[str], ipcs: list[int], seeds: list[int],
                      steps: int | None = None, protocol: str = "quick", reps: int | None = None,
                      device: str | Any = "auto", profile: str = "fast", split: str = "test",
                      models: list[str] | None = None, relabel: str = "none",
                      overrides: dict[str, Any] | None = None) -> list[BenchRow]:
    """`run_bench` over the ranks of `dist`, in two rounds of work items spread r, r + N, ...: first every
    (method, IPC, seed) distillation, then every evaluation network of every distilled summary (network i of
    seed s seeded `eval_seed(s) + i`, wherever it runs, for every model). The rows, on every rank, equal one process's
    (`distill_seconds` and `eval_seconds` sum the ranks' compute time)."""
    models = check_models(models)
    overrides = check_overrides(methods, overrides, dataset.name, profile)
    cells = [(name, int(ipc)) for name in methods for ipc in ipcs]
    jobs = [(c, s) for c in range(len(cells)) for s in seeds]

    def distil(i: int) -> _Distilled:
        (name, ipc), s = cells[jobs[i][0]], jobs[i][1]
        try:
            method = create_method(name, dataset, ipc, seed=s, device=device, profile=profile, overrides=overrides)
            run = DistillRun(method, steps or default_steps(method))
            run.run()
            return _Distilled(run.summary(), run.step_index, run.seconds)
        except DistillError as exc:
            return _Distilled(None, error=str(exc))

    distilled = dict(zip(jobs, dist.map_items(len(jobs), distil, "the distillations")))
    n_nets = network_reps(protocol, reps)
    evals: list[tuple[tuple[int, int], str, int | None]] = []
    for c in range(len(cells)):
        for s in seeds:  # as one process: a cell stops at its first failing seed
            if distilled[(c, s)].error is not None:
                break
            evals += [((c, s), m, r) for m in models for r in (range(n_nets) if n_nets is not None else [None])]

    def evaluate(i: int) -> _Evaluated:
        job, model, r = evals[i]
        t0 = time.perf_counter()
        try:
            summary = distilled[job].summary
            result = evaluate_summary(summary, dataset, protocol, model=model, reps=n_nets or reps,
                                      seed=eval_seed(job[1]), device=device, split=split,
                                      rep_indices=None if r is None else [r], relabel=relabel_of(summary, relabel))
        except DistillError as exc:
            return _Evaluated([], error=str(exc))
        return _Evaluated([float(a) for a in result.accs], time.perf_counter() - t0,
                          label_loss=result.details.get("label_loss"), lr=result.details.get("lr"),
                          diverged=diverged_networks(result))

    evaluated: dict[tuple[tuple[int, int], str], list[_Evaluated]] = {}
    for (job, model, _), result in zip(evals, dist.map_items(len(evals), evaluate, "the evaluations")):
        evaluated.setdefault((job, model), []).append(result)
    rows = []
    for (c, (name, ipc)), model in ((cell, m) for cell in enumerate(cells) for m in models):
        row = BenchRow(name, ipc, seeds=list(seeds), profile=profile, split=split, model=model,
                       overrides=dict(overrides))
        for s in seeds:
            d = distilled[(c, s)]
            if d.error is not None:
                row.error = d.error
                break
            _add_distilled(row, d.steps, d.seconds)
            row.soft_labels = soft_label_source(d.summary)
            row.relabel = relabel_of(d.summary, relabel)
            parts = evaluated[((c, s), model)]
            row.label_loss = next((p.label_loss for p in parts if p.label_loss), None)
            row.lr = next((p.lr for p in parts if p.lr is not None), None)
            failed = [p.error for p in parts if p.error is not None]
            if failed:
                row.error = failed[0]
                break
            row.diverged += sum(p.diverged for p in parts)
            _add_evaluated(row, [a for p in parts for a in p.accs], sum(p.seconds for p in parts))
        if row.error is None:
            _finish(row, list(seeds))
        rows.append(row)
    return rows


def check_models(models: list[str] | None) -> list[str]:
    """The evaluation models of a bench (default: convnet), each registered, none twice; one clear error."""
    from .models import MODELS

    if models is None:
        return ["convnet"]
    if not models:
        raise InvalidInputError("choose at least one evaluating model")
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        raise InvalidInputError(f"unknown model {unknown[0]!r}; choose from {', '.join(MODELS)}")
    return list(dict.fromkeys(models))


def soft_label_source(summary) -> str | None:
    """Where a summary's soft labels came from (its meta's `soft_labels`, else "learned"); None for hard labels."""
    if not summary.soft:
        return None
    return str((summary.meta or {}).get("soft_labels") or "learned")


SOFT_MARK = "†"


def _label(r: BenchRow) -> str:
    """The row's method name, marked when the summary trained with soft labels."""
    return f"{r.method} {SOFT_MARK}" if r.soft_labels else r.method


def soft_note(rows: list[BenchRow]) -> str:
    """A footnote naming the soft-label rows' label sources, losses and networks' learning rates ('' when every row
    used hard labels)."""
    soft: dict[tuple, dict[str, float | None]] = {}
    for r in rows:
        if r.soft_labels:
            soft.setdefault((r.method, r.soft_labels, r.label_loss, r.relabel), {})[r.model] = r.lr
    if not soft:
        return ""
    parts = [f"{m}: {src} soft labels{relabel_phrase(rl)}, trained with {loss or 'the policy loss'}{_lr_note(lrs)}"
             for (m, src, loss, rl), lrs in sorted(soft.items())]
    return f"{SOFT_MARK} soft labels — " + "; ".join(parts)


def _lr_note(lrs: dict[str, float | None]) -> str:
    """' at lr 0.03', or ' at lr 0.03 (convnet), 0.3 (lenet)' when the architectures' rates differ."""
    known = {m: lr for m, lr in lrs.items() if lr is not None}
    if not known:
        return ""
    if len(set(known.values())) == 1:
        return f" at lr {next(iter(known.values())):g}"
    return " at lr " + ", ".join(f"{lr:g} ({m})" for m, lr in known.items())


def _diverged_note(r: BenchRow) -> str:
    """' (2 of 3 networks diverged)' when some evaluation networks of the cell died, else ''."""
    return f" ({r.diverged} of {len(r.accs)} networks diverged)" if r.diverged else ""


def markdown_table(rows: list[BenchRow], ipcs: list[int]) -> str:
    """Rows = methods, one column per IPC: 'acc ± std (distill s + eval s)', or why the pair was skipped.

    The ± is over the seeds when a row has several (see `BenchRow`), else over the evaluation networks."""
    methods = list(dict.fromkeys(r.method for r in rows))
    lookup = {(r.method, r.ipc): r for r in rows if r.model == rows[0].model} if rows else {}
    head = "| method | " + " | ".join(f"IPC {i}" for i in ipcs) + " |"
    sep = "|---|" + "---|" * len(ipcs)
    lines = [head, sep]
    for m in methods:
        cells = []
        for i in ipcs:
            r = lookup.get((m, i))
            if r is None:
                cells.append("")
            elif r.error:
                cells.append(f"n/a ({r.error})")
            else:
                cells.append(f"{100 * r.acc_mean:.1f} ± {100 * r.acc_std:.1f} "
                             f"({r.distill_seconds:.1f}s + {r.eval_seconds:.1f}s){_diverged_note(r)}")
        marked = any(r.soft_labels for r in rows if r.method == m)
        lines.append(f"| {m}{' ' + SOFT_MARK if marked else ''} | " + " | ".join(cells) + " |")
    note = soft_note(rows)
    return "\n".join(lines) + (f"\n\n{note}" if note else "")


def cross_arch_table(rows: list[BenchRow], models: list[str]) -> str:
    """Cross-architecture: one line per (method, IPC), one column per evaluating model: 'acc ± std', the
    summary's distillation seconds, and a mark on soft-label rows."""
    lookup = {(r.method, r.ipc, r.model): r for r in rows}
    cells_of = list(dict.fromkeys((r.method, r.ipc) for r in rows))
    lines = ["| method | IPC | " + " | ".join(models) + " | distill s |", "|---|---|" + "---|" * (len(models) + 1)]
    for method, ipc in cells_of:
        cells, label, distill = [], method, ""
        for model in models:
            r = lookup.get((method, ipc, model))
            if r is None:
                cells.append("")
                continue
            label, distill = _label(r), f"{r.distill_seconds:.1f}"
            cells.append(f"n/a ({r.error})" if r.error or r.acc_mean is None
                         else f"{100 * r.acc_mean:.1f} ± {100 * (r.acc_std or 0.0):.1f}{_diverged_note(r)}")
        lines.append(f"| {label} | {ipc} | " + " | ".join(cells) + f" | {distill} |")
    note = soft_note(rows)
    return "\n".join(lines) + (f"\n\n{note}" if note else "")

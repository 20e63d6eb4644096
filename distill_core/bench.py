"""Methods × IPCs on one dataset: same split and seeds, one evaluation protocol, a table of accuracy and time."""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Optional

from .data import ImageSet
from .errors import DistillError
from .evaluate import evaluate_summary
from .methods import create_method, get_method
from .pipeline import DistillRun, default_steps


@dataclass
class BenchRow:
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

    def to_dict(self) -> dict:
        return asdict(self)


def run_bench(dataset: ImageSet, methods: list[str], ipcs: list[int], steps: int | None = None,
              protocol: str = "quick", reps: int | None = None, seed: int = 0, device: str = "auto",
              on_row: Optional[Callable[[BenchRow], None]] = None,
              should_stop: Optional[Callable[[], bool]] = None) -> list[BenchRow]:
    """Run every (method, ipc) pair; a pair a method cannot serve (e.g. `mean` at IPC 10) gets `error`."""
    for name in methods:  # unknown names fail before any work is done
        get_method(name)
    rows: list[BenchRow] = []
    for name in methods:
        for ipc in ipcs:
            if should_stop is not None and should_stop():
                return rows
            row = BenchRow(name, int(ipc))
            try:
                method = create_method(name, dataset, int(ipc), seed=seed, device=device)
                run = DistillRun(method, steps or default_steps(method))
                run.run(should_stop=should_stop)
                row.steps, row.distill_seconds = run.step_index, round(run.seconds, 3)
                t0 = time.perf_counter()
                result = evaluate_summary(run.summary(), dataset, protocol, reps=reps, seed=seed, device=device,
                                          should_stop=should_stop)
                row.eval_seconds = round(time.perf_counter() - t0, 3)
                row.acc_mean, row.acc_std, row.reps, row.accs = (result.acc_mean, result.acc_std, result.reps,
                                                                 result.accs)
            except DistillError as exc:
                row.error = str(exc)
            rows.append(row)
            if on_row is not None:
                on_row(row)
    return rows


def markdown_table(rows: list[BenchRow], ipcs: list[int]) -> str:
    """Rows = methods, one column per IPC: 'acc ± std (distill s + eval s)', or why the pair was skipped."""
    methods = list(dict.fromkeys(r.method for r in rows))
    lookup = {(r.method, r.ipc): r for r in rows}
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
                             f"({r.distill_seconds:.1f}s + {r.eval_seconds:.1f}s)")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines)

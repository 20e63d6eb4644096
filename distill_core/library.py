"""The run library: runs compared under one evaluation protocol, a run's notes, renaming a run folder.

Accuracies of different protocols are not comparable (kernel ridge regression `krr` scores far above a briefly
trained network's `quick`), so a library table shows one protocol per accuracy column (`evaluation_label` names
it: protocol, evaluating model, and the split when it is not the test split), or, in `LATEST` mode, each run's
latest figure with its protocol beside it.

Notes live in the run folder (`notes.md`, written to a temporary name and renamed), so they travel with the folder
(zip export, copies) and survive a reload; a rename renames the folder itself, so the library, the embedding page
and the CLI all see the new name.
"""
from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

from .atomic import write_text_atomically
from .errors import InvalidInputError, RunFormatError
from .runs import list_runs

NOTES_FILE = "notes.md"
NOTES_MAX_CHARS = 20_000
NAME_MAX_CHARS = 100
LATEST = "latest"        # the table mode that shows each run's latest evaluation, whatever its protocol


def evaluation_label(evaluation: dict[str, Any]) -> str:
    """The protocol a figure was measured under, e.g. 'quick · convnet', 'krr', 'paper · mlp · val split'."""
    parts = [str(evaluation.get("protocol") or "?")]
    if evaluation.get("model"):
        parts.append(str(evaluation["model"]))
    split = evaluation.get("split")
    if split and split != "test":
        parts.append(f"{split} split")
    return " · ".join(parts)


def _scored(evaluations: Any) -> list[dict[str, Any]]:
    if not isinstance(evaluations, list):
        return []
    return [e for e in evaluations if isinstance(e, dict) and isinstance(e.get("acc_mean"), (int, float))
            and not isinstance(e.get("acc_mean"), bool)]


def accuracy_under(evaluations: Any, label: str) -> dict[str, Any] | None:
    """The latest evaluation measured under `label` (an `evaluation_label`), or the latest of any kind for
    LATEST; None when the run has none."""
    scored = _scored(evaluations)
    if label != LATEST:
        scored = [e for e in scored if evaluation_label(e) == label]
    return scored[-1] if scored else None


def protocol_labels(runs: list[dict[str, Any]]) -> list[str]:
    """The evaluation labels found in `runs` (rows of `library_runs`), the one most runs have first."""
    counts: Counter[str] = Counter()
    for run in runs:
        counts.update({evaluation_label(e) for e in _scored(run.get("evaluations"))})
    return [label for label, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]


def library_runs(root: str | os.PathLike) -> list[dict[str, Any]]:
    """`runs.list_runs(root)` rows (newest first) with each run's evaluations and notes added."""
    rows = list_runs(root)
    for row in rows:
        row["evaluations"] = []
        row["notes"] = ""
        if row.get("error"):
            continue
        try:
            cfg = json.loads((Path(row["path"]) / "config.json").read_text(encoding="utf-8"))
            row["evaluations"] = _scored(cfg.get("evaluations"))
        except (OSError, ValueError, AttributeError):
            row["error"] = "config.json is unreadable"
        row["notes"] = read_notes(row["path"])
    return rows


def table_row_accuracy(run: dict[str, Any], label: str) -> tuple[float | None, float | None, str]:
    """(accuracy %, ± std %, label) of a run under `label`; the label is the figure's own in LATEST mode."""
    ev = accuracy_under(run.get("evaluations"), label)
    if ev is None:
        return None, None, ""
    std = ev.get("acc_std")
    return (round(100 * float(ev["acc_mean"]), 2),
            round(100 * float(std), 2) if isinstance(std, (int, float)) else None, evaluation_label(ev))


# ------------------------------------------------------------------------------------------------ notes

def _run_dir(path: str | os.PathLike) -> Path:
    run_dir = Path(path)
    if not (run_dir / "config.json").is_file():
        raise RunFormatError(f"{run_dir} is not a run folder")
    return run_dir


def read_notes(run_dir: str | os.PathLike) -> str:
    """A run's notes ('' when it has none or they cannot be read)."""
    try:
        return (Path(run_dir) / NOTES_FILE).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def write_notes(run_dir: str | os.PathLike, text: str) -> None:
    """Store a run's notes in its folder (empty text removes them). Written to a temporary name and renamed."""
    run_dir = _run_dir(run_dir)
    if not isinstance(text, str):
        raise InvalidInputError("notes must be text")
    if len(text) > NOTES_MAX_CHARS:
        raise InvalidInputError(f"notes are limited to {NOTES_MAX_CHARS:,} characters, got {len(text):,}")
    path = run_dir / NOTES_FILE
    if not text.strip():
        path.unlink(missing_ok=True)
        return
    write_text_atomically(path, text, make_parent=False)


# ----------------------------------------------------------------------------------------------- rename

def check_run_name(name: str) -> str:
    """A new run-folder name, stripped; InvalidInputError with the reason when it cannot be one."""
    if not isinstance(name, str):
        raise InvalidInputError("a run name must be text")
    name = name.strip()
    if not name:
        raise InvalidInputError("a run name cannot be empty")
    if len(name) > NAME_MAX_CHARS:
        raise InvalidInputError(f"a run name is limited to {NAME_MAX_CHARS} characters, got {len(name)}")
    if name.startswith("."):
        raise InvalidInputError("a run name cannot start with '.' (hidden folders are not listed)")
    bad = sorted({ch for ch in name if not (ch.isalnum() or ch in "-_.+ ()")})
    if bad:
        raise InvalidInputError(f"a run name may hold letters, digits, spaces and - _ . + ( ); not {''.join(bad)!r}")
    return name


def rename_run(run_dir: str | os.PathLike, new_name: str, root: str | os.PathLike | None = None) -> Path:
    """Rename a run folder within its parent folder (inside `root` when given); returns the new path."""
    run_dir = _run_dir(run_dir).resolve()
    if root is not None and Path(root).resolve() not in run_dir.parents:
        raise InvalidInputError(f"{run_dir.name} is not inside the runs folder {root}")
    name = check_run_name(new_name)
    if name == run_dir.name:
        return run_dir
    target = run_dir.parent / name
    if target.exists():
        raise InvalidInputError(f"a run named {name!r} already exists; choose another name")
    try:
        os.rename(run_dir, target)
    except OSError as exc:
        raise InvalidInputError(f"could not rename {run_dir.name} to {name}: {exc.strerror or exc}") from None
    return target

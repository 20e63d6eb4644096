"""Pieces shared by the pages that show saved runs (home's example, the run library): load, show, export."""
from __future__ import annotations

import dataclasses
from datetime import datetime
from pathlib import Path
from typing import Any

import streamlit as st

from distill_core import exports, library
from distill_core.methods import METHODS
from distill_core.runs import RunRecord, load_run
from ui import grid, plots
from ui.downloads import cached_download, projector_gif


@st.cache_resource(show_spinner=False, max_entries=16)
def cached_run(path: str, mtime: float) -> RunRecord:
    """load_run, cached per (path, modification time) so reruns do not reread tensors."""
    return load_run(path)


def open_run(path: str | Path) -> RunRecord:
    p = Path(path)
    cfg = p / "config.json"
    return cached_run(str(p.resolve()), cfg.stat().st_mtime if cfg.exists() else 0.0)


def best_accuracy(record: RunRecord) -> dict[str, Any] | None:
    evals = [e for e in record.evaluations if isinstance(e.get("acc_mean"), (int, float))]
    return evals[-1] if evals else None


def fmt_date(value: Any) -> str:
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value).astimezone().strftime("%Y-%m-%d %H:%M")
        except ValueError:
            return value
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value).strftime("%Y-%m-%d %H:%M")
    return ""


def table_rows(root: str | Path, label: str = library.LATEST,
               runs: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """One display row per run folder under `root` (newest first), its accuracy measured under `label` (one
    evaluation protocol, see `distill_core.library.evaluation_label`) so a column never mixes protocols; in LATEST
    mode each run's latest figure, with the protocol it was measured under in the column beside it."""
    rows = []
    head = "accuracy % (latest, see protocol)" if label == library.LATEST else f"accuracy % ({label})"
    for r in runs if runs is not None else library.library_runs(root):
        acc, std, measured = library.table_row_accuracy(r, label)
        row = {"run": r["name"], "dataset": r.get("dataset") or "?", "method": r.get("method") or "?",
               "IPC": r.get("ipc"), "steps": r.get("steps"), head: acc, "± std": std}
        if label == library.LATEST:
            row["protocol"] = measured
        first_line = (r.get("notes") or "").strip().splitlines()
        row["notes"] = (first_line[0][:60] + ("…" if len(first_line[0]) > 60 or len(first_line) > 1 else "")) \
            if first_line else ""
        row["date"] = fmt_date(r.get("created") or r.get("mtime"))
        row["error"] = r.get("error", "")
        rows.append(row)
    return rows


def _as_field_type(value: Any, default: Any) -> Any:
    """`value` in the type of a Config field whose default is `default` (None when it is not of that type);
    JSON writes 1.0 as 1, and a float field's widget wants a float."""
    if default is None:
        return value
    if isinstance(default, bool) or isinstance(value, bool):
        return value if isinstance(default, bool) and isinstance(value, bool) else None
    if isinstance(default, int):
        return value if isinstance(value, int) else None
    if isinstance(default, float):
        return float(value) if isinstance(value, (int, float)) else None
    return value if isinstance(value, type(default)) else None


def rerun_request(record: RunRecord) -> tuple[dict[str, Any] | None, str]:
    """The `ui.state.request_preset` dict that fills the distill page with a run's settings (dataset, method, IPC,
    steps, seed and the method's settings), without starting it; (None, why) when the run cannot be re-run here."""
    cfg = record.config
    method = cfg.get("method")
    cls = METHODS.get(method)
    if cls is None:
        return None, f"method {method!r} is not available in this version of distill-lab"
    fields = {f.name: f for f in dataclasses.fields(cls.Config)} if dataclasses.is_dataclass(cls.Config) else {}
    settings: dict[str, Any] = {}
    for name, value in (cfg.get("method_config") or {}).items():
        f = fields.get(name)
        if f is None or not isinstance(value, (bool, int, float, str)):
            continue
        value = _as_field_type(value, f.default if f.default is not dataclasses.MISSING else None)
        if value is None:
            continue
        settings[name] = value
    steps = cfg.get("total_steps") if isinstance(cfg.get("total_steps"), int) else cfg.get("steps")
    seed = cfg.get("seed")
    return {"title": f"settings of run {record.name}", "method": method, "dataset": cfg.get("dataset"),
            "ipc": int(cfg["ipc"]), "steps": int(steps) if isinstance(steps, int) and steps >= 1 else None,
            "seed": int(seed) if isinstance(seed, int) else None, "settings": settings}, ""


def show_run(record: RunRecord, key: str) -> None:
    """A run's grid, its facts, its curves and a replay slider over its snapshots."""
    cfg = record.config
    s = record.summary
    acc = best_accuracy(record)
    facts = [f"**{cfg.get('method')}** on **{cfg.get('dataset')}**", f"IPC {cfg.get('ipc')}"]
    if cfg.get("steps") is not None:
        steps = cfg["steps"]
        facts.append(f"{steps:,} step{'s' if steps != 1 else ''}" if isinstance(steps, int) else f"{steps} steps")
    if acc is not None:
        facts.append(f"accuracy {100 * acc['acc_mean']:.1f}% ({acc.get('protocol', '?')})")
    if cfg.get("created"):
        facts.append(fmt_date(cfg["created"]))
    st.markdown(" · ".join(facts))
    left, right = st.columns([3, 2])
    with left:
        snaps = record.snapshots
        if snaps is not None and len(snaps["steps"]) >= 2:
            steps = [int(x) for x in snaps["steps"].tolist()]
            idx = st.select_slider("Replay the evolution", options=list(range(len(steps))), value=len(steps) - 1,
                                   format_func=lambda i: f"step {steps[i]:,}", key=f"{key}.replay")
            grid.show_grid(snaps["images"][idx].float(), s.class_names, s.hard_labels,
                           caption=f"Snapshot {idx + 1} of {len(steps)} — step {steps[idx]:,}")
        else:
            grid.show_grid(s.images, s.class_names, s.hard_labels)
    with right:
        for name, fig in (("loss", plots.loss_figure(record.metrics)),
                          ("other", plots.other_metrics_figure(record.metrics))):
            if fig is not None:
                st.plotly_chart(fig, key=f"{key}.{name}", config={"displayModeBar": False})
        if acc is not None:
            st.dataframe([{"protocol": library.evaluation_label(e), "reps": e.get("reps"),
                           "accuracy %": round(100 * e["acc_mean"], 2),
                           "± std": round(100 * (e.get("acc_std") or 0), 2)} for e in record.evaluations
                          if isinstance(e.get("acc_mean"), (int, float))], hide_index=True)


def export_buttons(record: RunRecord, key: str) -> None:
    """PNG grid, GIF of the snapshots (projector-sized), zip of the folder — built in this run and cached per run
    folder and modification time, so a click right after a rerun still finds its file."""
    s = record.summary
    name = record.name
    cfg = record.path / "config.json"
    base = f"{record.path.resolve()}.{cfg.stat().st_mtime if cfg.exists() else 0}"

    def make_png() -> bytes:
        return exports.png_grid(s.images, s.class_names, s.hard_labels)

    def make_gif() -> bytes:
        snaps = record.snapshots
        if snaps is None or not len(snaps["steps"]):
            return projector_gif(exports.gif_evolution([s.images], [int(record.config.get("steps") or 0)],
                                                       s.class_names, s.hard_labels))
        return projector_gif(exports.gif_evolution(list(snaps["images"]), [int(x) for x in snaps["steps"].tolist()],
                                                   s.class_names, s.hard_labels))

    def make_zip() -> bytes:
        return exports.zip_run_folder(record.path)

    c1, c2, c3 = st.columns(3)
    with c1:
        cached_download("PNG grid", make_png, f"{name}.png", "image/png", key=f"{key}.png", cache_key=f"{base}.png")
    with c2:
        cached_download("GIF of the evolution", make_gif, f"{name}.gif", "image/gif", key=f"{key}.gif",
                        cache_key=f"{base}.gif")
    with c3:
        cached_download("Run folder (zip)", make_zip, f"{name}.zip", "application/zip", key=f"{key}.zip",
                        cache_key=f"{base}.zip")



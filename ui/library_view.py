"""Pieces shared by the pages that show saved runs (home's example, the run library): load, show, export."""
from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import streamlit as st

from distill_core import exports
from distill_core.runs import RunRecord, list_runs, load_run
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


def table_rows(root: str | Path) -> list[dict[str, Any]]:
    """One display row per run folder under `root` (list_runs), newest first."""
    rows = []
    for r in list_runs(root):
        acc = r.get("acc")
        rows.append({"run": r["name"], "dataset": r.get("dataset") or "?", "method": r.get("method") or "?",
                     "IPC": r.get("ipc"), "steps": r.get("steps"),
                     "accuracy %": round(100 * acc, 2) if isinstance(acc, (int, float)) else None,
                     "protocol": r.get("protocol") or "", "date": fmt_date(r.get("created") or r.get("mtime")),
                     "error": r.get("error", "")})
    return rows


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
            st.dataframe([{"protocol": e.get("protocol"), "model": e.get("model"), "reps": e.get("reps"),
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



"""The benchmark page's pieces: the session's bench job slot, the accuracy-vs-IPC figure, the results table."""
from __future__ import annotations

import logging
from typing import Any

import plotly.graph_objects as go
import streamlit as st

from distill_core.bench_results import SPLIT_WORDS, BenchJob, accuracy_label, curves, row_models
from ui.maps import class_color

_log = logging.getLogger("distill_lab.app")


class BenchSlot:
    """The (at most one) bench job of a browser session."""

    def __init__(self) -> None:
        self.job: BenchJob | None = None

    def close(self) -> None:
        if self.job is not None:
            self.job.stop(wait=False)


def _release(slot: BenchSlot) -> None:
    try:
        slot.close()
    except Exception:  # noqa: BLE001 - must never raise into Streamlit's cache machinery
        _log.exception("could not stop a session's benchmark")


try:
    @st.cache_resource(scope="session", on_release=_release, show_spinner=False)
    def _slot() -> BenchSlot:
        return BenchSlot()
except TypeError:  # Streamlit without session-scoped resources
    def _slot() -> BenchSlot:
        return st.session_state.setdefault("_bench_slot", BenchSlot())


def session_slot() -> BenchSlot:
    """This session's bench slot (its job is stopped when the session ends)."""
    return _slot()


def accuracy_figure(payload: dict[str, Any], height: int = 420) -> go.Figure | None:
    """Accuracy (%) on the bench's split against IPC, one line per method (per method and architecture when several
    judged), error bars = the rows' std (over seeds when there are several, else over the evaluation networks)."""
    lines = curves(payload)
    if not lines:
        return None
    fig = go.Figure()
    for i, (method, pts) in enumerate(lines.items()):
        fig.add_trace(go.Scatter(x=[p[0] for p in pts], y=[100 * p[1] for p in pts], mode="lines+markers",
                                 name=method, line=dict(color=class_color(i)),
                                 error_y=dict(type="data", array=[100 * p[2] for p in pts], visible=True)))
    ipcs = sorted({p[0] for pts in lines.values() for p in pts})
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h", y=-0.2),
                      title=dict(text=f"{payload.get('dataset', '?')} · protocol {payload.get('protocol', '?')}",
                                 x=0, font=dict(size=14)),
                      xaxis=dict(title="images per class (IPC)", type="log" if len(ipcs) > 1 and
                                 ipcs[-1] / max(1, ipcs[0]) >= 10 else "linear", tickvals=ipcs),
                      yaxis=dict(title=f"{accuracy_label(payload)} (%)"), uirevision="bench")
    return fig


def _row_note(r: dict[str, Any]) -> str:
    notes = [r.get("error") or ""]
    if r.get("relabel") == "teacher":
        notes.append("teacher relabelling")
    elif r.get("relabel") == "teacher-cutmix":
        notes.append("teacher relabelling, CutMix")
    if r.get("diverged"):
        notes.append(f"{r['diverged']} network(s) diverged")
    return "; ".join(n for n in notes if n)


def table_rows(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """One display row per (method, IPC) — and architecture, with a "model" column, when several judged. "seeds":
    the distillation seeds of the row; its ± std is over them when there are several, else over its networks."""
    several = len(row_models(payload)) > 1
    out = []
    for r in payload.get("rows", []):
        acc, std = r.get("acc_mean"), r.get("acc_std")
        row = {"method": r.get("method"), "IPC": r.get("ipc")}
        if several:
            row["model"] = r.get("model") or "convnet"
        seeds = r.get("seeds") or []
        row.update({"accuracy %": None if acc is None else round(100 * acc, 2),
                    "± std": None if std is None else round(100 * std, 2),
                    "seeds": len(seeds) if seeds else 1, "networks per seed": r.get("reps"),
                    "steps": r.get("steps"), "distill s": r.get("distill_seconds"), "eval s": r.get("eval_seconds"),
                    "note": _row_note(r)})
        out.append(row)
    return out


def cross_arch_rows(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """The cross-architecture view (as `bench --models` prints it): one row per (method, IPC), one column per
    evaluating architecture, "accuracy ± std" in %, "n/a" where that cell failed."""
    models = row_models(payload)
    cells: dict[tuple[str, int], dict[str, Any]] = {}
    for r in payload.get("rows", []):
        row = cells.setdefault((r.get("method"), r.get("ipc")), {"method": r.get("method"), "IPC": r.get("ipc"),
                                                                  **{m: "" for m in models}})
        acc = r.get("acc_mean")
        row[r.get("model") or "convnet"] = "n/a" if r.get("error") or acc is None else \
            f"{100 * acc:.1f} ± {100 * (r.get('acc_std') or 0.0):.1f}"
    return list(cells.values())


def settings_line(payload: dict[str, Any]) -> str:
    """One line naming what the figures are: split, profile, seeds (and what ± is over), architectures."""
    rows = payload.get("rows", [])
    split = payload.get("split") or next((r.get("split") for r in rows if r.get("split")), "test")
    profile = payload.get("profile") or next((r.get("profile") for r in rows if r.get("profile")), None)
    seeds = payload.get("seeds") or max((len(r.get("seeds") or []) for r in rows), default=1) or 1
    parts = [f"{SPLIT_WORDS.get(split, split)} split"]
    if profile:
        parts.append(f"profile {profile}")
    parts.append(f"{seeds} distillation seed{'s' if seeds != 1 else ''} (± over seeds)" if seeds > 1
                 else "one distillation seed (± over its evaluation networks)")
    parts.append("judged by " + ", ".join(row_models(payload) or ["convnet"]))
    settings = payload.get("overrides") or {}
    if settings:
        parts.append("settings " + ", ".join(f"{k}={v}" for k, v in settings.items()))
    return " · ".join(parts)


def show_results(payload: dict[str, Any], key: str) -> None:
    """The figure and the table of one bench result, under a line saying what the figures are."""
    st.caption(settings_line(payload))
    fig = accuracy_figure(payload)
    if fig is not None:
        st.plotly_chart(fig, key=f"{key}.fig", width="stretch")
    rows = table_rows(payload)
    if len(row_models(payload)) > 1:
        st.dataframe(cross_arch_rows(payload), hide_index=True, key=f"{key}.cross")
    if rows:
        st.dataframe(rows, hide_index=True, key=f"{key}.table")
    else:
        st.caption("No results yet.")

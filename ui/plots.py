"""Plotly figures for the pages: metric curves over steps and accuracy over steps."""
from __future__ import annotations

from typing import Any, Iterable

import plotly.graph_objects as go

_SKIP = {"step", "seconds"}


def _layout(fig: go.Figure, title: str, ytitle: str, height: int = 260) -> go.Figure:
    fig.update_layout(title=dict(text=title, x=0, font=dict(size=14)), height=height,
                      margin=dict(l=10, r=10, t=36, b=10), xaxis_title="step", yaxis_title=ytitle,
                      legend=dict(orientation="h", y=-0.25), uirevision="keep")  # zoom survives redraws
    return fig


def metric_names(rows: Iterable[dict[str, Any]]) -> list[str]:
    """Numeric metric keys present in the rows (step and seconds excluded), in first-seen order."""
    names: list[str] = []
    for row in rows:
        for key, value in row.items():
            if key not in _SKIP and key not in names and isinstance(value, (int, float)) \
                    and not isinstance(value, bool):
                names.append(key)
    return names


def _is_loss(name: str) -> bool:
    return "loss" in name.lower()


def metrics_figure(rows: list[dict[str, Any]], names: list[str], title: str) -> go.Figure | None:
    """One line per metric in `names` against step (log scale for one positive metric spanning > 20×)."""
    if not rows or not names:
        return None
    fig = go.Figure()
    values: list[float] = []
    for name in names:
        pts = [(r["step"], r[name]) for r in rows if isinstance(r.get(name), (int, float)) and "step" in r]
        fig.add_trace(go.Scatter(x=[p[0] for p in pts], y=[p[1] for p in pts], mode="lines", name=name))
        values += [p[1] for p in pts]
    _layout(fig, title, names[0] if len(names) == 1 else "value")
    if len(names) == 1 and values and min(values) > 0 and max(values) / min(values) > 20:
        fig.update_yaxes(type="log")
    return fig


def loss_figure(rows: list[dict[str, Any]], title: str = "Loss") -> go.Figure | None:
    """The loss-like metrics (names containing 'loss'; every metric if none does). None when there are none."""
    names = metric_names(rows)
    losses = [n for n in names if _is_loss(n)] or names
    return metrics_figure(rows, losses, title)


def other_metrics_figure(rows: list[dict[str, Any]], title: str = "Other training metrics") -> go.Figure | None:
    """The remaining metrics (e.g. KIP's batch accuracy, MTT's learned learning rate); None when there are none."""
    names = metric_names(rows)
    losses = [n for n in names if _is_loss(n)] or names
    return metrics_figure(rows, [n for n in names if n not in losses], title)


SMOOTH_WINDOW = 5  # evaluations in the live accuracy's moving average


def smoothed_accuracy(points: list[dict[str, Any]], window: int = SMOOTH_WINDOW) -> list[dict[str, float]]:
    """Moving mean ± std of the last `window` evaluations (each one network), one row per evaluation:
    {step, mean, std, n}. One network's accuracy jumps by a point or so between evaluations; the band shows how
    much of a change is noise."""
    out = []
    accs: list[float] = []
    for p in points:
        accs.append(float(p["acc"]))
        recent = accs[-max(1, int(window)):]
        mean = sum(recent) / len(recent)
        std = (sum((a - mean) ** 2 for a in recent) / len(recent)) ** 0.5
        out.append({"step": p["step"], "mean": mean, "std": std, "n": len(recent)})
    return out


REFERENCE_STYLE = {"random picks": dict(color="#888888", dash="dash"), "full data": dict(color="#2a9d8f", dash="dot")}


def accuracy_figure(points: list[dict[str, Any]], title: str = "Test accuracy",
                    references: dict[str, float] | None = None) -> go.Figure | None:
    """Accuracy (%) against step: each evaluation as a faint dot, the moving average as a line inside its ± std
    band, and horizontal reference lines (e.g. random picks at the same IPC, the full data). None when there are
    no points yet."""
    if not points:
        return None
    fig = go.Figure()
    for protocol in dict.fromkeys(p.get("protocol", "") for p in points):
        pts = [p for p in points if p.get("protocol", "") == protocol]
        label = protocol + (f" ({pts[0]['epochs']} epochs, 1 net)" if "epochs" in pts[0] else "")
        band = smoothed_accuracy(pts)
        x = [b["step"] for b in band]
        hi = [100 * (b["mean"] + b["std"]) for b in band]
        lo = [100 * (b["mean"] - b["std"]) for b in band]
        fig.add_trace(go.Scatter(x=x + x[::-1], y=hi + lo[::-1], fill="toself", mode="lines",
                                 line=dict(width=0), fillcolor="rgba(31,119,180,0.18)", hoverinfo="skip",
                                 name=f"± std, last {SMOOTH_WINDOW}"))
        fig.add_trace(go.Scatter(x=x, y=[100 * b["mean"] for b in band], mode="lines", line=dict(width=3),
                                 name=f"{label}, mean of last {SMOOTH_WINDOW}"))
        fig.add_trace(go.Scatter(x=[p["step"] for p in pts], y=[100 * p["acc"] for p in pts], mode="markers",
                                 marker=dict(size=5, opacity=0.45), name="each evaluation"))
        broken = [p for p in pts if p.get("diverged_epoch") is not None]
        if broken:  # evaluations whose network's loss became NaN/inf: their accuracy is a broken network's
            fig.add_trace(go.Scatter(x=[p["step"] for p in broken], y=[100 * p["acc"] for p in broken],
                                     mode="markers", marker=dict(size=10, symbol="x", color="#d62728"),
                                     name="evaluation diverged"))
    for name, acc in (references or {}).items():
        if isinstance(acc, (int, float)):
            fig.add_hline(y=100 * float(acc), annotation_text=f"{name} {100 * float(acc):.1f}%",
                          annotation_position="bottom right", line=dict(width=1.5, **REFERENCE_STYLE.get(name, {})))
    _layout(fig, title, "accuracy %", height=300)
    return fig

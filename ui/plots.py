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


def accuracy_figure(points: list[dict[str, Any]], title: str = "Test accuracy") -> go.Figure | None:
    """Accuracy (%) against step; the protocol in the legend. None when there are no points yet."""
    if not points:
        return None
    fig = go.Figure()
    for protocol in dict.fromkeys(p.get("protocol", "") for p in points):
        pts = [p for p in points if p.get("protocol", "") == protocol]
        label = protocol + (f" ({pts[0]['epochs']} epochs, 1 net)" if "epochs" in pts[0] else "")
        fig.add_trace(go.Scatter(x=[p["step"] for p in pts], y=[100 * p["acc"] for p in pts],
                                 mode="lines+markers", name=label))
    _layout(fig, title, "accuracy %")
    return fig

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


def loss_figure(rows: list[dict[str, Any]], title: str = "Loss") -> go.Figure | None:
    """One line per metric (log scale when every value of a single 'loss' metric is positive); None if empty."""
    names = metric_names(rows)
    if not rows or not names:
        return None
    fig = go.Figure()
    for name in names:
        xs = [r["step"] for r in rows if isinstance(r.get(name), (int, float))]
        ys = [r[name] for r in rows if isinstance(r.get(name), (int, float))]
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name=name))
    ys_all = [r[n] for r in rows for n in names if isinstance(r.get(n), (int, float))]
    log = len(names) == 1 and ys_all and min(ys_all) > 0 and max(ys_all) / min(ys_all) > 20
    _layout(fig, title, names[0] if len(names) == 1 else "value")
    if log:
        fig.update_yaxes(type="log")
    return fig


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

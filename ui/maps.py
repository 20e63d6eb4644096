"""The embedding page's pieces: overlays placed on a UMAP map, the plotly WebGL figure, selected-point images.

Compute stays in distill_core (embed, archetypes, runs); this module only gathers and draws.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import plotly.graph_objects as go
import torch

from distill_core import archetypes
from distill_core.data import ImageSet
from distill_core.embed import Embedding
from distill_core.runs import RunRecord, to_uint8

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd", "#e6550d", "#31a354",
           "#756bb1", "#636363")
SELECTOR_SYMBOLS = {"mean": "star", "kmeans": "x", "medoids": "square", "herding": "triangle-up",
                    "kcenter": "triangle-down", "facility": "pentagon"}
RUN_SYMBOLS = ("diamond", "cross", "hexagram", "star-triangle-up", "hourglass", "bowtie", "circle-cross",
               "square-x")
OVERLAY_LABELS = {"mean": "class means", "kmeans": "k-means centroids", "medoids": "medoids",
                  "herding": "herding picks", "kcenter": "k-center picks", "facility": "facility-location picks"}
MAX_TRACE_SNAPSHOTS = 16


def class_color(c: int) -> str:
    return PALETTE[int(c) % len(PALETTE)]


@dataclass
class Overlay:
    """A set of images placed on the map, drawn with one marker shape."""

    name: str
    symbol: str
    images: torch.Tensor
    labels: np.ndarray
    coords: np.ndarray
    captions: list[str] = field(default_factory=list)


@dataclass
class Trajectory:
    """Paths of synthetic images through the snapshots of a run: coords T×K×2 at `steps`; column k is image
    `image_ids[k]` (1-based, within its class) of class `labels[k]`."""

    name: str
    steps: list[int]
    labels: np.ndarray
    coords: np.ndarray
    image_ids: list[int] = field(default_factory=list)

    def label(self, k: int, class_names: Sequence[str]) -> str:
        """The legend label of column k, e.g. 'class 3 · image 2'."""
        image = self.image_ids[k] if k < len(self.image_ids) else k + 1
        return f"class {class_names[int(self.labels[k])]} · image {image}"


def prototype_overlay(emb: Embedding, ds: ImageSet, name: str, ipc: int) -> tuple[Overlay | None, str]:
    """Class means or a selector's picks placed on the map; (None, why) when the selector is unavailable."""
    if name == "mean":
        images, labels = archetypes.class_means(ds), np.arange(ds.num_classes)
    else:
        summary, why = archetypes.prototype_summary(ds, name, ipc)
        if summary is None:
            return None, why
        images, labels = summary.images, summary.hard_labels.numpy()
    captions = [f"{OVERLAY_LABELS.get(name, name)} · class {ds.class_names[int(c)]}" for c in labels]
    return Overlay(OVERLAY_LABELS.get(name, name), SELECTOR_SYMBOLS.get(name, "circle-open"), images,
                   np.asarray(labels), emb.transform(images), captions), ""


def run_overlay(emb: Embedding, record: RunRecord, symbol: str) -> Overlay:
    s = record.summary
    labels = s.hard_labels.numpy()
    name = f"{s.method} IPC {s.ipc} · {record.name}"
    captions = [f"{s.method} · {record.name} · class {s.class_names[int(c)]} #{i}" for i, c in enumerate(labels)]
    return Overlay(name, symbol, s.images, labels, emb.transform(s.images), captions)


def run_trajectory(emb: Embedding, record: RunRecord, per_class: int = 1, classes: Sequence[int] | None = None,
                   most_snapshots: int = MAX_TRACE_SNAPSHOTS) -> Trajectory | None:
    """The paths of the first `per_class` synthetic images of each chosen class (all classes when `classes` is
    None) through the run's snapshots; None when the run has no snapshots or none of the chosen classes."""
    snaps = record.snapshots
    if not snaps or len(snaps.get("steps", [])) < 2:
        return None
    steps = snaps["steps"].tolist()
    pick_t = np.unique(np.linspace(0, len(steps) - 1, min(most_snapshots, len(steps))).round().astype(int))
    labels = record.summary.hard_labels.numpy()
    wanted = np.unique(labels) if classes is None else [c for c in np.unique(labels) if int(c) in set(classes)]
    keep, ids = [], []
    for c in wanted:
        cols = np.flatnonzero(labels == c)[:max(1, int(per_class))]
        keep += cols.tolist()
        ids += list(range(1, len(cols) + 1))
    if not keep:
        return None
    keep_t = torch.as_tensor(keep)
    images = snaps["images"][torch.as_tensor(pick_t)][:, keep_t].float()  # T×K×C×H×W
    t, k = images.shape[:2]
    coords = emb.transform(images.reshape(t * k, *images.shape[2:])).reshape(t, k, 2)
    return Trajectory(record.name, [steps[i] for i in pick_t], labels[keep], coords, ids)


REAL_STYLE = dict(size=6.0, opacity=0.7)      # real points: visible under the overlays, which sit on top
OVERLAY_STYLE = dict(size=12, opacity=0.9, line_width=1.2)


def map_figure(emb: Embedding, class_names: Sequence[str], overlays: Sequence[Overlay] = (),
               trajectories: Sequence[Trajectory] = (), animate: bool = False,
               point_size: float = REAL_STYLE["size"], height: int = 680) -> go.Figure:
    """Real points coloured by class (one Scattergl trace per class), then trajectories (one line per traced
    image, labelled 'class c · image j' and grouped per run in the legend, so each can be hidden or shown), then
    overlays on top with a marker shape per method. The legend sits below the plot, the animation controls above.
    customdata = [group, index]: group 0 is the real data (index = training-set index), group g ≥ 1 is
    overlays[g - 1]; trajectory points carry none (a selection ignores them)."""
    fig = go.Figure()
    xy = emb.coords.astype(np.float32)
    for c in np.unique(emb.labels):
        m = emb.labels == c
        idx = emb.indices[m]
        fig.add_trace(go.Scattergl(
            x=xy[m, 0], y=xy[m, 1], mode="markers", name=str(class_names[int(c)]), legendgroup="real",
            legendgrouptitle_text="real images" if c == emb.labels.min() else None,
            marker=dict(size=point_size, color=class_color(c), opacity=REAL_STYLE["opacity"]),
            customdata=np.stack([np.zeros_like(idx), idx], axis=1).tolist(),  # plain lists: echoed on selection
            hovertemplate=f"class {class_names[int(c)]}<br>train #%{{customdata[1]}}<extra></extra>"))
    for tr in trajectories:
        n_t = len(tr.steps)
        for k in range(tr.coords.shape[1]):
            label = tr.label(k, class_names)
            fig.add_trace(go.Scattergl(
                x=tr.coords[:, k, 0], y=tr.coords[:, k, 1], mode="lines+markers", name=label,
                legendgroup=f"tr-{tr.name}", legendgrouptitle_text=f"paths · {tr.name}" if k == 0 else None,
                line=dict(color=class_color(tr.labels[k]), width=2),
                marker=dict(size=[4] * (n_t - 1) + [9], color=class_color(tr.labels[k]),
                            symbol=["circle"] * (n_t - 1) + ["circle-open"]),
                text=[f"{label} · step {s}" for s in tr.steps], hovertemplate="%{text}<extra></extra>"))
    for g, ov in enumerate(overlays, start=1):
        fig.add_trace(go.Scattergl(
            x=ov.coords[:, 0].astype(np.float32), y=ov.coords[:, 1].astype(np.float32), mode="markers",
            name=ov.name, legendgroup=f"ov{g}",
            marker=dict(size=OVERLAY_STYLE["size"], symbol=ov.symbol, color=[class_color(c) for c in ov.labels],
                        opacity=OVERLAY_STYLE["opacity"], line=dict(width=OVERLAY_STYLE["line_width"],
                                                                     color="black")),
            customdata=np.stack([np.full(len(ov.labels), g), np.arange(len(ov.labels))], axis=1).tolist(),
            text=ov.captions, hovertemplate="%{text}<extra></extra>"))
    top = 30
    if animate and trajectories:
        _add_animation(fig, trajectories)
        top = 90
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=top, b=10), dragmode="select",
                      legend=dict(orientation="h", x=0, xanchor="left", y=-0.02, yanchor="top",
                                  itemsizing="constant", groupclick="toggleitem", entrywidth=0),
                      uirevision="map",
                      xaxis=dict(showticklabels=False, title=None), yaxis=dict(showticklabels=False, title=None))
    return fig


def _add_animation(fig: go.Figure, trajectories: Sequence[Trajectory]) -> None:
    """One moving marker per traced image, a frame per snapshot (of the first run when several are traced)."""
    tr = trajectories[0]
    colors = [class_color(c) for c in tr.labels]
    fig.add_trace(go.Scatter(x=tr.coords[0, :, 0], y=tr.coords[0, :, 1], mode="markers",
                             marker=dict(size=14, color=colors, symbol="circle", line=dict(width=2, color="black")),
                             name=f"step · {tr.name}", hoverinfo="skip"))
    moving = len(fig.data) - 1
    fig.frames = [go.Frame(data=[go.Scatter(x=tr.coords[t, :, 0], y=tr.coords[t, :, 1])], traces=[moving],
                           name=str(step)) for t, step in enumerate(tr.steps)]
    fig.update_layout(
        updatemenus=[dict(type="buttons", showactive=False, x=0, y=1.01, xanchor="left", yanchor="bottom",
                          buttons=[dict(label="▶ Play", method="animate",
                                        args=[None, dict(frame=dict(duration=400, redraw=True), fromcurrent=True,
                                                         transition=dict(duration=0))]),
                                   dict(label="❚❚ Pause", method="animate",
                                        args=[[None], dict(mode="immediate", frame=dict(duration=0))])])],
        sliders=[dict(x=0.15, len=0.85, y=1.01, yanchor="bottom", pad=dict(t=0, b=0),
                      currentvalue=dict(prefix="step "),
                      steps=[dict(label=str(step), method="animate",
                                  args=[[str(step)], dict(mode="immediate", frame=dict(duration=0, redraw=True))])
                             for step in tr.steps])])


def selected_points(event: Any) -> list[tuple[int, int]]:
    """(group, index) of each point selected in the chart (clicked, boxed or lassoed)."""
    try:
        points = event["selection"]["points"]
    except (KeyError, TypeError):
        try:
            points = event.selection.points
        except AttributeError:
            return []
    out = []
    for p in points or []:
        cd = p.get("customdata") if isinstance(p, dict) else None
        if isinstance(cd, (list, tuple)) and len(cd) >= 2:
            try:
                out.append((int(cd[0]), int(cd[1])))
            except (TypeError, ValueError):
                continue
    return list(dict.fromkeys(out))


def selected_images(points: Sequence[tuple[int, int]], ds: ImageSet, overlays: Sequence[Overlay],
                    most: int = 24) -> list[tuple[torch.Tensor, str]]:
    """Images and captions of selected points (real training images or overlay images)."""
    out = []
    for group, i in points[:most]:
        if group == 0 and 0 <= i < len(ds.y_train):
            out.append((ds.x_train[i], f"real · class {ds.class_names[int(ds.y_train[i])]} · #{i}"))
        elif 1 <= group <= len(overlays) and 0 <= i < len(overlays[group - 1].images):
            ov = overlays[group - 1]
            out.append((ov.images[i], ov.captions[i] if i < len(ov.captions) else ov.name))
    return out


def thumbnail(image: torch.Tensor, tile: int = 72) -> np.ndarray:
    """An H×W(×3) uint8 array enlarged (nearest neighbour) to about `tile` pixels for display."""
    arr = to_uint8(image.unsqueeze(0))[0].numpy()
    factor = max(1, tile // max(1, arr.shape[0]))
    arr = arr.repeat(factor, axis=0).repeat(factor, axis=1)
    return arr[..., 0] if arr.shape[-1] == 1 else arr


def runs_for_dataset(rows: list[dict], dataset: str) -> list[dict]:
    """Readable run folders of one dataset (from runs.list_runs)."""
    return [r for r in rows if not r.get("error") and r.get("dataset") == dataset and Path(r["path"]).is_dir()]

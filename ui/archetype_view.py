"""The archetypes page's pieces: rows of images with captions, difference pictures, stimulus lists."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import streamlit as st
import torch

from distill_core import archetypes, stimuli
from distill_core.data import ImageSet
from distill_core.runs import RunRecord
from ui.maps import thumbnail


def image_row(images: Sequence[torch.Tensor] | torch.Tensor, captions: Sequence[str], per_row: int = 8,
              tile: int = 72) -> None:
    """Images left to right (wrapping after `per_row`), each with its caption."""
    items = list(zip(list(images), captions))
    for start in range(0, len(items), per_row):
        cols = st.columns(per_row)
        for col, (img, cap) in zip(cols, items[start:start + per_row]):
            col.image(thumbnail(img, tile), caption=cap)


def diff_picture(diff: torch.Tensor, tile: int = 72) -> np.ndarray:
    """An RGB uint8 picture of image − class mean: red where brighter than the mean, blue where darker."""
    d = diff.detach().float().mean(0)  # over channels
    scale = float(d.abs().max()) or 1.0
    d = (d / scale).clamp(-1, 1).numpy()
    rgb = np.ones(d.shape + (3,), dtype=np.float32)
    pos, neg = np.clip(d, 0, 1), np.clip(-d, 0, 1)
    rgb[..., 1] -= pos + neg
    rgb[..., 2] -= pos
    rgb[..., 0] -= neg
    arr = (np.clip(rgb, 0, 1) * 255).astype(np.uint8)
    factor = max(1, tile // max(1, arr.shape[0]))
    return arr.repeat(factor, axis=0).repeat(factor, axis=1)


def class_images(record: RunRecord, c: int) -> torch.Tensor:
    s = record.summary
    return s.images[s.hard_labels == c]


def _scored(ds: ImageSet, items: list[stimuli.Stimulus], space: str, metric: str, normalize: bool
            ) -> list[stimuli.Stimulus]:
    """Fill typicality (score against the class centroid), its space and metric, and rank/percentile in class."""
    if not items:
        return items
    images = torch.stack([s.image for s in items])
    labels = torch.tensor([s.class_index for s in items])
    scores = archetypes.score_images(ds, images, labels, space, metric, normalize)
    ranks, pct = archetypes.rank_in_class(ds, scores, labels, space, metric, normalize)
    for s, sc, r, p in zip(items, scores, ranks, pct):
        s.typicality, s.typicality_rank, s.typicality_percentile = float(sc), int(r), float(p)
        s.typicality_space, s.typicality_metric = archetypes.space_label(space, normalize), metric
    return items


def stimulus_list(ds: ImageSet, records: Sequence[RunRecord], prototypes: Sequence[str], ipc: int,
                  typical_k: int, space: str, metric: str, normalize: bool = True) -> list[stimuli.Stimulus]:
    """Distilled images of the runs, prototype images and the most/least typical real images of every class,
    each with its typicality (similarity to its class centroid in `space`), rank and percentile in its class."""
    out: list[stimuli.Stimulus] = []
    for rec in records:
        s = rec.summary
        cfg = rec.config or {}
        settings = cfg.get("method_config") if isinstance(cfg.get("method_config"), dict) else {}
        items = stimuli.stimuli_from_summary(s, run_id=rec.name, dataset=ds, settings=settings,
                                             seed=cfg.get("seed") if isinstance(cfg.get("seed"), int) else None)
        steps = cfg.get("steps")
        for item in items:
            if item.steps is None and isinstance(steps, int):
                item.steps = steps
        out += _scored(ds, items, space, metric, normalize)
    for name in prototypes:
        if name == "mean":
            images = archetypes.class_means(ds)
            items = [stimuli.Stimulus(images[c], str(ds.class_names[c]), c, "mean", stimuli.SOURCE_AVERAGED, 1,
                                      run_id=f"{ds.name}:mean", source_detail="class mean", dataset=ds.name, index=c)
                     for c in range(ds.num_classes)]
            out += _scored(ds, items, space, metric, normalize)
            continue
        summary, _ = archetypes.prototype_summary(ds, name, ipc)
        if summary is not None:
            items = stimuli.stimuli_from_summary(summary, run_id=f"{ds.name}:{name}-ipc{summary.ipc}", dataset=ds)
            out += _scored(ds, items, space, metric, normalize)
    if typical_k > 0:
        for c in range(ds.num_classes):
            table = archetypes.typicality(ds, c, space, metric=metric, normalize=normalize)
            for which, (idx, _) in (("most typical", table.most(typical_k)), ("least typical", table.least(typical_k))):
                out += _scored(ds, stimuli.stimuli_from_real(ds, idx, source=which), space, metric, normalize)
    return out

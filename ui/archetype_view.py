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


def stimulus_list(ds: ImageSet, records: Sequence[RunRecord], prototypes: Sequence[str], ipc: int,
                  typical_k: int, space: str, metric: str) -> list[stimuli.Stimulus]:
    """Distilled images of the runs, prototype images and the most/least typical real images of every class,
    each with a typicality score (similarity to its class centroid in `space`)."""
    out: list[stimuli.Stimulus] = []
    for rec in records:
        s = rec.summary
        scores = archetypes.score_images(ds, s.images, s.hard_labels, space, metric)
        out += stimuli.stimuli_from_summary(s, run_id=rec.name, typicality=scores)
    for name in prototypes:
        if name == "mean":
            images = archetypes.class_means(ds)
            labels = torch.arange(ds.num_classes)
            scores = archetypes.score_images(ds, images, labels, space, metric)
            out += [stimuli.Stimulus(images[c], str(ds.class_names[c]), c, "mean", "class mean", 1,
                                     typicality=float(scores[c])) for c in range(ds.num_classes)]
            continue
        summary, _ = archetypes.prototype_summary(ds, name, ipc)
        if summary is not None:
            scores = archetypes.score_images(ds, summary.images, summary.hard_labels, space, metric)
            out += stimuli.stimuli_from_summary(summary, run_id=f"{name}-ipc{summary.ipc}", typicality=scores)
    if typical_k > 0:
        for c in range(ds.num_classes):
            table = archetypes.typicality(ds, c, space, metric=metric)
            idx, sc = table.most(typical_k)
            out += stimuli.stimuli_from_real(ds, idx, sc, source="most typical")
            idx, sc = table.least(typical_k)
            out += stimuli.stimuli_from_real(ds, idx, sc, source="least typical")
    return out

"""Per-class grids (one row per class, its name on the left, IPC columns) drawn with st.image."""
from __future__ import annotations

import torch

import streamlit as st

from distill_core.runs import render_grid

MAX_GRID_WIDTH = 1000  # pixels: tiles shrink so a wide grid still fits the page
PRESENT_WIDTH = 1300   # presentation mode: the grid fills the page's width
PRESENT_HEIGHT = 1400  # ... and a tall grid (many classes) stays within about a screen and a half


def display_tile(image_side: int, columns: int, present: bool = False, rows: int = 10) -> int:
    """Tile size for the screen: small images are enlarged (8 px digits -> 40 px), wide grids shrink. In
    presentation mode tiles grow (up to 160 px) to fill PRESENT_WIDTH."""
    if present:
        fit = min((PRESENT_WIDTH - 70) // max(1, columns), PRESENT_HEIGHT // max(1, rows)) - 2
        return int(max(8, min(160, fit)))
    tile = max(image_side, min(64, image_side * 5))
    fit = (MAX_GRID_WIDTH - 70) // max(1, columns) - 2
    return int(max(8, min(tile, fit)))


def grid_picture(images: torch.Tensor, class_names: list[str], labels: torch.Tensor | None = None,
                 present: bool = False):
    """A PIL grid sized for the screen (nearest-neighbour enlargement of small images)."""
    if labels is None:
        columns = max(1, len(images) // max(1, len(class_names)))
    else:
        columns = int(torch.bincount(labels.cpu().long(), minlength=len(class_names)).max())
    tile = display_tile(int(images.shape[-1]), columns, present=present, rows=len(class_names))
    return render_grid(images.float(), class_names, labels, tile=tile)


def show_grid(images: torch.Tensor, class_names: list[str], labels: torch.Tensor | None = None,
              caption: str | None = None, present: bool = False) -> None:
    """Draw the grid (one row per class) with an optional caption; `present`: as large as the page allows."""
    st.image(grid_picture(images, class_names, labels, present=present), caption=caption)

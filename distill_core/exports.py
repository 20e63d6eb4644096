"""Exports as bytes, ready for a download button or a file: PNG grid, animated GIF of snapshots, zip of a run folder.

The grid is `runs.render_grid` (one row per class, its name on the left). GIF frames are that grid at each stored
snapshot with the step written underneath, scaled down when the grid is large so the file stays small.
"""
from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path
from typing import Sequence

import torch

from .errors import InvalidInputError, RunFormatError
from .runs import render_grid

GIF_MAX_FRAMES = 48
GIF_MAX_PIXELS = 900_000  # per frame; larger grids are scaled down


def grid_image(images: torch.Tensor, class_names: list[str], labels: torch.Tensor | None = None,
               tile: int | None = None):
    """The per-class grid as a PIL image (see runs.render_grid)."""
    if images is None or images.dim() != 4 or len(images) == 0:
        raise InvalidInputError("no images to draw")
    return render_grid(images.float(), class_names, labels, tile=tile)


def png_bytes(image) -> bytes:
    """A PIL image encoded as PNG."""
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def png_grid(images: torch.Tensor, class_names: list[str], labels: torch.Tensor | None = None,
             tile: int | None = None) -> bytes:
    """The per-class grid of `images` as PNG bytes."""
    return png_bytes(grid_image(images, class_names, labels, tile))


def _pick_frames(n: int, most: int) -> list[int]:
    if n <= most:
        return list(range(n))
    picks = sorted({round(i * (n - 1) / (most - 1)) for i in range(most)})
    return picks


def gif_evolution(snapshots: Sequence[torch.Tensor] | torch.Tensor, steps: Sequence[int], class_names: list[str],
                  labels: torch.Tensor | None = None, frame_ms: int = 250, last_frame_ms: int = 1500,
                  max_frames: int = GIF_MAX_FRAMES) -> bytes:
    """An animated GIF (looping) of the grid at each snapshot, the step written under each frame."""
    from PIL import Image, ImageDraw

    n = len(snapshots)
    if n == 0 or len(steps) != n:
        raise InvalidInputError("no snapshots to animate" if n == 0 else "snapshots and steps differ in length")
    frames = []
    for i in _pick_frames(n, max(2, max_frames)):
        grid = grid_image(snapshots[i].float(), class_names, labels)
        scale = min(1.0, (GIF_MAX_PIXELS / (grid.width * grid.height)) ** 0.5)
        if scale < 1.0:
            grid = grid.resize((max(1, int(grid.width * scale)), max(1, int(grid.height * scale))), Image.BILINEAR)
        frame = Image.new("RGB", (grid.width, grid.height + 16), (255, 255, 255))
        frame.paste(grid, (0, 0))
        ImageDraw.Draw(frame).text((4, grid.height + 2), f"step {int(steps[i])}", fill=(20, 20, 20))
        frames.append(frame.convert("P", palette=Image.Palette.ADAPTIVE, colors=255))
    durations = [int(frame_ms)] * (len(frames) - 1) + [int(last_frame_ms)]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=durations, loop=0,
                   optimize=False, disposal=1)
    return buf.getvalue()


def zip_run_folder(path: str | os.PathLike) -> bytes:
    """A run folder as zip bytes; entries are stored under the folder's own name (FOLDER/config.json, ...)."""
    run_dir = Path(path)
    if not run_dir.is_dir() or not (run_dir / "config.json").is_file():
        raise RunFormatError(f"{run_dir} is not a run folder")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for f in sorted(run_dir.rglob("*")):
            if f.is_file() and not f.is_symlink():
                zf.write(f, f"{run_dir.name}/{f.relative_to(run_dir).as_posix()}")
    return buf.getvalue()

"""Draw the app's logo and favicon (run once: python assets/draw_logo.py). A 3×3 grid of tiles that sharpen
from noise (left) to a clean stroke (right) — archetypes emerging, one row per class."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

HERE = Path(__file__).resolve().parent
COLORS = [(37, 99, 235), (124, 58, 237), (219, 39, 119)]  # one hue per "class" row


def tile(size: int, row: int, col: int, rng: np.random.Generator) -> Image.Image:
    noise = rng.random((size, size))
    clean = np.zeros((size, size))
    yy, xx = np.mgrid[0:size, 0:size] / (size - 1)
    if row == 0:
        clean = (np.abs(np.hypot(xx - 0.5, yy - 0.5) - 0.3) < 0.1).astype(float)   # a ring
    elif row == 1:
        clean = (np.abs(xx - 0.5) < 0.11).astype(float)                               # a bar
    else:
        clean = (np.abs(xx - yy) < 0.13).astype(float)                                 # a diagonal
    w = col / 2
    mix = np.clip((1 - w) * noise * 0.9 + w * clean, 0, 1)
    c = np.array(COLORS[row], dtype=float)
    rgb = 255 - mix[..., None] * (255 - c)
    return Image.fromarray(rgb.astype(np.uint8), "RGB")


def logo(size: int) -> Image.Image:
    rng = np.random.default_rng(0)
    gap = max(1, size // 32)
    t = (size - 4 * gap) // 3
    img = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    ImageDraw.Draw(img).rounded_rectangle([0, 0, size - 1, size - 1], radius=size // 6, fill=(255, 255, 255, 255),
                                          outline=(203, 213, 225, 255), width=max(1, size // 64))
    for r in range(3):
        for c in range(3):
            img.paste(tile(t, r, c, rng), (gap + c * (t + gap), gap + r * (t + gap)))
    return img


def wordmark(height: int = 48) -> Image.Image:
    mark = logo(height)
    img = Image.new("RGBA", (height * 5, height), (0, 0, 0, 0))
    img.paste(mark, (0, 0), mark)
    draw = ImageDraw.Draw(img)
    try:
        from PIL import ImageFont
        font = ImageFont.load_default(size=int(height * 0.55))
    except TypeError:  # old Pillow without sized default fonts
        font = None
    draw.text((height + height // 4, height // 5), "distill-lab", fill=(30, 41, 59, 255), font=font)
    return img


if __name__ == "__main__":
    logo(64).save(HERE / "favicon.png", optimize=True)
    wordmark(48).save(HERE / "logo.png", optimize=True)

"""Builders for the bad-input corpus: every file is made by the tests themselves, in tmp_path, seeded.

Used by tests/test_bad_inputs.py (CLI and core) and the app-level tests (AppTest) so that the same bad inputs are
tried everywhere the app or the CLI takes them.
"""
from __future__ import annotations

import dataclasses
import io
import json
import os
import pickle
import sys
import zipfile
from pathlib import Path

import numpy as np

SEED = 1234


def rng(offset: int = 0) -> np.random.Generator:
    return np.random.default_rng(SEED + offset)


# ------------------------------------------------------------------------------------------- images

def pil_image(mode: str, size: int = 12, seed: int = 0):
    """A small seeded image in the given PIL mode (RGB, L, RGBA, LA, P, PA, I;16, I, F, 1, CMYK)."""
    from PIL import Image

    r = rng(seed)
    rgb = r.integers(0, 256, size=(size, size, 3), dtype=np.uint8)
    base = Image.fromarray(rgb, "RGB")
    if mode == "RGB":
        return base
    if mode == "L":
        return base.convert("L")
    if mode == "1":
        return base.convert("1")
    if mode == "RGBA":
        alpha = r.integers(0, 256, size=(size, size), dtype=np.uint8)
        img = base.convert("RGBA")
        img.putalpha(Image.fromarray(alpha, "L"))
        return img
    if mode == "LA":
        return pil_image("RGBA", size, seed).convert("LA")
    if mode == "P":
        return base.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    if mode == "P-transparent":
        img = base.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
        img.info["transparency"] = 0
        return img
    if mode == "I;16":
        arr = r.integers(0, 65536, size=(size, size), dtype=np.uint16)
        img = Image.fromarray(arr)  # mode inferred: I;16
        assert img.mode == "I;16", img.mode
        return img
    if mode == "I":
        arr = r.integers(-5000, 70000, size=(size, size)).astype(np.int32)
        return Image.fromarray(arr)  # mode I
    if mode == "F":
        arr = r.standard_normal((size, size)).astype(np.float32)
        return Image.fromarray(arr)  # mode F
    if mode == "CMYK":
        return base.convert("CMYK")
    raise ValueError(mode)


def save_image(path: Path, mode: str = "RGB", size: int = 12, seed: int = 0, fmt: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = pil_image(mode, size, seed)
    if mode == "P-transparent":
        img.save(path, format=fmt, transparency=0)
    else:
        img.save(path, format=fmt)
    return path


def png_bytes(mode: str = "RGB", size: int = 12, seed: int = 0) -> bytes:
    buf = io.BytesIO()
    pil_image(mode, size, seed).save(buf, format="PNG")
    return buf.getvalue()


def jpeg_bytes(size: int = 24, seed: int = 0) -> bytes:
    buf = io.BytesIO()
    pil_image("RGB", size, seed).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def image_folder(root: Path, classes=("cat", "dog"), per_class: int = 3, mode: str = "RGB", size: int = 12,
                 ext: str = ".png") -> Path:
    """A valid dataset folder: root/CLASS/imgN.ext."""
    k = 0
    for c in classes:
        for i in range(per_class):
            save_image(root / c / f"img{i}{ext}", mode, size, seed=k)
            k += 1
    return root


def big_canvas_png(width: int, height: int) -> bytes:
    """A PNG whose header claims width×height pixels but whose file is tiny (a decompression bomb)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new("L", (width, height), 0).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


# --------------------------------------------------------------------------------------------- zips

def zip_of_folder(folder: Path, dest: Path, prefix: str = "") -> Path:
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in sorted(folder.rglob("*")):
            if f.is_file():
                zf.write(f, prefix + f.relative_to(folder).as_posix())
    return dest


def image_zip_bytes(classes=("cat", "dog"), per_class: int = 3, size: int = 12, prefix: str = "") -> bytes:
    buf = io.BytesIO()
    k = 0
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for c in classes:
            for i in range(per_class):
                zf.writestr(f"{prefix}{c}/img{i}.png", png_bytes("RGB", size, seed=k))
                k += 1
    return buf.getvalue()


def empty_zip_bytes() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w"):
        pass
    return buf.getvalue()


def zip_bomb_bytes(unpacked_mb: int = 64) -> bytes:
    """A small zip whose members inflate to `unpacked_mb` MiB of zeros (deflate ratio ~1000:1)."""
    buf = io.BytesIO()
    chunk = b"\0" * (1 << 20)
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for c in ("a", "b"):
            zf.writestr(f"{c}/img0.png", png_bytes(seed=1))
            zf.writestr(f"{c}/img1.png", png_bytes(seed=2))
        with zf.open("a/bomb.png", "w", force_zip64=True) as fh:
            for _ in range(unpacked_mb):
                fh.write(chunk)
    return buf.getvalue()


def zip_with_member(name: str, data: bytes | None = None, valid: bool = True) -> bytes:
    """A valid two-class image zip plus one extra member with a hostile name (zip-slip, absolute path)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        if valid:
            for c in ("a", "b"):
                for i in range(3):
                    zf.writestr(f"{c}/img{i}.png", png_bytes(seed=i + (10 if c == "b" else 0)))
        info = zipfile.ZipInfo(name)
        zf.writestr(info, data if data is not None else png_bytes(seed=99))
    return buf.getvalue()


def zip_with_symlink(link_name: str = "a/link.png", target: str = "/etc/passwd") -> bytes:
    """A valid image zip plus one member stored as a Unix symlink (external_attr says S_IFLNK)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for c in ("a", "b"):
            for i in range(3):
                zf.writestr(f"{c}/img{i}.png", png_bytes(seed=i + (10 if c == "b" else 0)))
        info = zipfile.ZipInfo(link_name)
        info.create_system = 3
        info.external_attr = (0o120777 << 16)
        zf.writestr(info, target)
    return buf.getvalue()


# ------------------------------------------------------------------------------------ run folders

class PickleBomb:
    """Unpickling this object would create `marker` (via builtins.open): proof that code ran."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def evil_pt(path: Path, marker: Path, as_torch: bool = True) -> Path:
    """A .pt that carries a pickled object whose loading would create `marker`."""
    payload = {"images": PickleBomb(marker), "labels": PickleBomb(marker)}
    if as_torch:
        import torch

        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload))
    return path


def good_run(path: Path, ipc: int = 1) -> Path:
    """A valid run folder (random selection on digits, seed 0)."""
    from distill_core.data import load_dataset
    from distill_core.methods import create_method
    from distill_core.pipeline import DistillRun
    from distill_core.runs import save_run

    run = DistillRun(create_method("random", load_dataset("digits"), ipc, seed=0), steps=1)
    summary = run.run()
    return save_run(path, summary, {"steps": 1, "seed": 0}, run.metrics, run.snapshots.to_tensors())


def edit_config(run: Path, **changes) -> None:
    cfg = json.loads((run / "config.json").read_text())
    cfg.update(changes)
    (run / "config.json").write_text(json.dumps(cfg))


# ------------------------------------------------------------------------------------------ limits

def patch_limits(monkeypatch, **changes):
    """Replace LIMITS everywhere it was imported (distill_core.*, ui.*, pages) with a copy carrying `changes`."""
    import distill_core.limits as lim

    new = dataclasses.replace(lim.LIMITS, **changes)
    for name, mod in list(sys.modules.items()):
        if mod is None:
            continue
        if name == "distill_core" or name.startswith(("distill_core.", "ui", "app")):
            if isinstance(getattr(mod, "LIMITS", None), lim.Limits):
                monkeypatch.setattr(mod, "LIMITS", new)
    return new


def clean_error(text: str) -> str:
    """Assert `text` (a stderr) is one line starting with 'error:' and no traceback; return that line."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    assert "Traceback" not in text, text
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{text}"
    assert lines[0].startswith("error:"), text
    return lines[0]


__all__ = [n for n in dir() if not n.startswith("_") and n not in ("annotations", "os")]

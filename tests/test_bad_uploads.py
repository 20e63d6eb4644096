"""The bad-input corpus for uploaded zips, through `distill_core.uploads` (what the app's upload widget calls).

A clean answer is a `DistillError` with one sentence that says what is wrong — or, for inputs that must be
accepted (symlinks and junk skipped, a wrapping folder), a dataset. Every case also checks that nothing was
written outside the extraction folder and that no temporary folder is left behind.
"""
from __future__ import annotations

import dataclasses
import io
import re
import struct
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

import bad_corpus as bc
from distill_core import uploads
from distill_core.errors import DistillError
from distill_core.limits import LIMITS

OK = None


@dataclass
class ZipCase:
    id: str
    make: Callable[[Path], bytes]
    expect: str | None
    limits: dict | None = None
    image_size: int = 8


def _zip(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _declared_bomb() -> bytes:
    """A tiny zip whose central directory declares a ~4 GB member: must be refused before extracting."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for c in ("a", "b"):
            for i in range(3):
                zf.writestr(f"{c}/img{i}.png", bc.png_bytes(seed=i))
        zf.writestr("a/huge.png", b"\0" * 1024)
    data = bytearray(buf.getvalue())
    cd = data.rfind(b"PK\x01\x02")  # the last central-directory entry is a/huge.png
    struct.pack_into("<I", data, cd + 24, 0xFFFFFFF0)  # uncompressed size
    return bytes(data)


def _lying_header() -> bytes:
    """A member whose headers declare 100 bytes but which inflates to 8 MB (caught while extracting)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for c in ("a", "b"):
            for i in range(3):
                zf.writestr(f"{c}/img{i}.png", bc.png_bytes(seed=i))
        zf.writestr("a/liar.png", b"\0" * (8 << 20))
    data = bytearray(buf.getvalue())
    cd = data.rfind(b"PK\x01\x02")
    struct.pack_into("<I", data, cd + 24, 100)
    lh = data.rfind(b"PK\x03\x04")
    struct.pack_into("<I", data, lh + 22, 100)
    return bytes(data)


def _encrypted_member() -> bytes:
    data = bytearray(bc.image_zip_bytes())
    cd = data.find(b"PK\x01\x02")
    flags = struct.unpack_from("<H", data, cd + 8)[0]
    struct.pack_into("<H", data, cd + 8, flags | 0x1)
    return bytes(data)


def _oversized_upload(tmp: Path) -> bytes:
    import numpy as np

    noise = np.random.default_rng(0).integers(0, 256, 3 << 20, dtype=np.uint8).tobytes()  # incompressible
    return _zip({"a/img0.png": bc.png_bytes(seed=0), "a/img1.png": bc.png_bytes(seed=1),
                 "b/img0.png": bc.png_bytes(seed=2), "b/img1.png": bc.png_bytes(seed=3), "a/noise.bin": noise})


def _mixed_modes_zip() -> bytes:
    files = {}
    for k, (mode, ext, fmt) in enumerate([("RGBA", "png", "PNG"), ("P", "png", "PNG"), ("I;16", "png", "PNG"),
                                          ("CMYK", "jpg", "JPEG"), ("LA", "png", "PNG"), ("1", "bmp", "BMP")]):
        for c in ("a", "b"):
            out = io.BytesIO()
            bc.pil_image(mode, 12, seed=k).save(out, format=fmt)
            files[f"{c}/{k}.{ext}"] = out.getvalue()
    return _zip(files)


_good = {f"{c}/img{i}.png": bc.png_bytes(seed=i + 10 * k) for k, c in enumerate(("a", "b")) for i in range(3)}

ZIP_CASES = [
    ZipCase("empty-bytes", lambda t: b"", r"the zip file is empty"),
    ZipCase("empty-zip", lambda t: bc.empty_zip_bytes(), r"the zip file is empty"),
    ZipCase("not-a-zip-png", lambda t: bc.png_bytes(), r"not a zip archive"),
    ZipCase("not-a-zip-text", lambda t: b"hello\n" * 100, r"not a zip archive"),
    ZipCase("truncated-zip", lambda t: bc.image_zip_bytes()[:700], r"not a zip archive|damaged|cannot be read"),
    ZipCase("only-folders", lambda t: _zip({"a/": b"", "b/": b""}), r"holds no files"),
    ZipCase("no-images", lambda t: _zip({"a/x.txt": b"1", "b/y.csv": b"2"}), r"holds no images"),
    ZipCase("images-not-in-class-folders", lambda t: _zip({f"img{i}.png": bc.png_bytes(seed=i) for i in range(4)}),
            r"not in class folders"),
    ZipCase("one-class", lambda t: _zip({f"only/img{i}.png": bc.png_bytes(seed=i) for i in range(4)}),
            r"at least 2 classes"),
    ZipCase("corrupt-images", lambda t: _zip({f"{c}/img{i}.png": bytes([i]) * 300 for c in "ab" for i in range(3)}),
            r"no readable images"),
    ZipCase("truncated-images", lambda t: _zip({f"{c}/img{i}.png": bc.png_bytes(size=40, seed=i)[:100]
                                               for c in "ab" for i in range(3)}), r"no readable images"),
    ZipCase("tiny-images", lambda t: _zip({f"{c}/img{i}.png": bc.png_bytes(size=2, seed=i)
                                          for c in "ab" for i in range(3)}), r"smaller than"),
    ZipCase("decompression-bomb-images", lambda t: _zip({f"{c}/img{i}.png": bc.big_canvas_png(5000, 4000)
                                                        for c in "ab" for i in range(2)}), r"larger than the limit"),
    ZipCase("zip-slip-dotdot", lambda t: bc.zip_with_member("../evil.png"), r"leaves its folder"),
    ZipCase("zip-slip-nested", lambda t: bc.zip_with_member("a/../../evil.png"), r"leaves its folder"),
    ZipCase("zip-slip-backslash", lambda t: bc.zip_with_member("a\\..\\..\\evil.png"), r"leaves its folder"),
    ZipCase("absolute-path", lambda t: bc.zip_with_member(str(t / "abs-evil.png")), r"absolute path"),
    ZipCase("absolute-windows-path", lambda t: bc.zip_with_member("C:/evil.png"), r"absolute path"),
    ZipCase("zip-bomb-declared", lambda t: _declared_bomb(), r"would unpack to more than 1024 MB"),
    ZipCase("zip-bomb-real", lambda t: bc.zip_bomb_bytes(64), r"would unpack to more than 16 MB",
            limits={"unpacked_max_mb": 16}),
    ZipCase("lying-header", lambda t: _lying_header(), r"larger than its headers|cannot be read"),
    ZipCase("encrypted-member", lambda t: _encrypted_member(), r"encrypted"),
    ZipCase("too-many-files", lambda t: bc.image_zip_bytes(per_class=4), r"more than 5 files",
            limits={"max_files": 5}),
    ZipCase("too-many-classes", lambda t: bc.image_zip_bytes(classes=[f"c{i}" for i in range(5)], per_class=2),
            r"5 class folders; the limit is 3", limits={"max_classes": 3}),
    ZipCase("upload-too-large", _oversized_upload, r"the limit is 1 MB", limits={"upload_max_mb": 1}),
    ZipCase("image-size-too-small", lambda t: bc.image_zip_bytes(), r"image size must be", image_size=2),
    ZipCase("long-member-name", lambda t: _zip({**_good, "a/" + "x" * 300 + ".png": bc.png_bytes()}),
            r"name|cannot|too long"),
    ZipCase("long-folder-name", lambda t: _zip({**_good, "y" * 300 + "/img.png": bc.png_bytes()}),
            r"name|cannot|too long"),
    # accepted: links and junk are skipped, a wrapping folder is looked through, odd modes load
    ZipCase("symlink-member", lambda t: bc.zip_with_symlink("a/link.png", "/etc/passwd"), OK),
    ZipCase("symlink-class-folder", lambda t: bc.zip_with_symlink("c", "/etc"), OK),
    ZipCase("macos-junk-and-hidden", lambda t: _zip({**_good, "__MACOSX/a/._img0.png": b"junk",
                                                     "a/.DS_Store": b"junk", ".hidden/x.png": b"junk"}), OK),
    ZipCase("wrapping-folder", lambda t: bc.image_zip_bytes(prefix="my-images/"), OK),
    ZipCase("mixed-modes", lambda t: _mixed_modes_zip(), OK),
    ZipCase("non-images-among-images", lambda t: _zip({**_good, "a/readme.txt": b"hi", "b/nested.zip": b"PK"}), OK),
]


def _leftover_upload_dirs() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob("distill-upload-*")}


@pytest.mark.parametrize("case", ZIP_CASES, ids=[c.id for c in ZIP_CASES])
def test_bad_zip_is_answered_cleanly(case: ZipCase, tmp_path, monkeypatch):
    data = case.make(tmp_path)
    limits = LIMITS
    if case.limits:
        limits = bc.patch_limits(monkeypatch, **case.limits)
    before = _leftover_upload_dirs()
    escaped = [tmp_path / "abs-evil.png", tmp_path.parent / "evil.png", Path(tempfile.gettempdir()) / "evil.png"]
    try:
        if case.expect is OK:
            ds = uploads.dataset_from_zip(data, image_size=case.image_size, name=case.id, limits=limits)
            assert ds.num_classes >= 2 and len(ds.y_train) >= 2
            assert ds.name.startswith("upload:")
        else:
            with pytest.raises(DistillError) as info:
                uploads.dataset_from_zip(data, image_size=case.image_size, name=case.id, limits=limits)
            message = str(info.value)
            assert re.search(case.expect, message), message
            assert "\n" not in message and "Traceback" not in message
    finally:
        assert _leftover_upload_dirs() <= before, "a temporary extraction folder was left behind"
        for p in escaped:
            assert not p.exists(), f"the zip wrote outside its folder: {p}"


def test_symlinks_in_a_zip_are_never_followed(tmp_path):
    ds = uploads.dataset_from_zip(bc.zip_with_symlink("a/link.png", "/etc/passwd"), image_size=8)
    assert len(ds.y_train) + len(ds.y_val) + len(ds.y_test) == 6  # the six real images; the link was not read


def test_the_size_cap_is_checked_before_anything_is_extracted(tmp_path, monkeypatch):
    dest = tmp_path / "dest"
    dest.mkdir()
    declared, real_bomb = _declared_bomb(), bc.zip_bomb_bytes(64)
    opened = []
    real_open = zipfile.ZipFile.open

    def spy(self, name, *args, **kwargs):
        opened.append(name)
        return real_open(self, name, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "open", spy)
    with pytest.raises(DistillError, match="would unpack to more than"):
        uploads.safe_extract(declared, dest)
    small = dataclasses.replace(LIMITS, unpacked_max_mb=16)
    with pytest.raises(DistillError, match="would unpack to more than 16 MB"):
        uploads.safe_extract(real_bomb, dest, small)
    assert opened == [] and list(dest.iterdir()) == []  # no member was read, nothing was written


def test_zip_slip_refuses_the_whole_zip_before_writing(tmp_path):
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(DistillError, match="leaves its folder"):
        uploads.safe_extract(bc.zip_with_member("../../evil.png"), dest)
    assert list(dest.iterdir()) == [] and not (tmp_path / "evil.png").exists()


def test_corpus_size():
    assert len(ZIP_CASES) >= 30 and len({c.id for c in ZIP_CASES}) == len(ZIP_CASES)

"""The user's own images: a zip of class folders (or a folder on the server) -> a validated, resized, split ImageSet.

A zip is checked *before* anything is extracted: its size, the total uncompressed size and the file count against
`limits.LIMITS` (zip bombs); a member with an absolute path or a '..' component refuses the whole zip (zip slip);
symlinks, folders, `__MACOSX/` and hidden files are skipped; encrypted members are refused. While extracting, no
member may write more bytes than its header declared. A single top-level folder wrapping the class folders is
looked through. Images are then read by `data.load_image_folder` from a temporary folder that is removed after.
Every problem is a `DistillError` with one sentence.
"""
from __future__ import annotations

import io
import os
import shutil
import stat
import tempfile
import zipfile
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from .data import IMAGE_EXTENSIONS, ImageSet, load_image_folder
from .errors import InvalidInputError
from .limits import LIMITS, Limits

UPLOAD_PREFIX = "upload:"
_CHUNK = 1 << 16


def _skipped_name(parts: tuple[str, ...]) -> bool:
    """macOS resource forks and hidden files or folders are not the user's images."""
    return any(p == "__MACOSX" or p.startswith(".") for p in parts)


def _is_symlink(info: zipfile.ZipInfo) -> bool:
    return info.create_system == 3 and stat.S_ISLNK(info.external_attr >> 16)


def _member_parts(info: zipfile.ZipInfo) -> tuple[str, ...]:
    """The path parts of a member; an absolute path or a '..' part is refused (zip slip)."""
    raw = info.filename.replace("\\", "/")
    if raw.startswith("/") or (len(raw) > 1 and raw[1] == ":") or raw.startswith("//"):
        raise InvalidInputError(f"the zip holds a file with an absolute path ({info.filename!r}); it was refused")
    parts = tuple(p for p in PurePosixPath(raw).parts if p not in ("", "."))
    if ".." in parts:
        raise InvalidInputError(f"the zip holds a path that leaves its folder ({info.filename!r}); it was refused")
    return parts


def plan_extraction(zf: zipfile.ZipFile, limits: Limits | None = None) -> list[tuple[zipfile.ZipInfo, tuple[str, ...]]]:
    """The members to extract with their safe relative paths, after every check that needs no extraction."""
    limits = limits or LIMITS  # read at call time, so the one LIMITS object governs (and tests can patch it)
    members = zf.infolist()
    if not members:
        raise InvalidInputError("the zip file is empty")
    plan = []
    total = 0
    for info in members:
        parts = _member_parts(info)  # checked for every member, even skipped ones
        if info.is_dir() or not parts or _is_symlink(info) or _skipped_name(parts):
            continue
        if info.flag_bits & 0x1:
            raise InvalidInputError(f"the zip holds an encrypted file ({info.filename!r}); remove the password")
        plan.append((info, parts))
        total += int(info.file_size)
        if len(plan) > limits.max_files:
            raise InvalidInputError(f"the zip holds more than {limits.max_files} files; the limit is "
                                    f"{limits.max_files}")
        if total > limits.unpacked_max_mb * 2 ** 20:
            raise InvalidInputError(f"the zip would unpack to more than {limits.unpacked_max_mb} MB; "
                                    f"the limit is {limits.unpacked_max_mb} MB")
    if not plan:
        raise InvalidInputError("the zip holds no files (only folders, hidden files or links)")
    if not any(parts[-1].lower().endswith(IMAGE_EXTENSIONS) for _, parts in plan):
        raise InvalidInputError(f"the zip holds no images ({', '.join(e.lstrip('.') for e in IMAGE_EXTENSIONS[:4])}"
                                f", ...) in class folders")
    return plan


def safe_extract(source: str | os.PathLike | bytes | BinaryIO, dest: str | os.PathLike,
                 limits: Limits | None = None) -> Path:
    """Check, then extract a zip into `dest`; returns the folder that holds the class folders."""
    dest = Path(dest)
    limits = limits or LIMITS
    try:
        zf = zipfile.ZipFile(io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source)
    except zipfile.BadZipFile:
        raise InvalidInputError("the file is not a zip archive (or it is damaged)") from None
    except OSError as exc:
        raise InvalidInputError(f"the zip file cannot be read: {exc.strerror or exc}") from None
    with zf:
        plan = plan_extraction(zf, limits)
        budget = limits.unpacked_max_mb * 2 ** 20
        written = 0
        for info, parts in plan:
            target = dest.joinpath(*parts)
            if dest.resolve() not in target.resolve().parents:  # belt and braces after the name checks
                raise InvalidInputError(f"the zip holds a path that leaves its folder ({info.filename!r})")
            size = 0
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(target, "wb") as out:
                    while True:
                        chunk = src.read(_CHUNK)
                        if not chunk:
                            break
                        size += len(chunk)
                        written += len(chunk)
                        if size > info.file_size or written > budget:
                            raise InvalidInputError("the zip's contents are larger than its headers declare; "
                                                    "it was refused")
                        out.write(chunk)
            except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, NotImplementedError) as exc:
                raise InvalidInputError(f"the zip member {info.filename!r} cannot be read ({exc})") from None
            except RuntimeError as exc:  # e.g. an encrypted member
                raise InvalidInputError(f"the zip member {info.filename!r} cannot be read ({exc})") from None
            except OSError as exc:  # a name too long for the disk, disk full, ...
                raise InvalidInputError(f"the zip member {info.filename[:80]!r} cannot be extracted: "
                                        f"{exc.strerror or exc}") from None
    return dataset_root(dest)


def dataset_root(folder: str | os.PathLike) -> Path:
    """Look through single wrapping folders (zip/ -> my-data/ -> classes...) to the folder of class folders."""
    root = Path(folder)
    for _ in range(4):
        entries = [e for e in root.iterdir() if not _skipped_name((e.name,)) and not e.is_symlink()]
        dirs = [e for e in entries if e.is_dir()]
        files = [e for e in entries if e.is_file()]
        has_images = any(f.suffix.lower() in IMAGE_EXTENSIONS for f in files)
        if len(dirs) == 1 and not has_images:
            inner = dirs[0]
            if any(e.is_dir() for e in inner.iterdir() if not _skipped_name((e.name,))):
                root = inner
                continue
        if has_images and not dirs:
            raise InvalidInputError("the images are not in class folders; put each class's images in a folder "
                                    "named after the class (e.g. cats/1.png, dogs/2.png)")
        break
    return root


def _name(name: str | None, fallback: str, image_size: int) -> str:
    base = (name or "").strip() or Path(fallback).stem or "images"
    base = base if base.startswith(UPLOAD_PREFIX) else f"{UPLOAD_PREFIX}{base}"
    return f"{base[:80]} ({int(image_size)}px)"


def dataset_from_zip(source: str | os.PathLike | bytes | BinaryIO, image_size: int = 32, name: str | None = None,
                     filename: str = "upload.zip", test_fraction: float = 0.2, seed: int = 0,
                     limits: Limits | None = None) -> ImageSet:
    """A zip of class folders -> ImageSet named 'upload:NAME (SIZEpx)' (stratified seeded split)."""
    if isinstance(source, (bytes, bytearray)):
        size = len(source)
    elif isinstance(source, (str, os.PathLike)):
        if not Path(source).is_file():
            raise InvalidInputError(f"zip file {source} does not exist")
        size = Path(source).stat().st_size
        filename = Path(source).name
    else:
        pos = source.tell()
        source.seek(0, os.SEEK_END)
        size = source.tell() - pos
        source.seek(pos)
    limits = limits or LIMITS
    if size == 0:
        raise InvalidInputError("the zip file is empty")
    if size > limits.upload_max_mb * 2 ** 20:
        raise InvalidInputError(f"the zip is {size / 2 ** 20:.0f} MB; the limit is {limits.upload_max_mb} MB")
    _check_options(image_size, test_fraction)
    tmp = tempfile.mkdtemp(prefix="distill-upload-")
    try:
        root = safe_extract(source, tmp, limits)
        ds = load_image_folder(root, image_size=int(image_size), name=_name(name, filename, image_size),
                               test_fraction=test_fraction, seed=seed)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    ds.meta["source"] = f"uploaded zip {filename}"
    return ds


def dataset_from_folder(path: str | os.PathLike, image_size: int = 32, name: str | None = None,
                        test_fraction: float = 0.2, seed: int = 0) -> ImageSet:
    """A folder of class folders on the server -> ImageSet (a single wrapping folder is looked through)."""
    text = str(path).strip()
    if not text:
        raise InvalidInputError("no folder path given")
    folder = Path(text).expanduser()
    if not folder.is_dir():
        raise InvalidInputError(f"folder {folder} does not exist or is not a folder")
    _check_options(image_size, test_fraction)
    try:
        root = dataset_root(folder)
    except OSError as exc:
        raise InvalidInputError(f"folder {folder} cannot be read: {exc.strerror or exc}") from None
    ds = load_image_folder(root, image_size=int(image_size), name=_name(name, folder.name, image_size),
                           test_fraction=test_fraction, seed=seed)
    ds.meta["source"] = str(root)
    return ds


def _check_options(image_size: int, test_fraction: float) -> None:
    if isinstance(image_size, bool) or not isinstance(image_size, int) \
            or not 4 <= image_size <= LIMITS.max_image_size:
        raise InvalidInputError(f"image size must be a whole number from 4 to {LIMITS.max_image_size} pixels, "
                                f"got {image_size!r}")
    if not 0.05 <= float(test_fraction) <= 0.5:
        raise InvalidInputError(f"the test fraction must be between 0.05 and 0.5, got {test_fraction}")


# ----------------------------------------------------------------------------- uploads kept with the runs
STORE_DIRNAME = ".datasets"   # under the runs folder; list_runs skips hidden folders
_MANIFEST = "dataset.json"
_SOURCE_ZIP = "source.zip"


def store_root(runs_dir: str | os.PathLike | None = None) -> Path:
    """Where uploaded datasets are kept: `<runs folder>/.datasets/` (one folder per dataset name)."""
    from .runs import default_runs_dir

    return (Path(runs_dir) if runs_dir is not None else default_runs_dir()) / STORE_DIRNAME


def _entry_dir(name: str, runs_dir: str | os.PathLike | None) -> Path:
    import hashlib

    return store_root(runs_dir) / hashlib.sha256(name.encode("utf-8")).hexdigest()[:20]


def _write_entry(name: str, manifest: dict, zip_bytes: bytes | None, runs_dir: str | os.PathLike | None) -> Path:
    """Write one stored dataset atomically (a hidden temporary folder renamed into place; a newer upload under the
    same name replaces the older one)."""
    import json
    import uuid

    final = _entry_dir(name, runs_dir)
    tmp = final.parent / f".{final.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        tmp.mkdir(parents=True)
        if zip_bytes is not None:
            (tmp / _SOURCE_ZIP).write_bytes(zip_bytes)
        (tmp / _MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        old = final.parent / f".{final.name}.old-{uuid.uuid4().hex[:8]}"
        if final.exists():
            os.rename(final, old)
        os.rename(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise InvalidInputError(f"the dataset could not be kept with the runs: {exc.strerror or exc}") from None
    return final


def _read_bytes(source: bytes | BinaryIO | str | os.PathLike) -> bytes:
    if isinstance(source, (bytes, bytearray)):
        return bytes(source)
    if isinstance(source, (str, os.PathLike)):
        return Path(source).read_bytes()
    if hasattr(source, "getvalue"):
        return bytes(source.getvalue())
    pos = source.tell()
    source.seek(0)
    data = source.read()
    source.seek(pos)
    return data


def store_zip_dataset(ds: ImageSet, source: bytes | BinaryIO | str | os.PathLike, filename: str, image_size: int,
                      given_name: str | None = None, runs_dir: str | os.PathLike | None = None) -> Path:
    """Keep an uploaded zip next to the runs, so the dataset `ds` (made from it) can be rebuilt by name later —
    by another page, another visitor, or after a restart (`load_stored_dataset`)."""
    manifest = {"name": ds.name, "kind": "zip", "filename": str(filename), "image_size": int(image_size),
                "given_name": (given_name or "").strip() or None}
    return _write_entry(ds.name, manifest, _read_bytes(source), runs_dir)


def store_folder_dataset(ds: ImageSet, folder: str | os.PathLike, image_size: int, given_name: str | None = None,
                         runs_dir: str | os.PathLike | None = None) -> Path:
    """Remember a server-folder dataset by its folder (the images stay where they are)."""
    manifest = {"name": ds.name, "kind": "folder", "folder": str(Path(folder).expanduser().resolve()),
                "image_size": int(image_size), "given_name": (given_name or "").strip() or None}
    return _write_entry(ds.name, manifest, None, runs_dir)


def _manifest(entry: Path) -> dict | None:
    import json

    try:
        data = json.loads((entry / _MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("name"), str) else None


def stored_datasets(runs_dir: str | os.PathLike | None = None) -> list[str]:
    """Names of the datasets kept with the runs (newest first)."""
    root = store_root(runs_dir)
    if not root.is_dir():
        return []
    found = []
    for entry in root.iterdir():
        if entry.name.startswith(".") or not entry.is_dir():
            continue
        manifest = _manifest(entry)
        if manifest is not None:
            found.append((entry.stat().st_mtime, manifest["name"]))
    return [name for _, name in sorted(found, reverse=True)]


def load_stored_dataset(name: str, runs_dir: str | os.PathLike | None = None) -> ImageSet:
    """Rebuild a kept dataset by its name (the same images, split and name as when it was added)."""
    entry = _entry_dir(str(name), runs_dir)
    manifest = _manifest(entry) if entry.is_dir() else None
    if manifest is None or manifest["name"] != name:
        raise InvalidInputError(f"dataset {name!r} is not kept with the runs (add it again under "
                                f"'Your own images')")
    size = int(manifest.get("image_size") or 32)
    if manifest.get("kind") == "zip":
        # without a given name, the name came from the original file's name (not the stored copy's)
        ds = dataset_from_zip(entry / _SOURCE_ZIP, image_size=size,
                              name=manifest.get("given_name") or Path(manifest.get("filename") or "upload").stem)
        ds.meta["source"] = f"uploaded zip {manifest.get('filename')}"
    else:
        ds = dataset_from_folder(manifest.get("folder") or "", image_size=size, name=manifest.get("given_name")
                                 or Path(manifest.get("folder") or "images").name)
    if ds.name != name:
        raise InvalidInputError(f"dataset {name!r} kept with the runs no longer matches its name")
    return ds

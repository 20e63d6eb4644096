"""Files that are either whole or absent: written under a temporary name in the same folder, then renamed.

A reader (another page, a second process, a run interrupted mid-write) never sees half a file; a failed write
leaves nothing behind. Callers turn an `OSError` into their own one-line message.
"""
from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Callable


def write_atomically(path: Path, write: Callable[[Path], None], make_parent: bool = True) -> Path:
    """Call `write(tmp)` to fill a temporary file next to `path`, then rename it to `path` (atomic on one file
    system). The temporary file is removed if anything fails; errors propagate."""
    path = Path(path)
    if make_parent:
        path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_text_atomically(path: Path, text: str, fsync: bool = False, make_parent: bool = True) -> Path:
    """`write_atomically` for UTF-8 text; `fsync` flushes it to disk before the rename."""
    def write(tmp: Path) -> None:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())

    return write_atomically(path, write, make_parent)

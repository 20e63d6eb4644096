"""Download buttons.

`cached_download` (the distill page, the run library) builds its bytes in the script run that draws the button and
keeps them in a small server-wide cache keyed by what they show (run, step, format), so the button's file is the
same object on every rerun: a click right after a rerun always finds it. When building fails, the button is
replaced by one line that says why. `lazy_download` builds the bytes only when clicked (Streamlit's deferred
downloads); a rerun between drawing and clicking can drop such a file, so it is kept only for large optional
files on pages that do not rerun on their own.

`projector_gif` enlarges an animated GIF with nearest-neighbour scaling (crisp pixels) to at least
PROJECTOR_WIDTH pixels wide.
"""
from __future__ import annotations

import collections
import io
import threading
from typing import Callable

import streamlit as st

from ui.errors import describe

PROJECTOR_WIDTH = 800            # pixels: a GIF is scaled up (whole multiples) to at least this width
PROJECTOR_MAX_PIXELS = 4_000_000  # per frame, after scaling
CACHE_BYTES = 256 * 2 ** 20      # the download cache holds at most this many bytes (least recently used dropped)

_CACHE: "collections.OrderedDict[str, bytes]" = collections.OrderedDict()
_CACHE_LOCK = threading.Lock()


def _deferred_supported() -> bool:
    try:
        from streamlit.runtime.media_file_manager import MediaFileManager
    except Exception:  # noqa: BLE001
        return False
    return hasattr(MediaFileManager, "add_deferred")


DEFERRED = _deferred_supported()


def cached_bytes(cache_key: str, make: Callable[[], bytes]) -> bytes:
    """`make()` once per `cache_key` (kept while the cache has room; the least recently used is dropped)."""
    with _CACHE_LOCK:
        if cache_key in _CACHE:
            _CACHE.move_to_end(cache_key)
            return _CACHE[cache_key]
    data = bytes(make())
    with _CACHE_LOCK:
        _CACHE[cache_key] = data
        _CACHE.move_to_end(cache_key)
        total = sum(len(v) for v in _CACHE.values())
        while total > CACHE_BYTES and len(_CACHE) > 1:
            _, dropped = _CACHE.popitem(last=False)
            total -= len(dropped)
    return data


def cached_download(label: str, make: Callable[[], bytes], file_name: str, mime: str, key: str, cache_key: str,
                    disabled: bool = False, help: str | None = None) -> bool:
    """A download button whose bytes exist before it is drawn (see the module's note). Returns False, with a
    one-line reason in place of the button, when the bytes could not be built."""
    try:
        data = b"" if disabled else cached_bytes(cache_key, make)
    except Exception as exc:  # noqa: BLE001 - a failed export says why instead of a silent button
        st.caption(f"{label} is unavailable: {describe(exc)}")
        return False
    st.download_button(label, data, file_name=file_name, mime=mime, key=key, disabled=disabled, help=help,
                       on_click="ignore")
    return True


def lazy_download(label: str, make: Callable[[], bytes], file_name: str, mime: str, key: str,
                  disabled: bool = False, help: str | None = None) -> None:
    """A download button; `make()` runs on click (or now, on Streamlit versions without deferred downloads)."""
    if DEFERRED:
        st.download_button(label, make, file_name=file_name, mime=mime, key=key, disabled=disabled, help=help,
                           on_click="ignore")
        return
    try:
        data = b"" if disabled else make()
    except Exception as exc:  # noqa: BLE001
        st.caption(f"{label}: {describe(exc)}")
        return
    st.download_button(label, data, file_name=file_name, mime=mime, key=key, disabled=disabled, help=help)


def projector_gif(data: bytes, min_width: int = PROJECTOR_WIDTH, max_pixels: int = PROJECTOR_MAX_PIXELS) -> bytes:
    """The animated GIF `data` scaled up by a whole factor (nearest neighbour) to at least `min_width` pixels wide
    (unless a frame would exceed `max_pixels`); frame durations and looping are kept."""
    from PIL import Image, ImageSequence

    with Image.open(io.BytesIO(data)) as gif:
        w, h = gif.size
        factor = max(1, -(-int(min_width) // max(1, w)))
        while factor > 1 and (w * factor) * (h * factor) > max_pixels:
            factor -= 1
        if factor == 1:
            return data
        frames, durations = [], []
        for frame in ImageSequence.Iterator(gif):
            durations.append(int(frame.info.get("duration", gif.info.get("duration", 250))))
            frames.append(frame.convert("RGB").resize((w * factor, h * factor), Image.NEAREST)
                          .convert("P", palette=Image.Palette.ADAPTIVE, colors=255))
        loop = gif.info.get("loop", 0)
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=durations, loop=loop,
                   optimize=False, disposal=1)
    return buf.getvalue()

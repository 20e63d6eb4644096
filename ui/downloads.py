"""Download buttons whose bytes are built only when clicked (deferred), where the installed Streamlit supports it."""
from __future__ import annotations

from typing import Callable

import streamlit as st

from ui.errors import describe


def _deferred_supported() -> bool:
    try:
        from streamlit.runtime.media_file_manager import MediaFileManager
    except Exception:  # noqa: BLE001
        return False
    return hasattr(MediaFileManager, "add_deferred")


DEFERRED = _deferred_supported()


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

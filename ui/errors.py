"""`guard()`: the one way pages turn exceptions into messages — never a traceback in the browser."""
from __future__ import annotations

import logging
import os
import re
import tempfile
from contextlib import contextmanager
from typing import Iterator

import streamlit as st

from distill_core.errors import DistillError

_log = logging.getLogger("distill_lab.app")


def _temp_roots() -> list[str]:
    roots = {tempfile.gettempdir(), "/tmp", "/var/tmp", os.environ.get("TMPDIR", "")}
    return sorted((r.rstrip("/") for r in roots if r and r != "/"), key=len, reverse=True)


_TEMP_PATH = re.compile("(?:" + "|".join(re.escape(r) for r in _temp_roots()) + r")/[^\s'\"():,;]*")


def strip_server_paths(text: str) -> str:
    """The text with server temporary paths (/tmp/distill-upload-…/cats/1.png) cut down to what the user knows:
    the part after the temporary folder (cats/1.png), or 'a temporary file'."""

    def short(match: re.Match) -> str:
        parts = [p for p in match.group(0).split("/") if p]
        inner = parts[2:] if len(parts) > 2 else []  # drop the temp root and the temporary folder's own name
        return "/".join(inner) if inner else "a temporary file"

    return _TEMP_PATH.sub(short, str(text))


def describe(exc: BaseException) -> str:
    """One short sentence for the user: a DistillError's own message, else the exception's type and first line;
    server temporary paths are stripped from either."""
    if isinstance(exc, DistillError):
        return strip_server_paths(str(exc))
    text = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
    return strip_server_paths(f"Something went wrong ({type(exc).__name__}{': ' + text if text else ''}).")


@contextmanager
def guard(context: str = "") -> Iterator[None]:
    """Run a block; a DistillError shows its message with st.error, anything else a short st.error.

    Streamlit's own control flow (st.rerun, st.stop, st.switch_page) derives from BaseException and passes through.
    """
    try:
        yield
    except DistillError as exc:
        st.error(f"{context}{': ' if context else ''}{describe(exc)}")
    except Exception as exc:  # noqa: BLE001 - logged for the developer, summarised for the user
        _log.exception("unexpected error in the app%s", f" ({context})" if context else "")
        st.error(f"{context}{': ' if context else ''}{describe(exc)}")

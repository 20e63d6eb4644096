"""`guard()`: the one way pages turn exceptions into messages — never a traceback in the browser."""
from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Iterator

import streamlit as st

from distill_core.errors import DistillError

_log = logging.getLogger("distill_lab.app")


def describe(exc: BaseException) -> str:
    """One short sentence for the user: a DistillError's own message, else the exception's type and first line."""
    if isinstance(exc, DistillError):
        return str(exc)
    text = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
    return f"Something went wrong ({type(exc).__name__}{': ' + text if text else ''})."


@contextmanager
def guard(context: str = "") -> Iterator[None]:
    """Run a block; a DistillError shows its message with st.error, anything else a short st.error.

    Streamlit's own control flow (st.rerun, st.stop, st.switch_page) derives from BaseException and passes through.
    """
    try:
        yield
    except DistillError as exc:
        st.error(f"{context}{': ' if context else ''}{exc}")
    except Exception as exc:  # noqa: BLE001 - logged for the developer, summarised for the user
        _log.exception("unexpected error in the app%s", f" ({context})" if context else "")
        st.error(f"{context}{': ' if context else ''}{describe(exc)}")

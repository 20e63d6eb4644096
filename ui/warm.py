"""Warm-up at server start: one background thread per server pays first-use costs before the first Start."""
from __future__ import annotations

import threading

import streamlit as st

from distill_core.jobs import warm_up


@st.cache_resource(show_spinner=False)
def start_once() -> threading.Thread:
    """Start (once per server process) a daemon thread running distill_core.jobs.warm_up."""
    thread = threading.Thread(target=warm_up, name="distill-warm-up", daemon=True)
    thread.start()
    return thread

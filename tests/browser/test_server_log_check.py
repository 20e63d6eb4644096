"""The server-log check that every browser test session ends with (conftest's `app_server`) fails when the server
logged a traceback through the project's code: a test app raises from `distill_core`, and the check reports it."""
from __future__ import annotations

import time

import pytest

from browserkit import EXCEPTION_SELECTOR, Server, assert_clean_log, server_tracebacks

pytestmark = pytest.mark.browser

APP = "tests/browser/apps/fails_in_project_code.py"


def test_a_project_frame_in_the_server_log_fails_the_check(browser, tmp_path):
    server = Server(tmp_path / "runs", tmp_path / "streamlit.log", script=APP)
    ctx = browser.new_context()
    try:
        page = ctx.new_page()
        page.goto(server.url, wait_until="domcontentloaded")
        page.wait_for_selector(EXCEPTION_SELECTOR, timeout=90_000)  # the script ran and failed
        deadline = time.monotonic() + 30
        while "Traceback" not in server.log() and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        ctx.close()
        server.stop()
    log = server.log_path.read_text(encoding="utf-8", errors="replace")
    records = server_tracebacks(log)
    assert len(records) == 1, log[-4000:]
    assert "UnknownNameError" in records[0] and "no-such-dataset" in records[0]
    with pytest.raises(AssertionError, match=r"(?s)the server logged 1 traceback.*distill_core[/\\]data\.py"):
        assert_clean_log(server)

"""Browser tests: the real app (`streamlit run app.py`) on a free localhost port, driven by Debian's Chromium
through Playwright's Python package (never `playwright install`).

Skipped with a reason when /usr/bin/chromium or playwright is missing. Everything runs against one server per
test session with a temporary runs folder (DISTILL_RUNS_DIR); each test gets fresh browser contexts, and closing a
context ends its Streamlit session (which stops that session's job).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Iterator

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from browserkit import CHROMIUM, CHROMIUM_ARGS, Server, _missing_reason, assert_clean_log  # noqa: E402


def pytest_collection_modifyitems(config, items):
    reason = _missing_reason()
    for item in items:
        if "tests/browser" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.browser)
            if reason:
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def app_server(tmp_path_factory) -> Iterator[Server]:
    base = tmp_path_factory.mktemp("browser-server")
    # a job nobody's page holds any more stops after 10 s here (5 min by default), so a closed tab frees its slot
    # quickly, while a reload (which holds the job again at once) keeps it
    server = Server(base / "runs", base / "streamlit.log", extra_env={"DISTILL_JOB_IDLE_S": "10"})
    yield server
    server.stop()
    assert_clean_log(server)


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture(scope="session")
def warm_app(app_server, browser):
    """Open the home page once before the other tests, as a first visitor usually does (so that the first test
    does not pay the server's first-use costs alone). A first visit by deep link has its own test
    (test_first_visit.py)."""
    from browserkit import open_app

    ctx = browser.new_context()
    try:
        open_app(ctx.new_page(), app_server, "")
    finally:
        ctx.close()
    return app_server


@pytest.fixture
def new_context(browser, warm_app, tmp_path):
    """Factory of fresh browser contexts (each one a separate Streamlit session); all closed at the end."""
    contexts = []

    def make():
        ctx = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
        ctx.set_default_timeout(60_000)
        contexts.append(ctx)
        return ctx

    yield make
    for ctx in contexts:
        try:
            ctx.close()
        except Exception:  # noqa: BLE001 - already closed by the test
            pass


@pytest.fixture
def page(new_context):
    return new_context().new_page()

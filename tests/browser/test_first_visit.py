"""A fresh server whose first visitor arrives by a deep link (a bookmark of /learn or /distill) still gets the app:
the shared sidebar and pages that work (a preset from the learn page starts its run on the distill page).

The page files live in app_pages/, not pages/: with a folder named pages/ next to app.py, Streamlit picks its legacy
multipage mode on the first run of a fresh server, and a deep link then runs the page file without app.py."""
from __future__ import annotations

import re

from playwright.sync_api import expect

import pytest

from browserkit import Server, assert_no_exception, open_app

pytestmark = pytest.mark.browser


def test_first_visit_by_deep_link_runs_the_router(browser, tmp_path):
    server = Server(tmp_path / "runs", tmp_path / "streamlit.log")
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        page = ctx.new_page()
        open_app(page, server, "learn")
        assert_no_exception(page)
        # the router ran: the sidebar has the dataset picker and the app's own page titles
        sidebar = page.locator('[data-testid="stSidebar"]')
        sidebar.get_by_text("Dataset", exact=True).wait_for(timeout=30_000)
        assert sidebar.get_by_role("link", name="Run library").count() >= 1
        page.get_by_role("button", name=re.compile(r"Try it: DC on digits from noise, 1 per class")).click()
        page.get_by_text(re.compile(r"Started dc on digits, IPC 1")).wait_for(timeout=60_000)  # one click runs it
        # the box shows what runs (it can read empty/0 for a moment while the page redraws after the start)
        expect(page.get_by_label("Images per class (IPC)", exact=True)).to_have_value("1", timeout=30_000)
    finally:
        ctx.close()
        server.stop()

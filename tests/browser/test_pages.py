"""Every page of the app opens in Chromium without an exception, directly by URL and through the sidebar."""
from __future__ import annotations

from pathlib import Path

import pytest

from browserkit import assert_no_exception, open_app, sidebar_link, wait_idle

pytestmark = pytest.mark.browser


def _pages() -> list[tuple[str, str]]:
    """(url path, title) of every page the app's navigation offers."""
    from ui.nav import existing_pages

    out = []
    for spec in existing_pages():
        path = "" if spec.default else Path(spec.path).stem
        out.append((path, spec.title))
    return out


def test_every_page_opens_without_an_exception(app_server, page):
    pages = _pages()
    assert len(pages) >= 3, pages
    for path, title in pages:
        open_app(page, app_server, path)
        assert_no_exception(page)
        h1 = page.locator('[data-testid="stMainBlockContainer"] h1').first.inner_text()
        assert h1.strip(), f"page {title!r} has an empty title"
    # the same pages through the sidebar, as a person clicks them
    open_app(page, app_server, "")
    for path, title in pages:
        sidebar_link(page, title).click()
        page.wait_for_url(f"**/{path}" if path else f"{app_server.url}/", timeout=60_000)
        page.wait_for_selector('[data-testid="stMainBlockContainer"] h1', timeout=60_000)
        wait_idle(page)
        assert_no_exception(page)

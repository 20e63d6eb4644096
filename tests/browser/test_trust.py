"""Nothing lost, nothing silently replaced, as a person meets it in Chromium (1400×1000): a reload in the middle of
a run comes back to the same live run, which then saves itself to the library; another browser — without the
link's token, or with a made-up one — cannot see or stop it; an invalid IPC or Steps disables Start with the
reason; a download clicked right after a rerun arrives."""
from __future__ import annotations

import re
import time

import pytest

try:
    from playwright.sync_api import expect
except ImportError:  # the whole folder is skipped with a reason (conftest)
    expect = None

from browserkit import (GRID, assert_no_exception, click, open_app, progress_text, set_number, wait_idle,
                        wait_status)

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _step(text: str) -> int:
    return int(re.search(r"step ([\d,]+)", text).group(1).replace(",", ""))


def _start_button(page):
    return page.get_by_role("button", name=re.compile(r"^\W*Start\W*$"))


def _start_long_kip(page, server) -> None:
    """A long KIP run on the distill page. The server is shared with earlier tests, whose closed tabs' jobs hold
    slots of the job cap until their idle timeout: press Start again until the run is live (at most 2 minutes)."""
    open_app(page, server, "distill")
    set_number(page, "Images per class (IPC)", 1)
    set_number(page, "Steps", 100_000)
    deadline = time.monotonic() + 120
    while True:
        if _start_button(page).first.is_enabled():
            click(page, "Start")
        try:
            wait_status(page, "running", 10)
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            wait_idle(page)


def _wait_step_above(page, step: int, timeout_s: float = 60) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        text = progress_text(page)
        if text.lower().startswith("running") and _step(text) > step:
            return _step(text)
        page.wait_for_timeout(300)
    raise AssertionError(f"the step never passed {step}: {progress_text(page)!r}")


def test_a_reload_mid_run_reattaches_then_the_run_is_autosaved(app_server, new_context):
    page = new_context().new_page()
    _start_long_kip(page, app_server)
    before = _wait_step_above(page, 0)
    token = re.search(r"[?&]run=([A-Za-z0-9_-]+)", page.url).group(1)
    assert len(token) >= 20

    page.reload(wait_until="domcontentloaded")  # F5 in the middle of the run
    page.wait_for_selector('[data-testid="stProgress"]', timeout=90_000)
    assert f"run={token}" in page.url
    after = _wait_step_above(page, before)  # the same run, still live, still advancing
    _wait_step_above(page, after)
    assert_no_exception(page)

    # another browser: no token -> no run; a made-up token -> no run; neither can stop it
    stranger = new_context().new_page()
    for path in ("distill", f"distill?run={token[:-2]}zz"):
        open_app(stranger, app_server, path)
        assert stranger.locator('[data-testid="stProgress"]').count() == 0
        assert stranger.get_by_role("button", name=re.compile(r"^\W*Stop\W*$")).is_disabled()
        assert_no_exception(stranger)
    assert progress_text(page).lower().startswith("running")

    click(page, "Stop")
    stopped = wait_status(page, "stopped", 60)
    saved = page.get_by_text(re.compile(r"Saved to the run library as"))
    saved.wait_for(timeout=60_000)
    name = re.search(r"as (\S+?)\.?$", saved.inner_text().strip()).group(1)
    assert (app_server.runs_dir / name / "config.json").is_file()
    # saved once under the name shown (the shared server's runs folder also holds earlier tests' autosaved runs)
    assert name in [p.name for p in app_server.runs_dir.iterdir() if not p.name.startswith(".")]
    assert _step(stopped) > after  # it was saved as stopped, after the steps seen live
    assert_no_exception(page)


def test_invalid_ipc_or_steps_disable_start_with_the_reason(app_server, page):
    open_app(page, app_server, "distill")
    main = page.locator('[data-testid="stMainBlockContainer"]')
    assert _start_button(page).is_enabled(), main.inner_text()[:3000]
    set_number(page, "Images per class (IPC)", 5000)
    assert page.get_by_label("Images per class (IPC)", exact=True).input_value() == "5000"
    page.get_by_text(re.compile(r"Start is disabled: IPC 5000")).wait_for(timeout=30_000)
    expect(_start_button(page)).to_be_disabled()

    set_number(page, "Images per class (IPC)", 1)
    set_number(page, "Steps", 0)
    page.get_by_text(re.compile(r"Start is disabled: steps must be a positive whole number, got 0")).wait_for(
        timeout=30_000)
    expect(_start_button(page)).to_be_disabled()
    page.wait_for_timeout(1000)
    assert page.locator('[data-testid="stProgress"]').count() == 0  # nothing ran
    set_number(page, "Steps", 5)
    expect(_start_button(page)).to_be_enabled(timeout=30_000)  # a loaded server may take a moment to redraw
    # the warning below the buttons is redrawn after them (with the expected time and memory): wait for it to go
    expect(page.get_by_text("Start is disabled")).to_have_count(0, timeout=30_000)
    assert_no_exception(page)


def test_a_download_right_after_a_rerun_arrives(app_server, page):
    open_app(page, app_server, "distill")
    set_number(page, "Images per class (IPC)", 1)
    set_number(page, "Steps", 30)
    click(page, "Start")
    wait_status(page, "finished", 120)
    page.get_by_text(re.compile(r"Saved to the run library as")).wait_for(timeout=60_000)
    page.locator(GRID).first.wait_for()
    wait_idle(page)
    for i in range(4):
        # a rerun (the seed box changes), and the click comes at once, before the page settles
        box = page.get_by_label("Seed", exact=True)
        box.fill(str(i + 1))
        box.press("Enter")
        with page.expect_download(timeout=60_000) as info:
            page.get_by_role("button", name=re.compile("PNG grid")).click()
        data = info.value.path().read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 200
    assert_no_exception(page)

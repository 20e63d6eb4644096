"""Five browser sessions at once against one server: each gets its own job up to LIMITS.max_concurrent_jobs, the
rest a clear "busy" message; closing a session (its tab) lets go of its job, which stops once the idle timeout has
passed (10 s on the test server, $DISTILL_JOB_IDLE_S), so a waiting session can start."""
from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from browserkit import assert_no_exception, click, open_app, progress_text, set_number

from distill_core.limits import LIMITS

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SESSIONS = 5
BUSY = re.compile(r"^busy\b.*try again", re.S)


def _configure(page, server) -> None:
    open_app(page, server, "distill")
    set_number(page, "Images per class (IPC)", 1)
    set_number(page, "Steps", 1_000_000)


def _running(page) -> bool:
    return progress_text(page).lower().startswith(("running", "starting"))


def _outcome(page, timeout_s: float = 90) -> str:
    """'running' when this session's job runs, 'busy' when it was refused; waits for one of them."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if _running(page):
            return "running"
        if page.locator('[data-testid="stAlert"]').filter(has_text=BUSY).count():
            page.wait_for_timeout(500)  # a job that did start shows its progress by now
            return "running" if _running(page) else "busy"
        page.wait_for_timeout(250)
    raise AssertionError(f"neither running nor busy: {progress_text(page)!r}")


def _start_until_running(page, timeout_s: float = 60) -> float:
    """Press Start until the job runs (the freed slot may take a moment); returns the seconds it took.

    A refused press leaves the same "busy" message, so success is read from the progress bar only."""
    t0 = time.monotonic()
    start = page.get_by_role("button", name=re.compile(r"^\W*Start\W*$"))
    while time.monotonic() - t0 < timeout_s:
        if start.is_enabled():
            try:  # the page may rerun between the check and the click and disable the button for a moment
                start.click(timeout=5_000)
            except PlaywrightTimeout:
                continue
        for _ in range(10):
            page.wait_for_timeout(300)
            if _running(page):
                return time.monotonic() - t0
    raise AssertionError("the freed slot was never available")


def test_five_sessions_share_the_job_cap(app_server, new_context, request):
    cap = LIMITS.max_concurrent_jobs
    pages = [new_context().new_page() for _ in range(SESSIONS)]
    for page in pages:
        _configure(page, app_server)
    for page in pages:  # five people press Start within a second or two
        click(page, "Start")
    outcomes = [_outcome(page) for page in pages]
    running = [p for p, o in zip(pages, outcomes) if o == "running"]
    busy = [p for p, o in zip(pages, outcomes) if o == "busy"]
    request.node.user_properties.append(("outcomes", outcomes))
    print(f"sessions: {SESSIONS}, cap: {cap}, outcomes: {outcomes}")
    assert len(running) == min(cap, SESSIONS) and len(busy) == SESSIONS - len(running), outcomes
    for page in pages:
        assert_no_exception(page)
    message = busy[0].locator('[data-testid="stAlert"]').filter(has_text=BUSY).first.inner_text()
    assert f"the limit is {cap}" in message

    # every running session shows its own job advancing
    first = {id(p): progress_text(p) for p in running}
    for page in running:  # polled: on a loaded machine a redraw can take a few seconds
        deadline = time.monotonic() + 30
        while progress_text(page) == first[id(page)] and time.monotonic() < deadline:
            page.wait_for_timeout(500)
        assert progress_text(page) != first[id(page)], "a running session's job did not advance"

    # a running session's tab closes: its job stops after the idle timeout, and a waiting session gets the slot
    running[0].context.close()
    waited = _start_until_running(busy[0])
    request.node.user_properties.append(("slot_freed_after_close_s", round(waited, 1)))
    print(f"a waiting session got the slot {waited:.1f} s after a running session's tab closed")
    assert waited < 30

    # everyone leaves; a newcomer then gets every slot again (no job outlived its session)
    for page in pages:
        if not page.is_closed():
            page.context.close()
    newcomers = [new_context().new_page() for _ in range(cap)]
    for page in newcomers:
        _configure(page, app_server)
        waited = _start_until_running(page, 60)
        assert waited < 45
    for page in newcomers:
        assert_no_exception(page)

"""The run library in Chromium (1400×1000): a run's new name and notes survive a reload (they live in the run
folder), and "Re-run with these settings" fills the distill page with the run's settings without starting it."""
from __future__ import annotations

import re

import pytest

try:
    from playwright.sync_api import expect
except ImportError:  # the whole folder is skipped with a reason (conftest)
    expect = None

from ui.labels import words

from browserkit import assert_no_exception, click, open_app, wait_idle

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _saved_dm_run(root, name: str):
    """A DM run with settings that differ from the page's defaults (IPC 2, 40 planned steps, seed 7, batch_real 16)."""
    from distill_core.data import load_dataset
    from distill_core.methods import create_method
    from distill_core.runs import save_run

    method = create_method("dm", load_dataset("digits"), 2, seed=7, overrides={"batch_real": 16})
    return save_run(root / name, method.summary(), {"steps": 3, "total_steps": 40, "seed": 7,
                                                    "method_config": method.config.to_dict()},
                    evaluations=[{"protocol": "quick", "model": "convnet", "reps": 1, "acc_mean": 0.5,
                                  "acc_std": 0.0}])


def _open_run(page, name: str) -> None:
    page.locator('[data-testid="stSelectbox"]').filter(has_text="Open a run").first.click()
    page.get_by_role("option", name=name, exact=True).click()
    wait_idle(page)
    page.get_by_text(re.compile(r"\*?\*?dm\*?\*? on \*?\*?digits")).first.wait_for(timeout=60_000)


def test_rename_and_notes_survive_a_reload_and_rerun_fills_the_distill_page(app_server, page):
    _saved_dm_run(app_server.runs_dir, "lib-dm-run")
    open_app(page, app_server, "library")
    _open_run(page, "lib-dm-run")

    page.get_by_text("Name and notes", exact=True).click()
    name_box = page.get_by_label("Name (the run folder's name)")
    name_box.fill("dm baseline (batch 16)")
    page.get_by_label("Notes").fill("first try: batch_real 16\nlooks blurry")
    click(page, "Save name and notes")
    new = app_server.runs_dir / "dm baseline (batch 16)"
    for _ in range(240):   # the server saves on its next run of the page (a loaded machine may take a while)
        if new.is_dir():
            break
        page.wait_for_timeout(250)
    wait_idle(page)
    assert new.is_dir() and not (app_server.runs_dir / "lib-dm-run").exists()
    assert (new / "notes.md").read_text(encoding="utf-8") == "first try: batch_real 16\nlooks blurry"
    assert_no_exception(page)

    page.reload(wait_until="domcontentloaded")   # a new session: only the run folder remembers
    open_app(page, app_server, "library")
    _open_run(page, "dm baseline (batch 16)")
    table = page.locator('[data-testid="stDataFrame"]').first
    assert table.count() == 1
    page.get_by_text("Name and notes", exact=True).click()
    assert page.get_by_label("Notes").input_value() == "first try: batch_real 16\nlooks blurry"
    assert page.get_by_label("Name (the run folder's name)").input_value() == "dm baseline (batch 16)"
    assert_no_exception(page)

    click(page, "Re-run with these settings")
    page.wait_for_url(re.compile(r"/distill"), timeout=60_000)
    wait_idle(page)
    page.get_by_text(re.compile(r"Preset loaded: settings of run dm baseline \(batch 16\)")).wait_for(timeout=60_000)
    # batch_real is a setting of dm alone: its box shows the method is dm
    batch_label = words("dm", "batch_real").label   # the setting's label on the page
    for label, value in (("Images per class (IPC)", "2"), ("Steps", "40"), ("Seed", "7"), (batch_label, "16")):
        expect(page.get_by_label(label, exact=True)).to_have_value(value, timeout=30_000)
    page.wait_for_timeout(1500)
    assert page.locator('[data-testid="stProgress"]').count() == 0   # filled, not started
    assert_no_exception(page)

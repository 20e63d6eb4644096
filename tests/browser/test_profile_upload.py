"""The distill page's profile selector and its upload-sized defaults, as a person sees them: choosing `paper`
changes the shown steps and settings (and warns about the time on a CPU); an upload with a tiny test split says
what one test image is worth, and its steps are sized to it."""
from __future__ import annotations

import re

import pytest

import bad_corpus as bc
from browserkit import assert_no_exception, open_app, sidebar_link, wait_idle

expect = pytest.importorskip("playwright.sync_api").expect  # auto-waiting assertions (skipped without playwright)

pytestmark = [pytest.mark.browser, pytest.mark.slow]
MAIN = '[data-testid="stMainBlockContainer"]'


def _choose_method(page, name: str) -> None:
    box = page.locator(f'{MAIN} [data-testid="stSelectbox"]').filter(has_text="Method").first
    box.click()
    page.get_by_role("option", name=re.compile(rf"· {re.escape(name)}$")).click()   # "Family · name"
    expect(page.get_by_role("combobox", name="Method")).to_have_value(re.compile(rf"· {re.escape(name)}$"))
    wait_idle(page)


def _steps(page):
    return page.get_by_label("Steps", exact=True)


def _profile(page, label: str) -> None:
    page.locator(f'{MAIN} [data-testid="stRadio"]').filter(has_text="Profile").get_by_text(label).click()
    wait_idle(page)


def test_the_profile_selector_changes_the_shown_steps_and_settings(app_server, page):
    from distill_core.profiles import iterations

    open_app(page, app_server, "distill")
    _choose_method(page, "dm")
    fast, paper = iterations("dm", "digits", "fast", 10), iterations("dm", "digits", "paper", 10)
    assert (fast, paper) == (300, 20000)
    expect(_steps(page)).to_have_value(str(fast))
    page.get_by_text("Settings of dm").click()
    width = page.get_by_label("Network width (channels)", exact=True)
    expect(width).to_have_value("64")                       # fast, digits
    _profile(page, "paper (published recipe)")
    expect(_steps(page)).to_have_value(str(paper))
    expect(width).to_have_value("128")                      # the paper's ConvNet-3 width
    # on this CPU machine: the expected time, as a warning, with the paper profile named
    page.locator(f'{MAIN} [data-testid="stAlert"]').filter(has_text="Paper profile on a CPU").wait_for()
    _profile(page, "fast (CPU, minutes)")
    expect(_steps(page)).to_have_value(str(fast))
    expect(width).to_have_value("64")
    assert_no_exception(page)


def test_an_upload_with_a_tiny_test_split_warns_and_gets_sized_steps(app_server, page, tmp_path):
    from distill_core.methods import METHODS
    from distill_core.methods.base import config_defaults
    from distill_core.upload_defaults import sized_defaults
    from distill_core.uploads import dataset_from_zip

    data = bc.image_zip_bytes(classes=("moths", "beetles", "ants"), per_class=6, size=20, prefix="bugs/")
    path = tmp_path / "bugs.zip"
    path.write_bytes(data)
    ds = dataset_from_zip(data, image_size=32, filename="bugs.zip")   # what the app will make of it
    n_test = len(ds.y_test)
    expected = sized_defaults(config_defaults(METHODS["kip"].Config, ds.name, "fast", 2).to_dict(), 1000,
                              ds.class_counts(), 2)

    open_app(page, app_server, "")
    sidebar = page.locator('[data-testid="stSidebar"]')
    sidebar.get_by_text("Your own images").click()
    uploader = sidebar.locator('[data-testid="stFileUploader"]').first
    uploader.locator('input[type="file"]').set_input_files(str(path))
    uploader.get_by_text("bugs.zip").wait_for(timeout=60_000)
    wait_idle(page)
    add = sidebar.get_by_role("button", name=re.compile("Add dataset"))
    page.wait_for_function("b => !b.disabled", arg=add.element_handle(), timeout=60_000)
    add.click()
    wait_idle(page)
    sidebar.locator('[data-testid="stAlert"]').filter(has_text="Added upload:").wait_for(timeout=90_000)

    sidebar_link(page, "Distill").click()
    page.wait_for_url("**/distill")
    page.get_by_text(re.compile(r"Dataset: .*upload:bugs")).wait_for(timeout=60_000)
    ipc = page.get_by_label("Images per class (IPC)", exact=True)
    ipc.fill("2")
    ipc.press("Enter")
    wait_idle(page)
    expect(ipc).to_have_value("2")
    _choose_method(page, "kip")
    warning = page.locator(f'{MAIN} [data-testid="stAlert"]').filter(has_text="test images: each is worth")
    warning.wait_for()
    assert f"{n_test} test images: each is worth {100 / n_test:.1f} accuracy points" in warning.inner_text()
    assert expected.steps < 1000
    expect(_steps(page)).to_have_value(str(expected.steps))
    page.get_by_text("Settings of kip").click()
    page.get_by_text(re.compile(r"Sized to this dataset: .*target_batch 1,000 →")).wait_for()
    assert_no_exception(page)

"""As a person would: upload a zip of class folders and distil it; a hostile zip is refused with a message; the
stimulus zip from the archetypes page holds PNGs and a manifest that agree."""
from __future__ import annotations

import csv
import io
import re
import zipfile

import pytest
from playwright.sync_api import expect

import bad_corpus as bc
from browserkit import (GRID, assert_no_exception, click, open_app, set_number, sidebar_link, wait_idle,
                        wait_status)

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _upload(page, path) -> None:
    sidebar = page.locator('[data-testid="stSidebar"]')
    uploader = sidebar.locator('[data-testid="stFileUploader"]')
    if not (uploader.count() and uploader.first.is_visible()):
        sidebar.get_by_text("Your own images").click()
        uploader.first.wait_for(state="visible")
    verdicts = sidebar.locator('[data-testid="stAlert"]').filter(has_text=re.compile(r"^Added |\.zip: "))
    previous = verdicts.count()
    uploader.first.locator('input[type="file"]').set_input_files(str(path))
    # the upload has reached the server once its file name is listed, the verdict on the previous file is gone
    # (choosing a file clears it, on the server) and the script run it caused is over
    uploader.first.get_by_text(path.name).wait_for(timeout=60_000)
    if previous:
        expect(verdicts).to_have_count(0, timeout=60_000)
    wait_idle(page)
    add = sidebar.get_by_role("button", name=re.compile("Add dataset"))
    page.wait_for_function("b => !b.disabled", arg=add.element_handle(), timeout=60_000)
    add.click()
    wait_idle(page)


def test_upload_a_zip_and_distil_it(app_server, page, new_context, tmp_path):
    good = tmp_path / "shapes.zip"
    good.write_bytes(bc.image_zip_bytes(classes=("circles", "squares", "stars"), per_class=5, size=20,
                                        prefix="shapes/"))
    evil = tmp_path / "hostile.zip"
    evil.write_bytes(bc.zip_with_member("../../escape.png"))
    open_app(page, app_server, "")

    # a hostile zip first: a clear message, nothing added, the app keeps serving
    _upload(page, evil)
    sidebar = page.locator('[data-testid="stSidebar"]')
    sidebar.locator('[data-testid="stAlert"]').filter(has_text="hostile.zip: the zip holds a path that leaves its "
                                                                 "folder").wait_for(timeout=60_000)
    assert_no_exception(page)
    assert not (tmp_path.parent / "escape.png").exists()

    _upload(page, good)
    sidebar.locator('[data-testid="stAlert"]').filter(has_text=re.compile(r"Added upload:.* from shapes\.zip\.")
                                                      ).wait_for(timeout=90_000)
    assert "3 classes" in sidebar.inner_text()
    assert_no_exception(page)

    # use it: the distill page now works on the upload (the sidebar picked it)
    sidebar_link(page, "Distill").click()
    page.wait_for_url("**/distill")
    page.get_by_text(re.compile(r"Dataset: .*upload:")).wait_for(timeout=60_000)
    set_number(page, "Images per class (IPC)", 2)
    set_number(page, "Steps", 20)
    click(page, "Start")
    wait_status(page, "finished", 180)
    page.locator(GRID).first.wait_for()
    caption = page.locator('[data-testid="stMainBlockContainer"] [data-testid="stImage"]').first.inner_text()
    assert "upload:" in caption and "IPC 2" in caption
    assert_no_exception(page)

    # the upload is kept with the runs: another browser (a new session) can pick it and open its run's data
    assert any((app_server.runs_dir / ".datasets").glob("*/source.zip"))
    other = new_context().new_page()
    open_app(other, app_server, "distill")
    picker = other.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]').first
    picker.click()
    other.get_by_role("option", name=re.compile(r"upload:shapes")).click()
    other.get_by_text(re.compile(r"Dataset: .*upload:shapes.*3 classes")).wait_for(timeout=60_000)
    assert_no_exception(other)


def test_stimulus_zip_download(app_server, page, tmp_path):
    from PIL import Image

    open_app(page, app_server, "archetypes")
    assert_no_exception(page)
    button = page.get_by_role("button", name=re.compile("Download stimuli"))
    button.scroll_into_view_if_needed()
    with page.expect_download(timeout=180_000) as info:
        button.click()
    data = info.value.path().read_bytes()
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        names = zf.namelist()
        assert "manifest.csv" in names
        rows = list(csv.DictReader(io.StringIO(zf.read("manifest.csv").decode("utf-8"))))
        pngs = [n for n in names if n.endswith(".png")]
        assert rows and len(rows) == len(pngs)
        assert {r["file"] for r in rows} == set(pngs)
        assert {r["class"] for r in rows} == {str(i) for i in range(10)}  # digits: every class
        for name in pngs[:5]:
            with Image.open(io.BytesIO(zf.read(name))) as img:
                assert img.format == "PNG" and img.size == (128, 128)
    assert_no_exception(page)

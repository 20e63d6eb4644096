"""A person's path through the distill page: a run, the grid evolving, pause, resume, stop, downloads."""
from __future__ import annotations

import io
import re

import pytest

from browserkit import GRID, assert_no_exception, click, open_app, set_number, wait_idle, wait_status, watch_grid

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def start_long_kip(page, server, steps: int = 200_000) -> None:
    """The distill page (the one-click preset start is covered by test_first_visit): KIP, IPC 1, a run long enough
    to pause and stop by hand; Start."""
    open_app(page, server, "distill")
    set_number(page, "Images per class (IPC)", 1)
    set_number(page, "Steps", steps)
    click(page, "Start")


def test_preset_runs_grid_changes_pause_resume_stop_and_downloads(app_server, page, tmp_path):
    start_long_kip(page, app_server)
    page.locator(GRID).first.wait_for(timeout=120_000)
    text = wait_status(page, "running", 120)
    assert "step" in text
    seen = watch_grid(page, 6)
    assert len(seen) >= 3, f"the grid did not evolve: {len(seen)} distinct images in 6 s"
    assert_no_exception(page)

    click(page, "Pause")
    paused = wait_status(page, "paused")
    step_at_pause = int(re.search(r"step ([\d,]+)", paused).group(1).replace(",", ""))
    page.wait_for_timeout(2500)
    still = wait_status(page, "paused")
    assert int(re.search(r"step ([\d,]+)", still).group(1).replace(",", "")) == step_at_pause
    assert page.get_by_role("button", name=re.compile("Resume")).is_enabled()

    click(page, "Resume")
    wait_status(page, "running")
    page.wait_for_timeout(1500)
    click(page, "Stop")
    stopped = wait_status(page, "stopped")
    last_step = int(re.search(r"step ([\d,]+)", stopped).group(1).replace(",", ""))
    assert step_at_pause < last_step < 200_000
    wait_idle(page)
    assert_no_exception(page)

    # downloads: a GIF of the evolution (several frames) and the PNG grid
    from PIL import Image

    with page.expect_download(timeout=120_000) as info:
        page.get_by_role("button", name=re.compile("GIF of the evolution")).click()
    gif_path = tmp_path / info.value.suggested_filename
    info.value.save_as(gif_path)
    assert gif_path.suffix == ".gif"
    with Image.open(gif_path) as gif:
        assert gif.format == "GIF" and getattr(gif, "n_frames", 1) >= 2
        assert gif.size[0] > 40 and gif.size[1] > 40

    with page.expect_download(timeout=120_000) as info:
        page.get_by_role("button", name=re.compile("PNG grid")).click()
    png = info.value.path().read_bytes()
    with Image.open(io.BytesIO(png)) as img:
        assert img.format == "PNG" and img.size[1] >= 10 * 8  # one row per digit class
    assert_no_exception(page)

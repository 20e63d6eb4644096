"""Screenshots for the README: the home page (with the example run) and the distill page mid-run.

    python assets/take_screenshots.py                 # starts `streamlit run app.py` on a free port
    python assets/take_screenshots.py --url http://127.0.0.1:8599   # or use a server you started

Needs Playwright's Python package and Debian's Chromium at /usr/bin/chromium (never `playwright install`).
Writes assets/screenshot-home.png and assets/screenshot-distill.png, each re-encoded with a reduced palette so
that it stays under 300 KB.
"""
from __future__ import annotations

import argparse
import io
import re
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "browser"))

MAX_BYTES = 300_000


def save_small(png: bytes, path: Path) -> int:
    """Write `png` to `path` as a palette PNG (fewer colours, then a smaller size, until it fits MAX_BYTES)."""
    from PIL import Image

    with Image.open(io.BytesIO(png)) as img:
        img = img.convert("RGB")
        for colors, scale in ((256, 1.0), (128, 1.0), (64, 1.0), (64, 0.8), (64, 0.6)):
            im = img if scale == 1.0 else img.resize((int(img.width * scale), int(img.height * scale)),
                                                      Image.Resampling.LANCZOS)
            buf = io.BytesIO()
            im.quantize(colors=colors, method=Image.Quantize.MEDIANCUT).save(buf, format="PNG", optimize=True)
            if buf.tell() <= MAX_BYTES:
                break
    path.write_bytes(buf.getvalue())
    return len(buf.getvalue())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="a running app (default: start one)")
    parser.add_argument("--out", type=Path, default=ROOT / "assets")
    parser.add_argument("--run-seconds", type=float, default=12, help="how long the run goes before the shot")
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    from browserkit import CHROMIUM, CHROMIUM_ARGS, GRID, Server, click, open_app, set_number, wait_idle, wait_status

    tmp = tempfile.TemporaryDirectory()
    server = None if args.url else Server(Path(tmp.name) / "runs", Path(tmp.name) / "streamlit.log")
    target = server or SimpleNamespace(url=args.url.rstrip("/"))  # open_app only reads `.url`
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
            ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
            ctx.set_default_timeout(90_000)
            page = ctx.new_page()

            open_app(page, target, "")
            page.get_by_text("An example: archetypes").wait_for()
            page.locator('[data-testid="stMainBlockContainer"] [data-testid="stImage"] img').first.wait_for()
            wait_idle(page)
            page.wait_for_timeout(1500)
            n = save_small(page.screenshot(full_page=False), args.out / "screenshot-home.png")
            print(f"screenshot-home.png: {n / 1000:.0f} KB")

            open_app(page, target, "learn")
            page.get_by_role("button", name=re.compile(r"Try it: KIP on digits, 10 per class")).click()
            page.wait_for_url("**/distill")
            page.get_by_text("Preset loaded").wait_for()
            wait_idle(page)
            page.set_viewport_size({"width": 1400, "height": 1150})
            set_number(page, "Steps", 100_000)
            click(page, "Start")
            page.locator(GRID).first.wait_for(timeout=120_000)
            wait_status(page, "running", 120)
            page.wait_for_timeout(args.run_seconds * 1000)
            n = save_small(page.screenshot(full_page=False), args.out / "screenshot-distill.png")
            print(f"screenshot-distill.png: {n / 1000:.0f} KB")
            click(page, "Stop")
            wait_status(page, "stopped", 60)
            ctx.close()
            browser.close()
    finally:
        if server is not None:
            server.stop()
        tmp.cleanup()


if __name__ == "__main__":
    main()

"""Screenshots for the README: the home page with its example run, the distill page mid-run in presentation
mode, and the embedding page with its map.

    python -m benchmarks.screenshots                          # starts `streamlit run app.py` on a free port
    python -m benchmarks.screenshots --url http://127.0.0.1:8599   # or use a server you started

Starts the app as the browser tests do (`tests/browser/browserkit.Server`, a temporary runs folder), drives
Debian's Chromium (/usr/bin/chromium, never `playwright install`) through Playwright's Python package at a
1400×900 viewport, and writes `home.png`, `distill-presentation.png` and `embedding.png` in `assets/screenshots/`,
each re-encoded with a reduced palette (`save_small`) to stay well under 400 KB.
"""
from __future__ import annotations

import argparse
import io
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "browser"))

VIEWPORT = {"width": 1400, "height": 900}
LIMIT_BYTES = 400_000
MAIN = '[data-testid="stMainBlockContainer"]'


def save_small(png: bytes, path: Path) -> int:
    """Write `png` to `path` as a palette PNG (fewer colours, then a smaller size, until it fits LIMIT_BYTES);
    returns its size in bytes."""
    from PIL import Image

    with Image.open(io.BytesIO(png)) as img:
        img = img.convert("RGB")
        for colors, scale in ((256, 1.0), (128, 1.0), (64, 1.0), (64, 0.8), (64, 0.6)):
            im = img if scale == 1.0 else img.resize((int(img.width * scale), int(img.height * scale)),
                                                      Image.Resampling.LANCZOS)
            buf = io.BytesIO()
            im.quantize(colors=colors, method=Image.Quantize.MEDIANCUT).save(buf, format="PNG", optimize=True)
            if buf.tell() <= LIMIT_BYTES:
                break
    path.write_bytes(buf.getvalue())
    return len(buf.getvalue())


def open_page(page, target, path: str, tries: int = 3) -> None:
    """`browserkit.open_app`, tried again when a busy machine keeps the first load past its 90 s."""
    from browserkit import open_app

    for attempt in range(tries):
        try:
            open_app(page, target, path)
            return
        except Exception:  # noqa: BLE001 - playwright's TimeoutError; the last try raises
            if attempt == tries - 1:
                raise


def home(page, target, out: Path) -> int:
    """The home page with the example run's archetypes and curves."""
    from browserkit import wait_idle

    open_page(page, target, "")
    page.get_by_text("An example: archetypes").wait_for()
    page.locator(f'{MAIN} [data-testid="stImage"] img').first.wait_for()
    wait_idle(page)
    page.wait_for_timeout(1500)
    return save_small(page.screenshot(full_page=False), out)


def distill_presentation(page, target, out: Path, run_seconds: float) -> int:
    """KIP on digits, 10 per class from real images (many steps, so that it is still running), presentation
    mode on, a shot after `run_seconds`; the run is stopped afterwards."""
    from browserkit import GRID, click, set_number, wait_idle

    open_page(page, target, "distill")
    set_number(page, "Images per class (IPC)", 10)
    set_number(page, "Steps", 100_000)
    click(page, "Start")
    page.locator(GRID).first.wait_for(timeout=120_000)
    page.get_by_text("Presentation mode").click()
    wait_idle(page)
    page.wait_for_timeout(int(run_seconds * 1000))
    page.locator(f'{MAIN} [data-testid="stPlotlyChart"]').first.wait_for(timeout=120_000)
    page.evaluate("window.scrollTo(0, 0)")
    page.wait_for_timeout(800)
    size = save_small(page.screenshot(full_page=False), out)
    page.get_by_text("Controls").first.click()
    page.wait_for_timeout(500)
    click(page, "Stop")
    wait_idle(page)
    return size


def embedding_map(page, target, out: Path) -> int:
    """The embedding page of digits with its UMAP map (fitted on first use, then cached) and the class means."""
    from browserkit import wait_idle

    open_page(page, target, "embedding")
    page.locator(f'{MAIN} [data-testid="stPlotlyChart"]').first.wait_for(timeout=600_000)
    wait_idle(page, timeout_s=300)
    page.wait_for_timeout(1500)
    return save_small(page.screenshot(full_page=False), out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="a running app (default: start one)")
    parser.add_argument("--out", type=Path, default=ROOT / "assets" / "screenshots")
    parser.add_argument("--run-seconds", type=float, default=25, help="how long the run goes before the shot")
    parser.add_argument("--only", choices=("home", "distill", "embedding"), help="take one of the three")
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    from browserkit import CHROMIUM, CHROMIUM_ARGS, Server

    args.out.mkdir(parents=True, exist_ok=True)
    tmp = tempfile.TemporaryDirectory()
    server = None if args.url else Server(Path(tmp.name) / "runs", Path(tmp.name) / "streamlit.log")
    target = server or SimpleNamespace(url=args.url.rstrip("/"))  # open_app only reads `.url`
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
            ctx = browser.new_context(viewport=VIEWPORT)
            ctx.set_default_timeout(90_000)
            page = ctx.new_page()
            shots = {"home": ("home.png", lambda p: home(page, target, p)),
                     "distill": ("distill-presentation.png",
                                 lambda p: distill_presentation(page, target, p, args.run_seconds)),
                     "embedding": ("embedding.png", lambda p: embedding_map(page, target, p))}
            for key, (name, shoot) in shots.items():
                if args.only not in (None, key):
                    continue
                n = shoot(args.out / name)
                print(f"{name}: {n / 1000:.0f} KB")
                if n > LIMIT_BYTES:
                    raise SystemExit(f"{name} is {n / 1000:.0f} KB, above {LIMIT_BYTES / 1000:.0f} KB")
            ctx.close()
            browser.close()
    finally:
        if server is not None:
            server.stop()
        tmp.cleanup()


if __name__ == "__main__":
    main()

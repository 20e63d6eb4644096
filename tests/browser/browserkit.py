"""Helpers of the browser tests: the app server process and page utilities (imported by conftest and tests)."""
from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SERVER_START_S = 180
EXCEPTION_SELECTOR = '[data-testid="stException"]'


def _missing_reason() -> str | None:
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing (install Debian's chromium: sudo apt-get install -y chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright Python package is missing (pip install -r requirements-dev.txt)"
    if not (ROOT / "app.py").is_file():
        return "app.py is missing"
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A running `streamlit run app.py`."""

    def __init__(self, runs_dir: Path, log_path: Path, extra_env: dict[str, str] | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.runs_dir = runs_dir
        self.log_path = log_path
        env = {**os.environ, "DISTILL_RUNS_DIR": str(runs_dir), "PYTHONUNBUFFERED": "1", **(extra_env or {})}
        env.pop("DISTILL_DEBUG", None)
        cmd = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(self.port),
               "--server.address", "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false",
               "--server.fileWatcherType", "none", "--server.runOnSave", "false"]
        self._log = open(log_path, "w", encoding="utf-8")
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT)
        self._wait_healthy()

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + SERVER_START_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"streamlit exited with {self.proc.returncode}:\n{self.log()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as resp:
                    if resp.status == 200 and resp.read().strip() == b"ok":
                        return
            except OSError:
                pass
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"streamlit did not become healthy in {SERVER_START_S}s:\n{self.log()[-3000:]}")

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def rss_mb(self) -> float:
        """Resident memory of the server process (Linux /proc), in MiB."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("VmRSS not found")

    def threads(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("Threads:"):
                return int(line.split()[1])
        raise RuntimeError("Threads not found")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)
        self._log.close()


_LOG_RECORD = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", re.M)
# The web server's own noise when a browser tab goes away mid-message: the websocket is already closed when
# Streamlit's endpoint tries to close it. Not the app's doing, and the session ends normally.
_WEBSOCKET_TEARDOWN = ("WebSocketDisconnected", "WebSocket is not connected")


def server_tracebacks(log: str) -> list[str]:
    """The tracebacks in a server log, one string per log record, leaving out a websocket teardown race in the web
    server that involves no code of this project."""
    starts = [m.start() for m in _LOG_RECORD.finditer(log)] or [0]
    if starts[0] != 0:
        starts.insert(0, 0)
    records = [log[a:b] for a, b in zip(starts, starts[1:] + [len(log)])]
    ours = f'File "{ROOT}'
    return [r for r in records if "Traceback" in r
            and (ours in r or not any(marker in r for marker in _WEBSOCKET_TEARDOWN))]


# ----------------------------------------------------------------------------------------------- helpers

def open_app(page, server: Server, path: str = "") -> None:
    """Load a page of the app and wait until Streamlit has drawn it."""
    page.goto(f"{server.url}/{path}", wait_until="domcontentloaded")
    page.wait_for_selector('[data-testid="stApp"]', timeout=90_000)
    page.wait_for_selector('[data-testid="stMainBlockContainer"] h1', timeout=90_000)
    wait_idle(page)


def wait_idle(page, timeout_s: float = 90) -> None:
    """Wait until Streamlit is not running the script (the status widget's 'Running' is gone)."""
    deadline = time.monotonic() + timeout_s
    quiet_since = None
    while time.monotonic() < deadline:
        running = page.locator('[data-testid="stStatusWidget"]').filter(has_text=re.compile("Running|Connecting"))
        if running.count() == 0:
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since > 0.6:
                return
        else:
            quiet_since = None
        page.wait_for_timeout(150)


def assert_no_exception(page) -> None:
    exc = page.locator(EXCEPTION_SELECTOR)
    assert exc.count() == 0, f"exception shown on the page: {exc.first.inner_text()[:2000]}"
    body = page.locator("body").inner_text()
    assert "Traceback" not in body, body[:3000]


def sidebar_link(page, title: str):
    return page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name=title)


# ----------------------------------------------------------------------------------------- distill page

GRID = '[data-testid="stMainBlockContainer"] [data-testid="stImage"] img'


def grid_sources(page) -> list[str]:
    return page.locator(GRID).evaluate_all("els => els.map(e => e.getAttribute('src'))")


def watch_grid(page, seconds: float) -> set[str]:
    """Distinct grid image sources seen over `seconds` (each new src is a redraw with new pixels)."""
    seen: set[str] = set()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        seen.update(s for s in grid_sources(page) if s)
        page.wait_for_timeout(200)
    return seen


def progress_text(page) -> str:
    bar = page.locator('[data-testid="stProgress"]')
    return bar.first.inner_text() if bar.count() else ""


def wait_status(page, word: str, timeout_s: float = 60) -> str:
    deadline = time.monotonic() + timeout_s
    text = ""
    while time.monotonic() < deadline:
        text = progress_text(page)
        if text.lower().startswith(word):
            return text
        page.wait_for_timeout(250)
    raise AssertionError(f"status never became {word!r}; progress: {text!r}")


def set_number(page, label: str, value: int) -> None:
    box = page.get_by_label(label, exact=True)
    box.fill(str(value))
    box.press("Enter")
    wait_idle(page)


def click(page, name: str) -> None:
    page.get_by_role("button", name=re.compile(rf"^\W*{re.escape(name)}\W*$")).click()

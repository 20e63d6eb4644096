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
    """A running `streamlit run app.py` (or another script of the checkout, for tests of the test tools)."""

    def __init__(self, runs_dir: Path, log_path: Path, extra_env: dict[str, str] | None = None,
                 script: str = "app.py"):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.runs_dir = runs_dir
        self.log_path = log_path
        env = {**os.environ, "DISTILL_RUNS_DIR": str(runs_dir), "PYTHONUNBUFFERED": "1", **(extra_env or {})}
        env.pop("DISTILL_DEBUG", None)
        cmd = [sys.executable, "-m", "streamlit", "run", script, "--server.port", str(self.port),
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

# The project's own code. A traceback frame in one of these (compared as resolved paths, never as a string prefix:
# a virtual environment at <checkout>/.venv or <checkout>-venv shares the checkout's prefix) is this project's doing.
PROJECT_CODE: tuple[Path, ...] = (ROOT / "app.py", ROOT / "app_pages", ROOT / "ui", ROOT / "distill_core")

# What the web server logs when a browser tab goes away mid-message (the client closed the websocket while the
# server was still sending): the session ends normally and no code of this project is involved. Recognised by the
# exception's type, as a traceback prints it: starlette and uvicorn (Streamlit's server since it left tornado),
# the websockets package under uvicorn, and tornado (older Streamlit releases that requirements.txt still allows).
WEBSOCKET_TEARDOWN: frozenset[str] = frozenset({
    "starlette.websockets.WebSocketDisconnect",
    "starlette.websockets.WebSocketDisconnected",   # 'Cannot call "send" once a close message has been sent.'
    "uvicorn.protocols.utils.ClientDisconnected",
    "websockets.exceptions.ConnectionClosed",
    "websockets.exceptions.ConnectionClosedOK",
    "websockets.exceptions.ConnectionClosedError",
    "tornado.websocket.WebSocketClosedError",
    "tornado.iostream.StreamClosedError",
    "streamlit.runtime.session_manager.SessionClientDisconnectedError",
})
# Starlette releases before WebSocketDisconnected raised a plain RuntimeError with these messages.
_PLAIN_RUNTIME_TEARDOWN = ('Cannot call "send" once a close message has been sent',
                           'Cannot call "receive" once a disconnect message has been received',
                           'WebSocket is not connected. Need to call "accept" first')
# Exception groups only wrap other exceptions (anyio task groups in the server): their members decide.
_WRAPPERS = frozenset({"ExceptionGroup", "BaseExceptionGroup", "exceptiongroup.ExceptionGroup",
                       "exceptiongroup.BaseExceptionGroup"})
_FRAME = re.compile(r'^\s*File "(?P<path>[^"]+)", line \d+')
_GROUP_MARGIN = re.compile(r"^\s*(?:\|\s?)+")      # the "  | " margin of an exception group's members
_GROUP_RULE = re.compile(r"^\s*\+[-+ ]*(?:\d+ ?-*|\.\.\..*)?\s*$")  # its "+-+---- 1 ----" separators
_EXCEPTION_LINE = re.compile(r"^(?P<type>[A-Za-z_][\w.]*)(?::\s?(?P<message>.*))?$")


def is_project_frame(path: str, project_code: tuple[Path, ...] = PROJECT_CODE) -> bool:
    """Whether a traceback frame's file is the project's own code: the resolved file is one of `project_code`'s
    files or lies inside one of its folders. A relative path is taken from the checkout (the server's cwd)."""
    p = Path(path)
    if not p.is_absolute():
        p = ROOT / p
    p = p.resolve()
    for code in project_code:
        code = code.resolve()
        if p == code or (code.suffix != ".py" and p.is_relative_to(code)):
            return True
    return False


def _parse_traceback(record: str) -> tuple[list[str], list[tuple[str, str]]]:
    """(the files of every frame, (type, message) of every exception) in one log record, chained causes and
    exception groups included."""
    files: list[str] = []
    exceptions: list[tuple[str, str]] = []
    in_traceback = False
    for raw in record.splitlines():
        if _GROUP_RULE.match(raw):
            continue
        line = _GROUP_MARGIN.sub("", raw, count=1) if raw.lstrip().startswith("|") else raw
        if "Traceback (most recent call last)" in line:
            in_traceback = True
            continue
        if not in_traceback or not line.strip():
            continue
        frame = _FRAME.match(line)
        if frame:
            files.append(frame.group("path"))
        elif not line[0].isspace():  # the first unindented line after the frames names the exception
            m = _EXCEPTION_LINE.match(line.strip())
            exceptions.append((m.group("type"), m.group("message") or "") if m else (line.strip(), ""))
            in_traceback = False
    return files, exceptions


def _is_teardown(exc_type: str, message: str) -> bool:
    if exc_type in WEBSOCKET_TEARDOWN or any(exc_type == name.rsplit(".", 1)[1] for name in WEBSOCKET_TEARDOWN):
        return True
    return exc_type == "RuntimeError" and message.startswith(_PLAIN_RUNTIME_TEARDOWN)


def is_websocket_teardown(record: str, project_code: tuple[Path, ...] = PROJECT_CODE) -> bool:
    """Whether a log record's traceback is the web server's websocket teardown and nothing else: no frame of the
    project's code, and every exception in it (causes and group members too) of a teardown type."""
    files, exceptions = _parse_traceback(record)
    if any(is_project_frame(f, project_code) for f in files):
        return False
    real = [e for e in exceptions if e[0] not in _WRAPPERS]
    return bool(real) and all(_is_teardown(t, m) for t, m in real)


def log_records(log: str) -> list[str]:
    """A server log cut into records (each starts with its timestamp; a traceback belongs to the record above)."""
    starts = [m.start() for m in _LOG_RECORD.finditer(log)] or [0]
    if starts[0] != 0:
        starts.insert(0, 0)
    return [log[a:b] for a, b in zip(starts, starts[1:] + [len(log)])]


def server_tracebacks(log: str, project_code: tuple[Path, ...] = PROJECT_CODE) -> list[str]:
    """The tracebacks in a server log, one string per log record, leaving out the web server's websocket teardown.
    A traceback with a frame of the project's code is always kept."""
    return [r for r in log_records(log) if "Traceback" in r and not is_websocket_teardown(r, project_code)]


def assert_clean_log(server: "Server") -> None:
    """Fail when the server logged a traceback (see `server_tracebacks`)."""
    tracebacks = server_tracebacks(server.log_path.read_text(encoding="utf-8", errors="replace"))
    assert not tracebacks, f"the server logged {len(tracebacks)} traceback(s); the first:\n{tracebacks[0][-4000:]}"


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

"""The browser tests' server-log check (tests/browser/browserkit.py) on crafted log records.

Every record here is a real Python traceback: the exceptions are the web server's own classes (tornado's, which
current Streamlit no longer installs, are stood in for by classes of the same module and name), raised through code
compiled under the file names a server would print. The check must ignore the web server's websocket teardown
wherever the virtual environment lives (a `.venv` inside the checkout shares its path prefix; so does a sibling
`<checkout>-venv`) and must report every traceback that passes through the project's own code.
"""
from __future__ import annotations

import builtins
import sys
import traceback
from pathlib import Path

import pytest
from starlette.websockets import WebSocketDisconnect, WebSocketDisconnected
from uvicorn.protocols.utils import ClientDisconnected
from websockets.exceptions import ConnectionClosedError, ConnectionClosedOK

sys.path.insert(0, str(Path(__file__).resolve().parent / "browser"))
import browserkit as bk  # noqa: E402

ROOT = bk.ROOT
ExceptionGroup = getattr(builtins, "ExceptionGroup", None) or __import__("exceptiongroup").ExceptionGroup

VENVS = {
    "venv-inside-checkout": ROOT / ".venv" / "lib" / "python3.11" / "site-packages",
    "sibling-venv": Path(f"{ROOT}-venv") / "lib" / "python3.11" / "site-packages",
    "global-install": Path("/usr/local/lib/python3.11/site-packages"),
}


def _stand_in(module: str, name: str, base: type = Exception) -> type:
    return type(name, (base,), {"__module__": module})


# Every variant the web server logs when a tab closes mid-message.
TEARDOWNS = {
    "starlette-send-after-close": lambda: WebSocketDisconnected(
        'Cannot call "send" once a close message has been sent.'),
    "starlette-not-connected": lambda: WebSocketDisconnected(
        'WebSocket is not connected. Need to call "accept" first.'),
    "starlette-disconnect": lambda: WebSocketDisconnect(code=1006),
    "starlette-old-runtime-error": lambda: RuntimeError('Cannot call "send" once a close message has been sent.'),
    "uvicorn-client-disconnected": lambda: ClientDisconnected(),
    "websockets-closed-ok": lambda: ConnectionClosedOK(None, None),
    "websockets-closed-error": lambda: ConnectionClosedError(None, None),
    "tornado-websocket-closed": lambda: _stand_in("tornado.websocket", "WebSocketClosedError")(),
    "tornado-stream-closed": lambda: _stand_in("tornado.iostream", "StreamClosedError", OSError)("Stream is closed"),
}


def _raised(exc: BaseException, files: list[Path]) -> BaseException:
    """`exc` raised at the bottom of a call chain whose frames are in `files` (outermost first)."""
    namespace: dict = {}
    for i, path in enumerate(files):
        body = "    raise exc\n" if i == len(files) - 1 else f"    return call_{i + 1}(exc)\n"
        exec(compile(f"def call_{i}(exc):\n{body}", str(path), "exec"), namespace)
    try:
        namespace["call_0"](exc)
    except BaseException as caught:  # noqa: BLE001 - the point is to keep it
        return caught
    raise AssertionError("nothing was raised")


def _record(exc: BaseException, message: str = "Error sending websocket payload",
            logger: str = "streamlit.web.server.starlette.starlette_websocket") -> str:
    """One server log record as Streamlit writes it: timestamp, level, logger, message, then the traceback."""
    return (f"2026-11-30 01:02:03.456 ERROR   {logger}: {message}\n"
            + "".join(traceback.format_exception(exc)))


def _server_frames(venv: Path) -> list[Path]:
    return [venv / "streamlit" / "web" / "server" / "starlette" / "starlette_websocket.py",
            venv / "starlette" / "websockets.py"]


def _teardown(name: str, venv: Path) -> BaseException:
    return _raised(TEARDOWNS[name](), _server_frames(venv))


@pytest.mark.parametrize("venv", VENVS.values(), ids=VENVS.keys())
@pytest.mark.parametrize("name", TEARDOWNS)
def test_websocket_teardown_is_ignored_wherever_the_environment_lives(name, venv):
    record = _record(_teardown(name, venv))
    assert "Traceback" in record and bk.server_tracebacks(record) == []
    # a teardown whose stack passes through the project's code is the project's doing: reported
    through_ours = _raised(TEARDOWNS[name](), [ROOT / "ui" / "state.py"] + _server_frames(venv))
    assert bk.server_tracebacks(_record(through_ours)) == [_record(through_ours)]


@pytest.mark.parametrize("venv", VENVS.values(), ids=VENVS.keys())
def test_a_project_frame_is_always_reported(venv):
    ours = _raised(KeyError("step"), [venv / "streamlit" / "runtime" / "scriptrunner" / "exec_code.py",
                                      ROOT / "app_pages" / "distill.py", ROOT / "distill_core" / "jobs.py"])
    record = _record(ours, "Uncaught app execution", "streamlit.error_util")
    assert bk.server_tracebacks(record) == [record]
    # even when the exception itself is a teardown type raised from a frame of ours
    teardown_in_ours = _raised(WebSocketDisconnected("x"), _server_frames(venv) + [ROOT / "app.py"])
    assert len(bk.server_tracebacks(_record(teardown_in_ours))) == 1


def test_other_server_errors_are_reported():
    """Only the teardown is ignored: any other exception in the web server still fails the browser tests."""
    venv = VENVS["venv-inside-checkout"]
    for exc in (ValueError("bad frame"), RuntimeError("The \"mode\" argument should be \"text\" or \"binary\"."),
                _stand_in("tornado.web", "HTTPError")()):
        record = _record(_raised(exc, _server_frames(venv)))
        assert bk.server_tracebacks(record) == [record], type(exc).__name__


def test_chained_exceptions_count_every_link():
    venv = VENVS["venv-inside-checkout"]
    frames = _server_frames(venv)
    # uvicorn's ClientDisconnected raised while handling websockets' ConnectionClosedOK: all teardown
    outer = _raised(ClientDisconnected(), frames)
    outer.__context__ = _raised(ConnectionClosedOK(None, None), frames)
    assert "During handling of the above exception" in _record(outer)
    assert bk.server_tracebacks(_record(outer)) == []
    # a teardown raised while handling a real error: the real error is reported
    masked = _raised(WebSocketDisconnected('Cannot call "send" once a close message has been sent.'), frames)
    masked.__cause__ = _raised(ZeroDivisionError("division by zero"), frames)
    assert len(bk.server_tracebacks(_record(masked))) == 1


def test_exception_groups_are_judged_by_their_members():
    venv = VENVS["sibling-venv"]
    frames = _server_frames(venv)
    members = [_teardown("starlette-send-after-close", venv), _teardown("uvicorn-client-disconnected", venv)]
    group = _raised(ExceptionGroup("unhandled errors in a TaskGroup", members), frames)
    assert "Exception Group Traceback" in _record(group)
    assert bk.server_tracebacks(_record(group)) == []
    bad = _raised(ExceptionGroup("unhandled errors in a TaskGroup", members + [_raised(ValueError("x"), frames)]),
                  frames)
    assert len(bk.server_tracebacks(_record(bad))) == 1
    ours = _raised(ExceptionGroup("g", [_raised(WebSocketDisconnect(1006), [ROOT / "ui" / "live.py"])]), frames)
    assert len(bk.server_tracebacks(_record(ours))) == 1


def test_records_are_judged_one_by_one():
    venv = VENVS["venv-inside-checkout"]
    teardown = _record(_teardown("starlette-send-after-close", venv))
    ours = _record(_raised(KeyError("x"), [ROOT / "distill_core" / "data.py"]), "Uncaught app execution")
    info = "2026-11-30 01:02:04.000 INFO    streamlit: a line without a traceback\n"
    log = info + teardown + ours + info + teardown
    assert bk.server_tracebacks(log) == [ours]
    assert bk.server_tracebacks(info + info) == []
    # a traceback cut off before its exception line (the server was killed mid-write) is reported, not guessed at
    cut = teardown[:teardown.rindex("starlette.websockets.WebSocketDisconnected")]
    assert bk.server_tracebacks(cut) == [cut]


@pytest.mark.parametrize("path,ours", [
    (ROOT / "app.py", True),
    (ROOT / "app_pages" / "distill.py", True),
    (ROOT / "ui" / "state.py", True),
    (ROOT / "distill_core" / "methods" / "kip.py", True),
    (Path("distill_core") / "data.py", True),                        # relative: from the checkout (server cwd)
    (ROOT / ".venv" / "lib" / "python3.11" / "site-packages" / "streamlit" / "runtime" / "app_session.py", False),
    (Path(f"{ROOT}-venv") / "lib" / "python3.11" / "site-packages" / "starlette" / "websockets.py", False),
    (Path(f"{ROOT}-venv") / "distill_core" / "data.py", False),      # a copy of ours elsewhere is not ours
    (ROOT / "ui-extra" / "x.py", False),                              # a sibling folder sharing a prefix
    (ROOT / "app.py.bak", False),
    (ROOT / "distill_core" / ".." / "tests" / "conftest.py", False),   # resolved, not compared as text
    (ROOT / "tests" / "browser" / "browserkit.py", False),
], ids=lambda v: str(v).replace(str(ROOT), "<root>") if isinstance(v, Path) else str(v))
def test_project_frames_are_decided_by_resolved_paths(path, ours):
    assert bk.is_project_frame(str(path)) is ours


def test_a_link_to_project_code_is_project_code(tmp_path):
    link = tmp_path / "linked.py"
    link.symlink_to(ROOT / "distill_core" / "data.py")
    assert bk.is_project_frame(str(link))
    record = _record(_raised(KeyError("x"), [VENVS["venv-inside-checkout"] / "streamlit" / "x.py", link]))
    assert len(bk.server_tracebacks(record)) == 1

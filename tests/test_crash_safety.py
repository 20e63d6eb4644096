"""Crash safety of run folders: a process killed with SIGKILL while saving never costs the previous run, and the
half-written folder is hidden ('.NAME.partial-*'), never listed, and tidied by `runs.clean_partials`."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from distill_core.runs import OLD_MARK, PARTIAL_MARK, clean_partials, list_runs, load_run, save_run
from distill_core.summary import Summary

ROOT = Path(__file__).resolve().parents[1]
CLASSES = [str(i) for i in range(10)]

# The child saves a big run (1,000 colour 32×32 images, ~12 MB of tensors) over `out` and is killed at a chosen
# moment: 'write' — half-way through writing summary.pt; 'swap' — between moving the old run aside and renaming
# the new one into place (the one window where neither is under the real name).
CHILD = textwrap.dedent("""
    import io, os, sys, time
    import torch
    import distill_core.runs as runs
    from distill_core.summary import Summary

    out, moment = sys.argv[1], sys.argv[2]
    g = torch.Generator().manual_seed(7)
    images = torch.rand(1000, 3, 32, 32, generator=g)
    labels = torch.arange(10).repeat_interleave(100)
    summary = Summary(images, labels, "big", "synthetic", 100, [str(i) for i in range(10)])

    real_save, real_rename = torch.save, os.rename

    def torn_save(obj, f, *args, **kwargs):
        buf = io.BytesIO()
        real_save(obj, buf, *args, **kwargs)
        data = buf.getvalue()
        with open(f, "wb") as fh:
            fh.write(data[: len(data) // 2])
            fh.flush()
            os.fsync(fh.fileno())
        print("saving", flush=True)
        time.sleep(600)

    def stalled_rename(src, dst):
        real_rename(src, dst)
        if runs.OLD_MARK in os.fspath(dst):
            print("swapping", flush=True)
            time.sleep(600)

    if moment == "write":
        torch.save = torn_save
    else:
        os.rename = stalled_rename
    runs.save_run(out, summary, {"steps": 1}, overwrite=True)
    print("finished", flush=True)
""")


def _previous_run(out: Path) -> torch.Tensor:
    images = torch.rand(20, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    save_run(out, Summary(images, torch.arange(10).repeat_interleave(2), "random", "synthetic", 2, CLASSES),
             {"steps": 1, "seed": 1})
    return images


def _kill_at(out: Path, moment: str, signal_word: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(out), moment], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env)
    try:
        deadline = time.monotonic() + 240
        line = ""
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if line.strip() == signal_word or not line:
                break
        assert line.strip() == signal_word, f"child did not reach '{signal_word}': {proc.stderr.read()[-2000:]}"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _hidden(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.name.startswith("."))


def test_sigkill_while_writing_keeps_the_previous_run(tmp_path):
    root = tmp_path / "runs"
    out = root / "exp"
    before = _previous_run(out)
    _kill_at(out, "write", "saving")

    record = load_run(out)  # the previous run is intact under its name
    assert torch.equal(record.summary.images, before) and record.config["seed"] == 1
    hidden = _hidden(root)
    assert len(hidden) == 1 and hidden[0].startswith(f".exp{PARTIAL_MARK}"), hidden
    partial = root / hidden[0]
    assert (partial / "summary.pt").stat().st_size > 1_000_000  # it really was half-way through a big write
    assert [r["name"] for r in list_runs(root)] == ["exp"]  # the library never shows the half-written one

    assert clean_partials(root) == 0  # fresh: it could belong to a save still in progress elsewhere
    assert partial.exists()
    assert clean_partials(root, older_than_s=0) == 1
    assert _hidden(root) == [] and torch.equal(load_run(out).summary.images, before)


def test_sigkill_while_writing_a_new_run_leaves_no_run(tmp_path):
    root = tmp_path / "runs"
    root.mkdir()
    out = root / "fresh"
    _kill_at(out, "write", "saving")
    assert not out.exists() and list_runs(root) == []
    assert len(_hidden(root)) == 1 and PARTIAL_MARK in _hidden(root)[0]
    assert clean_partials(root, older_than_s=0) == 1 and list(root.iterdir()) == []


def test_sigkill_between_the_renames_loses_nothing(tmp_path):
    root = tmp_path / "runs"
    out = root / "exp"
    before = _previous_run(out)
    _kill_at(out, "swap", "swapping")

    assert not out.exists()  # the one window: the old run is aside, the new one not yet in place
    hidden = _hidden(root)
    assert any(OLD_MARK in h for h in hidden) and any(PARTIAL_MARK in h for h in hidden), hidden
    clean_partials(root, older_than_s=0)  # what the app does when it starts
    assert _hidden(root) == []
    record = load_run(out)
    assert torch.equal(record.summary.images, before) and record.config["seed"] == 1


def test_clean_partials_removes_stale_leftovers_only(tmp_path):
    root = tmp_path / "runs"
    out = root / "keep"
    before = _previous_run(out)
    stale = root / f".gone{PARTIAL_MARK}1234abcd"
    stale.mkdir()
    (stale / "summary.pt").write_bytes(b"torn")
    fresh = root / f".busy{PARTIAL_MARK}5678abcd"
    fresh.mkdir()
    trash = root / f".keep{OLD_MARK}deadbeef"  # a finished overwrite whose old copy was not yet removed
    trash.mkdir()
    old = time.time() - 7200
    os.utime(stale, (old, old))
    assert clean_partials(root) == 2
    assert _hidden(root) == [fresh.name]
    assert torch.equal(load_run(out).summary.images, before)
    assert clean_partials(tmp_path / "missing") == 0


def test_a_failed_write_is_one_clear_error_and_leaves_nothing(tmp_path, monkeypatch):
    import distill_core.runs as runs
    from distill_core.errors import DistillError

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(runs.torch, "save", disk_full)
    images = torch.rand(10, 1, 8, 8)
    with pytest.raises(DistillError, match="cannot write run folder .*No space left on device"):
        save_run(tmp_path / "r", Summary(images, torch.arange(10), "random", "x", 1, CLASSES), {})
    assert list(tmp_path.iterdir()) == []

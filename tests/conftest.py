"""Shared fixtures: embedded datasets loaded once, a temporary runs folder for every test."""
from __future__ import annotations

import os

import pytest
import torch

# One compute thread per process, here and in every subprocess the tests start (CLI runs, the app's server). The
# tests' tensors are small; on a busy 2-core machine a second OpenMP thread makes small convolutions tens of times
# slower (threads wait on each other) instead of faster.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")


@pytest.fixture(autouse=True)
def _isolated_runs_dir(tmp_path, monkeypatch):
    """No test writes into the project's runs/ folder."""
    monkeypatch.setenv("DISTILL_RUNS_DIR", str(tmp_path / "runs"))


@pytest.fixture(scope="session")
def digits():
    from distill_core.data import load_dataset

    return load_dataset("digits")


@pytest.fixture(scope="session")
def mnist5k():
    from distill_core.data import load_dataset

    return load_dataset("mnist-5k")


@pytest.fixture(autouse=True, scope="session")
def _bounded_threads():
    torch.set_num_threads(1)


@pytest.fixture(autouse=True, scope="session")
def _no_background_work_at_exit():
    """At the end of the session no job or background evaluation is still inside torch (a thread torn down at
    interpreter exit mid-computation aborts the process)."""
    yield
    from distill_core import embed, jobs

    jobs.stop_all(timeout=30)
    embed.join_warm_up(timeout=120)  # the maps' warm-up thread (app tests start it) finishes its piece of work

"""Shared fixtures: embedded datasets loaded once, a temporary runs folder for every test."""
from __future__ import annotations

import pytest
import torch


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
    torch.set_num_threads(min(2, torch.get_num_threads()))

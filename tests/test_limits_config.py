"""Limits live in distill_core/limits.py; the Streamlit server config must agree with them."""
from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from distill_core.limits import LIMITS, Limits

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / ".streamlit" / "config.toml"


def _toml() -> dict:
    try:
        import tomllib  # Python 3.11+
    except ModuleNotFoundError:  # Python 3.10: streamlit depends on `toml`
        import toml

        return toml.loads(CONFIG.read_text(encoding="utf-8"))
    return tomllib.loads(CONFIG.read_text(encoding="utf-8"))


def test_streamlit_config_matches_the_limits():
    cfg = _toml()
    server, browser = cfg["server"], cfg["browser"]
    assert server["maxUploadSize"] == LIMITS.upload_max_mb
    assert server["enableXsrfProtection"] is True
    assert server["headless"] is True
    assert server["runOnSave"] is False
    assert browser["gatherUsageStats"] is False


def test_streamlit_itself_reads_the_same_values(monkeypatch):
    """Streamlit parses the file the same way (run from the repository root, as `streamlit run app.py` is)."""
    import streamlit.config as st_config

    monkeypatch.chdir(ROOT)
    st_config.get_config_options(force_reparse=True)
    try:
        assert st_config.get_option("server.maxUploadSize") == LIMITS.upload_max_mb
        assert st_config.get_option("server.enableXsrfProtection") is True
        assert st_config.get_option("server.headless") is True
        assert st_config.get_option("server.runOnSave") is False
        assert st_config.get_option("browser.gatherUsageStats") is False
    finally:
        st_config.get_config_options(force_reparse=True)


def test_limits_are_positive_and_consistent():
    for f in fields(Limits):
        assert getattr(LIMITS, f.name) > 0, f.name
    assert LIMITS.unpacked_max_mb >= LIMITS.upload_max_mb
    assert LIMITS.max_image_size >= LIMITS.min_image_side
    assert LIMITS.max_image_pixels >= LIMITS.max_image_size ** 2
    assert 1 <= LIMITS.max_concurrent_jobs <= 16
    with pytest.raises(Exception):
        LIMITS.max_files = 1  # frozen: nothing changes a limit behind the others' backs

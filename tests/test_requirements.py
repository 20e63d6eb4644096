"""The lock (requirements-lock.txt) stays the resolution of the requirement files: every requirement is pinned in it,
for every Python the project supports, at a version its lower bound allows; README and CI install that lock."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
PYTHONS = ("3.10", "3.11", "3.12", "3.13")  # requires-python >= 3.10
LINUX = {"sys_platform": "linux", "platform_system": "Linux", "platform_machine": "x86_64"}


def _requirements(name: str) -> list[Requirement]:
    reqs = []
    for line in (ROOT / name).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            reqs.append(Requirement(line))
    return reqs


def _lock() -> dict[str, list[tuple[Version, Marker | None]]]:
    pins: dict[str, list[tuple[Version, Marker | None]]] = {}
    for line in (ROOT / "requirements-lock.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        req = Requirement(line)
        spec = list(req.specifier)
        assert len(spec) == 1 and spec[0].operator == "==", f"not an exact pin: {line}"
        pins.setdefault(canonicalize_name(req.name), []).append((Version(spec[0].version), req.marker))
    return pins


def _pinned(pins, name: str, python: str) -> list[Version]:
    env = {**LINUX, "python_version": python, "python_full_version": f"{python}.0"}
    return [v for v, marker in pins.get(canonicalize_name(name), []) if marker is None or marker.evaluate(env)]


@pytest.mark.parametrize("python", PYTHONS)
def test_the_lock_pins_every_requirement_within_its_bounds(python):
    pins = _lock()
    reqs = _requirements("requirements.txt") + _requirements("requirements-dev.txt")
    assert {"torch", "streamlit", "pytest", "pytest-timeout", "playwright"} <= {r.name for r in reqs}
    for req in reqs:
        versions = _pinned(pins, req.name, python)
        assert len(versions) == 1, f"{req.name} on Python {python}: {versions}"
        assert req.specifier.contains(versions[0], prereleases=True), f"{req.name}=={versions[0]} vs {req}"
    # torch and torchvision are a matched pair: one lock, one pair
    assert len(_pinned(pins, "torchvision", python)) == 1


def test_readme_and_ci_install_the_lock():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    install = re.compile(r"python3 -m pip install (?:-q )?-r (\S+)")
    assert set(install.findall(readme)) == {"requirements-lock.txt"}
    assert set(install.findall(ci)) == {"requirements-lock.txt"}
    assert "python3 -m pytest" in ci and ". .venv/bin/activate" in ci

"""Every registered method belongs to one of the named families, and the app's lists are grouped by them."""
from __future__ import annotations

import pytest

from distill_core.methods import FAMILIES, METHODS, Method, by_family, family_label, register_method
from distill_core.methods.base import METHODS as REGISTRY

EXPECTED = {"kip": "kernel", "ls": "kernel", "rfad": "kernel", "frepo": "kernel", "dc": "gradient",
            "dsa": "gradient", "dm": "distribution", "idm": "distribution", "mtt": "trajectory",
            "tesla": "trajectory", "datm": "trajectory", "rded": "decoupled", "random": "selection",
            "random-soft": "selection", "herding": "selection", "kcenter": "selection", "facility": "selection",
            "kmeans": "selection", "medoids": "selection", "mean": "selection"}


def test_every_registered_method_has_a_valid_family():
    assert set(FAMILIES) == {"kernel", "gradient", "distribution", "trajectory", "decoupled", "selection"}
    for name, cls in METHODS.items():
        assert isinstance(cls.family, str) and cls.family in FAMILIES, name


def test_known_methods_are_in_their_family():
    present = {n: f for n, f in EXPECTED.items() if n in METHODS}
    assert {"kip", "ls", "dc", "dsa", "dm", "mtt", "rded", "random", "random-soft", "herding"} <= set(present)
    for name, family in present.items():
        assert METHODS[name].family == family, name


def test_lists_are_grouped_by_family_in_order():
    names = by_family()
    assert sorted(names) == sorted(METHODS)
    ranks = [list(FAMILIES).index(METHODS[n].family) for n in names]
    assert ranks == sorted(ranks)  # families in FAMILIES order, never interleaved
    assert names.index("kip") < names.index("dc") < names.index("dm") < names.index("mtt") < names.index("rded") \
        < names.index("random")
    assert family_label("kip") == "Kernel · kip"
    assert family_label("rded") == "Decoupled · rded"
    assert by_family(["random", "nope", "kip"]) == ["kip", "random"]


def test_a_method_with_an_unknown_family_is_refused():
    class Odd(Method):
        name = "odd-family-test"
        family = "alchemy"

    with pytest.raises(ValueError, match="alchemy"):
        register_method(Odd)
    assert "odd-family-test" not in REGISTRY

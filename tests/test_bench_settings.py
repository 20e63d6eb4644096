"""`bench --param`: settings every method of a bench gets on top of its profile, or a clear refusal."""
from __future__ import annotations

import pytest

from distill_core.bench import run_bench
from distill_core.errors import InvalidInputError


def test_bench_settings_reach_every_method(digits):
    kw = dict(steps=1, reps=1, device="cpu")
    plain = run_bench(digits, ["dm"], [1], **kw)
    started = run_bench(digits, ["dm"], [1], overrides={"init": "herding"}, **kw)
    again = run_bench(digits, ["dm"], [1], overrides={"init": "herding"}, **kw)
    assert plain[0].overrides == {} and started[0].overrides == {"init": "herding"}
    assert started[0].accs == again[0].accs and started[0].accs != plain[0].accs  # another start, another figure


def test_a_setting_some_method_lacks_is_refused_before_any_work(digits):
    with pytest.raises(InvalidInputError, match="random has no setting 'init'"):
        run_bench(digits, ["dm", "random"], [1], steps=1, reps=1, device="cpu", overrides={"init": "herding"})
    with pytest.raises(InvalidInputError, match="init must be one of real, herding, noise"):
        run_bench(digits, ["dm"], [1], steps=1, reps=1, device="cpu", overrides={"init": "kmeans"})

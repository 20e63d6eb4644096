"""The method registry, configs, `random`, and the step-by-step pipeline."""
from __future__ import annotations

import pytest
import torch

from distill_core.errors import InvalidInputError, UnknownNameError
from distill_core.methods import METHODS, create_method, get_method
from distill_core.methods.base import MethodConfig
from distill_core.pipeline import Callbacks, DistillRun, SnapshotHistory


def test_registry_has_random_and_a_clear_error():
    assert "random" in METHODS and get_method("random").kind == "selector"
    with pytest.raises(UnknownNameError, match="unknown method 'nope'; choose one of"):
        get_method("nope")


def test_random_is_class_balanced_seeded_and_real(digits):
    s = create_method("random", digits, 7, seed=1).summary()
    assert s.images.shape == (70, 1, 8, 8)
    assert torch.bincount(s.labels, minlength=10).tolist() == [7] * 10
    idx = torch.tensor(s.meta["indices"])
    assert len(set(idx.tolist())) == 70
    assert torch.equal(digits.x_train[idx], s.images) and torch.equal(digits.y_train[idx], s.labels)
    again = create_method("random", digits, 7, seed=1).summary()
    other = create_method("random", digits, 7, seed=2).summary()
    assert again.meta["indices"] == s.meta["indices"] and other.meta["indices"] != s.meta["indices"]


def test_ipc_checks(digits):
    from dataclasses import replace

    keep = torch.cat([digits.class_indices(c)[: 3 + c] for c in range(10)])  # class 0 has 3 images
    small = replace(digits, x_train=digits.x_train[keep], y_train=digits.y_train[keep])
    create_method("random", small, 3)
    with pytest.raises(InvalidInputError, match="larger than class '0'.*3 training images"):
        create_method("random", small, 4)
    with pytest.raises(InvalidInputError, match="above the limit"):
        create_method("random", digits, 101)
    for bad in (0, -3):
        with pytest.raises(InvalidInputError, match="positive whole number"):
            create_method("random", digits, bad)


def test_config_overrides_are_typed_and_validated():
    from dataclasses import dataclass

    @dataclass
    class Cfg(MethodConfig):
        lr: float = 0.1
        steps_inner: int = 3
        learn_labels: bool = True

    cfg = Cfg.from_overrides("digits", {"lr": "0.5", "steps_inner": "7", "learn_labels": "no"})
    assert (cfg.lr, cfg.steps_inner, cfg.learn_labels) == (0.5, 7, False)
    for bad in ({"lr": "nan"}, {"lr": "inf"}, {"lr": "-1"}, {"lr": "0"}, {"steps_inner": "x"}, {"nope": "1"}):
        with pytest.raises(InvalidInputError):
            Cfg.from_overrides("digits", bad)


def test_pipeline_rejects_non_positive_steps(digits):
    method = create_method("random", digits, 1)
    for bad in (0, -1):
        with pytest.raises(InvalidInputError, match="steps must be a positive"):
            DistillRun(method, bad)


def test_selector_runs_one_step_with_callbacks(digits):
    seen = []
    run = DistillRun(create_method("random", digits, 2), steps=50)
    run.run(Callbacks(on_step=lambda r, m: seen.append(r.step_index), on_end=lambda r: seen.append("end")))
    assert seen == [1, "end"] and run.finished and len(run.snapshots) == 1


def test_snapshot_history_is_bounded_and_spans_the_run():
    hist = SnapshotHistory(capacity=10)
    for step in range(0, 1001):
        hist.offer(step, torch.full((2, 1, 2, 2), float(step)), force=(step == 1000))
    assert len(hist) <= 11
    assert hist.steps[0] == 0 and hist.steps[-1] == 1000
    assert hist.steps == sorted(hist.steps)
    data = hist.to_tensors()
    assert data["images"].dtype == torch.float16 and float(data["images"][-1].max()) == 1000.0
    assert SnapshotHistory.from_tensors(data).steps == hist.steps

"""Defaults sized to small datasets (distill_core/upload_defaults.py) and the run warnings (run_warnings.py)."""
from __future__ import annotations

import pytest

from distill_core import run_warnings as rw
from distill_core import upload_defaults as ud
from distill_core.methods import METHODS
from distill_core.methods.base import config_defaults


def test_step_factor_follows_images_per_class_between_a_quarter_and_one():
    assert ud.step_factor(10 * 100, 10) == 1.0
    assert ud.step_factor(10 * 5000, 10) == 1.0
    assert ud.step_factor(10 * 50, 10) == pytest.approx(0.5)
    assert ud.step_factor(10 * 10, 10) == ud.MIN_STEP_FACTOR
    assert ud.step_factor(0, 3) == ud.MIN_STEP_FACTOR


def test_kip_on_a_small_upload_caps_its_target_batch_and_runs_fewer_larger_steps():
    kip = config_defaults(METHODS["kip"].Config, "upload:pets (32px)").to_dict()
    counts = [24, 30, 26]        # 80 training images in 3 classes: 26.7 per class
    sized = ud.sized_defaults(kip, 1000, counts, ipc=2)
    assert sized.settings["target_batch"] == 80
    assert sized.settings["label_solve_target"] <= 80
    f = 80 / 3 / 100
    assert sized.steps == round(1000 * f) == 267
    assert sized.settings["lr"] == pytest.approx(kip["lr"] / f ** 0.5, rel=1e-2)
    assert sized.settings["lr_ipc1"] == pytest.approx(kip["lr_ipc1"] / f ** 0.5, rel=1e-2)
    assert sized.settings["kernel"] == kip["kernel"]                # untouched settings stay
    assert any("target_batch 1,000 → 80" in n for n in sized.notes)
    assert any("steps 1,000 → 267" in n for n in sized.notes)
    assert kip["target_batch"] == 1000                             # the input is not modified


def test_per_class_batches_are_capped_at_the_smallest_class_and_steps_never_below_the_floor():
    dm = config_defaults(METHODS["dm"].Config, "upload:x (32px)").to_dict()
    sized = ud.sized_defaults(dm, 300, [3, 9, 5], ipc=1)
    assert sized.settings["batch_real"] == 3
    assert sized.steps == max(ud.MIN_STEPS, round(300 * ud.MIN_STEP_FACTOR)) == 75
    assert sized.settings["lr"] == pytest.approx(dm["lr"] * 2)      # 1/√0.25: at most twice
    tiny = ud.sized_defaults(dm, 40, [3, 9, 5], ipc=1)
    assert tiny.steps == ud.MIN_STEPS


def test_a_benchmark_sized_dataset_keeps_the_profile_and_selectors_keep_their_one_step():
    kip = config_defaults(METHODS["kip"].Config, "cifar10").to_dict()
    sized = ud.sized_defaults(kip, 1000, [6000] * 10, ipc=10)
    assert sized.settings == kip and sized.steps == 1000 and sized.notes == []
    sel = ud.sized_defaults({"space": "pixels"}, 1, [4, 4], ipc=1, distiller=False)
    assert sel.steps == 1 and sel.notes == []


def test_mtt_synthetic_batch_larger_than_the_summary_becomes_all():
    mtt = config_defaults(METHODS["mtt"].Config, "mnist-5k").to_dict()
    assert mtt["batch_syn"] == 20
    sized = ud.sized_defaults(mtt, 200, [400, 400], ipc=2)   # 4 synthetic images < batch_syn
    assert sized.settings["batch_syn"] == 0 and sized.steps == 200


def test_only_uploads_and_folders_are_sized():
    assert ud.is_small_dataset("upload:pets (32px)", ["digits", "mnist-5k"])
    assert not ud.is_small_dataset("digits", ["digits", "mnist-5k"])


# ------------------------------------------------------------------------------------------------ warnings

def test_tiny_test_warning_states_what_one_image_is_worth():
    assert rw.tiny_test_warning(100) is None and rw.tiny_test_warning(360) is None
    text = rw.tiny_test_warning(20)
    assert text.startswith("20 test images: each is worth 5.0 accuracy points")
    assert "1 test image: each is worth 100.0" in rw.tiny_test_warning(1)
    assert rw.points_per_image(8) == 12.5


def _acc(values, every=50):
    return [{"step": every * (i + 1), "acc": a} for i, a in enumerate(values)]


def _loss(start, end, steps=400):
    return [{"step": s, "loss": start + (end - start) * s / steps, "seconds": 0.1} for s in range(1, steps + 1)]


def test_overfitting_warning_names_the_fall_and_the_falling_loss():
    acc = _acc([0.60, 0.70, 0.72, 0.71, 0.62, 0.58, 0.55, 0.54])       # best moving mean at step 200 (0.71)
    text = rw.overfitting_warning(acc, _loss(1.0, 0.2), n_test=200)
    assert text is not None
    assert "from 71.0% (step 200)" in text and "to 55.7% (step 400)" in text
    assert "training loss kept dropping (0.604 → 0.204)" in text


def test_no_overfitting_warning_when_accuracy_still_rises_the_loss_rises_or_the_fall_is_one_image():
    rising = _acc([0.5, 0.6, 0.65, 0.7, 0.72])
    assert rw.overfitting_warning(rising, _loss(1.0, 0.2), n_test=200) is None
    falling = _acc([0.60, 0.70, 0.72, 0.71, 0.62, 0.58, 0.55, 0.54])
    assert rw.overfitting_warning(falling, _loss(0.2, 1.0), n_test=200) is None      # loss rose: not overfitting
    assert rw.overfitting_warning(falling, [], n_test=200) is None                  # no loss logged
    assert rw.overfitting_warning(falling[:3], _loss(1.0, 0.2), n_test=200) is None  # too few evaluations
    # on 5 test images one image is 20 points: a 15-point fall is less than two images
    assert rw.overfitting_warning(falling, _loss(1.0, 0.2), n_test=5) is None


def test_loss_key_prefers_loss_then_any_loss_like_metric():
    assert rw.loss_key([{"step": 1, "loss": 1.0, "acc": 0.3}]) == "loss"
    assert rw.loss_key([{"step": 1, "match_loss": 1.0}]) == "match_loss"
    assert rw.loss_key([{"step": 1, "lr": 1.0}]) is None

"""DSA: one draw of parameters shared by every batch it is applied to, differentiable, no flips for digits."""
from __future__ import annotations

import pytest
import torch

from distill_core.augment import (FAMILIES, AugmentDraw, DCAugment, DCAugParams, DSAParams, SiameseAugment,
                                  describe_augment, dsa_augment, make_augment, strategy_for)
from distill_core.errors import InvalidInputError


def _images(n: int = 6, c: int = 1, size: int = 12, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, c, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("family", FAMILIES)
def test_one_draw_is_applied_identically_to_real_and_synthetic(family):
    gen = torch.Generator().manual_seed(3)
    aug = SiameseAugment(DSAParams(strategy=(family,)))
    real = _images(8, c=3)
    syn = real[:3].clone()
    for _ in range(5):
        draw = aug.draw(gen)
        out_real, out_syn = draw(real), draw(syn)
        assert draw.families == (family,)
        # the same transformation for every image of both batches
        assert torch.allclose(out_syn, out_real[:3], atol=1e-6)
        assert torch.allclose(draw(real), out_real)  # applying the draw again repeats it exactly
    # the transformation does something (flip only with probability 1/2, so look over several draws)
    changed = [not torch.allclose(aug.draw(gen)(real), real, atol=1e-4) for _ in range(8)]
    assert any(changed)


def test_group_draws_give_each_group_its_own_parameters():
    gen = torch.Generator().manual_seed(0)
    aug = SiameseAugment(DSAParams(strategy=("rotate",)))
    draw = aug.draw(gen, groups=2)
    x = _images(4)
    group = torch.tensor([0, 0, 1, 1])
    out = draw(x, group)
    for g in (0, 1):
        single = AugmentDraw(draw.families, {k: v[g:g + 1] for k, v in draw.params.items()}, 1)
        assert torch.allclose(out[group == g], single(x[group == g]), atol=1e-6)
    assert not torch.allclose(out[:2], AugmentDraw(draw.families, {k: v[1:2] for k, v in draw.params.items()})(x[:2]))


def test_crop_shifts_by_whole_pixels_and_fills_with_zeros():
    x = torch.arange(64, dtype=torch.float32).view(1, 1, 8, 8)
    draw = AugmentDraw(("crop",), {"crop.shift": torch.tensor([[1 / 8, 0.0]])})  # one pixel to the left
    out = draw(x)
    assert torch.allclose(out[..., :7], x[..., 1:], atol=1e-5)
    assert torch.all(out[..., 7] == 0)


def test_colour_and_cutout_values():
    x = torch.ones(1, 3, 4, 4)
    x[:, 0] = 2.0
    bright = AugmentDraw(("color",), {"color.brightness": torch.tensor([0.25]), "color.saturation": torch.tensor([1.0]),
                                      "color.contrast": torch.tensor([1.0])})
    assert torch.allclose(bright(x), x + 0.25)
    grey = AugmentDraw(("color",), {"color.brightness": torch.tensor([0.0]), "color.saturation": torch.tensor([0.0]),
                                    "color.contrast": torch.tensor([1.0])})
    assert torch.allclose(grey(x), x.mean(dim=1, keepdim=True).expand_as(x))  # saturation 0 -> greyscale
    cut = AugmentDraw(("cutout",), {"cutout.centre": torch.tensor([[0.5, 0.5]]), "cutout.size": torch.tensor([0.5])})
    out = cut(torch.ones(1, 1, 4, 4))
    assert int((out == 0).sum()) == 4 and torch.all(out[..., 1:3, 1:3] == 0)


@pytest.mark.parametrize("family", FAMILIES)
def test_differentiable_with_respect_to_the_images(family):
    gen = torch.Generator().manual_seed(1)
    x = _images(4, c=3).requires_grad_(True)
    draw = SiameseAugment(DSAParams(strategy=(family,))).draw(gen)
    weights = torch.randn(4, 3, 12, 12, generator=gen)
    (draw(x) * weights).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and float(x.grad.abs().sum()) > 0


def test_gradcheck_through_colour_and_rotation():
    gen = torch.Generator().manual_seed(2)
    aug = SiameseAugment(DSAParams(strategy=("color", "rotate"), mode="all"))
    draw = aug.draw(gen)
    draw.params = {k: v.double() for k, v in draw.params.items()}
    x = torch.randn(2, 2, 5, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: draw(t), (x,))


@pytest.mark.parametrize("name", ["digits", "mnist-5k", "mnist", "kmnist", "svhn"])
def test_no_flip_for_digit_datasets(name):
    assert "flip" not in strategy_for(name)
    gen = torch.Generator().manual_seed(0)
    for mode in ("single", "all"):
        aug = SiameseAugment.for_dataset(name, mode=mode)
        for _ in range(100):
            draw = aug.draw(gen)
            assert "flip" not in draw.families and not any(k.startswith("flip.") for k in draw.params)


def test_other_datasets_flip_and_unknown_families_are_refused():
    assert strategy_for("cifar10") == FAMILIES and "flip" in strategy_for("fashion-mnist")
    with pytest.raises(InvalidInputError, match="unknown augmentation"):
        DSAParams(strategy=("color", "warp"))
    with pytest.raises(InvalidInputError, match="mode"):
        DSAParams(mode="both")


def test_evaluation_augment_is_seeded_and_per_image(digits):
    aug = dsa_augment("digits")
    x = digits.normalize(digits.x_train[:16])
    a = aug(x, torch.Generator().manual_seed(5))
    b = aug(x, torch.Generator().manual_seed(5))
    assert a.shape == x.shape and torch.equal(a, b)
    # per-image parameters: a batch of one image repeated is not transformed identically
    same = x[:1].repeat(16, 1, 1, 1)
    outs = [aug(same, torch.Generator().manual_seed(s)) for s in range(4)]
    assert any(not torch.allclose(o[0], o[i]) for o in outs for i in range(1, 16))


def test_evaluate_summary_accepts_the_augment(digits):
    from distill_core.evaluate import evaluate_summary
    from distill_core.methods import create_method

    summary = create_method("random", digits, 2, seed=0).summary()
    result = evaluate_summary(summary, digits, "quick", reps=1, device="cpu", augment=dsa_augment("digits"), epochs=3)
    assert result.details["augmentation"] == dsa_augment("digits").describe() and result.details["epochs"] == 3
    assert result.details["augmentation_source"] == "forced" and 0 <= result.acc_mean <= 1


def test_dsa_for_evaluation_draws_one_family_per_batch_and_fresh_parameters_per_call():
    aug = SiameseAugment.for_dataset("mnist-5k")
    gen = torch.Generator().manual_seed(0)
    families = {aug.draw(gen, groups=8).families for _ in range(200)}
    assert families == {(f,) for f in strategy_for("mnist-5k")}  # one family per batch, flip never on digits
    x = _images(8)
    first, second = aug(x, gen), aug(x, gen)
    assert not torch.allclose(first, second)
    assert describe_augment(aug)["strategy"] == "color_crop_cutout_scale_rotate"
    assert describe_augment(None) == {"name": "none"}


# ----------------------------------------------------------------------------------- DC's crop/scale/rotate

def _digit_like(n: int = 8, size: int = 28) -> torch.Tensor:
    x = torch.zeros(n, 1, size, size)
    x[:, :, 9:19, 9:19] = torch.rand(n, 1, 10, 10, generator=torch.Generator().manual_seed(0)) + 1.0
    return x


def test_dc_crop_shifts_whole_pixels_within_its_range_and_fills_with_the_mean():
    x = _digit_like()
    out = DCAugment(DCAugParams(strategy=("crop",)))(x, torch.Generator().manual_seed(0))
    fill = x.mean()
    shifts = set()
    for i in range(len(x)):
        found = None
        for dy in range(-4, 4):
            for dx in range(-4, 4):
                padded = torch.nn.functional.pad(x[i] - fill, (4, 4, 4, 4)) + fill
                if torch.allclose(out[i], padded[:, 4 - dy:32 - dy, 4 - dx:32 - dx], atol=1e-6):
                    found = (dy, dx)
        assert found is not None  # a whole-pixel shift by -4 ... 3 on each axis
        shifts.add(found)
    assert len(shifts) > 1  # each image gets its own shift


def test_dc_scale_and_rotate_keep_their_ranges():
    x = _digit_like(16)
    gen = torch.Generator().manual_seed(1)
    scaled = DCAugment(DCAugParams(strategy=("scale",)))(x, gen)
    rows = ((scaled[:, 0] > 0.5).any(dim=2)).sum(dim=1).float()  # height of the square after scaling
    assert rows.min() >= 10 * 0.8 - 1 and rows.max() <= 10 * 1.2 + 1 and rows.std() > 0
    flat = torch.full((4, 1, 28, 28), 0.3)
    rotated = DCAugment(DCAugParams(strategy=("rotate",)))(flat, gen)
    assert torch.allclose(rotated, flat, atol=1e-5)  # the corners are filled with the mean pixel value
    turned = DCAugment(DCAugParams(strategy=("rotate",)))(x, gen)
    assert not torch.allclose(turned, x, atol=1e-3)


def test_dc_augment_is_seeded_per_image_and_describes_dcs_settings():
    x = _digit_like(32)
    aug = DCAugment()
    a = aug(x, torch.Generator().manual_seed(3))
    assert torch.equal(a, aug(x, torch.Generator().manual_seed(3)))
    assert not torch.equal(a, aug(x, torch.Generator().manual_seed(4)))
    assert a.shape == x.shape and torch.isfinite(a).all()
    # the DC authors' get_daparam: crop 4 px, scale ±0.2, rotate ±45°, one of crop/scale/rotate per image
    assert aug.describe() == {"name": "dc", "strategy": "crop_scale_rotate", "crop": 4, "scale": 0.2, "rotate": 45}
    assert isinstance(make_augment("dc", "mnist-5k"), DCAugment) and make_augment("none", "mnist-5k") is None
    with pytest.raises(InvalidInputError, match="unknown augmentation"):
        make_augment("mixup", "mnist-5k")
    with pytest.raises(InvalidInputError, match="DC augmentation"):
        DCAugParams(strategy=("flip",))

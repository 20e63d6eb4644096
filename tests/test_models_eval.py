"""Models' shapes, the evaluation protocols, and that seeded evaluation repeats exactly."""
from __future__ import annotations

import pytest
import torch

from distill_core.errors import InvalidInputError, UnknownNameError
from distill_core.evaluate import PROTOCOLS, evaluate_summary, protocol_names
from distill_core.methods import create_method
from distill_core.models import ConvNet, build_for, build_seeded
from distill_core.summary import Summary


@pytest.mark.parametrize("name", ["convnet", "mlp", "lenet"])
@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28), (3, 32, 32)])
def test_models_map_images_to_logits(name, shape):
    class Fake:
        image_shape = shape
        num_classes = 7
    net = build_for(Fake, name, width=16)
    out = net(torch.randn(5, *shape))
    assert out.shape == (5, 7)
    assert net.embed(torch.randn(2, *shape)).shape == (2, net.feature_dim)


def test_convnet_pads_28_to_32_like_the_dc_protocol():
    net = ConvNet(1, 10, 28, width=128, depth=3)
    assert net.feature_dim == 128 * 4 * 4  # 32 -> 16 -> 8 -> 4
    norms = [m for m in net.modules() if isinstance(m, torch.nn.GroupNorm)]
    assert len(norms) == 3 and all(m.num_groups == m.num_channels == 128 for m in norms)  # instance norm


def test_paper_protocol_matches_the_field():
    p = PROTOCOLS["paper"]
    assert (p.width, p.depth, p.lr, p.momentum, p.weight_decay, p.batch_size, p.epochs, p.epochs_augmented) == \
        (128, 3, 0.01, 0.9, 5e-4, 256, 300, 1000)
    assert {"paper", "quick"} <= set(protocol_names())


def test_seeded_init_is_independent_of_the_global_rng(digits):
    torch.manual_seed(123)
    a = build_seeded(digits, "convnet", seed=5, width=8)
    torch.rand(10)
    b = build_seeded(digits, "convnet", seed=5, width=8)
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)


def test_seeded_evaluation_repeats_exactly_and_learns(digits):
    summary = create_method("random", digits, 5, seed=0).summary()
    first = evaluate_summary(summary, digits, "quick", reps=2, seed=3, device="cpu", epochs=40)
    second = evaluate_summary(summary, digits, "quick", reps=2, seed=3, device="cpu", epochs=40)
    assert first.accs == second.accs
    assert first.reps == 2 and len(first.accs) == 2
    assert first.acc_mean > 0.6  # 50 real digits train a ConvNet far above chance (0.1)
    other_seed = evaluate_summary(summary, digits, "quick", reps=2, seed=4, device="cpu", epochs=40)
    assert other_seed.accs != first.accs


def test_cross_architecture_models_learn(digits):
    summary = create_method("random", digits, 10, seed=0).summary()
    for model, epochs in (("mlp", 150), ("lenet", 300)):  # LeNet (no normalisation) needs more SGD steps
        result = evaluate_summary(summary, digits, "quick", model=model, reps=1, device="cpu", epochs=epochs)
        assert result.model == model and result.acc_mean > 0.5


def test_soft_labels_train_with_mse(digits):
    summary = create_method("random", digits, 5, seed=0).summary()
    soft = torch.nn.functional.one_hot(summary.labels, 10).float()
    soft_summary = Summary(summary.images, soft, "random", "digits", 5, summary.class_names)
    result = evaluate_summary(soft_summary, digits, "quick", reps=1, device="cpu", epochs=150)
    assert result.acc_mean > 0.3


def test_evaluation_rejects_bad_inputs(digits):
    summary = create_method("random", digits, 1, seed=0).summary()
    with pytest.raises(UnknownNameError):
        evaluate_summary(summary, digits, "nonsense")
    with pytest.raises(UnknownNameError):
        evaluate_summary(summary, digits, "quick", model="resnet-9000")
    bad = Summary(summary.images * float("nan"), summary.labels, "x", "digits", 1, summary.class_names)
    with pytest.raises(InvalidInputError, match="NaN"):
        evaluate_summary(bad, digits, "quick")
    wrong_shape = Summary(torch.zeros(10, 1, 5, 5), summary.labels, "x", "digits", 1, summary.class_names)
    with pytest.raises(InvalidInputError, match="images are"):
        evaluate_summary(wrong_shape, digits, "quick")

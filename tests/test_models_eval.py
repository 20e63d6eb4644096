"""Models' shapes, the evaluation protocols, and that seeded evaluation repeats exactly."""
from __future__ import annotations

import pytest
import torch

from distill_core.errors import InvalidInputError, UnknownNameError
from distill_core.evaluate import evaluate_summary, protocol_names
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


def test_convnet_pads_28_to_32_with_zeros_and_normalises_each_image_alone():
    """The field's ConvNet: 28×28 inputs are zero-padded to 32×32 (the DC protocol), and its instance norm makes
    each image's output independent of the batch and of the image's contrast."""
    torch.manual_seed(0)
    net28, net32 = ConvNet(1, 10, 28, width=16, depth=3), ConvNet(1, 10, 32, width=16, depth=3)
    net28.load_state_dict(net32.state_dict())  # same shapes: 28 is padded to 32 before the first block
    x = torch.randn(6, 1, 28, 28)
    assert torch.allclose(net28(x), net32(torch.nn.functional.pad(x, (2, 2, 2, 2))), atol=1e-5)
    for mode in (net32.train, net32.eval):  # batch statistics would tie the images together in training
        mode()
        y = torch.randn(6, 1, 32, 32)
        assert torch.allclose(net32(y)[:2], net32(y[:2]), atol=1e-5)
    assert torch.allclose(net32.embed(3.0 * y), net32.embed(y), atol=1e-3)  # contrast is normalised away


@pytest.mark.parametrize("protocol,width", [("paper", 128), ("quick", 64)])
def test_protocols_train_as_the_field_does(protocol, width, digits):
    """Watch an evaluation train: a ConvNet-3 of the protocol's width, SGD (lr 0.01, momentum 0.9, weight decay
    5e-4) on mini-batches of 256, the learning rate divided by 10 at half the epochs."""
    from torch.optim.optimizer import register_optimizer_step_pre_hook

    steps: list[tuple] = []
    batches: list[int] = []

    def on_step(opt, args, kwargs):
        g = opt.param_groups[0]
        convs = [tuple(p.shape) for p in g["params"] if p.dim() == 4]
        steps.append((type(opt).__name__, g["lr"], g["momentum"], g["weight_decay"], convs))

    def on_forward(module, args):
        if isinstance(module, ConvNet) and module.training:
            batches.append(len(args[0]))

    summary = create_method("random", digits, 30, seed=0).summary()  # 300 images: batches of 256 and 44
    handles = [register_optimizer_step_pre_hook(on_step),
               torch.nn.modules.module.register_module_forward_pre_hook(on_forward)]
    try:
        result = evaluate_summary(summary, digits, protocol, reps=1, device="cpu", epochs=4, augment=None)
    finally:
        for h in handles:
            h.remove()
    assert batches == [256, 44] * 4
    assert [s[1] for s in steps] == pytest.approx([0.01] * 4 + [0.001] * 4)
    assert {s[0] for s in steps} == {"SGD"} and {(s[2], s[3]) for s in steps} == {(0.9, 5e-4)}
    assert steps[0][4] == [(width, 1, 3, 3), (width, width, 3, 3), (width, width, 3, 3)]
    assert result.reps == 1 and 0.0 <= result.acc_mean <= 1.0
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

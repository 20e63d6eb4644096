"""Models' shapes and normalisation, the training recipe observed while it runs, and that seeded evaluation
repeats exactly."""
from __future__ import annotations

import pytest
import torch

from distill_core.errors import InvalidInputError, UnknownNameError
from distill_core.evaluate import evaluate_summary
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


def test_convnet_pads_28_to_32_and_pools_to_4x4_like_the_dc_protocol():
    net = ConvNet(1, 10, 28, width=16, depth=3).eval()
    x = torch.randn(3, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    maps = net.features(torch.nn.functional.pad(x, (2, 2, 2, 2)))
    assert maps.shape == (3, 16, 4, 4)  # 32 -> 16 -> 8 -> 4
    assert torch.allclose(net(x), net.classifier(maps.flatten(1)), atol=1e-6)  # forward pads 28x28 with zeros
    x32 = torch.randn(2, 1, 32, 32)
    assert net.features(x32).shape == (2, 16, 4, 4)  # other sizes are not padded


def test_convnet_normalises_each_image_on_its_own():
    """Instance norm: every (image, channel) map has mean 0 and variance 1 after the norm layer, whatever else
    is in the batch (unlike batch norm)."""
    net = ConvNet(1, 10, 28, width=8, depth=3).eval()
    outputs: list[torch.Tensor] = []
    norm = next(m for m in net.modules() if isinstance(m, torch.nn.GroupNorm))
    # a copy: the ReLU after the norm works in place
    handle = norm.register_forward_hook(lambda m, inp, out: outputs.append(out.detach().clone()))
    gen = torch.Generator().manual_seed(1)
    batch = torch.randn(4, 1, 28, 28, generator=gen) * torch.tensor([0.5, 1.0, 5.0, 20.0]).view(4, 1, 1, 1)
    logits_batch = net(batch)
    logits_alone = net(batch[2:3])
    handle.remove()
    maps = outputs[0]
    assert torch.allclose(maps.mean(dim=(2, 3)), torch.zeros(4, 8), atol=1e-4)
    assert torch.allclose(maps.var(dim=(2, 3), unbiased=False), torch.ones(4, 8), atol=1e-2)
    assert torch.allclose(logits_batch[2:3], logits_alone, atol=1e-5)


def test_paper_protocol_trains_as_the_field_does(digits):
    """Observed on the optimiser and the network it trains: SGD 0.01, momentum 0.9, weight decay 5e-4, ConvNet-3
    of width 128; lr ÷10 at half; 300 epochs plain, 1000 for a DSA-family summary."""
    summary = create_method("random", digits, 1, seed=0).summary()
    seen: list[dict] = []

    def record(epoch: int, opt: torch.optim.Optimizer) -> None:
        group = opt.param_groups[0]
        seen.append({"lr": group["lr"], "momentum": group["momentum"], "wd": group["weight_decay"],
                     "shapes": [tuple(p.shape) for p in group["params"]]})

    result = evaluate_summary(summary, digits, "paper", reps=1, device="cpu", on_epoch_end=record,
                              should_stop=lambda: len(seen) >= 1)
    first = seen[0]
    assert (first["lr"], first["momentum"], first["wd"]) == (0.01, 0.9, 5e-4)
    convs = [s for s in first["shapes"] if len(s) == 4]
    assert [s[0] for s in convs] == [128, 128] and result.details["eval_model"] == "convnet-128x2"  # 8×8: 2 blocks
    dsa = Summary(summary.images, summary.labels, "dsa", "digits", 1, summary.class_names)
    for s, expected in ((summary, 300), (dsa, 1000)):
        seen.clear()  # count every epoch (an MLP trains in a blink; the epochs do not depend on the model)
        evaluate_summary(s, digits, "paper", model="mlp", reps=1, device="cpu", on_epoch_end=record)
        assert len(seen) == expected
        lrs = [e["lr"] for e in seen]
        assert lrs[:expected // 2] == [0.01] * (expected // 2)
        assert lrs[expected // 2:] == pytest.approx([0.001] * (expected - expected // 2))


def test_mini_batches_of_256(digits):
    summary = create_method("random", digits, 30, seed=0).summary()  # 300 images: a batch of 256, then 44
    sizes: list[int] = []

    def spy(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        sizes.append(len(x))
        return x

    evaluate_summary(summary, digits, "quick", model="mlp", reps=1, device="cpu", epochs=2, augment=spy)
    assert sizes == [256, 44, 256, 44]


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
    for bad_kwargs, message in (({"epochs": 0}, "epochs"), ({"label_loss": "hinge"}, "label_loss"),
                                ({"augment": 3}, "augment"), ({"augment": "mixup"}, "augmentation"),
                                ({"split": "train"}, "split")):
        with pytest.raises(InvalidInputError, match=message):
            evaluate_summary(summary, digits, "quick", **bad_kwargs)
    nan_labels = Summary(summary.images, torch.full((10, 10), float("nan")), "x", "digits", 1, summary.class_names)
    with pytest.raises(InvalidInputError, match="labels"):
        evaluate_summary(nan_labels, digits, "quick")

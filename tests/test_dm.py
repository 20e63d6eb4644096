"""DM: the batched loss (one forward pass for all classes) equals the per-class loss; images move to pixel space."""
from __future__ import annotations

import pytest
import torch

from distill_core.augment import SiameseAugment
from distill_core.methods import create_method
from distill_core.methods.dm import class_means, dm_loss
from distill_core.models import build_seeded



def _per_class_loss(net, x_real, x_syn, num_classes):
    """The straightforward reference: one forward pass per class and set."""
    real, syn = x_real.chunk(num_classes), x_syn.chunk(num_classes)
    total = x_syn.new_zeros(())
    for c in range(num_classes):
        with torch.no_grad():
            mean_real = net.embed(real[c]).mean(0)
        total = total + ((mean_real - net.embed(syn[c]).mean(0)) ** 2).sum()
    return total


def test_batched_loss_and_gradient_equal_the_per_class_ones(digits):
    gen = torch.Generator().manual_seed(0)
    c, n_real, ipc = digits.num_classes, 12, 3
    x_real = torch.cat([digits.normalize(digits.x_train[digits.class_indices(k)[:n_real]]) for k in range(c)])
    y_real = torch.arange(c).repeat_interleave(n_real)
    labels = torch.arange(c).repeat_interleave(ipc)
    net = build_seeded(digits, "convnet", seed=4, width=16).requires_grad_(False)
    draw = SiameseAugment.for_dataset("digits", mode="all").draw(gen, groups=c)  # per-class parameters
    xr = draw(x_real, y_real)

    syn_a = torch.randn(c * ipc, 1, 8, 8, generator=gen).requires_grad_(True)
    syn_b = syn_a.detach().clone().requires_grad_(True)
    batched = dm_loss(net, xr, draw(syn_a, labels), c)
    reference = _per_class_loss(net, xr, draw(syn_b, labels), c)
    batched.backward()
    reference.backward()
    assert float(batched.detach()) > 0
    assert torch.allclose(batched, reference, rtol=1e-5, atol=1e-6)
    assert torch.allclose(syn_a.grad, syn_b.grad, rtol=1e-4, atol=1e-7)


def test_loss_is_zero_when_synthetic_means_equal_real_means(digits):
    c = digits.num_classes
    x = torch.cat([digits.normalize(digits.x_train[digits.class_indices(k)[:4]]) for k in range(c)])
    net = build_seeded(digits, "convnet", seed=0, width=8).requires_grad_(False)
    assert float(dm_loss(net, x, x.clone(), c)) < 1e-8


def test_sliced_cpu_pass_equals_one_pass(mnist5k):
    """The CPU path (slices of the batch) gives the same loss and image gradient as one pass."""
    c, gen = mnist5k.num_classes, torch.Generator().manual_seed(1)
    x_real = torch.cat([mnist5k.normalize(mnist5k.x_train[mnist5k.class_indices(k)[:7]]) for k in range(c)])
    net = build_seeded(mnist5k, "convnet", seed=2, width=8).requires_grad_(False)
    syn = [torch.randn(c * 2, 1, 28, 28, generator=gen)] * 2
    syn = [s.clone().requires_grad_(True) for s in syn]
    plain = dm_loss(net, x_real, syn[0], c)
    sliced = dm_loss(net, x_real, syn[1], c, chunk=8)  # 70 real images in 9 slices, 20 synthetic in 3
    plain.backward()
    sliced.backward()
    assert torch.allclose(plain, sliced, rtol=1e-5)
    assert torch.allclose(syn[0].grad, syn[1].grad, rtol=1e-5, atol=1e-7)


def test_dm_steps_start_from_random_and_lower_the_loss(mnist5k):
    method = create_method("dm", mnist5k, 1, seed=0, overrides={"width": 16, "batch_real": 32, "dsa": False})
    random = create_method("random", mnist5k, 1, seed=0).summary()
    start = method.summary()
    assert torch.allclose(start.images, random.images, atol=1e-6) and torch.equal(start.labels, random.labels)
    c = mnist5k.num_classes
    judges = [build_seeded(mnist5k, "convnet", seed=100 + i, width=16).requires_grad_(False) for i in range(3)]
    with torch.no_grad():  # held out: fixed networks, the mean embedding of 200 real images per class
        targets = [torch.stack([net.embed(mnist5k.normalize(mnist5k.x_train[mnist5k.class_indices(k)[:200]])).mean(0)
                                for k in range(c)]) for net in judges]

    def held_out_distance() -> float:
        with torch.no_grad():
            return sum(float(((class_means(net.embed(method.images), c) - t) ** 2).sum()) for net, t in zip(judges, targets))

    before = held_out_distance()
    losses = [method.step()["loss"] for _ in range(20)]
    assert all(loss > 0 for loss in losses)
    assert held_out_distance() < 0.75 * before  # measured: ~0.54 of the start after 20 steps
    end = method.summary()
    assert end.images.shape == (10, 1, 28, 28) and not torch.allclose(end.images, start.images)
    assert end.method == "dm" and end.meta["init"] == "real" and end.meta["steps"] == 20

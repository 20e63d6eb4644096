"""DC / DSA: the layer-wise (1 − cosine) gradient distance, and gradient matching lowering it."""
from __future__ import annotations

import pytest
import torch

from distill_core.methods import create_method
from distill_core.methods.gm import match_distance



def _grads(seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    shapes = [(8, 3, 3, 3), (8,), (16, 8, 3, 3), (10, 64), (10,)]
    return [torch.randn(s, generator=gen) for s in shapes]


def test_distance_is_zero_for_identical_gradients_and_positive_otherwise():
    g = _grads(0)
    assert abs(float(match_distance(g, [t.clone() for t in g]))) < 1e-5
    assert abs(float(match_distance(g, [3.0 * t for t in g]))) < 1e-5  # cosine ignores the scale
    rows = 8 + 16 + 10  # output channels / rows of the 2-D+ parameters
    assert abs(float(match_distance(g, [-t for t in g])) - 2 * rows) < 1e-4  # opposite: 2 per row
    other = float(match_distance(g, _grads(1)))
    assert 0.5 * rows < other < 1.5 * rows  # independent directions: about 1 per row
    # 1-D parameters (biases, norm scales) are skipped, as in the DC paper
    only_bias = [t.clone() if t.dim() > 1 else torch.randn_like(t) for t in g]
    assert abs(float(match_distance(g, only_bias))) < 1e-5


def test_distance_is_per_output_channel():
    a = torch.zeros(2, 3)
    a[0, 0] = a[1, 1] = 1.0
    b = torch.zeros(2, 3)
    b[0, 0] = 1.0  # row 0 identical (cos 1)
    b[1, 2] = 1.0  # row 1 orthogonal (cos 0)
    assert abs(float(match_distance([a], [b])) - 1.0) < 1e-6


def test_networks_are_redrawn_every_outer_loop_steps(digits):
    """An IPC-1 run matches each network once; an IPC-10 run keeps a network for 10 updates (both profiles)."""
    for profile in ("fast", "paper"):
        one = create_method("dc", digits, 1, seed=0, profile=profile, overrides={"width": 8, "batch_real": 4})
        for _ in range(3):
            one.step()
        assert one.networks_used == 3
    ten = create_method("dc", digits, 10, seed=0, overrides={"width": 8, "batch_real": 4, "inner_loop": 1})
    for _ in range(10):
        ten.step()
    assert ten.networks_used == 1
    ten.step()
    assert ten.networks_used == 2


def test_inner_loop_epochs_follow_the_profile(digits, monkeypatch):
    """Between two updates the network trains `inner_loop` epochs on the synthetic set: 10 (fast) or the paper's
    50 at IPC 10."""
    import distill_core.methods.gm as gm

    epochs = []
    monkeypatch.setattr(gm, "train_network", lambda net, x, y, proto, n, *a, **k: epochs.append(n))
    for profile in ("fast", "paper"):
        method = create_method("dc", digits, 10, seed=0, profile=profile, overrides={"width": 8, "batch_real": 4})
        method.step()
    assert epochs == [10, 50]


def test_image_learning_rate_by_ipc(digits):
    def image_lr(ipc, **overrides):
        method = create_method("dc", digits, ipc, seed=0, overrides={"width": 8, **overrides})
        return method.image_lr, method.opt_images.param_groups[0]["lr"], method.summary().meta["image_lr"]

    assert image_lr(1) == (0.1, 0.1, 0.1)
    assert image_lr(10) == pytest.approx((0.5, 0.5, 0.5))
    assert image_lr(10, image_lr_factor=1, lr=0.2) == (0.2, 0.2, 0.2)
    # the step the images take is that rate × their gradient (momentum starts at zero)
    method = create_method("dc", digits, 10, seed=0, overrides={"width": 8, "batch_real": 4})
    before = method.images.detach().clone()
    method.step()
    step = method.images.detach() - before
    assert torch.allclose(step, -0.5 * method.images.grad, atol=1e-6) and step.abs().max() > 0


def test_matching_lowers_the_distance_on_a_fixed_network(digits):
    method = create_method("dc", digits, 2, seed=0, overrides={"width": 16, "depth": 3})
    net = method.fresh_network(seed=0)
    params = [p for p in net.parameters()]
    real = method.real_batch(5, 32)
    syn = method.class_images(5).detach().clone().requires_grad_(True)
    # measured on the train split without validation: 0.70 of the start after 15 steps (the ratio depends on the
    # network and the class: 0.46 to 1.28 over classes and network seeds at this learning rate)
    opt = torch.optim.SGD([syn], lr=0.005, momentum=0.5)
    losses = []
    for _ in range(15):
        loss = method.class_loss(net, params, real, syn, 5)
        losses.append(float(loss.detach()))
        opt.zero_grad()
        grad, = torch.autograd.grad(loss, syn)
        syn.grad = grad
        opt.step()
    assert losses[-1] < 0.8 * losses[0]


def test_outer_and_inner_loops(digits):
    method = create_method("dc", digits, 3, seed=0, overrides={"width": 8, "outer_loop": 2, "inner_loop": 2})
    assert method.default_steps == 20 and method.augment is None
    method.step()
    net = method.net
    untrained = method.fresh_network(seed=method.net_seed)
    after_first = [p.detach().clone() for p in net.parameters()]
    # the inner loop trained the network on the synthetic set after the first update
    assert any(not torch.equal(a, b) for a, b in zip(after_first, untrained.parameters()))
    method.step()  # the last update of this network: no training after it
    assert all(torch.equal(a, b) for a, b in zip(after_first, net.parameters()))
    method.step()  # a fresh network
    assert method.net is not net and method.networks_used == 2
    dsa = create_method("dsa", digits, 1, seed=0, overrides={"width": 8})
    assert dsa.augment is not None and dsa.outer_loop == 1 and dsa.default_steps == 200
    assert float(dsa.step()["loss"]) > 0

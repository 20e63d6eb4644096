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


def test_loops_follow_ipc(digits):
    """At IPC 1 every image update meets a fresh, untrained network; at IPC 7 (the IPC 10 row) one network serves
    ten updates and is trained on the synthetic set between them."""
    one = create_method("dc", digits, 1, seed=0, overrides={"width": 8})
    nets = []
    for _ in range(3):
        one.step()
        nets.append(one.net)
        fresh = one.fresh_network(seed=one.net_seed)
        assert all(torch.equal(a, b) for a, b in zip(one.net.parameters(), fresh.parameters()))  # never trained
    assert one.networks_used == 3 and len({id(n) for n in nets}) == 3
    seven = create_method("dc", digits, 7, seed=0, overrides={"width": 8, "batch_real": 8})
    before = None
    for _ in range(3):
        seven.step()
        now = [p.detach().clone() for p in seven.net.parameters()]
        if before is not None:
            assert any(not torch.equal(a, b) for a, b in zip(before, now))  # trained between updates
        before = now
    assert seven.networks_used == 1


@pytest.mark.parametrize("ipc,overrides,rate", [
    (1, {}, 0.1),                                  # lr 0.1
    (10, {}, 0.5),                                 # lr 0.1 × 5: each image's share of a class's loss is smaller
    (10, {"image_lr_factor": 1, "lr": 0.2}, 0.2),  # set explicitly
])
def test_images_move_at_the_image_learning_rate(ipc, overrides, rate, digits):
    """The first update moves the images by exactly rate × the matching gradient (SGD; momentum has no history)."""
    method = create_method("dc", digits, ipc, seed=0, overrides={"width": 8, "batch_real": 8, **overrides})
    before = method.images.detach().clone()
    method.step()
    grad = method.images.grad
    assert grad is not None and float(grad.abs().max()) > 0
    assert torch.allclose(method.images.detach(), before - rate * grad, atol=1e-6)
    assert method.summary().meta["image_lr"] == pytest.approx(rate)


def test_matching_lowers_the_distance_on_a_fixed_network(digits):
    method = create_method("dc", digits, 2, seed=0, overrides={"width": 16, "depth": 3})
    net = method.fresh_network(seed=3)
    params = [p for p in net.parameters()]
    real = method.real_batch(5, 32)
    syn = method.class_images(5).detach().clone().requires_grad_(True)
    opt = torch.optim.SGD([syn], lr=0.005, momentum=0.5)  # measured: 0.71 of the start after 15 steps
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

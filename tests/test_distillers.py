"""What every network distiller (dm, dc, dsa, mtt) shares: seeds repeat, real or noise start, snapshots, the
profile's networks."""
from __future__ import annotations

import pytest
import torch

from distill_core import profiles
from distill_core.methods import create_method
from distill_core.models import default_depth
from distill_core.pipeline import Callbacks, DistillRun
from distill_core.profiles import PROFILES


SMALL = {
    "dm": {"width": 8, "batch_real": 16},
    "dc": {"width": 8, "batch_real": 8},
    "dsa": {"width": 8, "batch_real": 8},
    "mtt": {"width": 8, "num_experts": 1, "expert_train_epochs": 2, "max_start_epoch": 1, "expert_epochs": 1,
            "syn_steps": 3, "batch_syn": 5, "lr": 10.0},
}


@pytest.fixture(autouse=True)
def _experts_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("DISTILL_EXPERTS_DIR", str(tmp_path / "experts"))


def _run(name: str, dataset, seed: int, steps: int = 2, ipc: int = 2, **extra):
    method = create_method(name, dataset, ipc, seed=seed, device="cpu", overrides={**SMALL[name], **extra})
    losses = [method.step()["loss"] for _ in range(steps)]
    return method, losses


@pytest.mark.parametrize("name", ["dm", "dc", "dsa", "mtt"])
def test_seeds_repeat_and_differ(name, digits):
    a, loss_a = _run(name, digits, seed=3)
    b, loss_b = _run(name, digits, seed=3)
    c, _ = _run(name, digits, seed=4)
    assert torch.equal(a.images, b.images) and loss_a == loss_b
    assert not torch.equal(a.images, c.images)
    assert all(torch.isfinite(torch.tensor(loss_a)))


@pytest.mark.parametrize("name", ["dm", "dc", "dsa", "mtt"])
def test_noise_start(name, digits):
    method = create_method(name, digits, 2, seed=0, device="cpu", overrides={**SMALL[name], "init": "noise"})
    start = method.images.detach().clone()
    assert abs(float(start.mean())) < 0.2 and 0.8 < float(start.std()) < 1.2  # N(0, 1) in the normalised space
    metrics = method.step()
    summary = method.summary()
    assert summary.meta["init"] == "noise" and "init_indices" not in summary.meta
    assert torch.isfinite(torch.tensor(metrics["loss"])) and not torch.equal(method.images.detach(), start)
    real = create_method(name, digits, 2, seed=0, device="cpu", overrides=SMALL[name]).summary()
    assert len(real.meta["init_indices"]) == 20


@pytest.mark.parametrize("name", ["dm", "dsa"])
def test_snapshots_reach_the_callbacks(name, digits):
    method = create_method(name, digits, 1, seed=0, device="cpu", overrides=SMALL[name])
    seen: list[int] = []
    run = DistillRun(method, 5, snapshot_capacity=4)
    run.run(Callbacks(on_snapshot=lambda r, step: seen.append(step)))
    assert seen[-1] == 5 and len(run.snapshots) <= 4 and run.snapshots.steps[0] == 0
    images = run.snapshots.to_tensors()["images"]
    assert images.shape[1:] == (10, 1, 8, 8) and not torch.equal(images[0], images[-1])


def test_dsa_augments_real_and_synthetic_alike(digits):
    """With the real batch made of the synthetic images themselves, one shared draw makes the gradients equal."""
    method = create_method("dsa", digits, 2, seed=0, device="cpu", overrides=SMALL["dsa"])
    method.real_batch = lambda c, n: method.class_images(c).detach().clone()
    loss = method.step()["loss"]
    assert loss < 1e-4
    dc = create_method("dc", digits, 2, seed=0, device="cpu", overrides=SMALL["dc"])
    dc.real_batch = lambda c, n: dc.class_images(c).detach().clone()
    assert dc.step()["loss"] < 1e-4
    # a different draw for each batch would not match: check that augmenting really changes the images
    draw = method.augment.draw(torch.Generator().manual_seed(0))
    x = method.class_images(0).detach()
    assert not torch.allclose(draw(x), x)


@pytest.mark.parametrize("name", ["dm", "dc", "dsa", "mtt"])
def test_the_networks_distilled_with_have_the_profiles_shape(name, digits, mnist5k):
    """The networks a distiller draws have the width and depth its profile gives the dataset's family."""
    for dataset in (digits, mnist5k):
        for profile in PROFILES:
            method = create_method(name, dataset, 1, seed=0, profile=profile)
            want = profiles.settings(name, dataset.name, profile, 1)
            conv = [m for m in method.fresh_network(seed=0).modules() if isinstance(m, torch.nn.Conv2d)]
            depth = want.get("depth", 0) or default_depth(dataset.image_shape[1])  # 0 / no row: by image size
            assert len(conv) == depth and {c.out_channels for c in conv} == {want["width"]}
            # the net classifies the dataset's images (a depth the images cannot take would fail here)
            out = method.fresh_network(seed=0)(method.images[:2].detach())
            assert out.shape == (2, dataset.num_classes) and torch.isfinite(out).all()


def test_dm_real_batch_follows_the_profile(digits):
    """dm pulls `batch_real` real images per class each step (capped by the smallest class)."""
    seen = []
    for profile in PROFILES:
        method = create_method("dm", digits, 1, seed=0, profile=profile, overrides={"width": 8})
        x, y = method.real_batches(method.config.batch_real)
        seen.append(len(x) // digits.num_classes)
    smallest = min(digits.class_counts())
    assert seen[0] == min(profiles.settings("dm", "digits", "fast")["batch_real"], smallest)
    assert seen[1] == min(profiles.settings("dm", "digits", "paper")["batch_real"], smallest)
    assert seen[0] < seen[1]


def test_jobs_use_the_default_steps_the_method_sizes_by_ipc(digits):
    """The app runs as many steps as `distill` would: gradient matching sizes its default by IPC."""
    from distill_core.jobs import JobSpec, job_wait, start_job

    method = create_method("dc", digits, 3, seed=0, overrides={**SMALL["dc"], "outer_loop": 2, "inner_loop": 1})
    assert method.default_steps == 20 != type(method).default_steps
    job = start_job(JobSpec("dc", "digits", ipc=3, settings={**SMALL["dc"], "outer_loop": 2, "inner_loop": 1},
                            device="cpu", eval_protocol="none"), digits)
    state = job_wait(job, 120)
    assert state.status == "finished" and state.total_steps == 20 and state.step == 20

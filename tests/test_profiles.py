"""Profiles: one table of every distiller's settings (fast and paper), read by configs, methods and default steps."""
from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import pytest
import torch

from distill_core import profiles
from distill_core.errors import InvalidInputError
from distill_core.methods import create_method, get_method
from distill_core.methods.base import MethodConfig, config_defaults
from distill_core.pipeline import default_steps
from distill_core.profiles import DISTILLERS, FAMILIES, PROFILES, TABLE, ByIPC, Fam

ROOT = Path(__file__).resolve().parents[1]
ONE_PER_FAMILY = {"small": "digits", "grey28": "mnist", "colour32": "cifar10"}


def test_readme_shows_the_table_itself():
    """The README's settings table is generated from TABLE: any edit to one without the other fails here."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert profiles.markdown_table() in readme
    assert readme.count("| method | setting | fast: small |") == 1


def test_the_rendered_table_states_every_cell():
    table = profiles.markdown_table().splitlines()
    assert len(table) == 2 + len(TABLE)
    row = next(r for r in TABLE if r.methods == ("mtt",) and r.setting == "syn_steps")
    line = next(s for s in table if s.startswith("| mtt | `syn_steps` |"))
    cells = [c.strip() for c in line.split("|")[3:9]]
    assert cells[:3] == [str(row.fast.of(f)) for f in FAMILIES]
    assert cells[3] == cells[4] == cells[5] == str(row.paper) == "50 @1, 30 @10, 30 @50"


def test_every_setting_is_a_field_of_its_method_and_every_distiller_has_iterations():
    for name in DISTILLERS:
        known = {f.name for f in fields(get_method(name).Config)}
        rows = [r for r in TABLE if name in r.methods]
        assert any(r.setting == "iterations" for r in rows), name
        for r in rows:
            assert r.setting == "iterations" or r.setting in known, (name, r.setting)
            assert r.source, (name, r.setting)
        assert len({r.setting for r in rows}) == len(rows), f"{name} has a setting twice"


def _cell(value, family, ipc):
    value = value.of(family) if isinstance(value, Fam) else value
    return value.at(ipc) if isinstance(value, ByIPC) else value


@pytest.mark.parametrize("name", DISTILLERS)
def test_paper_and_fast_configs_differ_exactly_where_the_table_does(name):
    cls = get_method(name).Config
    for family, dataset in ONE_PER_FAMILY.items():
        for ipc in (1, 10, 50):
            fast, paper = cls.for_dataset(dataset, "fast", ipc), cls.for_dataset(dataset, "paper", ipc)
            assert (fast.profile, paper.profile) == ("fast", "paper")
            for row in (r for r in TABLE if name in r.methods and r.setting != "iterations"):
                a, b = getattr(fast, row.setting), getattr(paper, row.setting)
                assert a == _cell(row.fast, family, ipc) and b == _cell(row.paper, family, ipc)
                assert (a == b) == (_cell(row.fast, family, ipc) == _cell(row.paper, family, ipc))
            fast.validate()
            paper.validate()
    # the profiles disagree somewhere for every distiller (else `paper` would be a second name for `fast`)
    assert cls.for_dataset("mnist", "fast", 10) != cls.for_dataset("mnist", "paper", 10)


def test_create_method_carries_the_profile(digits):
    fast = create_method("dc", digits, 10, seed=0, profile="fast")
    paper = create_method("dc", digits, 10, seed=0, profile="paper")
    assert fast.config.profile == "fast" and paper.config.profile == "paper"
    # the settings reach the run: width of the networks, real batch, start, loops and image step size
    conv = [m for m in paper.fresh_network(seed=0).modules() if isinstance(m, torch.nn.Conv2d)]
    assert conv[0].out_channels == 128 and len(conv) == 2  # digits keeps two blocks in both profiles
    assert [m.out_channels for m in fast.fresh_network(seed=0).modules() if isinstance(m, torch.nn.Conv2d)][0] == 64
    assert paper.summary().meta["init"] == "noise" and fast.summary().meta["init"] == "real"
    assert (paper.outer_loop, paper.inner_loop) == (10, 50) and (fast.outer_loop, fast.inner_loop) == (10, 10)
    assert paper.opt_images.param_groups[0]["lr"] == pytest.approx(0.1)
    assert fast.opt_images.param_groups[0]["lr"] == pytest.approx(0.5)
    assert paper.summary().meta["profile"] == "paper"
    mtt = create_method("mtt", digits, 1, seed=0, profile="paper")
    assert (mtt.config.syn_steps, mtt.config.max_start_epoch, mtt.config.batch_syn) == (50, 2, 0)
    assert create_method("mtt", digits, 10, seed=0, profile="paper").config.max_start_epoch == 20
    # overrides still win over the profile
    tuned = create_method("dc", digits, 10, seed=0, profile="paper", overrides={"inner_loop": "3", "width": "8"})
    assert tuned.inner_loop == 3 and tuned.config.width == 8 and tuned.outer_loop == 10


def test_default_steps_follow_the_profile(digits):
    def steps(name, ipc, profile):
        method = create_method(name, digits, ipc, seed=0, profile=profile,
                               overrides={"width": 8} if name != "kip" else None)
        assert method.default_steps == default_steps(method)
        return default_steps(method)

    table = {(name, p): next(r for r in TABLE if name in r.methods and r.setting == "iterations").value(p)
             for name in DISTILLERS for p in PROFILES}
    for name in ("dm", "mtt", "kip"):
        for profile in PROFILES:
            for ipc in (1, 10):
                assert steps(name, ipc, profile) == _cell(table[name, profile], "small", ipc)
    # gradient matching: iterations are fresh networks, each matched outer_loop times
    assert steps("dc", 1, "paper") == 1000 and steps("dc", 10, "paper") == 1000 * 10
    assert steps("dc", 1, "fast") == 200 and steps("dsa", 10, "fast") == 10 * 10
    # a selector has no iterations in the table: one step under both profiles
    assert default_steps(create_method("random", digits, 2, profile="paper")) == 1


def test_unknown_profile_is_one_clear_error(digits):
    with pytest.raises(InvalidInputError, match="unknown profile 'gpu'; choose one of fast, paper"):
        create_method("dm", digits, 1, profile="gpu")
    with pytest.raises(InvalidInputError, match="unknown setting 'profile'"):
        create_method("dm", digits, 1, overrides={"profile": "paper"})  # the profile is not a setting


def test_without_an_ipc_the_loops_are_settled_when_the_method_starts(digits):
    """The app builds a config before it knows the IPC: by-IPC loops stay 0 and the method picks them at start."""
    cfg = get_method("dc").Config.from_overrides("digits", {"width": 8})
    assert (cfg.outer_loop, cfg.inner_loop, cfg.image_lr_factor) == (0, 0, 0)
    one = get_method("dc")(digits, 1, config=cfg)
    ten = get_method("dc")(digits, 10, config=get_method("dc").Config.from_overrides("digits", {"width": 8}))
    assert (one.outer_loop, one.image_lr) == (1, pytest.approx(0.1))
    assert (ten.outer_loop, ten.image_lr) == (10, pytest.approx(0.5))
    assert profiles.settings("mtt", "mnist", "paper")["syn_steps"] == 50  # other by-IPC values: their IPC-1 row


def test_a_config_without_profiles_still_works_with_fast(digits):
    @dataclass
    class Legacy(MethodConfig):
        lr: float = 0.1

        @classmethod
        def for_dataset(cls, name: str) -> "Legacy":
            return cls(lr=0.2 if name == "digits" else 0.3)

    assert config_defaults(Legacy, "digits").lr == 0.2
    with pytest.raises(InvalidInputError, match="no 'paper' profile"):
        config_defaults(Legacy, "digits", "paper")


def test_selectors_are_the_same_under_both_profiles(digits):
    a = create_method("herding", digits, 3, seed=1, profile="fast").summary()
    b = create_method("herding", digits, 3, seed=1, profile="paper").summary()
    assert torch.equal(a.images, b.images) and a.meta["profile"] == "fast" and b.meta["profile"] == "paper"


@pytest.mark.parametrize("name", ["mtt", "tesla", "datm"])
def test_trajectory_methods_start_from_herding_at_ipc1_on_28px_greyscale(name):
    """The fast profile chosen on validation: at IPC 1 on (Fashion-)MNIST the trajectory family starts from herding's
    picks and matches the first 2 expert epochs; above IPC 1, and on other families, real images as before."""
    cls = get_method(name).Config
    one = cls.for_dataset("fashion-mnist", "fast", ipc=1)
    assert (one.init, one.max_start_epoch) == ("herding", 2)
    ten = cls.for_dataset("fashion-mnist", "fast", ipc=10)
    assert ten.init == "real" and ten.max_start_epoch > 2
    assert cls.for_dataset("cifar10", "fast", ipc=1).init == "real"
    assert cls.for_dataset("fashion-mnist", "paper", ipc=1).init == "real"


def test_rfad_fast_on_28px_greyscale_learns_labels_up_to_ipc10():
    """RFAD's fast profile chosen on validation: learned labels at IPC 1 and 10 (600 steps at IPC 10), hard labels
    beyond and on other families, as before."""
    from distill_core.profiles import iterations

    cls = get_method("rfad").Config
    assert [cls.for_dataset("fashion-mnist", "fast", ipc=i).learn_labels for i in (1, 10, 50)] == [True, True, False]
    assert [iterations("rfad", "fashion-mnist", "fast", i) for i in (1, 10, 50)] == [300, 600, 100]
    assert [iterations("rfad", "digits", "fast", i) for i in (1, 10, 50)] == [300, 200, 100]
    assert cls.for_dataset("digits", "fast", ipc=10).learn_labels is False
    assert cls.for_dataset("cifar10", "fast", ipc=10).learn_labels is False
    assert cls.for_dataset("fashion-mnist", "paper", ipc=10).learn_labels is True


def test_frepo_fast_on_28px_greyscale_follows_the_ipc():
    """FRePo's fast profile chosen on validation: learned labels up to IPC 10 (width 128, rate 0.1 and a target
    batch of 512 at IPC 10), hard labels at width 32 beyond, as before."""
    cls = get_method("frepo").Config
    got = {ipc: cls.for_dataset("fashion-mnist", "fast", ipc=ipc) for ipc in (1, 10, 50)}
    assert [(c.width, c.lr, c.learn_labels, c.target_batch) for c in got.values()] == [
        (32, 0.3, True, 256), (128, 0.1, True, 512), (32, 0.01, False, 256)]
    assert cls.for_dataset("fashion-mnist", "paper", ipc=10).target_batch == 1024
    assert cls.for_dataset("digits", "fast", ipc=10).learn_labels is False


def test_kip_fast_on_28px_greyscale_deepens_the_kernel_at_ipc1_only(mnist5k):
    """KIP's fast profile chosen on validation: six hidden layers at IPC 1, one above; 0 follows `depth`, so a
    set depth is what runs; the kernel a run used is the one its summary records (and `krr` judges with)."""
    import dataclasses

    from distill_core.memory import estimate

    cls = get_method("kip").Config
    fast = cls.for_dataset("mnist-5k", "fast")
    assert (fast.depth, fast.depth_ipc1) == (1, 6)
    assert [fast.kernel_spec(ipc).depth for ipc in (None, 1, 10)] == [1, 6, 1]
    assert cls.for_dataset("digits", "fast").depth_at(1) == 3 and cls.for_dataset("mnist-5k", "paper").depth_at(1) == 1
    assert cls(depth=4).depth_at(1) == 4  # 0: the depth that is set
    run = create_method("kip", mnist5k, 1, seed=0)
    run.step()
    assert run.spec.depth == 6 and run.summary().meta["kernel"]["depth"] == 6
    assert create_method("kip", mnist5k, 2, seed=0).spec.depth == 1
    shallow = dataclasses.replace(fast, depth_ipc1=0)
    assert estimate("kip", mnist5k, 1, fast).parts["kernels"] > \
        2 * estimate("kip", mnist5k, 1, shallow).parts["kernels"]
    assert estimate("kip", mnist5k, 10, fast).parts == estimate("kip", mnist5k, 10, shallow).parts
    with pytest.raises(InvalidInputError, match="depth_ipc1"):
        create_method("kip", mnist5k, 1, overrides={"depth_ipc1": -1})
    with pytest.raises(InvalidInputError, match="too large"):
        create_method("kip", mnist5k, 1, overrides={"depth_ipc1": 65})

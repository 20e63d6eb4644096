"""`init=herding`: a distiller starts from exactly the herding coreset, whatever its seed, and says so."""
from __future__ import annotations

import pytest
import torch

from distill_core.errors import InvalidInputError
from distill_core.methods import create_method
from distill_core.stimuli import source_of

SMALL = {
    "dm": {"width": 8, "batch_real": 16},
    "kip": {"target_batch": 64},
    "idm": {"width": 8, "batch_real": 16, "factor": 1},
}


@pytest.mark.parametrize("name", ["dm", "kip", "idm"])
def test_herding_start_is_the_herding_baseline(name, digits):
    herding = create_method("herding", digits, 3, seed=0).summary()
    for seed in (0, 5):
        method = create_method(name, digits, 3, seed=seed, overrides={**SMALL[name], "init": "herding"})
        start = method.summary()
        assert start.meta["init"] == "herding"
        assert start.meta["init_indices"] == herding.meta["indices"]
        assert torch.allclose(start.images, herding.images, atol=1e-5)
        assert torch.equal(start.labels, herding.labels)
    real = create_method(name, digits, 3, seed=0, overrides=SMALL[name]).summary()
    assert real.meta["init_indices"] != herding.meta["indices"]  # the random pick is another set


def test_herding_start_is_optimised_away_from_the_coreset(digits):
    method = create_method("dm", digits, 2, seed=0, overrides={**SMALL["dm"], "init": "herding"})
    start = method.images.detach().clone()
    loss = method.step()["loss"]
    assert torch.isfinite(torch.tensor(loss)) and not torch.equal(method.images.detach(), start)


def test_idm_partitions_start_from_herding_picks(digits):
    """With factor 2 every stored image packs four herding picks of its class, in herding's order."""
    ipc, factor = 2, 2
    method = create_method("idm", digits, ipc, seed=1, overrides={**SMALL["idm"], "factor": factor,
                                                                  "init": "herding"})
    herding = create_method("herding", digits, ipc * factor ** 2, seed=0).summary()
    assert method.init_indices == herding.meta["indices"]


@pytest.mark.parametrize("name", ["dm", "kip"])
def test_exported_provenance_names_the_start(name, digits):
    for init, words in (("herding", "herding's real images"), ("real", "real images"), ("noise", "noise")):
        summary = create_method(name, digits, 1, seed=0, overrides={**SMALL[name], "init": init}).summary()
        assert source_of(summary)[1] == f"{name}, started from {words}"


def test_unknown_init_is_refused_with_the_choices(digits):
    with pytest.raises(InvalidInputError, match="real, herding, noise"):
        create_method("kip", digits, 1, seed=0, overrides={"init": "kmeans"})

"""Speed options of the network distillers: bf16 autocast and the channels-last layout change the arithmetic, not
the method — one step's loss and image update stay within a stated tolerance of the fp32, contiguous step."""
import pytest
import torch

from distill_core.errors import InvalidInputError
from distill_core.methods import create_method, get_method

# one step from the same seed: bf16 rounds every product to 8 bits of mantissa, so its loss may move ~1 % and its
# update a few per cent; channels-last reorders sums only
BF16_LOSS_REL, BF16_UPDATE_COS = 0.05, 0.95
LAYOUT_LOSS_REL, LAYOUT_UPDATE_REL = 1e-4, 1e-3

SETTINGS = {"dm": {"width": 16, "batch_real": 32},
            "dc": {"width": 16, "batch_real": 16, "outer_loop": 1, "inner_loop": 0},
            "mtt": {"width": 8, "lr_teacher": 0.05, "dsa": False, "num_experts": 1, "expert_train_epochs": 2,
                    "max_start_epoch": 1, "expert_epochs": 1, "syn_steps": 4, "batch_syn": 0}}


def one_step(digits, method: str, **speed) -> tuple[float, torch.Tensor]:
    m = create_method(method, digits, 2, overrides={**SETTINGS[method], **speed}, seed=3)
    before = m.images.detach().clone()
    loss = float(m.step()["loss"])
    return loss, (m.images.detach() - before).flatten()


@pytest.mark.parametrize("method", ["dm", "dc", "mtt"])
def test_bf16_and_channels_last_stay_within_tolerance(digits, method, tmp_path, monkeypatch):
    monkeypatch.setenv("DISTILL_EXPERTS_DIR", str(tmp_path / "experts"))
    loss, update = one_step(digits, method)
    assert update.norm() > 0
    loss_bf, update_bf = one_step(digits, method, precision="bf16")
    assert abs(loss_bf - loss) <= BF16_LOSS_REL * abs(loss), (loss_bf, loss)
    cos = float(torch.nn.functional.cosine_similarity(update_bf, update, dim=0))
    assert cos >= BF16_UPDATE_COS, cos
    assert not torch.equal(update_bf, update)  # it did compute in bf16
    loss_cl, update_cl = one_step(digits, method, channels_last=True)
    assert abs(loss_cl - loss) <= LAYOUT_LOSS_REL * abs(loss)
    assert torch.allclose(update_cl, update, rtol=LAYOUT_UPDATE_REL, atol=LAYOUT_UPDATE_REL * float(update.abs().max()))


def test_unknown_precision_is_refused_and_kernel_methods_have_no_such_setting(digits):
    with pytest.raises(InvalidInputError, match="precision"):
        create_method("dm", digits, 1, overrides={"precision": "fp8"})
    for name in ("dm", "dc", "dsa", "mtt", "idm", "tesla", "datm"):
        assert {"precision", "channels_last"} <= set(get_method(name).Config().to_dict()), name
    for name in ("kip", "rfad", "frepo"):
        assert "precision" not in get_method(name).Config().to_dict(), name

"""relabel="teacher": RDED's own evaluation, every augmented batch labelled by the summary's teacher."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from distill_core.errors import InvalidInputError
from distill_core.evaluate import PROTOCOLS, evaluate_summary, train_network
from distill_core.methods import create_method
from distill_core.models import build_seeded
from distill_core.augment import ThenCutMix, cutmix
from distill_core.relabel import teacher_relabeller
from distill_core.teachers import ensure_teacher

SMALL_TEACHER: dict = {}  # the fast profile's digits teacher (~96 %): a weak one's labels train nothing in a test's epochs


@pytest.fixture(autouse=True)
def _teachers_dir(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("DISTILL_TEACHERS_DIR", str(tmp_path_factory.getbasetemp() / "teachers"))


def test_the_relabeller_is_the_summarys_teacher_at_its_temperature(digits):
    summary = create_method("random-soft", digits, 2, seed=0, overrides={**SMALL_TEACHER, "temperature": 4.0}).summary()
    relabel, record = teacher_relabeller(summary, digits, torch.device("cpu"))
    x = digits.normalize(summary.images)
    probs = relabel(x)
    assert torch.allclose(probs, summary.labels, atol=1e-5)  # the stored labels are the same teacher's, same T
    assert record["relabel"] == "teacher" and record["relabel_temperature"] == 4.0
    # and it is really that teacher: its logits at T=4
    cfg = create_method("random-soft", digits, 2, seed=0, overrides={**SMALL_TEACHER, "temperature": 4.0}).config
    teacher = ensure_teacher(digits, cfg.teacher_spec())
    assert torch.allclose(probs, F.softmax(teacher.logits(x) / 4.0, dim=1), atol=1e-5)


def test_train_network_trains_on_the_relabelled_batch(digits):
    x = digits.normalize(digits.x_train[:40].float())
    y = digits.y_train[:40]
    seen: list[torch.Tensor] = []

    def relabel(batch: torch.Tensor) -> torch.Tensor:
        seen.append(batch.clone())
        return torch.full((len(batch), 10), 0.1)

    net = build_seeded(digits, "mlp", seed=0, device="cpu", width=16, depth=2)
    train_network(net, x, y, PROTOCOLS["quick"], 2, torch.Generator().manual_seed(0), loss_fn=F.cross_entropy,
                  relabel=relabel)
    assert len(seen) == 2 and all(len(b) == 40 for b in seen)  # one batch per epoch, every row relabelled
    # trained on uniform targets, the network predicts (nearly) uniform probabilities
    with torch.no_grad():
        p = F.softmax(net(x), dim=1)
    assert float(p.max()) < 0.5


def test_relabelled_evaluation_records_itself_and_differs_from_fixed_labels(digits):
    summary = create_method("random-soft", digits, 2, seed=0, overrides=SMALL_TEACHER).summary()
    fixed = evaluate_summary(summary, digits, "quick", reps=1, device="cpu")
    relabelled = evaluate_summary(summary, digits, "quick", reps=1, device="cpu", relabel="teacher")
    assert fixed.details["relabel"] == "none" and fixed.details["augmentation"] == {"name": "none"}
    d = relabelled.details
    assert d["relabel"] == "teacher" and d["label_loss"] == "soft_ce" and d["augmentation_source"] == "relabel"
    assert d["augmentation"]["name"] == "dsa" and "RDED" in d["augmentation_why"]
    assert d["relabel_teacher"]["path"].endswith(".pt")
    # the fixed soft labels underfit in the quick epochs (see methods/rded.py); the relabelled views train further
    assert relabelled.acc_mean > fixed.acc_mean + 0.05 and relabelled.acc_mean > 0.25
    forced = evaluate_summary(summary, digits, "quick", reps=1, device="cpu", epochs=3, relabel="teacher",
                              augment=None)
    assert forced.details["augmentation"] == {"name": "none"} and forced.details["relabel"] == "teacher"


def test_cutmix_relabelling_mixes_every_batch_and_records_it(digits, monkeypatch):
    import distill_core.evaluate as evaluate

    summary = create_method("random-soft", digits, 2, seed=0, overrides=SMALL_TEACHER).summary()
    batches: dict[str, list[torch.Tensor]] = {}
    real_train = evaluate.train_network

    def spy(model, x, y, protocol, epochs, generator, augment=None, relabel=None, **kw):
        mode = "cutmix" if isinstance(augment, ThenCutMix) else "plain"

        def seen(batch: torch.Tensor) -> torch.Tensor:
            batches.setdefault(mode, []).append(batch.clone())
            return relabel(batch)

        return real_train(model, x, y, protocol, epochs, generator, augment=augment, relabel=seen, **kw)

    monkeypatch.setattr(evaluate, "train_network", spy)
    plain = evaluate_summary(summary, digits, "quick", reps=1, device="cpu", epochs=2, relabel="teacher")
    mixed = evaluate_summary(summary, digits, "quick", reps=1, device="cpu", epochs=2, relabel="teacher-cutmix")
    assert plain.details["relabel"] == "teacher" and plain.details["augmentation"]["name"] == "dsa"
    d = mixed.details
    assert d["relabel"] == "teacher-cutmix" and d["augmentation"]["name"] == "dsa+cutmix"
    assert d["augmentation"]["strategy"] == plain.details["augmentation"]["strategy"]
    assert d["augmentation_source"] == "relabel" and d["label_loss"] == "soft_ce"
    assert len(batches["plain"]) == len(batches["cutmix"]) == 2
    # the same seeds draw the same DSA views; CutMix then replaces a box of some of them with another image's pixels
    assert not all(torch.equal(a, b) for a, b in zip(batches["plain"], batches["cutmix"]))
    forced = evaluate_summary(summary, digits, "quick", reps=1, device="cpu", epochs=1, relabel="teacher-cutmix",
                              augment=None)
    assert forced.details["augmentation"]["name"] == "cutmix"  # a forced augmentation is kept, CutMix still follows


def test_relabel_refuses_what_it_cannot_do(digits):
    hard = create_method("random", digits, 1, seed=0).summary()
    with pytest.raises(InvalidInputError, match="labelled by a teacher"):
        evaluate_summary(hard, digits, "quick", reps=1, device="cpu", epochs=1, relabel="teacher")
    with pytest.raises(InvalidInputError, match="relabel must be one of none, teacher, teacher-cutmix"):
        evaluate_summary(hard, digits, "quick", reps=1, device="cpu", epochs=1, relabel="student")
    soft = create_method("random-soft", digits, 1, seed=0, overrides=SMALL_TEACHER).summary()
    with pytest.raises(InvalidInputError, match="soft_ce"):
        evaluate_summary(soft, digits, "quick", reps=1, device="cpu", epochs=1, relabel="teacher", label_loss="mse")
    with pytest.raises(InvalidInputError, match="trains none"):
        evaluate_summary(soft, digits, "krr", relabel="teacher")


def test_bench_relabels_the_teacher_rows_only_and_says_so(digits):
    from distill_core.bench import markdown_table, run_bench, soft_note

    rows = run_bench(digits, ["random", "random-soft"], [1], reps=1, device="cpu", relabel="teacher")
    by = {r.method: r for r in rows}
    assert by["random"].relabel == "none" and by["random"].error is None
    assert by["random-soft"].relabel == "teacher" and by["random-soft"].label_loss == "soft_ce"
    note = soft_note(rows)
    assert "random-soft: teacher soft labels, relabelled by the teacher on every augmented batch" in note
    plain = run_bench(digits, ["random-soft"], [1], reps=1, device="cpu")
    assert plain[0].relabel == "none" and "relabelled" not in soft_note(plain)
    assert plain[0].accs != by["random-soft"].accs
    assert "random-soft" in markdown_table(rows, [1])



def test_cutmix_pastes_one_box_from_another_image_of_the_batch():
    x = torch.arange(6, dtype=torch.float32).view(6, 1, 1, 1).expand(6, 1, 12, 12).contiguous()  # image i is all i
    boxes = []
    for seed in range(40):
        mixed = cutmix(x, torch.Generator().manual_seed(seed))
        assert torch.equal(x[:, :, 0, 0], torch.arange(6.0).view(6, 1))  # the input is untouched
        changed = (mixed != x).any(dim=1)  # (n, h, w): where each image took another's pixels
        area = changed.sum(dim=(1, 2))
        for i in range(6):
            cells = changed[i].nonzero()
            if len(cells):  # one rectangle, filled with exactly one other image's value
                (r0, c0), (r1, c1) = cells.min(0).values.tolist(), cells.max(0).values.tolist()
                assert int(area[i]) == (r1 - r0 + 1) * (c1 - c0 + 1)
                assert len(torch.unique(mixed[i, 0][changed[i]])) == 1
        # the same box for every image of the batch (one draw per batch)
        boxes.append(int(changed.any(0).sum()))
        assert all(int(a) in (0, boxes[-1]) for a in area)
        assert torch.equal(mixed, cutmix(x, torch.Generator().manual_seed(seed)))  # seeded: it repeats
    # λ ~ U(0, 1): boxes of every size, from none to most of the image
    assert min(boxes) < 20 and max(boxes) > 80 and len(set(boxes)) > 10


def test_then_cutmix_applies_the_first_augmentation_then_mixes():
    calls = []

    def first(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        calls.append(len(x))
        return x + 1

    x = torch.zeros(4, 1, 8, 8)
    out = ThenCutMix(first)(x, torch.Generator().manual_seed(0))
    assert calls == [4] and torch.equal(out, torch.ones(4, 1, 8, 8))  # mixing ones with ones leaves ones
    assert ThenCutMix(None).describe()["name"] == "cutmix"


def test_relabel_phrases_and_which_rows_relabel(digits):
    from distill_core.bench import relabel_of
    from distill_core.relabel import relabel_phrase

    assert relabel_phrase("none") == ""
    assert relabel_phrase("teacher") == ", relabelled by the teacher on every augmented batch"
    assert relabel_phrase("teacher-cutmix") == ", relabelled by the teacher on every augmented batch (CutMix)"
    soft = create_method("random-soft", digits, 1, seed=0, overrides=SMALL_TEACHER).summary()
    hard = create_method("random", digits, 1, seed=0).summary()
    assert relabel_of(soft, "teacher-cutmix") == "teacher-cutmix" and relabel_of(hard, "teacher-cutmix") == "none"

"""Teacher relabelling while an evaluation network trains: the decoupled family's own evaluation.

RDED (Sun et al., CVPR 2024), like SRe2L before it, does not train its students on fixed labels: every augmented
batch is relabelled by the teacher that chose the images, and the student fits the teacher's soft predictions on
exactly the view it sees. A `Summary` stores one soft label per image, which an augmented view no longer matches;
`relabel="teacher"` in `evaluate_summary` restores the authors' scheme: the batch is augmented (DSA, the field's
differentiable augmentation, unless another is forced), then labelled softmax(teacher logits / T) with the
summary's own teacher and temperature, and the network trains on those with soft cross-entropy (the KL divergence
RDED uses, up to a constant). `relabel="teacher-cutmix"` adds CutMix (`augment.ThenCutMix`) after the
augmentation, as RDED's students train: a box of another image of the batch is pasted into each image, and since
the teacher labels the mixed view itself, no label mixing is needed. It is a mode of its own, not the default, because on 8×8 digits it leaves the
students at chance (the teacher, trained on plain images, cannot name such views); on Fashion-MNIST it helps.

Only summaries whose labels came from a teacher (`meta["soft_labels"] == "teacher"`: `rded`, `random-soft`) can be
relabelled: the teacher is the one their config names, read from the teachers' cache (trained once if missing).
Differences from the authors' code: their students train with AdamW and temperature 20 on both sides, and their
teachers with augmentation; here the protocol's SGD, the summary's temperature (1 by default) on the teacher's side
only, and a teacher trained on plain images. On Fashion-MNIST at IPC 10 (validation split, seeds 0-2, three
ConvNets each, with CutMix) temperature 20 on both sides lowered both rded and random-soft (74.1 and 74.6 against
74.7 and 75.2 at T 1), so the protocol keeps its own.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import torch
import torch.nn.functional as F

from .data import ImageSet
from .errors import InvalidInputError
from .summary import Summary

RELABEL_MODES = ("none", "teacher", "teacher-cutmix")
RELABEL_WORDS = {"none": "none (fixed soft labels)", "teacher": "the teacher, every augmented batch",
                 "teacher-cutmix": "the teacher, every augmented batch, with CutMix"}
Relabeller = Callable[[torch.Tensor], torch.Tensor]


def relabels(relabel: str) -> bool:
    """Whether a relabel mode has the teacher label every batch ("teacher", "teacher-cutmix")."""
    return relabel in RELABEL_MODES and relabel != "none"


def relabel_phrase(relabel: str) -> str:
    """The words a table or message adds for a relabel mode ('' for none)."""
    if not relabels(relabel):
        return ""
    return ", relabelled by the teacher on every augmented batch" + (" (CutMix)" if relabel == "teacher-cutmix" else "")


def check_relabel(relabel: str) -> None:
    if relabel not in RELABEL_MODES:
        raise InvalidInputError(f"relabel must be one of {', '.join(RELABEL_MODES)}, got {relabel!r}")


def teacher_relabeller(summary: Summary, dataset: ImageSet, device: torch.device,
                       mode: str = "teacher") -> tuple[Relabeller, dict[str, Any]]:
    """(a function from a batch of normalised images on `device` to the teacher's class probabilities, a record of
    the mode, teacher and temperature) for a summary labelled by a teacher."""
    check_relabel(mode)
    if mode == "none":
        raise InvalidInputError("relabel='none' has no relabeller")
    meta = summary.meta or {}
    if meta.get("soft_labels") != "teacher":
        raise InvalidInputError(f"relabel={mode!r} needs a summary labelled by a teacher (rded or random-soft); "
                                f"this {summary.method} summary has no teacher")
    from .methods.rded import TeacherConfig  # imported late: the methods import the evaluation
    from .teachers import ensure_teacher

    saved = meta.get("config") if isinstance(meta.get("config"), dict) else {}
    names = {f.name for f in dataclasses.fields(TeacherConfig)}
    cfg = TeacherConfig(**{k: v for k, v in saved.items() if k in names})
    cfg.validate()
    temperature = float(meta.get("temperature", cfg.temperature))
    if not temperature > 0:
        raise InvalidInputError(f"the summary's teacher temperature must be positive, got {temperature}")
    teacher = ensure_teacher(dataset, cfg.teacher_spec(), device=device)
    model = teacher.model.eval()

    @torch.no_grad()
    def relabel(x: torch.Tensor) -> torch.Tensor:
        return F.softmax(model(x).float() / temperature, dim=1)

    record = {"relabel": mode, "relabel_temperature": temperature, "relabel_teacher": teacher.to_dict()}
    return relabel, record

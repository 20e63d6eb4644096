"""Teacher relabelling while an evaluation network trains: the decoupled family's own evaluation.

RDED (Sun et al., CVPR 2024), like SRe2L before it, does not train its students on fixed labels: every augmented
batch is relabelled by the teacher that chose the images, and the student fits the teacher's soft predictions on
exactly the view it sees. A `Summary` stores one soft label per image, which an augmented view no longer matches;
`relabel="teacher"` in `evaluate_summary` restores the authors' scheme: the batch is augmented (DSA, the field's
differentiable augmentation, unless another is forced), then labelled softmax(teacher logits / T) with the summary's
own teacher and temperature, and the network trains on those with soft cross-entropy (the KL divergence RDED uses,
up to a constant).

Only summaries whose labels came from a teacher (`meta["soft_labels"] == "teacher"`: `rded`, `random-soft`) can be
relabelled: the teacher is the one their config names, read from the teachers' cache (trained once if missing).
Differences from the authors' code: their students train with AdamW, cutmix and temperature 20 on both sides; here
the protocol's SGD and the summary's temperature (1 by default) on the teacher's side only.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import torch
import torch.nn.functional as F

from .data import ImageSet
from .errors import InvalidInputError
from .summary import Summary

RELABEL_MODES = ("none", "teacher")
Relabeller = Callable[[torch.Tensor], torch.Tensor]


def check_relabel(relabel: str) -> None:
    if relabel not in RELABEL_MODES:
        raise InvalidInputError(f"relabel must be one of {', '.join(RELABEL_MODES)}, got {relabel!r}")


def teacher_relabeller(summary: Summary, dataset: ImageSet, device: torch.device) -> tuple[Relabeller, dict[str, Any]]:
    """(a function from a batch of normalised images on `device` to the teacher's class probabilities, a record of
    the teacher and temperature) for a summary labelled by a teacher."""
    meta = summary.meta or {}
    if meta.get("soft_labels") != "teacher":
        raise InvalidInputError(f"relabel='teacher' needs a summary labelled by a teacher (rded or random-soft); "
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

    record = {"relabel": "teacher", "relabel_temperature": temperature, "relabel_teacher": teacher.to_dict()}
    return relabel, record

"""`random-soft`: the `random` baseline relabelled by RDED's teacher — the same seeded, class-balanced random real
images as `random`, with the teacher's soft labels (softmax(logits / temperature), `meta["soft_labels"] =
"teacher"`) instead of their hard labels.

Why a method of its own: decoupled methods such as RDED gain from two things at once, better images and a
teacher's soft labels. Benched beside `random` (hard labels) and `rded`, this row shows how much the soft labels
alone lift random real images (the field's observation, e.g. the "soft labels" ablations of RDED and of DD-Ranking),
so the remaining gap is what RDED's crop selection and stitching add. It uses exactly the teacher `rded` uses
(the same profile rows, so the same cached network) and the same evaluation policy.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .base import class_balanced_pick, register_method
from .rded import TeacherConfig, TeacherMethod


@dataclass
class RandomSoftConfig(TeacherConfig):
    method_key = "random-soft"


@register_method
class RandomSoft(TeacherMethod):
    name = "random-soft"
    kind = "selector"
    family = "selection"
    description = "Random real images (as `random`) relabelled with the soft labels of RDED's teacher."
    Config = RandomSoftConfig
    config: RandomSoftConfig

    def _step(self) -> dict[str, float]:
        ds = self.dataset
        idx = class_balanced_pick(ds.y_train, ds.num_classes, self.ipc, self.generator)  # = random's pick
        pixels = ds.x_train[idx]
        labels = self.relabel(pixels)
        agree = float((labels.argmax(1) == ds.y_train[idx]).float().mean())
        meta: dict[str, Any] = {**self.teacher_meta(), "indices": idx.tolist()}
        self._result = (pixels, labels, meta)
        return {"teacher_agrees": agree}

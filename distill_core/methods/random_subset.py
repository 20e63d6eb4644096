"""`random`: a seeded, class-balanced random subset of real training images (the field's baseline)."""
from __future__ import annotations

from .base import Method, class_balanced_pick, register_method
from ..summary import Summary


@register_method
class RandomSubset(Method):
    name = "random"
    kind = "selector"
    family = "selection"
    description = "Random real images, the same number from every class."

    def _step(self) -> dict[str, float]:
        self._indices = class_balanced_pick(self.dataset.y_train, self.dataset.num_classes, self.ipc, self.generator)
        return {}

    def summary(self) -> Summary:
        if self.steps_done == 0:
            self.step()
        idx = self._indices
        return self._make_summary(self.dataset.x_train[idx], self.dataset.y_train[idx], indices=idx.tolist())

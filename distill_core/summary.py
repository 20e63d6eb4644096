"""`Summary`: the small labelled set any method produces, learned (distillers) or picked (selectors)."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class Summary:
    """images: K×C×H×W in pixel space (nominally [0, 1]; distilled pixels may stray outside).
    labels: int64 (K,) hard labels, or float32 (K, num_classes) learned/soft targets.
    meta: provenance (e.g. 'indices' of picked real images, settings), JSON-serialisable."""

    images: torch.Tensor
    labels: torch.Tensor
    method: str
    dataset: str
    ipc: int
    class_names: list[str]
    meta: dict = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def soft(self) -> bool:
        return self.labels.dim() == 2

    @property
    def hard_labels(self) -> torch.Tensor:
        """Class index of each image (argmax of learned labels)."""
        return self.labels.argmax(dim=1) if self.soft else self.labels

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def detach(self) -> "Summary":
        """A CPU copy with no autograd history, safe to hand to another thread."""
        return Summary(self.images.detach().float().cpu().clone(), self.labels.detach().cpu().clone(),
                       self.method, self.dataset, self.ipc, list(self.class_names), dict(self.meta))

    def by_class(self) -> list[torch.Tensor]:
        """Images grouped per class (index c -> images whose hard label is c)."""
        hard = self.hard_labels
        return [self.images[hard == c] for c in range(self.num_classes)]

"""Published test accuracies of ConvNet-3 trained on summaries, as data with their sources (for `reproduce`).

Accuracies are fractions in [0, 1], like every accuracy the library reports. `ipc` None is the whole training set.
`std` is None where it is not stored: the DC/DSA repository's README tables give means only, and the papers' ±
values are left out until they are checked against the papers themselves (a wrong spread is worse than none).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Published:
    dataset: str
    method: str          # a registered method name, or "whole" (the full training set)
    ipc: int | None
    acc: float
    std: float | None
    source: str

    def to_dict(self) -> dict:
        return asdict(self)


DC_TABLE1 = "Zhao, Mopuri & Bilen, Dataset Condensation with Gradient Matching, ICLR 2021, Table 1"
DC_README = "VICO-UoE/DatasetCondensation README, Performance table of DC"
DSA_README = "VICO-UoE/DatasetCondensation README, Performance table of DSA (Zhao & Bilen, ICML 2021)"
DM_LATER = ("Zhao & Bilen, Dataset Condensation with Distribution Matching, WACV 2023, as tabulated in later papers' "
            "comparison tables")


def _cells(dataset: str, method: str, accs: tuple[float, float, float], source: str) -> list[Published]:
    """IPC 1, 10, 50 of one method, percentages as printed in the source."""
    return [Published(dataset, method, ipc, round(a / 100, 4), None, source) for ipc, a in zip((1, 10, 50), accs)]


PUBLISHED: tuple[Published, ...] = (
    *_cells("fashion-mnist", "random", (51.4, 73.8, 82.5), DC_TABLE1),
    *_cells("fashion-mnist", "herding", (67.0, 71.1, 71.9), DC_TABLE1),
    *_cells("fashion-mnist", "dc", (70.5, 82.3, 83.6), DC_README),
    *_cells("fashion-mnist", "dsa", (70.6, 84.6, 88.7), DSA_README),
    *_cells("fashion-mnist", "dm", (70.7, 83.5, 88.1), DM_LATER),
    Published("fashion-mnist", "whole", None, 0.935, None, DC_TABLE1),
    *_cells("mnist", "random", (64.9, 95.1, 97.9), DC_TABLE1),
    *_cells("mnist", "herding", (89.2, 93.7, 94.8), DC_TABLE1),
    *_cells("mnist", "dc", (91.7, 97.4, 98.8), DC_TABLE1),
    *_cells("mnist", "dsa", (88.7, 97.8, 99.2), DSA_README),
    *_cells("mnist", "dm", (89.7, 97.5, 98.6), DM_LATER),
    Published("mnist", "whole", None, 0.996, None, DC_TABLE1),
)


# datasets judged against another's published values: mnist-5k's 4,000 training and 1,000 test images are drawn
# from MNIST's own splits, so MNIST's figures are its reference (a summary distilled from fewer images may trail)
REFERENCE_OF = {"mnist-5k": "mnist"}


def published(dataset: str, method: str, ipc: int | None) -> Published | None:
    """The published value of one cell, or None when there is none (other datasets, methods or IPCs)."""
    target = REFERENCE_OF.get(dataset, dataset)
    for p in PUBLISHED:
        if p.dataset == target and p.method == method and p.ipc == ipc:
            if target != dataset:
                return Published(dataset, p.method, p.ipc, p.acc, p.std,
                                 f"MNIST's value ({dataset} is drawn from MNIST): {p.source}")
            return p
    return None


def whole_dataset(dataset: str) -> Published | None:
    """The published accuracy of training on the whole training set, when there is one."""
    return published(dataset, "whole", None)

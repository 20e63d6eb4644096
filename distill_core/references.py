"""The live evaluation a job plots (`live_evaluate`) and the reference lines drawn beside it ('random picks',
'full data'), measured the same way once per (dataset, IPC, protocol, epochs) in one background thread and cached
here (the cache, its queue and its thread exist only in this module)."""
from __future__ import annotations

import collections
import threading
from typing import Any, NamedTuple

import torch

from .data import ImageSet
from .job_slots import _bound_threads
from .summary import Summary


class LiveAccuracy(NamedTuple):
    """One live evaluation: the accuracy, the evaluating model, and the epoch at which its network's training loss
    stopped being finite (None when it trained normally; the accuracy is then that of a broken network)."""

    acc: float
    model: str
    diverged_epoch: int | None = None


def live_evaluate(summary: Summary, dataset: ImageSet, protocol: str, seed: int = 0, device: Any = "cpu",
                  epochs: int | None = 40, should_stop=None) -> LiveAccuracy:
    """The live evaluation a job plots: one network (`quick`, `epochs` epochs) or the protocol as it is (`krr`)."""
    from .evaluate import evaluate_summary

    kwargs: dict[str, Any] = {"reps": 1, "seed": seed, "device": device}
    if protocol == "quick":
        kwargs.update(epochs=max(1, int(epochs or 40)), should_stop=should_stop)
    result = evaluate_summary(summary, dataset, protocol, **kwargs)
    diverged = result.details.get("diverged") or []
    return LiveAccuracy(float(result.acc_mean), result.model, int(diverged[0]["epoch"]) if diverged else None)


REFERENCE_SEEDS = 3              # random picks: mean over this many draws
FULL_DATA_MAX = {"krr": 5000}  # the full-data line: krr on training sets up to this size (seconds; a network on
#                                  all of digits takes over a minute of a CPU core, so `quick` gets none)
_REF_LOCK = threading.Lock()
_REFS: dict[tuple, dict[str, float]] = {}
_REF_QUEUE: "collections.OrderedDict[tuple, ImageSet]" = collections.OrderedDict()
_REF_THREAD: threading.Thread | None = None
_REF_MAX = 128


def reference_accuracies(dataset_name: str, ipc: int, protocol: str, epochs: int | None = None,
                         dataset: ImageSet | None = None) -> dict[str, float]:
    """Accuracies to draw beside a live curve, measured with the same live evaluation: 'random picks' (random real
    images at the same IPC, mean of REFERENCE_SEEDS draws) and 'full data' (the whole training split, when it is
    small enough to be quick). Computed once per (dataset, IPC, protocol, epochs) in one background thread and
    cached; until then (or without `dataset` to compute from) what is known so far, possibly {}."""
    global _REF_THREAD
    key = (str(dataset_name), int(ipc), str(protocol), int(epochs) if epochs else None)
    with _REF_LOCK:
        known = dict(_REFS.get(key, {}))
        if key in _REFS or dataset is None or key in _REF_QUEUE:
            return known
        _REF_QUEUE[key] = dataset
        if _REF_THREAD is None or not _REF_THREAD.is_alive():
            _REF_THREAD = threading.Thread(target=_reference_loop, name="distill-reference", daemon=True)
            _REF_THREAD.start()
    return known


def _reference_loop() -> None:
    global _REF_THREAD
    _bound_threads()
    while True:
        with _REF_LOCK:
            if not _REF_QUEUE:
                _REF_THREAD = None
                return
            key, dataset = _REF_QUEUE.popitem(last=False)
            _REFS[key] = {}
            while len(_REFS) > _REF_MAX:
                _REFS.pop(next(iter(_REFS)))
        try:
            _compute_references(key, dataset)
        except Exception:  # noqa: BLE001 - a reference line is optional; what was measured stays
            pass


def _compute_references(key: tuple, dataset: ImageSet) -> None:
    from .methods import create_method

    _, ipc, protocol, epochs = key
    accs = []
    for seed in range(REFERENCE_SEEDS):
        summary = create_method("random", dataset, ipc, seed=seed).summary()
        accs.append(live_evaluate(summary, dataset, protocol, seed, "cpu", epochs)[0])
    with _REF_LOCK:
        _REFS.setdefault(key, {})["random picks"] = sum(accs) / len(accs)
    if len(dataset.y_train) <= FULL_DATA_MAX.get(protocol, 0):
        counts = torch.bincount(dataset.y_train.long(), minlength=dataset.num_classes)
        full = Summary(dataset.x_train.float(), dataset.y_train.long(), "full", dataset.name,
                       int(counts.max()), list(dataset.class_names), {})
        acc = live_evaluate(full, dataset, protocol, 0, "cpu", epochs)[0]
        with _REF_LOCK:
            _REFS.setdefault(key, {})["full data"] = acc



def stop_references(timeout: float = 10.0) -> None:
    """Drop the queued reference lines and let the thread finish the one it is computing (tests, shutdown)."""
    with _REF_LOCK:
        _REF_QUEUE.clear()
        ref = _REF_THREAD
    if ref is not None:
        ref.join(timeout)

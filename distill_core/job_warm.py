"""Warm-up at server start: pay torch's and a distiller's first-use costs once, in a background thread, so that a
user's first Start shows its grid at once."""
from __future__ import annotations

import time

import torch

from .data import load_dataset
from .job_slots import _bound_threads, restore_threads_when_idle


def warm_up(dataset: str = "digits", method: str | None = None) -> float:
    """Pay the first-use costs once (torch's optimiser machinery imports ~3 s of modules; the embedded dataset;
    one step of a distiller) so that a user's first Start shows its grid at once. Returns the seconds spent.
    Meant for a background thread at server start; failures are ignored."""
    t0 = time.perf_counter()
    try:
        _bound_threads()
        p = torch.zeros(2, requires_grad=True)
        opt = torch.optim.Adam([p], lr=0.1)
        (p ** 2).sum().backward()
        opt.step()
        from .methods import METHODS

        ds = load_dataset(dataset)
        name = method or next((m for m in ("kip", "dm") if m in METHODS), None)
        if name is not None:
            m = METHODS[name](ds, 1, seed=0)
            m.step()
            m.summary()
    except Exception:  # noqa: BLE001 - warming is best effort
        pass
    finally:
        restore_threads_when_idle()
    return time.perf_counter() - t0

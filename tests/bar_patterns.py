"""A tiny 3-class image set for the map tests: 8×8 bars (horizontal, vertical, diagonal) plus noise, which a
network learns in a few steps. Each name gets its own fingerprint, so tests do not share cache files."""
import dataclasses

import numpy as np
import torch


def bar_patterns(name: str = "patterns", seed: int = 0):
    from distill_core.data import _from_arrays

    g = torch.Generator().manual_seed(seed)
    x = torch.rand(90, 1, 8, 8, generator=g) * 0.3
    y = torch.arange(3).repeat_interleave(30)
    x[y == 0, :, 3:5, :] += 0.7
    x[y == 1, :, :, 3:5] += 0.7
    x[y == 2] += 0.7 * torch.eye(8)
    test = np.arange(90) % 5 == 0
    ds = _from_arrays("patterns", x.clamp(0, 1).numpy(), y.numpy(), ["h", "v", "d"], np.flatnonzero(~test),
                      np.flatnonzero(test))
    return ds if name == "patterns" else dataclasses.replace(ds, name=name)

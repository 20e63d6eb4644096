"""Device selection: CUDA, then Apple MPS, then CPU."""
from __future__ import annotations

import torch

from .errors import InvalidInputError

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


def mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def resolve_device(name: str | torch.device | None = "auto") -> torch.device:
    """Turn 'auto'/'cpu'/'cuda'/'mps' into a usable torch.device, with a clear error if unavailable."""
    if isinstance(name, torch.device):
        return name
    name = (name or "auto").lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise InvalidInputError("device 'cuda' was asked for but no CUDA GPU is available; use --device auto or cpu")
        return torch.device(name)
    if name == "mps":
        if not mps_available():
            raise InvalidInputError("device 'mps' was asked for but Apple MPS is not available; use --device auto or cpu")
        return torch.device("mps")
    if name == "cpu":
        return torch.device("cpu")
    raise InvalidInputError(f"unknown device {name!r}; choose one of {', '.join(DEVICE_CHOICES)}")


def describe_device(device: torch.device) -> str:
    """A short human-readable name such as 'cuda (NVIDIA H100)' or 'cpu (2 threads)'."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    if device.type == "mps":
        return "mps (Apple GPU)"
    return f"cpu ({torch.get_num_threads()} threads)"


def make_generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A seeded generator on the given device (MPS generators fall back to CPU)."""
    device = torch.device(device)
    gen_device = device if device.type == "cuda" else torch.device("cpu")
    gen = torch.Generator(device=gen_device)
    gen.manual_seed(int(seed))
    return gen


def prepare_device(device: torch.device) -> None:
    """Per-device settings for the distillers' hot loops: on CUDA, let cuDNN pick the fastest convolution
    algorithms for the (fixed) shapes a run repeats every step."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True


def to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Move a small host tensor (indices, augmentation parameters) to `device` without waiting for the device.

    A plain copy from pageable host memory to a CUDA device synchronises the host with the device; a copy from
    pinned memory with `non_blocking=True` is queued instead. On the CPU (or when already there) nothing moves.
    """
    if t.device == device:
        return t
    if device.type == "cuda" and t.device.type == "cpu":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


def build_on_device(factory, seed: int, device: torch.device):
    """`factory()` with its parameters created and initialised directly on `device` from `seed`.

    On the CPU this equals building under `torch.manual_seed(seed)`; on CUDA the initial values come from the
    device's generator (so they differ from the CPU's, but repeat for a seed), and no weights cross the bus. The
    global generators are left as they were.
    """
    from .models import _INIT_LOCK  # one initialisation at a time: the seeded generators are global

    if device.type != "cuda":
        with _INIT_LOCK, torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            model = factory()
        return model.to(device)
    index = device.index if device.index is not None else torch.cuda.current_device()
    with _INIT_LOCK, torch.random.fork_rng(devices=[index]), torch.device(device):
        torch.manual_seed(int(seed))
        return factory()


def materialize(metrics: dict) -> dict:
    """Metrics with every tensor turned into a float: one transfer per device for all of them."""
    out = dict(metrics)
    by_device: dict[torch.device, list] = {}
    for k, v in metrics.items():
        if isinstance(v, torch.Tensor):
            by_device.setdefault(v.device, []).append(k)
    for keys in by_device.values():
        values = torch.stack([metrics[k].detach().reshape(()).double() for k in keys]).tolist()
        out.update(zip(keys, values))
    return out

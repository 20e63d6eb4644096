"""Peak memory of a distillation run, known before it starts: an analytic estimate, and the check that refuses a run
that cannot fit.

The estimate counts what a step keeps alive at its worst moment, in bytes:

- **resident**: the normalised training set the method keeps on its device, the synthetic images with their
  gradient and optimiser state, the network's parameters;
- **activations**: what autograd saves for the backward pass, per image and per layer of the ConvNet — for each
  block the convolution's output, the instance norm's output (which the in-place ReLU and the pooling share) and
  the pooled output (the next convolution's saved input), plus the (padded, augmented) input images. Gradient
  matching (dc, dsa) and MTT differentiate a gradient, so their synthetic pass also keeps the backward pass's
  graph (`DOUBLE_BACKWARD`× the forward's);
- **mtt**: `syn_steps` unrolled student steps, each with its graph and parameter vector — or, checkpointed, the
  parameter vectors only plus one step's graph being recomputed;
- **kip**: the kernel matrices (support × support, target × support) and the per-layer tensors the arc-cosine
  recursion saves for its backward;
- **transient**: the largest temporaries a backward pass holds next to all that (gradient matching: one activation
  of the widest layer per image; DM: none beyond what its backward frees as it goes; MTT: two, for the last step).

The factors (`DOUBLE_BACKWARD`, `KIP_SAVED_PER_LAYER`, the transients) were fitted to peaks measured on the CPU
(`python -m benchmarks.memory_estimate`, which reads the process's peak resident memory around two steps): the
estimate is within 10 % of the measurement for dm, dc, mtt and kip at two sizes each there (README). On CUDA the caching allocator and
cuDNN workspaces add some hundreds of MB on top (`CUDA_OVERHEAD`).

`check_fits` compares the estimate with the memory available (CUDA: the device's free memory; CPU: the available
RAM) and refuses a run that cannot fit with one clear message, before any work.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch

from .errors import InvalidInputError

FLOAT = 4                    # bytes of float32
DOUBLE_BACKWARD = 1.0        # a create_graph backward keeps about as much again as the forward saved
AUGMENT_SAVED = 2.0          # DSA keeps about two image-sized tensors per augmented image (input and sampling grid)
KIP_SAVED_PER_LAYER = 3.5    # N×M tensors the arc-cosine recursion keeps per layer (ρ, π−θ, sin θ, and its outputs
#                              K and Θ, shared with the next layer; measured); the NNGP alone keeps one fewer
CUDA_OVERHEAD = 512 * 2**20  # CUDA context (not counted by free memory) aside: allocator slack and cuDNN workspaces
HEADROOM = 0.9               # a run is refused when its estimate exceeds this share of the available memory


class DatasetShape(NamedTuple):
    """What the estimate needs to know of a dataset: its training size, class count and image shape."""

    num_train: int
    num_classes: int
    channels: int
    height: int
    width: int

    @classmethod
    def of(cls, dataset: Any) -> "DatasetShape":
        """From an ImageSet (or anything with x_train/num_classes/image_shape), or a 5-tuple in this order."""
        if isinstance(dataset, tuple):
            return cls(*(int(v) for v in dataset))
        c, h, w = dataset.image_shape
        return cls(int(len(dataset.x_train)), int(dataset.num_classes), int(c), int(h), int(w))

    @property
    def pixels(self) -> int:
        return self.channels * self.height * self.width


@dataclass
class MemoryEstimate:
    """An estimated peak, by part (bytes), and what it was for."""

    method: str
    device: str
    parts: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return int(sum(self.parts.values()))

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "device": self.device, "peak_bytes": self.total,
                "peak": format_bytes(self.total), "parts": dict(self.parts), "notes": list(self.notes)}

    def describe(self) -> str:
        parts = ", ".join(f"{k} {format_bytes(v)}" for k, v in self.parts.items() if v)
        text = f"estimated peak memory of {self.method} on {self.device}: {format_bytes(self.total)} ({parts})"
        return text + "".join(f"; {n}" for n in self.notes)


def format_bytes(n: float) -> str:
    """'812 MB', '43.1 GB'."""
    n = float(n)
    for unit, size in (("GB", 2**30), ("MB", 2**20), ("kB", 2**10)):
        if n >= size:
            return f"{n / size:.1f} {unit}" if n < 100 * size else f"{n / size:.0f} {unit}"
    return f"{int(n)} B"


# ------------------------------------------------------------------------------------------- the ConvNet

@dataclass(frozen=True)
class ConvNetCounts:
    """Floats per image that one forward pass of a ConvNet saves for backward, and its parameter count."""

    saved: int       # per image: padded input + every block's conv output, norm output and pooled output
    widest: int      # per image: the largest single activation (the first block's convolution output)
    params: int


def _depth(config: Any, shape: DatasetShape) -> int:
    """The ConvNet depth a config runs at: its own, or (0, "by image size") the one the image size gives."""
    from .models import default_depth

    return int(_cfg(config, "depth", 0)) or default_depth(shape.height)


def convnet_counts(shape: DatasetShape, width: int, depth: int, classifier: bool = True) -> ConvNetCounts:
    """Counts for `models.ConvNet` (28×28 inputs are padded to 32×32, pooling stops below 2×2)."""
    size = 32 if (shape.height, shape.width) == (28, 28) else shape.height
    saved = shape.channels * size * size
    widest = width * size * size
    params, in_ch = 0, shape.channels
    for _ in range(depth):
        params += width * in_ch * 9 + width + 2 * width
        saved += 2 * width * size * size
        if size >= 2:
            size //= 2
            saved += width * size * size
        in_ch = width
    if classifier:
        params += width * size * size * shape.num_classes + shape.num_classes
    return ConvNetCounts(saved, widest, params)


# ----------------------------------------------------------------------------------------- per method

def _cfg(config: Any, name: str, default: Any) -> Any:
    return getattr(config, name, default) if config is not None else default


def _images_part(shape: DatasetShape, ipc: int, states: int) -> int:
    """The synthetic images, their gradient and `states` optimiser buffers."""
    return shape.num_classes * ipc * shape.pixels * FLOAT * (2 + states)


def _dm(shape: DatasetShape, ipc: int, config: Any, device: torch.device) -> MemoryEstimate:
    width, depth = int(_cfg(config, "width", 64)), _depth(config, shape)
    dsa = bool(_cfg(config, "dsa", True))
    net = convnet_counts(shape, width, depth, classifier=False)
    c, img = shape.num_classes, shape.pixels
    n_real = min(int(_cfg(config, "batch_real", 64)), shape.num_train // max(1, c))
    per_pass = min(c, int(_cfg(config, "class_batch", 0)) or c)  # 0: all classes in one pass
    syn = per_pass * ipc
    real_pass = c * n_real if device.type != "cpu" else min(c * n_real, 32)  # the CPU slices the real pass
    est = MemoryEstimate("dm", device.type)
    est.parts["dataset"] = shape.num_train * img * FLOAT
    est.parts["images"] = _images_part(shape, ipc, 1)
    est.parts["real batch"] = c * n_real * img * FLOAT * (2 if dsa else 1)
    saved = syn * (net.saved + (AUGMENT_SAVED * img if dsa else 0)) * FLOAT
    # the backward's temporaries fit in what it frees as it goes (measured), so the saved tensors are the peak
    est.parts["activations"] = int(max(saved, 2 * real_pass * net.widest * FLOAT))
    est.parts["network"] = net.params * FLOAT
    if per_pass < c:
        est.notes.append(f"{per_pass} classes per pass")
    return est


def _gm(name: str, shape: DatasetShape, ipc: int, config: Any, device: torch.device) -> MemoryEstimate:
    width, depth = int(_cfg(config, "width", 64)), _depth(config, shape)
    dsa = name == "dsa"
    net = convnet_counts(shape, width, depth)
    img = shape.pixels
    n_real = min(int(_cfg(config, "batch_real", 32)), shape.num_train // max(1, shape.num_classes))
    n_train = min(int(_cfg(config, "batch_train", 256)), shape.num_classes * ipc)
    aug = AUGMENT_SAVED * img if dsa else 0
    real = n_real * (net.saved + aug + net.widest)
    syn = ipc * ((1 + DOUBLE_BACKWARD) * net.saved + aug + net.widest)
    inner = n_train * (net.saved + aug + net.widest)
    est = MemoryEstimate(name, device.type)
    est.parts["dataset"] = shape.num_train * img * FLOAT
    est.parts["images"] = _images_part(shape, ipc, 2)  # gradient, its accumulator, momentum
    est.parts["real batch"] = n_real * img * FLOAT * (2 if dsa else 1)
    est.parts["activations"] = int(max(real, syn, inner) * FLOAT)
    est.parts["network"] = net.params * FLOAT * 6  # weights, real and synthetic gradients (with graph), inner SGD
    return est


def _mtt(shape: DatasetShape, ipc: int, config: Any, device: torch.device,
         batch_syn: int | None = None) -> MemoryEstimate:
    width, depth = int(_cfg(config, "width", 64)), _depth(config, shape)
    dsa = bool(_cfg(config, "dsa", True))
    steps = int(_cfg(config, "syn_steps", 20))
    checkpoint = bool(_cfg(config, "checkpoint", False))
    net = convnet_counts(shape, width, depth)
    img, n = shape.pixels, shape.num_classes * ipc
    b = int(_cfg(config, "batch_syn", 20)) if batch_syn is None else batch_syn
    b = n if b <= 0 else min(b, n)
    per_step = b * ((1 + DOUBLE_BACKWARD) * net.saved + (AUGMENT_SAVED * img if dsa else 0) + img) \
        + 4 * net.params  # θ_i, ∇θ_i with its graph, and the update's terms
    transient = 2 * b * net.widest
    est = MemoryEstimate("mtt", device.type)
    est.parts["dataset"] = shape.num_train * img * FLOAT
    est.parts["images"] = _images_part(shape, ipc, 1)
    if checkpoint:
        est.parts["unrolled student"] = int((steps * 2 * net.params + per_step + transient) * FLOAT)
        est.notes.append(f"checkpointed: {steps} parameter vectors + one step's graph")
    else:
        est.parts["unrolled student"] = int((steps * per_step + transient) * FLOAT)
    est.parts["network"] = net.params * FLOAT * 4  # start, target, the student module, the final difference
    if b < n:
        est.notes.append(f"batch_syn {b} of {n} images")
    return est


def _kip(shape: DatasetShape, ipc: int, config: Any, device: torch.device) -> MemoryEstimate:
    from .methods.kip import KIPConfig, keeps_normalised_copy

    kernel = str(_cfg(config, "kernel", "ntk"))
    depth = (config if isinstance(config, KIPConfig) else KIPConfig()).depth_at(ipc)  # the kernel's hidden layers
    size = 8 if bool(_cfg(config, "float64", False)) else FLOAT
    c, img = shape.num_classes, shape.pixels
    k = c * ipc
    t = c * min(max(1, int(_cfg(config, "target_batch", 1000)) // c), shape.num_train // max(1, c))
    layers = 1 if kernel == "rbf" else depth + 1
    per_layer = KIP_SAVED_PER_LAYER if kernel == "ntk" else KIP_SAVED_PER_LAYER - 1
    est = MemoryEstimate("kip", device.type)
    copy = shape.num_train * img * size
    est.parts["dataset"] = copy if keeps_normalised_copy(shape.num_train, img, size, device) else 0
    est.parts["images"] = k * img * size * 4 + k * c * size * 4  # images, labels: value, gradient, Adam's two
    est.parts["target batch"] = t * img * size * 2
    est.parts["kernels"] = int((k * k + t * k) * size * (layers * per_layer + 2) + 3 * k * k * size)
    return est


ESTIMATORS = ("dm", "dc", "dsa", "mtt", "kip")


def estimate(method: str, dataset_shape: Any, ipc: int, config: Any = None,
             device: str | torch.device = "cpu") -> MemoryEstimate:
    """The estimated peak of one step of `method` (dm, dc, dsa, mtt or kip) by part; other methods (the selectors)
    estimate the dataset's size only. `dataset_shape`: a `DatasetShape`, an ImageSet, or (num_train, num_classes,
    channels, height, width); `config`: the method's config (None: its dataclass defaults)."""
    shape = DatasetShape.of(dataset_shape)
    dev = torch.device(device)
    ipc = int(ipc)
    if method == "dm":
        est = _dm(shape, ipc, config, dev)
    elif method in ("dc", "dsa"):
        est = _gm(method, shape, ipc, config, dev)
    elif method == "mtt":
        est = _mtt(shape, ipc, config, dev)
    elif method == "kip":
        est = _kip(shape, ipc, config, dev)
    else:
        est = MemoryEstimate(method, dev.type, {"dataset": shape.num_train * shape.pixels * FLOAT})
    if dev.type == "cuda":
        est.parts["cuda overhead"] = CUDA_OVERHEAD
    return est


def estimate_peak_bytes(method: str, dataset_shape: Any, ipc: int, config: Any = None,
                        device: str | torch.device = "cpu") -> int:
    """Estimated peak bytes of a step of `method` (see `estimate`)."""
    return estimate(method, dataset_shape, ipc, config, device).total


# ------------------------------------------------------------------------------------ what is available

def available_bytes(device: str | torch.device) -> int | None:
    """Memory a run may use now: CUDA, the device's free memory; CPU, the available RAM (None: unknown)."""
    dev = torch.device(device)
    if dev.type == "cuda":
        free, _ = torch.cuda.mem_get_info(dev)
        return int(free)
    if dev.type == "cpu":
        try:
            with open("/proc/meminfo") as fh:
                for line in fh:
                    if line.startswith("MemAvailable:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
        try:
            return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (ValueError, OSError, AttributeError):
            return None
    return None


def check_fits(est: MemoryEstimate, available: int | None) -> None:
    """Refuse (one clear message) a run whose estimate exceeds `HEADROOM` of the available memory."""
    if available is None or est.total <= HEADROOM * available:
        return
    hint = {"mtt": "lower batch_syn or syn_steps, or set checkpoint=true",
            "dm": "lower batch_real or class_batch", "dc": "lower batch_real or the IPC",
            "dsa": "lower batch_real or the IPC", "kip": "lower target_batch or the IPC"}.get(est.method, "lower the IPC")
    raise InvalidInputError(f"this run needs about {format_bytes(est.total)} but only {format_bytes(available)} "
                            f"is available on {est.device}; {hint} (--param KEY=VALUE), or use a larger device")


def check_method_fits(method: Any) -> MemoryEstimate:
    """Estimate a constructed method's peak on its device and refuse it when it cannot fit (returns the estimate)."""
    est = estimate(method.name, method.dataset, method.ipc, _effective_config(method), method.device)
    check_fits(est, available_bytes(method.device))
    return est


def _effective_config(method: Any) -> Any:
    """The method's config with the settings it chose when it started (mtt's batch, dm's classes per pass)."""
    import dataclasses

    cfg = method.config
    changes = {}
    if getattr(method, "batch_syn", None) is not None and hasattr(cfg, "batch_syn"):
        changes["batch_syn"] = method.batch_syn
    if getattr(method, "class_batch", None) is not None and hasattr(cfg, "class_batch"):
        changes["class_batch"] = method.class_batch
    return dataclasses.replace(cfg, **changes) if changes else cfg


# ------------------------------------------------------------------------- settings chosen by memory

def _budget(device: torch.device) -> int | None:
    """Bytes a run may plan to use on `device`: a share of what is free on CUDA; None (no limit) elsewhere, where
    the one-pass defaults stay (a CPU's RAM is checked by `check_fits` instead)."""
    if device.type != "cuda":
        return None
    free = available_bytes(device)
    return None if free is None else int(HEADROOM * free)


def classes_per_pass(shape: DatasetShape, ipc: int, config: Any, device: torch.device,
                     budget: int | None = None) -> int:
    """DM's classes per forward/backward pass: `class_batch` when set; else all, unless their activations do not
    fit in `budget` (default: the device's free memory on CUDA) — then the most that do (at least one)."""
    c = shape.num_classes
    fixed = int(_cfg(config, "class_batch", 0))
    if fixed > 0:
        return min(fixed, c)
    budget = _budget(device) if budget is None else budget
    if budget is None:
        return c
    for per in range(c, 0, -1):
        probe = dict(class_batch=per)
        if _dm(shape, ipc, _Override(config, probe), device).total + CUDA_OVERHEAD <= budget:
            return per
    return 1


def fitting_batch_syn(dataset: Any, ipc: int, config: Any, device: str | torch.device,
                      budget: int | None = None) -> int:
    """MTT's student batch for `batch_syn=0`: 0 (the whole set) when it fits in `budget` (default: the device's
    free memory on CUDA; no limit elsewhere), else the largest multiple of the class count that does (at least
    one image per class)."""
    shape = DatasetShape.of(dataset)
    dev = torch.device(device)
    budget = _budget(dev) if budget is None else budget
    n = shape.num_classes * int(ipc)
    if budget is None or _mtt(shape, ipc, config, dev, batch_syn=n).total + CUDA_OVERHEAD <= budget:
        return 0
    c = shape.num_classes
    best = c
    for per in range(int(ipc), 0, -1):
        if _mtt(shape, ipc, config, dev, batch_syn=per * c).total + CUDA_OVERHEAD <= budget:
            best = per * c
            break
    return best


class _Override:
    """A config seen with some settings replaced (for trying values without copying the dataclass)."""

    def __init__(self, config: Any, values: dict[str, Any]):
        self._config, self._values = config, values

    def __getattr__(self, name: str) -> Any:
        if name in self._values:
            return self._values[name]
        if self._config is None:
            raise AttributeError(name)
        return getattr(self._config, name)


def plan(method: str, dataset: Any, ipc: int, config: Any, device: str | torch.device) -> MemoryEstimate:
    """The estimate of a run as it would start: with the settings a method picks by memory when it starts (mtt's
    `batch_syn`, dm's classes per pass) — without building the method or touching the device's memory."""
    dev = torch.device(device)
    shape = DatasetShape.of(dataset)
    if method == "mtt" and config is not None and int(getattr(config, "batch_syn", 0)) <= 0:
        config = _Override(config, {"batch_syn": fitting_batch_syn(shape, ipc, config, dev)})
    if method == "dm" and config is not None:
        config = _Override(config, {"class_batch": classes_per_pass(shape, ipc, config, dev)})
    return estimate(method, shape, ipc, config, dev)

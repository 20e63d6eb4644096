"""Expert trajectories for MTT: networks trained on the real data, their parameters stored after every epoch.

A set of experts is identified by the dataset and the training recipe (`ExpertSpec`), and cached on disk under
``<root>/<dataset>/<recipe>/expert_000.pt, expert_001.pt, ...`` where root is ``$DISTILL_EXPERTS_DIR`` or
``~/.cache/distill-lab/experts``. Each file holds ``{"trajectory": (epochs + 1) × P float32, "meta": {...}}``
(the flat parameters at initialisation and after each epoch), is loaded with ``weights_only=True``, and is written
under a temporary name and renamed into place, so an interrupted run never leaves a half-written expert.
`ensure_experts` reuses every cached expert long enough for the request and trains only what is missing; expert i
is always trained from seed i, so a cache is the same whichever process filled it.

Experts are read lazily: an `Expert` is a handle (path, shape, meta) and its trajectory is read from its file,
memory-mapped, when asked for. MTT draws its (start, target) pairs through an `ExpertReader`, which keeps at most
one expert's file mapped at a time, so 100 experts of a wide network (gigabytes in all) never sit in RAM together.
"""
from __future__ import annotations

import os
import re
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable, Optional

import torch

from .atomic import write_atomically
from .augment import SiameseAugment
from .data import ImageSet
from .device import make_generator, resolve_device
from .errors import InvalidInputError, RunWriteError
from .evaluate import NetworkProtocol, train_network
from .models import build_seeded, default_depth

EXPERTS_DIR_ENV = "DISTILL_EXPERTS_DIR"
FILE_PATTERN = re.compile(r"^expert_(\d{3,})\.pt$")


def default_experts_root() -> Path:
    return Path(os.environ.get(EXPERTS_DIR_ENV) or Path.home() / ".cache" / "distill-lab" / "experts")


@dataclass(frozen=True)
class ExpertSpec:
    """How experts are trained: a ConvNet of `width` and `depth` blocks (0: by image size, `models.default_depth`),
    plain SGD (no momentum, no weight decay, as in MTT)."""

    width: int = 64
    depth: int = 0
    lr: float = 0.01
    batch_size: int = 256
    augment: bool = True  # DSA augmentation of the real batches

    def key(self) -> str:
        return (f"convnet-w{self.width}-d{self.depth}_sgd-lr{self.lr:g}-b{self.batch_size}_"
                f"{'dsa' if self.augment else 'noaug'}")

    def resolved(self, image_size: int) -> "ExpertSpec":
        """This recipe with depth 0 ("by image size") settled for square images of `image_size` pixels."""
        return self if self.depth else replace(self, depth=default_depth(image_size))

    def folder(self, dataset_name: str, root: str | os.PathLike | None = None) -> Path:
        safe = re.sub(r"[^A-Za-z0-9._-]+", "-", dataset_name.replace("folder:", "folder-")).strip("-")[-60:]
        return Path(root or default_experts_root()) / safe / self.key()


def read_trajectory(path: str | os.PathLike) -> torch.Tensor:
    """An expert file's (epochs + 1) × P float32 trajectory, memory-mapped (rows are paged in when read).
    Raises on a file that is not a readable expert."""
    data = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    traj = data["trajectory"]
    if not isinstance(traj, torch.Tensor) or traj.dim() != 2 or traj.dtype != torch.float32:
        raise ValueError(f"{path} holds no float32 trajectory")
    return traj


@dataclass
class Expert:
    """A handle on one stored trajectory: `trajectory[e]` are the flat parameters after e epochs (row 0:
    initialisation). The rows stay on disk until `trajectory` is read (memory-mapped, not kept here)."""

    index: int
    path: Path
    meta: dict
    shape: tuple[int, int]  # (epochs + 1, parameters)

    @property
    def epochs(self) -> int:
        return int(self.shape[0]) - 1

    @property
    def num_params(self) -> int:
        return int(self.shape[1])

    @property
    def trajectory(self) -> torch.Tensor:
        """The whole trajectory, read from the file now (memory-mapped)."""
        return read_trajectory(self.path)


class ExpertReader:
    """Reads (start, target) parameter pairs from a list of experts, one expert file at a time.

    At most one trajectory is mapped: asking for another expert drops the previous mapping first. Rows are
    copied out of the mapping, so what a caller keeps does not hold the file open."""

    def __init__(self, experts: list[Expert]):
        self.experts = list(experts)
        self._index: int | None = None
        self._trajectory: torch.Tensor | None = None
        self.loads = 0  # how many times a file was mapped (a test and the curious can watch it)

    def __len__(self) -> int:
        return len(self.experts)

    @property
    def held(self) -> int | None:
        """Position (in `experts`) of the expert mapped now, or None."""
        return self._index

    def rows(self, i: int, *epochs: int) -> list[torch.Tensor]:
        """Copies of expert i's parameters after each of `epochs` (row e: after e epochs)."""
        if self._index != i:
            self.release()
            self._trajectory = self.experts[i].trajectory
            self._index = i
            self.loads += 1
        assert self._trajectory is not None
        return [self._trajectory[e].clone() for e in epochs]

    def release(self) -> None:
        """Drop the mapped trajectory (the next `rows` maps its expert again)."""
        self._index, self._trajectory = None, None


def flat_parameters(model: torch.nn.Module) -> torch.Tensor:
    """All parameters in `named_parameters()` order as one detached float32 CPU vector."""
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()]).float().cpu()


def train_expert(dataset: ImageSet, spec: ExpertSpec, epochs: int, seed: int, device: str | torch.device = "cpu",
                 on_epoch: Optional[Callable[[int], None]] = None,
                 should_stop: Optional[Callable[[], bool]] = None) -> torch.Tensor:
    """Train one ConvNet on the real training split for `epochs` epochs; its (epochs + 1) × P trajectory.

    `should_stop` is checked after every epoch; a stopped expert's trajectory is shorter than asked."""
    dev = resolve_device(device)
    spec = spec.resolved(dataset.image_shape[1])
    net = build_seeded(dataset, "convnet", seed=seed, device=dev, width=spec.width, depth=spec.depth)
    generator = make_generator(seed)
    protocol = NetworkProtocol("expert", "MTT expert", lr=spec.lr, momentum=0.0, weight_decay=0.0,
                               batch_size=spec.batch_size)
    augment = SiameseAugment.for_dataset(dataset.name) if spec.augment else None
    x = dataset.normalize(dataset.x_train).to(dev)
    y = dataset.y_train.to(dev)
    rows = [flat_parameters(net)]
    for epoch in range(epochs):  # one epoch at a time, recording the parameters after each
        train_network(net, x, y, protocol, 1, generator, augment=augment, lr_decay=False)
        rows.append(flat_parameters(net))
        if on_epoch is not None:
            on_epoch(epoch + 1)
        if should_stop is not None and should_stop():
            break
    return torch.stack(rows)


def save_expert(path: Path, trajectory: torch.Tensor, meta: dict) -> Path:
    """Write atomically: a temporary file in the same folder, then a rename. A folder that cannot be written
    raises `RunWriteError` (one clear message)."""
    try:
        return write_atomically(path, lambda tmp: torch.save({"trajectory": trajectory.contiguous(), "meta": meta},
                                                              tmp))
    except OSError as exc:
        raise RunWriteError(f"cannot store expert trajectories in {path.parent}: {exc.strerror or exc}") from None


def load_expert(path: Path) -> Expert | None:
    """A handle on a stored expert, or None when the file is not a readable expert (it is then retrained).

    The file is checked through a memory map, a block of rows at a time (every value finite), and released: the
    trajectory is not kept in memory."""
    match = FILE_PATTERN.match(path.name)
    if not match:
        return None
    try:
        data = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        traj, meta = data["trajectory"], dict(data.get("meta") or {})
        if not isinstance(traj, torch.Tensor) or traj.dim() != 2 or traj.dtype != torch.float32 or traj.shape[0] < 2:
            return None
        block = max(1, (1 << 24) // max(1, traj.shape[1]))  # ~64 MB of rows per check
        if not all(bool(torch.isfinite(traj[r:r + block]).all()) for r in range(0, traj.shape[0], block)):
            return None
        shape = (int(traj.shape[0]), int(traj.shape[1]))
    except Exception:  # truncated or foreign file
        return None
    finally:
        data = traj = None  # drop the mapping now
    return Expert(int(match.group(1)), path, meta, shape)


def load_experts(folder: str | os.PathLike, min_epochs: int = 1, limit: int | None = None) -> list[Expert]:
    """The readable experts in a folder with at least `min_epochs` epochs, by index."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    experts = [e for e in (load_expert(p) for p in sorted(folder.glob("expert_*.pt"))) if e is not None]
    experts = [e for e in experts if e.epochs >= min_epochs]
    return experts[:limit] if limit is not None else experts


@dataclass
class ExpertsReport:
    folder: Path
    experts: list[Expert]
    trained: int
    reused: int
    seconds: float

    spec: ExpertSpec | None = None  # the recipe, with its depth settled

    def to_dict(self) -> dict:
        return {"folder": str(self.folder), "experts": len(self.experts), "trained": self.trained,
                **({"spec": self.spec.key()} if self.spec is not None else {}),
                "reused": self.reused, "seconds": round(self.seconds, 3),
                "epochs": min((e.epochs for e in self.experts), default=0),
                "files": [str(e.path) for e in self.experts]}


def experts_folder(dataset: ImageSet, spec: ExpertSpec | None = None,
                   root: str | os.PathLike | None = None) -> tuple[ExpertSpec, Path]:
    """The recipe with its depth settled for this dataset, and the folder its experts of this training split live in."""
    spec = (spec or ExpertSpec()).resolved(dataset.image_shape[1])
    from .embed import dataset_key  # the training split's fingerprint: experts of another split are not reused

    return spec, spec.folder(dataset_key(dataset), root)


def stored_experts(dataset: ImageSet, num_experts: int, epochs: int, spec: ExpertSpec | None = None,
                   root: str | os.PathLike | None = None) -> int:
    """How many of experts 0..num_experts-1 are stored with ≥ `epochs` epochs: the ones `ensure_experts` would
    reuse rather than train. Reads the folder only; trains nothing."""
    _, folder = experts_folder(dataset, spec, root)
    return sum(1 for i in range(int(num_experts))
               if (_stored_epochs(folder / f"expert_{i:03d}.pt") or 0) >= max(1, int(epochs)))


_EPOCHS_SEEN: dict[tuple[str, int, int], int | None] = {}


def _stored_epochs(path: Path) -> int | None:
    """The epochs of the expert stored at `path` (None: no such file, or not an expert), from its header through
    a memory map and remembered per (path, size, mtime): a page that asks on every rerun reads each file once.
    Unlike `load_expert` it does not check every value (that reads the whole trajectory)."""
    try:
        st = path.stat()
    except OSError:
        return None
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _EPOCHS_SEEN:
        try:
            traj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)["trajectory"]
            ok = isinstance(traj, torch.Tensor) and traj.dim() == 2 and traj.shape[0] >= 2
            _EPOCHS_SEEN[key] = int(traj.shape[0]) - 1 if ok else None
        except Exception:  # truncated or foreign file: ensure_experts retrains it
            _EPOCHS_SEEN[key] = None
        finally:
            traj = None
    return _EPOCHS_SEEN[key]


def ensure_experts(dataset: ImageSet, num_experts: int, epochs: int, spec: ExpertSpec | None = None,
                   root: str | os.PathLike | None = None, device: str | torch.device = "cpu",
                   on_progress: Optional[Callable[[int, int], None]] = None,
                   should_stop: Optional[Callable[[], bool]] = None) -> ExpertsReport:
    """Experts 0..num_experts-1 with ≥ `epochs` epochs each: cached ones are reused, missing ones trained and saved.

    on_progress(expert_index, epochs_done) is called after every trained epoch; should_stop() is checked after
    every epoch, and an expert stopped part-way is not stored.
    """
    if isinstance(num_experts, bool) or int(num_experts) < 1:
        raise InvalidInputError(f"the number of experts must be at least 1, got {num_experts}")
    if isinstance(epochs, bool) or int(epochs) < 1:
        raise InvalidInputError(f"expert epochs must be at least 1, got {epochs}")
    spec, folder = experts_folder(dataset, spec, root)
    start = time.perf_counter()
    cached = {e.index: e for e in load_experts(folder, min_epochs=epochs)}
    experts: list[Expert] = []
    trained = 0
    if any(i not in cached for i in range(int(num_experts))):
        try:  # an unwritable folder is reported before minutes of training, not after
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RunWriteError(f"cannot store expert trajectories in {folder}: {exc.strerror or exc}") from None
    for i in range(int(num_experts)):
        if i in cached:
            experts.append(cached[i])
            continue
        if should_stop is not None and should_stop():
            break
        traj = train_expert(dataset, spec, int(epochs), seed=i, device=device,
                            on_epoch=(lambda e, i=i: on_progress(i, e)) if on_progress else None,
                            should_stop=should_stop)
        if traj.shape[0] < int(epochs) + 1:  # stopped part-way: nothing is stored
            break
        meta = {"dataset": dataset.name, "seed": i, "epochs": int(epochs), **asdict(spec)}
        path = save_expert(folder / f"expert_{i:03d}.pt", traj, meta)
        experts.append(Expert(i, path, meta, (int(traj.shape[0]), int(traj.shape[1]))))
        del traj  # read back from the file when used, like a stored one
        trained += 1
    return ExpertsReport(folder, experts, trained, len(experts) - trained, time.perf_counter() - start, spec)

"""Many processes through torch.distributed: `torchrun --nproc_per_node N -m distill_core distill|bench|...`.

`Dist` is what a command sees of the other processes (ranks): which work items are this rank's (r, r + N, ...),
a way to share results (`sync`, `map_items`), and a gradient sum for a sharded distiller (`all_reduce_sum`). A
one-process run gets `Dist()`, whose calls do the work locally and share nothing, so every command has one code
path.

Failures: every collective point also carries each rank's status. A rank whose work raised still joins the next
collective with its error, so all ranks learn it at once and raise the same `RankFailure` (rank 0 alone prints it).
A rank that vanishes (killed, crashed) breaks the collective under the others: they raise `RankLost`. The
process-group backend is NCCL when the run uses CUDA (each rank pinned to GPU LOCAL_RANK), gloo otherwise; results
and errors always travel over a gloo group, so they never wait on a GPU.
"""
from __future__ import annotations

import os
import signal
import sys
import traceback
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Callable, Optional, TypeVar

from .errors import DistillError, InvalidInputError

if TYPE_CHECKING:  # torch is imported where it is used: the CLI loads this module before any command runs
    import torch

T = TypeVar("T")
TIMEOUT_ENV = "DISTILL_DIST_TIMEOUT"   # seconds a rank waits for the others at a result exchange
DEFAULT_TIMEOUT_S = 6 * 3600           # rank 0 may distil alone for hours while the others wait for its summary
COLLECTIVE_TIMEOUT_S = 1800            # the sharded gradient sums: every rank works between two of them


class RankFailure(DistillError):
    """Some rank's work failed; every rank raises this with the same message and exit code."""

    def __init__(self, message: str, exit_code: int = 2):
        super().__init__(message)
        self.exit_code = exit_code


class RankLost(DistillError):
    """Another rank stopped without a word (killed, crashed): a collective broke under this one."""

    exit_code = 1


class LauncherStopped(DistillError):
    """The launcher (torchrun) sent SIGTERM: it ends every rank once one of them has failed."""

    exit_code = 143


def launched() -> bool:
    """True inside a process started by torchrun (or any launcher that sets RANK and WORLD_SIZE)."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def env_rank() -> int:
    """This process's rank from the launcher's environment (0 when not launched)."""
    try:
        return int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0


def is_main_process() -> bool:
    """Rank 0, or a plain one-process run: the process that prints and writes."""
    return env_rank() == 0


def _error_info(exc: BaseException) -> tuple[str, int]:
    """(message, exit code) of an exception, as the CLI would report it."""
    if isinstance(exc, DistillError):
        return str(exc), int(getattr(exc, "exit_code", 2))
    return f"unexpected {type(exc).__name__}: {exc}", 1


@dataclass
class Dist:
    """One rank's view of the run. The default, `Dist()`, is a single process with no process group."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: Optional[str] = None          # "nccl" | "gloo" | None (one process)
    device: Optional[torch.device] = None  # the device this rank computes on (cuda:LOCAL_RANK under NCCL)
    _control: Any = field(default=None, repr=False)  # gloo group for results and errors

    @property
    def enabled(self) -> bool:
        return self.backend is not None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def items(self, n: int) -> list[int]:
        """This rank's work items of 0..n-1: r, r + N, r + 2N, ..."""
        return list(range(self.rank, int(n), self.world_size))

    # ------------------------------------------------------------------------------ collectives with status
    def exchange(self, value: Any, error: BaseException | None = None, phase: str = "") -> list[Any]:
        """Every rank's `value`, in rank order, on every rank; if any rank brings an error, all raise the same
        `RankFailure` instead (message of the lowest failing rank, naming it when not every rank failed)."""
        if not self.enabled:
            if error is not None:
                raise error
            return [value]
        if error is not None and os.environ.get("DISTILL_DEBUG"):
            traceback.print_exception(type(error), error, error.__traceback__, file=sys.stderr)
        import torch

        status = None if error is None else _error_info(error)
        gathered: list[Any] = [None] * self.world_size
        try:
            torch.distributed.all_gather_object(gathered, (status, None if error else value), group=self._control)
        except RuntimeError as exc:
            raise RankLost(f"another process of this run stopped (killed or crashed) during {phase or 'the run'}; "
                           f"the run was stopped") from exc
        failed = [(r, s) for r, (s, _) in enumerate(gathered) if s is not None]
        if failed:
            rank, (message, code) = failed[0]
            if len(failed) < self.world_size or len({s[0] for _, s in failed}) > 1:
                message = f"rank {rank} of {self.world_size}: {message}"
            raise RankFailure(message, code)
        return [v for _, v in gathered]

    def sync(self, phase: str) -> "_Sync":
        """`with dist.sync("phase") as box: ... box.value = x` -> `box.values`, every rank's x; an exception in
        the block on any rank becomes the same `RankFailure` on all of them (see `exchange`)."""
        return _Sync(self, phase)

    def map_items(self, n: int, fn: Callable[[int], T], phase: str = "") -> list[T]:
        """[fn(0), ..., fn(n - 1)] on every rank, rank r computing items r, r + N, ... (`items`). An item's
        result must not depend on which rank computes it: seed it from its index."""
        mine: dict[int, T] = {}
        error: BaseException | None = None
        try:
            for i in self.items(n):
                mine[i] = fn(i)
        except (RankFailure, RankLost, LauncherStopped):
            raise
        except Exception as exc:
            error = exc
        merged: dict[int, T] = {}
        for part in self.exchange(mine, error, phase):
            merged.update(part)
        return [merged[i] for i in range(int(n))]

    def all_reduce_sum(self, compute: Callable[[], torch.Tensor], numel: int,
                       device: torch.device | str = "cpu") -> torch.Tensor:
        """The sum over ranks of `compute()` (a flat tensor of `numel` floats), on every rank. A rank whose
        `compute` raises adds zeros and a failure flag, so every rank raises the same `RankFailure`."""
        import torch

        error: BaseException | None = None
        try:
            local = compute().reshape(-1)
        except Exception as exc:
            error, local = exc, torch.zeros(numel, device=device)
        if not self.enabled:
            if error is not None:
                raise error
            return local
        flag = torch.tensor([0.0 if error is None else 1.0], device=local.device, dtype=local.dtype)
        packed = torch.cat([local, flag])
        try:
            torch.distributed.all_reduce(packed)
        except RuntimeError as exc:
            raise RankLost("another process of this run stopped (killed or crashed) during a distillation step; "
                           "the run was stopped and no run folder was written") from exc
        if float(packed[-1]) > 0:
            self.exchange(None, error, "a distillation step")  # raises every rank's RankFailure
        return packed[:-1]


@dataclass
class _Sync:
    dist: Dist
    phase: str
    value: Any = None
    values: list[Any] = field(default_factory=list)

    def __enter__(self) -> "_Sync":
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        if isinstance(exc, (RankFailure, RankLost, LauncherStopped)) or (exc is not None
                                                                         and not isinstance(exc, Exception)):
            return False  # already shared with every rank, or an interrupt: let it through
        if not self.dist.enabled:
            self.values = [self.value]
            return False
        self.values = self.dist.exchange(self.value, exc, self.phase)
        return False


# ------------------------------------------------------------------------------------- set up / tear down

def _on_sigterm(signum: int, frame: Any) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # once: the report that follows must not be cut short
    raise LauncherStopped("stopped by the launcher, which ends every process of a run when one of them fails "
                          "or the run is interrupted")


def init_from_env(device: str = "auto") -> Dist:
    """Join the process group torchrun describes in the environment (RANK, WORLD_SIZE, LOCAL_RANK,
    MASTER_ADDR/PORT): NCCL with this rank pinned to GPU LOCAL_RANK when the run uses CUDA, gloo otherwise."""
    import torch
    import torch.distributed as tdist

    from .device import resolve_device

    if not tdist.is_available():
        raise InvalidInputError("this torch build has no torch.distributed; run with one process")
    try:
        rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
    except ValueError:
        raise InvalidInputError("RANK, WORLD_SIZE and LOCAL_RANK must be whole numbers (as torchrun sets them)") \
            from None
    dev = resolve_device(device)
    if dev.type == "cuda":
        count = torch.cuda.device_count()
        if local_world > count:  # the same check on every rank, so every rank stops with the same message
            raise InvalidInputError(f"torchrun started {local_world} processes on this machine but it has {count} "
                                    f"GPU(s); use --nproc_per_node {count} or fewer (or --device cpu)")
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
        backend = "nccl"
    else:
        backend = "gloo"
    try:
        wait_s = float(os.environ.get(TIMEOUT_ENV) or DEFAULT_TIMEOUT_S)
    except ValueError:
        raise InvalidInputError(f"${TIMEOUT_ENV} must be a number of seconds") from None
    try:
        tdist.init_process_group(backend, init_method="env://", rank=rank, world_size=world,
                                 timeout=timedelta(seconds=COLLECTIVE_TIMEOUT_S))
        control = tdist.new_group(backend="gloo", timeout=timedelta(seconds=wait_s))
    except (RuntimeError, ValueError) as exc:
        raise InvalidInputError(f"cannot join the other processes ({backend}): {exc}".splitlines()[0]) from None
    if _in_main_thread():
        signal.signal(signal.SIGTERM, _on_sigterm)
    return Dist(rank, world, local_rank, backend, dev, control)


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def shutdown(dist: Dist | None, clean: bool = True) -> None:
    """Leave the process group. After a lost rank (`clean=False`) the group is left as it is: tearing down a
    broken NCCL communicator can block, and the process is about to exit anyway."""
    if dist is None or not dist.enabled or not clean:
        return
    import torch.distributed as tdist

    if tdist.is_initialized():
        try:
            tdist.destroy_process_group()
        except Exception:  # a broken group at exit: nothing left to save
            pass

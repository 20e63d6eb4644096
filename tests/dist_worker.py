"""The CLI as the distributed tests launch it (`python -m torch.distributed.run ... tests/dist_worker.py CMD ...`).

It registers `tiny`, a network protocol small enough for a test (a narrow ConvNet, a few epochs), and can make one
rank fail on purpose: $DIST_TEST_FAULT = "raise:RANK:CALL" raises, "kill:RANK:CALL" kills that rank (SIGKILL), at
its CALL-th DM loss evaluation.
"""
import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from distill_core import cli  # noqa: E402
from distill_core.evaluate import PROTOCOLS, NetworkProtocol  # noqa: E402
from distill_core.methods import dm  # noqa: E402

TINY = NetworkProtocol("tiny", "ConvNet width 8, 6 epochs: for tests", width=8, epochs=6, epochs_augmented=6,
                       batch_size=64, reps=3)


def install_fault(spec: str, rank: int) -> None:
    """Make rank `rank` raise or die at its n-th DM loss, per `spec` ("raise:1:3", "kill:1:3")."""
    what, at_rank, at_call = spec.split(":")
    if rank != int(at_rank):
        return
    original, calls = dm.dm_loss, [0]

    def faulty(*args, **kwargs):
        calls[0] += 1
        if calls[0] == int(at_call):
            if what == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            raise RuntimeError("injected failure")
        return original(*args, **kwargs)

    dm.dm_loss = faulty


if __name__ == "__main__":
    PROTOCOLS["tiny"] = TINY
    if os.environ.get("DIST_TEST_FAULT"):
        install_fault(os.environ["DIST_TEST_FAULT"], int(os.environ.get("RANK", "0")))
    sys.exit(cli.main(sys.argv[1:]))

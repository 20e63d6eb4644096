"""Many processes (torchrun, gloo on the CPU): sharded work gives one process's results; a failing rank stops all.

The launched tests run the CLI through `tests/dist_worker.py` (the `tiny` evaluation protocol, optional injected
faults) under `python -m torch.distributed.run --standalone`, two processes on the CPU.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

from distill_core import cli
from distill_core.bench import run_bench, run_bench_sharded
from distill_core.distributed import Dist, RankFailure
from distill_core.evaluate import PROTOCOLS, evaluate_summary
from distill_core.methods import create_method
from dist_worker import TINY

ROOT = Path(__file__).resolve().parent.parent
WORKER = Path(__file__).with_name("dist_worker.py")
TIMING = ("seconds", "distill_seconds", "eval_seconds")


@pytest.fixture
def tiny(monkeypatch):
    monkeypatch.setitem(PROTOCOLS, "tiny", TINY)


def launch(args: list[str], nproc: int, cwd: Path, fault: str | None = None) -> subprocess.CompletedProcess:
    """The CLI in `nproc` processes (1: a plain process, no torchrun)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "DIST_TEST_FAULT")}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    if fault:
        env["DIST_TEST_FAULT"] = fault
    head = [sys.executable, str(WORKER)] if nproc == 1 else \
        [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", str(WORKER)]
    return subprocess.run(head + args, capture_output=True, text=True, timeout=600, cwd=cwd, env=env)


def last_json(proc: subprocess.CompletedProcess) -> dict:
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def error_lines(proc: subprocess.CompletedProcess) -> list[str]:
    return [line for line in proc.stderr.splitlines() if line.startswith("error:")]


def without_timing(payload: dict) -> dict:
    out = {k: v for k, v in payload.items() if k not in TIMING + ("world_size",)}
    out["rows"] = [{k: v for k, v in row.items() if k not in TIMING} for row in payload["rows"]]
    return out


# ------------------------------------------------------------------------------------------ in one process

def test_items_are_dealt_round_robin():
    assert Dist(rank=1, world_size=3).items(8) == [1, 4, 7]
    assert Dist(rank=0, world_size=3).items(2) == [0]
    assert Dist(rank=2, world_size=3).items(2) == []
    assert Dist().items(3) == [0, 1, 2]


def test_one_process_dist_does_the_work_and_raises_as_is():
    d = Dist()
    assert not d.enabled and d.is_main
    assert d.map_items(4, lambda i: i * i) == [0, 1, 4, 9]
    with pytest.raises(ZeroDivisionError):
        d.map_items(2, lambda i: 1 // 0)
    with d.sync("a phase") as box:
        box.value = 7
    assert box.values == [7]


def test_one_network_of_an_evaluation_equals_that_network_in_the_whole(digits, tiny):
    method = create_method("random", digits, 1, seed=3)
    method.step()
    summary = method.summary()
    whole = evaluate_summary(summary, digits, "tiny", reps=3, seed=5, device="cpu")
    second = evaluate_summary(summary, digits, "tiny", reps=3, seed=5, device="cpu", rep_indices=[2])
    assert second.accs == [whole.accs[2]] and second.reps == 1
    assert len(set(whole.accs)) > 1  # the networks differ, so the match says something


def test_sharded_bench_assembles_the_rows_of_one_process(digits, tiny):
    """The work-item path (here on one rank) gives run_bench's rows: seeds, spreads, and a cell's error."""
    kw = dict(steps=None, protocol="tiny", reps=2, device="cpu", profile="fast", split="test")
    one = run_bench(digits, ["random", "mean"], [1, 2], seed=4, seeds=2, **kw)
    items = run_bench_sharded(Dist(), digits, ["random", "mean"], [1, 2], [4, 5], **kw)
    strip = [{k: v for k, v in r.to_dict().items() if k not in TIMING} for r in one]
    assert strip == [{k: v for k, v in r.to_dict().items() if k not in TIMING} for r in items]
    by_cell = {(r.method, r.ipc): r for r in one}
    assert by_cell[("mean", 2)].error and by_cell[("mean", 1)].acc_mean is not None
    assert by_cell[("random", 1)].spread == "seeds" and len(by_cell[("random", 1)].seed_runs) == 2


def test_sharded_bench_relabels_as_one_process(digits, tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("DISTILL_TEACHERS_DIR", str(tmp_path / "teachers"))
    kw = dict(steps=None, protocol="tiny", reps=2, device="cpu", profile="fast", split="test", relabel="teacher")
    one = run_bench(digits, ["random", "random-soft"], [1], seed=0, seeds=1, **kw)
    items = run_bench_sharded(Dist(), digits, ["random", "random-soft"], [1], [0], **kw)
    strip = [{k: v for k, v in r.to_dict().items() if k not in TIMING} for r in one]
    assert strip == [{k: v for k, v in r.to_dict().items() if k not in TIMING} for r in items]
    assert [r.relabel for r in items] == ["none", "teacher"]


class ThreadRanks(Dist):
    """Two ranks as two threads of this process: `all_reduce_sum` adds their tensors (a test stand-in for gloo)."""

    def __init__(self, rank: int, barrier: threading.Barrier, slots: list):
        super().__init__(rank=rank, world_size=2, backend="threads")
        self.barrier, self.slots = barrier, slots

    def all_reduce_sum(self, compute, numel, device="cpu"):
        self.slots[self.rank] = compute().reshape(-1)
        self.barrier.wait()
        total = self.slots[0] + self.slots[1]
        self.barrier.wait()
        return total


@pytest.mark.parametrize("name, steps", [("dm", 3), ("dsa", 2)])
def test_steps_over_two_ranks_equal_one_rank(digits, name, steps):
    """Each rank matches half the classes; the summed gradient is the one-process gradient (dsa: its inner-loop
    training between the updates runs on both ranks alike)."""
    single = create_method(name, digits, 2, seed=1, device="cpu")
    for _ in range(steps):
        single.step()
    barrier, slots, ranks = threading.Barrier(2), [None, None], []
    for r in range(2):
        method = create_method(name, digits, 2, seed=1, device="cpu")
        method.shard = ThreadRanks(r, barrier, slots)
        ranks.append(method)
    threads = [threading.Thread(target=lambda m=m: [m.step() for _ in range(steps)]) for m in ranks]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    start = create_method(name, digits, 2, seed=1, device="cpu").images.detach()
    assert (single.images.detach() - start).abs().max() > 1e-3  # the steps moved the images
    for method in ranks:
        assert method.steps_done == steps
        torch.testing.assert_close(method.images.detach(), single.images.detach(), atol=1e-5, rtol=0)


def test_parser_errors_are_said_by_rank_zero_alone(monkeypatch, capsys):
    monkeypatch.setenv("RANK", "1")
    with pytest.raises(SystemExit) as exc:
        cli.main(["distill", "--ipc", "x"])
    assert exc.value.code == 2 and capsys.readouterr().err == ""


@pytest.mark.parametrize("statuses, message", [([None, ("boom", 1)], "rank 1 of 2: boom"),
                                               ([("same", 3), ("same", 3)], "same")])
def test_rank_failure_names_the_rank_unless_every_rank_failed(monkeypatch, statuses, message):
    """The exchange's verdict on the statuses gloo would gather: one message and exit code for every rank."""
    monkeypatch.setattr(torch.distributed, "all_gather_object",
                        lambda out, obj, group=None: out.__setitem__(slice(None), [(s, None) for s in statuses]))
    with pytest.raises(RankFailure) as exc:
        Dist(rank=0, world_size=2, backend="gloo").exchange(None, None, "a test")
    assert str(exc.value) == message and exc.value.exit_code == statuses[-1][1]


# ----------------------------------------------------------------------------------- launched: two processes

def in_process(args: list[str], capsys) -> dict:
    """The CLI in this process (one thread, as each torchrun worker has): the one-process reference."""
    capsys.readouterr()
    assert cli.main(args) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


@pytest.mark.slow
def test_two_process_bench_equals_one_process(tmp_path, tiny, capsys):
    args = ["bench", "--dataset", "digits", "--methods", "random", "mean", "--ipc", "1", "2", "--seeds", "2",
            "--eval", "tiny", "--device", "cpu", "--json"]
    two = launch(args, 2, tmp_path)
    p1, p2 = in_process(args, capsys), last_json(two)
    assert (p1["world_size"], p2["world_size"]) == (1, 2)
    assert without_timing(p1) == without_timing(p2)
    assert len([line for line in two.stdout.splitlines() if line.startswith("{")]) == 1  # rank 0 alone printed
    cells = {(r["method"], r["ipc"]): r for r in p2["rows"]}
    assert cells[("mean", 2)]["error"] and len(cells[("random", 2)]["accs"]) == 6


@pytest.mark.slow
def test_two_rank_dm_distill_equals_one_rank(tmp_path, tiny, capsys):
    args = ["distill", "--dataset", "digits", "--method", "dm", "--ipc", "2", "--steps", "4", "--snapshots", "0",
            "--eval", "tiny", "--eval-reps", "3", "--device", "cpu", "--json", "--out"]
    two = last_json(launch(args + [str(tmp_path / "two")], 2, tmp_path))
    one = in_process(args + [str(tmp_path / "one")], capsys)
    a = torch.load(tmp_path / "one" / "summary.pt", weights_only=True)["images"]
    b = torch.load(tmp_path / "two" / "summary.pt", weights_only=True)["images"]
    torch.testing.assert_close(b, a, atol=1e-5, rtol=0)
    assert (one["world_size"], two["world_size"], two["steps"]) == (1, 2, 4)
    assert two["final_metrics"]["loss"] == pytest.approx(one["final_metrics"]["loss"], rel=1e-5)
    assert two["eval"]["reps"] == 3 and two["eval"]["accs"] == pytest.approx(one["eval"]["accs"], abs=0.01)
    saved = json.loads((tmp_path / "two" / "config.json").read_text())
    assert saved["world_size"] == 2 and saved["evaluations"][0]["reps"] == 3
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    # `evaluate` over two processes: the same networks' accuracies as in one, recorded once
    args = ["evaluate", str(tmp_path / "two"), "--protocol", "tiny", "--reps", "3", "--seed", "7", "--device", "cpu",
            "--json"]
    spread = last_json(launch(args, 2, tmp_path))["eval"]
    alone = in_process(args, capsys)["eval"]
    assert spread["accs"] == alone["accs"] and spread["reps"] == 3
    assert len(json.loads((tmp_path / "two" / "config.json").read_text())["evaluations"]) == 3


@pytest.mark.slow
@pytest.mark.parametrize("fault, says", [("raise:1:3", "rank 1 of 2: unexpected RuntimeError: injected failure"),
                                         ("kill:1:3", "")], ids=["raise", "kill"])
def test_a_failing_rank_stops_every_rank_with_one_line(tmp_path, fault, says):
    out = tmp_path / "runs" / "dm-run"
    proc = launch(["distill", "--dataset", "digits", "--method", "dm", "--ipc", "1", "--steps", "40",
                   "--device", "cpu", "--out", str(out)], 2, tmp_path, fault=fault)
    assert proc.returncode != 0
    lines = error_lines(proc)
    assert len(lines) == 1, proc.stderr[-3000:]
    assert says in lines[0]
    if fault.startswith("kill"):
        assert "stopped" in lines[0]
    assert not out.exists()
    assert not (out.parent.exists() and any(out.parent.iterdir()))  # no half-written folder either
    assert "distill_core" not in "".join(line for line in proc.stderr.splitlines() if line.strip().startswith("File"))

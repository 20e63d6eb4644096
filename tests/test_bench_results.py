"""Bench results: the JSON files of `bench --out`, and a bench run in a background thread."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from distill_core.bench_results import (BenchJob, accuracy_label, bench_dir, bench_payload, curves, list_bench,
                                        load_bench, save_bench, validate_payload)
from distill_core.bench import parse_settings
from distill_core.errors import DistillError, RunFormatError


def test_save_list_load_and_curves(tmp_path):
    payload = bench_payload("digits", "quick", [1, 5], "cpu", 1.234, [
        {"method": "random", "ipc": 5, "acc_mean": 0.8, "acc_std": 0.01},
        {"method": "random", "ipc": 1, "acc_mean": 0.5, "acc_std": 0.02},
        {"method": "mean", "ipc": 5, "acc_mean": None, "error": "too many"}])
    path = save_bench(payload, runs_dir=tmp_path)
    assert path.parent == bench_dir(tmp_path) and not list(path.parent.glob(".*"))
    assert [r["name"] for r in list_bench(tmp_path)] == [path.name]
    loaded = load_bench(path)
    assert loaded["seconds"] == 1.23 and curves(loaded) == {"random": [(1, 0.5, 0.02), (5, 0.8, 0.01)]}


@pytest.mark.parametrize("bad", [[], {"rows": "x"}, {"rows": [{"method": 1, "ipc": 1}]},
                                 {"rows": [{"method": "m", "ipc": True}]},
                                 {"rows": [{"method": "m", "ipc": 1, "acc_mean": 7}]}])
def test_bad_payloads_are_refused(bad):
    with pytest.raises(RunFormatError):
        validate_payload(bad)


def test_load_bench_errors(tmp_path):
    with pytest.raises(RunFormatError, match="does not exist"):
        load_bench(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text("[1, 2")
    with pytest.raises(RunFormatError, match="not valid JSON"):
        load_bench(tmp_path / "bad.json")


@pytest.mark.slow
def test_cli_bench_output_opens(tmp_path):
    out = tmp_path / "bench" / "cli.json"
    proc = subprocess.run([sys.executable, "-m", "distill_core", "bench", "--dataset", "digits", "--ipc", "1",
                           "--methods", "random", "--eval-reps", "1", "--out", str(out), "--json"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    data = load_bench(out)
    assert data["rows"][0]["method"] == "random" and 0 <= data["rows"][0]["acc_mean"] <= 1
    assert curves(data)["random"][0][0] == 1


def test_bench_job_runs_and_stops(digits):
    with pytest.raises(DistillError, match="at least one method"):
        BenchJob(digits, [], [1])
    with pytest.raises(DistillError, match="IPC"):
        BenchJob(digits, ["random"], [0])
    job = BenchJob(digits, ["random"], [1], reps=1).start()
    assert job.join(240)
    state = job.state()
    assert state.status == "finished" and len(state.rows) == 1 and state.payload["rows"][0]["ipc"] == 1
    json.dumps(state.payload)
    job = BenchJob(digits, ["random"], [1, 2, 5], reps=1).start()
    job.stop(wait=True, timeout=240)
    assert job.state().status in ("stopped", "finished") and len(job.state().rows) < 3
    with pytest.raises(DistillError, match="unknown method"):  # refused before it takes a job slot
        BenchJob(digits, ["no-such-method"], [1])
    with pytest.raises(DistillError, match="relabel must be one of"):
        BenchJob(digits, ["random"], [1], relabel="student")


def test_bench_job_relabels_the_teacher_rows_and_the_table_says_so(digits, tmp_path, monkeypatch):
    from ui.bench_view import table_rows

    monkeypatch.setenv("DISTILL_TEACHERS_DIR", str(tmp_path / "teachers"))
    job = BenchJob(digits, ["random", "random-soft"], [1], reps=1, relabel="teacher").start()
    assert job.join(240)
    state = job.state()
    assert state.status == "finished", state.error
    assert [r["relabel"] for r in state.rows] == ["none", "teacher"]
    assert [r["note"] for r in table_rows(state.payload)] == ["", "teacher relabelling"]


def test_curves_keep_architectures_apart_and_the_label_names_the_split():
    from ui.bench_view import cross_arch_rows, settings_line, table_rows

    rows = [{"method": "dm", "ipc": i, "model": m, "split": "val", "acc_mean": a, "acc_std": 0.01, "seeds": [0, 1]}
            for i, m, a in [(1, "convnet", 0.7), (10, "convnet", 0.8), (1, "mlp", 0.6), (10, "mlp", 0.65)]]
    payload = bench_payload("digits", "quick", [1, 10], "cpu", 1.0, rows, split="val", seeds=2,
                            models=["convnet", "mlp"], profile="fast")
    assert curves(payload) == {"dm · convnet": [(1, 0.7, 0.01), (10, 0.8, 0.01)],
                               "dm · mlp": [(1, 0.6, 0.01), (10, 0.65, 0.01)]}
    assert accuracy_label(payload) == "validation accuracy"
    table = table_rows(payload)
    assert [r["model"] for r in table] == ["convnet", "convnet", "mlp", "mlp"] and table[0]["seeds"] == 2
    assert cross_arch_rows(payload) == [{"method": "dm", "IPC": 1, "convnet": "70.0 ± 1.0", "mlp": "60.0 ± 1.0"},
                                        {"method": "dm", "IPC": 10, "convnet": "80.0 ± 1.0", "mlp": "65.0 ± 1.0"}]
    line = settings_line(payload)
    assert "validation split" in line and "2 distillation seeds (± over seeds)" in line and "convnet, mlp" in line
    # one architecture: lines are methods, no model column; rows without a split are test figures (older files)
    single = bench_payload("digits", "quick", [1], "cpu", 1.0, [{"method": "dm", "ipc": 1, "acc_mean": 0.7}])
    assert list(curves(single)) == ["dm"] and "model" not in table_rows(single)[0]
    assert accuracy_label(single) == "test accuracy" and settings_line(single).startswith("test split")
    mixed = bench_payload("digits", "quick", [1], "cpu", 1.0, [{"method": "a", "ipc": 1, "split": "val"},
                                                                 {"method": "b", "ipc": 1, "split": "test"}])
    assert accuracy_label(mixed) == "accuracy"


def test_bench_job_takes_seeds_split_profile_and_models(digits, tmp_path):
    for bad, match in [({"seeds": 0}, "seeds"), ({"split": "train"}, "split"), ({"profile": "slow"}, "profile"),
                       ({"models": []}, "at least one evaluating model"), ({"models": ["vit"]}, "unknown model"),
                       ({"overrides": {"no_such": "1"}}, "has no setting 'no_such'")]:
        with pytest.raises(DistillError, match=match):
            BenchJob(digits, ["random"], [1], **bad)
    job = BenchJob(digits, ["herding"], [1], reps=1, seeds=2, split="val", models=["convnet", "mlp"],
                   overrides=parse_settings("space=pixels")).start()
    assert job.join(240)
    state = job.state()
    assert state.status == "finished", state.error
    assert state.total == 2 and [r["model"] for r in state.rows] == ["convnet", "mlp"]
    assert all(r["split"] == "val" and r["seeds"] == [0, 1] and r["spread"] == "seeds" for r in state.rows)
    assert {k: state.payload[k] for k in ("split", "seeds", "models", "profile")} == \
        {"split": "val", "seeds": 2, "models": ["convnet", "mlp"], "profile": "fast"}
    assert state.payload["overrides"] == {"space": "pixels"} and all(r["overrides"] == {"space": "pixels"}
                                                                     for r in state.rows)
    assert load_bench(save_bench(state.payload, runs_dir=tmp_path))["split"] == "val"


def test_parse_settings_reads_pairs_and_refuses_bad_ones():
    assert parse_settings("") == {} and parse_settings(" init = herding ,\nlr=0.3,") == {"init": "herding", "lr": "0.3"}
    for bad, match in [("init", "KEY=VALUE"), ("=3", "KEY=VALUE"), ("lr=", "KEY=VALUE"), ("lr=1, lr=2", "twice")]:
        with pytest.raises(DistillError, match=match):
            parse_settings(bad)

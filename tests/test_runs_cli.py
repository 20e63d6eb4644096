"""Run folders (round trip, atomic writes, format checks) and the CLI contract."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from distill_core.cli import main
from distill_core.errors import InvalidInputError, RunFormatError
from distill_core.methods import create_method
from distill_core.pipeline import DistillRun
from distill_core.runs import FORMAT_VERSION, add_evaluation, delete_run, list_runs, load_run, save_run

ROOT = Path(__file__).resolve().parents[1]


def _saved_run(digits, path: Path) -> Path:
    run = DistillRun(create_method("random", digits, 3, seed=4), steps=1)
    summary = run.run()
    return save_run(path, summary, {"steps": 1, "seed": 4}, run.metrics, run.snapshots.to_tensors())


def test_run_folder_round_trip(digits, tmp_path):
    out = _saved_run(digits, tmp_path / "runs" / "one")
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "grid.png", "metrics.jsonl", "snapshots.pt",
                                                     "summary.pt"]
    record = load_run(out)
    cfg = record.config
    assert cfg["format_version"] == FORMAT_VERSION and cfg["seed"] == 4 and cfg["method"] == "random"
    assert {"torch", "python", "distill_core"} <= set(cfg["versions"])
    original = create_method("random", digits, 3, seed=4).summary()
    assert torch.equal(record.summary.images, original.images)
    assert torch.equal(record.summary.labels, original.labels)
    assert record.summary.meta["indices"] == original.meta["indices"]
    assert record.snapshots is not None and record.snapshots["steps"].tolist() == [1]
    add_evaluation(out, {"protocol": "quick", "acc_mean": 0.5})
    rows = list_runs(tmp_path / "runs")
    assert rows[0]["name"] == "one" and rows[0]["acc"] == 0.5 and rows[0]["ipc"] == 3
    with pytest.raises(InvalidInputError, match="already exists"):
        _saved_run(digits, out)
    delete_run(out, root=tmp_path / "runs")
    assert list_runs(tmp_path / "runs") == []


def test_no_partial_folder_is_left_when_a_save_fails(digits, tmp_path, monkeypatch):
    import distill_core.runs as runs

    def explode(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(runs, "render_grid", explode)
    with pytest.raises(OSError):
        _saved_run(digits, tmp_path / "r")
    assert list(tmp_path.iterdir()) == []


def test_newer_format_and_garbage_are_refused(digits, tmp_path):
    out = _saved_run(digits, tmp_path / "run")
    cfg = json.loads((out / "config.json").read_text())
    cfg["format_version"] = FORMAT_VERSION + 1
    (out / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(RunFormatError, match="newer"):
        load_run(out)
    cfg["format_version"] = FORMAT_VERSION
    (out / "config.json").write_text(json.dumps(cfg))
    (out / "summary.pt").write_bytes((out / "summary.pt").read_bytes()[:50])
    with pytest.raises(RunFormatError, match="not a readable"):
        load_run(out)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "distill_core", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=300)


def test_cli_distill_then_evaluate_round_trip(tmp_path):
    out = tmp_path / "run"
    done = _cli("distill", "--dataset", "digits", "--method", "random", "--ipc", "2", "--eval", "quick",
                "--eval-reps", "1", "--out", str(out), "--json", "--device", "cpu")
    assert done.returncode == 0, done.stderr
    payload = json.loads(done.stdout.strip().splitlines()[-1])
    assert {"method", "dataset", "ipc", "steps", "seconds", "device", "out", "eval"} <= set(payload)
    assert payload["eval"]["protocol"] == "quick" and 0.0 <= payload["eval"]["acc_mean"] <= 1.0
    assert payload["out"] == str(out) and (out / "summary.pt").is_file()
    done = _cli("evaluate", str(out), "--reps", "1", "--model", "mlp", "--json", "--device", "cpu")
    assert done.returncode == 0, done.stderr
    again = json.loads(done.stdout.strip().splitlines()[-1])
    assert again["eval"]["model"] == "mlp" and again["ipc"] == 2
    assert len(load_run(out).evaluations) == 2


def test_cli_lists_offline_datasets_and_methods():
    done = _cli("datasets", "--json")
    rows = {r["name"]: r for r in json.loads(done.stdout.strip().splitlines()[-1])["datasets"]}
    assert rows["digits"]["available"] and rows["mnist-5k"]["available"]
    assert main(["methods", "--json"]) == 0


@pytest.mark.parametrize("args,expected", [
    (["distill", "--dataset", "nope", "--method", "random", "--ipc", "1"], "unknown dataset 'nope'"),
    (["distill", "--dataset", "digits", "--method", "nope", "--ipc", "1"], "unknown method 'nope'"),
    (["distill", "--dataset", "digits", "--method", "random", "--ipc", "0"], "IPC"),
    (["distill", "--dataset", "digits", "--method", "random", "--ipc", "1", "--steps", "0"], "steps"),
    (["distill", "--dataset", "digits", "--method", "random", "--ipc", "1", "--steps", "-5"], "steps"),
    (["distill", "--dataset", "digits", "--method", "random", "--ipc", "1", "--lr", "nan"], "--lr"),
    (["distill", "--dataset", "folder:/no/such/folder", "--method", "random", "--ipc", "1"], "does not exist"),
    (["distill", "--dataset", "digits", "--method", "random", "--ipc", "x"], "invalid int"),
    (["evaluate", "/no/such/run"], "not a run folder"),
    (["bench", "--dataset", "digits", "--ipc", "1", "--methods", "nope"], "unknown method"),
])
def test_cli_errors_are_one_clear_line(args, expected, capsys):
    with pytest.raises(SystemExit) if "invalid int" in expected else _NoRaise():
        code = main(args)
        assert code != 0
    err = capsys.readouterr().err.strip()
    assert expected in err and err.startswith("error:") and "Traceback" not in err
    assert len(err.splitlines()) == 1


def test_cli_unreadable_image_folder(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.png").write_bytes(b"not a png")
    done = _cli("distill", "--dataset", f"folder:{tmp_path}", "--method", "random", "--ipc", "1")
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert done.stderr.strip().startswith("error:") and "no readable images" in done.stderr


def test_cli_bench_table_and_json(tmp_path):
    out = tmp_path / "bench.json"
    done = _cli("bench", "--dataset", "digits", "--ipc", "1", "2", "--methods", "random", "--eval-reps", "1",
                "--device", "cpu", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "| random |" in done.stdout and "IPC 2" in done.stdout
    rows = json.loads(out.read_text())["rows"]
    assert [(r["method"], r["ipc"]) for r in rows] == [("random", 1), ("random", 2)]
    assert all(r["acc_mean"] is not None and r["error"] is None for r in rows)


class _NoRaise:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_cli_distill_records_the_profile(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["distill", "--dataset", "digits", "--method", "dm", "--ipc", "1", "--steps", "1", "--profile",
                 "paper", "--param", "width=8", "--out", str(out), "--json", "--device", "cpu"]) == 0
    payload = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    cfg = load_run(out).config
    assert payload["profile"] == cfg["profile"] == "paper" and cfg["summary_meta"]["profile"] == "paper"
    assert cfg["method_config"]["batch_real"] == 256 and cfg["method_config"]["width"] == 8  # paper + override
    with pytest.raises(SystemExit):
        main(["distill", "--dataset", "digits", "--method", "dm", "--ipc", "1", "--profile", "gpu"])
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "invalid choice: 'gpu'" in err and len(err.splitlines()) == 1


def test_cli_bench_seeds_mean_and_std_over_seeds(digits, tmp_path, capsys):
    """Two seeds per cell: each row keeps both seeds' accuracies, and the table shows their mean ± std."""
    out = tmp_path / "bench.json"
    assert main(["bench", "--dataset", "digits", "--ipc", "1", "--methods", "random", "mean", "--seeds", "2",
                 "--eval", "krr", "--device", "cpu", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    payload = json.loads(out.read_text())
    assert payload["seeds"] == 2 and payload["profile"] == "fast" and payload["split"] == "test"
    rows = {r["method"]: r for r in payload["rows"]}
    for name, r in rows.items():
        assert r["seeds"] == [0, 1] and len(r["seed_accs"]) == 2 and r["spread"] == "seeds"
        mean, std = float(np.mean(r["seed_accs"])), float(np.std(r["seed_accs"]))
        assert r["acc_mean"] == pytest.approx(mean) and r["acc_std"] == pytest.approx(std)
        assert f"| {name} | {100 * mean:.1f} ± {100 * std:.1f} (" in text
    # seed 1 picks other random images than seed 0 (so another accuracy); the class mean has nothing to draw
    assert rows["random"]["seed_accs"][0] != rows["random"]["seed_accs"][1]
    assert rows["mean"]["seed_accs"][0] == rows["mean"]["seed_accs"][1] and rows["mean"]["acc_std"] == 0.0
    picks = [create_method("random", digits, 1, seed=s).summary().meta["indices"] for s in (0, 1)]
    assert picks[0] != picks[1]



def test_bench_seed_s_distils_with_s_and_is_judged_by_its_own_networks(digits, monkeypatch):
    import distill_core.bench as bench
    from distill_core.evaluate import EvalResult

    calls = []

    def fake_evaluate(summary, dataset, protocol, **kwargs):
        calls.append((summary.meta["seed"], kwargs["seed"], kwargs.get("split", "default")))
        acc = 0.5 + 0.01 * summary.meta["seed"]
        return EvalResult(protocol, "convnet", 2, acc, 0.0, [acc, acc])

    monkeypatch.setattr(bench, "evaluate_summary", fake_evaluate)
    row = bench.run_cell(digits, "random", 2, seeds=[3, 4], device="cpu", split="val")
    assert calls == [(3, 3000, "val"), (4, 4000, "val")]
    assert row.seed_accs == [0.53, 0.54] and row.acc_mean == pytest.approx(0.535)
    assert row.acc_std == pytest.approx(0.005) and row.seed_runs == [[0.53, 0.53], [0.54, 0.54]]
    calls.clear()
    one = bench.run_cell(digits, "random", 2, seeds=[0], device="cpu")  # the test split by default, said explicitly
    assert calls == [(0, 0, "test")] and one.spread == "reps" and one.accs == [0.5, 0.5]
    with pytest.raises(InvalidInputError, match="split must be 'test' or 'val'"):
        bench.run_bench(digits, ["random"], [1], split="train")
    with pytest.raises(InvalidInputError, match="seeds must be a positive"):
        bench.run_bench(digits, ["random"], [1], seeds=0)


def test_cli_evaluate_passes_the_split(digits, tmp_path, monkeypatch, capsys):
    """`--split val` reaches evaluate_summary and the record; without it the test split is asked for."""
    import distill_core.evaluate as evaluate

    out = _saved_run(digits, tmp_path / "run")
    seen = []

    def fake(summary, dataset, protocol, **kwargs):
        seen.append(kwargs.get("split", "default"))
        return evaluate.EvalResult(protocol, kwargs["model"], 1, 0.5, 0.0, [0.5])

    monkeypatch.setattr(evaluate, "evaluate_summary", fake)
    assert main(["evaluate", str(out), "--split", "val", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert seen == ["val"] and payload["eval"]["split"] == "val"
    assert main(["evaluate", str(out), "--json"]) == 0
    assert seen == ["val", "test"] and load_run(out).evaluations[-1]["split"] == "test"


def test_cli_zca_run_is_whitened_clipped_in_pixels_and_evaluated_whitened(tmp_path, capsys):
    """`distill --zca` distils in the whitened space, keeps KIP's images in the pixel range, records the choice;
    `evaluate` reloads the run whitened (same krr accuracy; read plainly the same images score otherwise)."""
    out = tmp_path / "zca"
    args = ["distill", "--dataset", "digits", "--method", "kip", "--ipc", "1", "--steps", "15", "--eval", "krr",
            "--json"]
    assert main(args + ["--zca", "--out", str(out)]) == 0
    whitened = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert main(args + ["--out", str(tmp_path / "plain")]) == 0
    capsys.readouterr()
    record = load_run(out)
    assert record.config["zca"] is True and load_run(tmp_path / "plain").config["zca"] is False
    images = record.summary.images
    assert images.min() >= -1e-5 and images.max() <= 1 + 1e-5  # clipped in pixel space, not per channel
    assert not torch.allclose(images, load_run(tmp_path / "plain").summary.images)
    assert main(["evaluate", str(out), "--protocol", "krr", "--json"]) == 0
    again = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert again["eval"]["acc_mean"] == pytest.approx(whitened["eval"]["acc_mean"])

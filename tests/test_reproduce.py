"""`reproduce`: our figures beside the published ones, with their sources and the difference."""
from __future__ import annotations

import json

import pytest

from distill_core.bench import BenchRow
from distill_core.cli import main, reproduce_rows, reproduce_table
from distill_core.published import PUBLISHED, published, whole_dataset


def test_published_values_are_data_with_sources():
    fm = {(p.method, p.ipc): p for p in PUBLISHED if p.dataset == "fashion-mnist"}
    assert [fm["random", i].acc for i in (1, 10, 50)] == [0.514, 0.738, 0.825]
    assert [fm["dsa", i].acc for i in (1, 10, 50)] == [0.706, 0.846, 0.887]
    assert fm["whole", None].acc == 0.935 and "Table 1" in fm["whole", None].source
    assert "README" in fm["dc", 10].source and "DSA" in fm["dsa", 1].source
    assert all(0 < p.acc < 1 and p.source for p in PUBLISHED)
    assert len({(p.dataset, p.method, p.ipc) for p in PUBLISHED}) == len(PUBLISHED)
    assert published("mnist", "dc", 10).acc == 0.974 and published("mnist", "dc", 20) is None
    assert published("digits", "random", 1) is None and published("mnist", "kip", 1) is None
    # mnist-5k is drawn from MNIST: it is compared with MNIST's values, and says so
    five = published("mnist-5k", "herding", 10)
    assert five.acc == 0.937 and five.source.startswith("MNIST's value") and "Table 1" in five.source
    assert whole_dataset("mnist").acc == 0.996 and whole_dataset("digits") is None


def test_rows_carry_the_published_value_its_source_and_the_difference():
    rows = [BenchRow("dsa", 10, acc_mean=0.80, acc_std=0.01), BenchRow("dsa", 3, acc_mean=0.7, acc_std=0.0),
            BenchRow("dm", 1, error="stopped")]
    out = reproduce_rows(rows, "fashion-mnist")
    assert out[0]["published"] == 0.846 and out[0]["diff"] == pytest.approx(-0.046)
    assert "DSA" in out[0]["source"] and out[0]["published_std"] is None
    assert out[1]["published"] is None and out[1]["diff"] is None and out[1]["source"] is None
    assert out[2]["published"] == 0.707 and out[2]["diff"] is None  # no accuracy of ours, no difference
    table = reproduce_table(out).splitlines()
    assert table[2].startswith("| dsa | 10 | 80.0 ± 1.0 | 84.6 | -4.6 | VICO-UoE/DatasetCondensation README")
    assert table[3] == "| dsa | 3 | 70.0 ± 0.0 | — | — | — |"
    assert table[4].startswith("| dm | 1 | n/a (stopped) | 70.7 | — |")


@pytest.mark.slow  # one quick ConvNet evaluation on mnist-5k: ~40 s on a busy 2-core CPU
def test_cli_reproduce_prints_ours_beside_the_published_values(mnist5k, capsys):
    assert main(["reproduce", "--dataset", "mnist-5k", "--methods", "random", "--ipc", "1", "--eval", "quick",
                 "--eval-reps", "1", "--device", "cpu", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert payload["protocol"] == "quick" and payload["profile"] == "fast"
    (row,) = payload["rows"]
    assert (row["method"], row["ipc"]) == ("random", 1) and 0.2 < row["acc_mean"] <= 1.0
    assert row["published"] == 0.649 and "ICLR 2021, Table 1" in row["source"]
    assert row["diff"] == pytest.approx(row["acc_mean"] - 0.649, abs=1e-6)
    assert payload["whole_dataset"]["acc"] == 0.996


def test_cli_reproduce_without_published_values_prints_dashes(capsys):
    assert main(["reproduce", "--dataset", "digits", "--methods", "random", "--ipc", "1", "--eval", "krr",
                 "--seeds", "2", "--device", "cpu"]) == 0
    text = capsys.readouterr().out
    line = next(s for s in text.splitlines() if s.startswith("| random | 1 |"))
    assert line.endswith("| — | — | — |") and "2 seed(s)" in text and "Whole training set" not in text


def test_cli_reproduce_defaults_to_the_paper_protocol(monkeypatch, capsys):
    import distill_core.bench as bench
    from distill_core.evaluate import EvalResult

    protocols = []

    def fake(summary, dataset, protocol, **kwargs):
        protocols.append(protocol)
        return EvalResult(protocol, "convnet", 1, 0.9, 0.0, [0.9])

    monkeypatch.setattr(bench, "evaluate_summary", fake)
    assert main(["reproduce", "--dataset", "digits", "--methods", "random", "--ipc", "1", "--json"]) == 0
    assert protocols == ["paper"] and json.loads(capsys.readouterr().out.splitlines()[-1])["protocol"] == "paper"
    assert main(["reproduce", "--dataset", "digits", "--methods", "random", "--ipc", "1", "--eval", "nope"]) == 2
    assert "unknown protocol 'nope'" in capsys.readouterr().err

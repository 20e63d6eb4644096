"""benchmarks.gpu_suite: its FLOP count and matmul yardstick, and the shape of the --quick report on a CPU."""
from __future__ import annotations

import json

import pytest
import torch

from benchmarks import gpu_suite


def test_flop_count_of_known_products():
    a, b = torch.randn(16, 32), torch.randn(32, 8)
    assert gpu_suite.count_flops(lambda: a @ b) == 2 * 16 * 32 * 8
    w = torch.randn(4, 3, 3, 3, requires_grad=True)
    x = torch.randn(2, 3, 8, 8)
    forward = gpu_suite.count_flops(lambda: torch.nn.functional.conv2d(x, w, padding=1))
    assert forward == 2 * (2 * 8 * 8) * 4 * (3 * 3 * 3)
    # forward + backward to the weights: the weight gradient costs as much as the forward pass
    both = gpu_suite.count_flops(lambda: torch.nn.functional.conv2d(x, w, padding=1).sum().backward())
    assert both == 2 * forward


def test_matmul_rate_and_random_sets():
    mm = gpu_suite.matmul_rate(torch.device("cpu"), 64, 3)
    assert mm["n"] == 64 and mm["seconds"] > 0 and mm["tflops"] == pytest.approx(2 * 64 ** 3 / mm["seconds"] / 1e12)
    ds = gpu_suite.random_set("cifar10-shaped", (3, 32, 32), 10)
    assert ds.image_shape == (3, 32, 32) and ds.num_classes == 10 and len(ds.y_train) + len(ds.y_val) + len(ds.y_test) == 100
    assert ds.class_counts("test") == [1] * 10


def test_unknown_method_is_one_line(capsys):
    assert gpu_suite.main(["--quick", "--methods", "nope"]) == 2
    assert "unknown method 'nope'" in capsys.readouterr().err


@pytest.mark.slow
def test_quick_report_on_cpu(tmp_path, capsys):
    path = tmp_path / "report.json"
    assert gpu_suite.main(["--quick", "--device", "cpu", "--json", str(path), "--budget-s", "600"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    report = json.loads(out[-1])
    assert json.loads(path.read_text()) == report
    assert "| dataset | method | IPC |" in "\n".join(out)  # the markdown tables come first
    assert report["quick"] and report["device"]["type"] == "cpu" and report["profile"] == "fast"
    assert report["matmul"]["tflops"] > 0
    assert [d["shape"] for d in report["datasets"]] == [[1, 28, 28], [3, 32, 32]]
    cells = report["cells"]
    assert {(c["dataset"], c["method"], c["ipc"]) for c in cells} == {
        (d, m, i) for d in ("fashion-mnist", "cifar10-shaped") for m in gpu_suite.DISTILLERS for i in (1, 2)}
    assert all(c["status"] == "ok" for c in cells), [c for c in cells if c["status"] != "ok"]
    for c in cells:
        assert c["flops_per_step"] > 0 and c["step_s_median"] > 0 and c["steps_timed"] >= 1
        assert c["tflops"] == pytest.approx(c["flops_per_step"] / c["step_s_median"] / 1e12)
        assert c["fraction_of_matmul"] == pytest.approx(c["tflops"] / report["matmul"]["tflops"])
        assert c["peak_bytes"] is None  # torch tracks no CPU peak
        assert c["estimate_bytes"] is None or c["estimate_bytes"] > 0
    # a bigger synthetic set costs more FLOPs per step (the count follows the work)
    flops = {(c["dataset"], c["method"], c["ipc"]): c["flops_per_step"] for c in cells}
    for m in ("dm", "mtt"):
        assert flops[("cifar10-shaped", m, 2)] > flops[("cifar10-shaped", m, 1)]
    assert {r["dataset"] for r in report["dm_compare"]} == {"fashion-mnist", "cifar10-shaped"}
    for r in report["dm_compare"]:
        assert r["batched_ms"] > 0 and r["per_class_ms"] > 0
        assert r["speedup"] == pytest.approx(r["per_class_ms"] / r["batched_ms"])
        assert r["loss_batched"] == pytest.approx(r["loss_per_class"], rel=1e-4)
        assert r["relative_grad_difference"] < 1e-4

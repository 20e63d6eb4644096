"""The field's cross-architecture networks (AlexNet, VGG-11 BN, ResNet-18 BN): shapes, training, evaluation and
the bench's cross-architecture table."""
from __future__ import annotations

import pytest
import torch

from distill_core.bench import BenchRow, check_models, cross_arch_table, markdown_table, run_bench
from distill_core.errors import InvalidInputError, UnknownNameError
from distill_core.evaluate import architecture_name, evaluate_summary
from distill_core.methods import create_method
from distill_core.models import FIELD_MODELS, MODELS, build_model

SHAPES = [(1, 28), (3, 32), (1, 8)]  # grey 28×28 (padded to 32), colour 32×32, 8×8 digits


@pytest.mark.parametrize("name", FIELD_MODELS)
@pytest.mark.parametrize("channels,size", SHAPES)
def test_output_and_embedding_shapes(name, channels, size):
    torch.manual_seed(0)
    net = build_model(name, channels, 10, size, width=16)
    x = torch.randn(4, channels, size, size)
    assert net(x).shape == (4, 10)
    assert net.embed(x).shape == (4, net.feature_dim)


def test_published_sizes_at_full_width():
    """At width 128 the channel counts are the DC/DSA networks': parameter counts of the 32×32 colour nets."""
    counts = {n: sum(p.numel() for p in build_model(n, 3, 10, 32, width=128).parameters()) for n in FIELD_MODELS}
    assert counts["resnet18"] == 11_173_962  # torchvision's ResNet-18 with a 3×3 stem and a 10-class head
    assert 9_000_000 < counts["vgg11"] < 9_500_000 and 1_800_000 < counts["alexnet"] < 1_900_000
    half = sum(p.numel() for p in build_model("resnet18", 3, 10, 32, width=64).parameters())
    assert 0.2 < half / counts["resnet18"] < 0.3  # width 64 halves every channel count
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in build_model("vgg11", 1, 10, 28).modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in build_model("resnet18", 1, 10, 28).modules())


@pytest.mark.parametrize("name", FIELD_MODELS)
def test_every_parameter_trains(name):
    torch.manual_seed(0)
    net = build_model(name, 1, 10, 28, width=16)
    before = {k: p.detach().clone() for k, p in net.named_parameters()}
    opt = torch.optim.SGD(net.parameters(), lr=0.05)
    x, y = torch.randn(8, 1, 28, 28), torch.arange(8) % 10
    losses = []
    for _ in range(5):
        loss = torch.nn.functional.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    assert all(not torch.equal(before[k], p) for k, p in net.named_parameters()), name


def test_evaluate_accepts_the_new_models_and_names_them(digits):
    summary = create_method("herding", digits, 5, seed=0).summary()
    result = evaluate_summary(summary, digits, "quick", model="vgg11", reps=1, epochs=30, split="val",
                              device="cpu")
    assert result.model == "vgg11" and result.details["eval_model"] == "vgg11-x0.5"
    assert 0.3 < result.acc_mean <= 1.0  # chance is 0.1
    assert architecture_name("resnet18", 128, 3) == "resnet18" and architecture_name("lenet", 64, 3) == "lenet"
    with pytest.raises(UnknownNameError):
        evaluate_summary(summary, digits, "quick", model="resnet50", reps=1, epochs=1)


def test_bench_cross_architecture_table(digits):
    rows = run_bench(digits, ["random", "herding"], [2], protocol="quick", reps=1, device="cpu",
                     models=["mlp", "lenet"], split="val")
    assert [(r.method, r.model) for r in rows] == [("random", "mlp"), ("random", "lenet"), ("herding", "mlp"),
                                                   ("herding", "lenet")]
    assert all(r.acc_mean is not None and r.soft_labels is None and r.label_loss == "ce" for r in rows)
    table = cross_arch_table(rows, ["mlp", "lenet"])
    lines = table.splitlines()
    assert lines[0] == "| method | IPC | mlp | lenet | distill s |"
    assert lines[2].startswith("| random | 2 | ") and lines[3].startswith("| herding | 2 | ")
    assert f"{100 * rows[0].acc_mean:.1f}" in lines[2] and f"{100 * rows[1].acc_mean:.1f}" in lines[2]
    assert check_models(None) == ["convnet"] and check_models(["mlp", "mlp"]) == ["mlp"]
    with pytest.raises(InvalidInputError):
        check_models(["convnet", "vgg16"])
    assert set(FIELD_MODELS) <= set(MODELS)


def test_soft_label_rows_are_marked():
    rows = [BenchRow("random", 10, acc_mean=0.5, acc_std=0.0, model="mlp"),
            BenchRow("rded", 10, acc_mean=0.6, acc_std=0.0, model="mlp", soft_labels="teacher",
                     label_loss="soft_ce")]
    table = cross_arch_table(rows, ["mlp"])
    assert "| rded † | 10 |" in table and "| random | 10 |" in table
    assert "† soft labels — rded: teacher soft labels, trained with soft_ce" in table
    plain = markdown_table([BenchRow("random", 1, acc_mean=0.5, acc_std=0.0)], [1])
    assert "†" not in plain
    assert "| rded † |" in markdown_table(rows[1:], [10])


def test_soft_label_footnote_names_the_networks_learning_rates():
    """MSE fits train at their architecture's rate, so the footnote says which rate each architecture used."""
    from distill_core.bench import soft_note

    rows = [BenchRow("rfad", 10, acc_mean=0.8, model="convnet", soft_labels="learned", label_loss="mse", lr=0.03),
            BenchRow("rfad", 10, acc_mean=0.7, model="lenet", soft_labels="learned", label_loss="mse", lr=0.3),
            BenchRow("rded", 10, acc_mean=0.6, model="convnet", soft_labels="teacher", label_loss="soft_ce",
                     lr=0.01),
            BenchRow("rded", 10, acc_mean=0.5, model="lenet", soft_labels="teacher", label_loss="soft_ce", lr=0.01)]
    note = soft_note(rows)
    assert "rfad: learned soft labels, trained with mse at lr 0.03 (convnet), 0.3 (lenet)" in note
    assert "rded: teacher soft labels, trained with soft_ce at lr 0.01;" in note
    assert "at lr" not in soft_note([BenchRow("ls", 1, soft_labels="solved", label_loss="mse")])


def test_bench_rows_record_the_networks_learning_rate(digits):
    """A bench row keeps the rate its networks trained at: the MSE rate of the architecture for solved labels."""
    from distill_core.bench import run_bench
    from distill_core.evaluate import MSE_LR, PROTOCOLS

    rows = run_bench(digits, ["random", "ls"], [1], reps=1, device="cpu", models=["lenet"])
    by = {r.method: r for r in rows}
    assert by["random"].lr == PROTOCOLS["quick"].lr and by["random"].label_loss == "ce"
    assert by["ls"].label_loss == "mse" and by["ls"].lr == MSE_LR[("quick", "lenet")]


def test_cells_with_diverged_networks_say_so(digits, monkeypatch):
    import distill_core.evaluate as evaluate

    original = evaluate.train_network

    def wild(*args, **kwargs):  # every evaluation network trains at a rate that turns its loss NaN
        return original(*args, **{**kwargs, "lr": 1e8})

    monkeypatch.setattr(evaluate, "train_network", wild)
    row = run_bench(digits, ["random"], [1], protocol="quick", reps=2, device="cpu", models=["mlp"])[0]
    assert row.diverged == 2 and len(row.accs) == 2
    assert "(2 of 2 networks diverged)" in cross_arch_table([row], ["mlp"])
    assert "(2 of 2 networks diverged)" in markdown_table([row], [1])
    assert "diverged" not in markdown_table([BenchRow("random", 1, acc_mean=0.5, acc_std=0.0, accs=[0.5])], [1])


def test_arch_costs_benchmark_times_every_epoch_and_prints_a_row_per_model(monkeypatch, capsys):
    """benchmarks/arch_costs: one lap per trained epoch, a positive test pass, and one table row per model."""
    from benchmarks import arch_costs
    from distill_core.data import load_dataset
    from distill_core.evaluate import PROTOCOLS

    ds = load_dataset("digits")
    summary = create_method("random", ds, 2, seed=0).summary()
    laps, test_s = arch_costs.epoch_and_test_seconds(ds, summary, "resnet18", PROTOCOLS["quick"], epochs=3)
    assert len(laps) == 3 and all(t > 0 for t in laps) and test_s > 0

    monkeypatch.setattr("sys.argv", ["arch_costs", "--dataset", "digits", "--ipc", "1", "--models", "mlp",
                                     "lenet", "--epochs", "1"])
    arch_costs.main()
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    assert [r.split("|")[1].strip() for r in rows[1:]] == ["mlp", "lenet"]  # after the header
    with pytest.raises(SystemExit):
        monkeypatch.setattr("sys.argv", ["arch_costs", "--dataset", "digits", "--epochs", "0"])
        arch_costs.main()

"""The trained feature ConvNet prepared in the background: it steps aside for distillations and other maps, a page
asking for the same network joins the work instead of training twice, and torch's thread count is only changed
for the call that needs it."""
from __future__ import annotations

import threading
import time

import pytest
import torch

from bar_patterns import bar_patterns
from distill_core import embed, embed_background, embed_features, embed_warm


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DISTILL_CACHE_DIR", str(tmp_path / "distill-cache"))
    embed.clear_memory_cache()
    yield
    embed.clear_memory_cache()


def _bars(name: str):
    return bar_patterns(name, seed=1)


def _count_training(monkeypatch) -> list[str]:
    calls: list[str] = []
    real = embed_features._train_net

    def counted(ds, *args, **kwargs):
        calls.append(ds.name)
        return real(ds, *args, **kwargs)

    monkeypatch.setattr(embed_features, "_train_net", counted)
    return calls


def _in_background(ds, space: str, out: dict) -> threading.Thread:
    def work():
        with embed.background_work(ds, space) as stats:
            out["stats"] = stats
            out["space"] = embed.feature_space(ds, space)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread


def _wait_for_holds(out: dict, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and out.get("stats", {}).get("holds", 0) < 3:
        time.sleep(0.02)


def test_torch_threads_is_scoped_and_restored_after_an_error():
    before = torch.get_num_threads()
    with embed.torch_threads(before + 1):
        assert torch.get_num_threads() == before + 1
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError):
        with embed.torch_threads(before + 2):
            raise RuntimeError("boom")
    assert torch.get_num_threads() == before


def test_feature_training_uses_one_thread_and_restores_the_callers_count(monkeypatch):
    seen: list[int] = []
    monkeypatch.setattr(embed_features, "TRAIN_STEPS", 5)
    with embed.torch_threads(2):  # a caller with two threads (conftest bounds the tests to one)
        net, info = embed_features._train_net(_bars("bars-threads"),
                                              progress=lambda _: seen.append(torch.get_num_threads()))
        assert torch.get_num_threads() == 2
        feats = embed.FeatureSpace("convnet-trained", _bars("bars-threads"), net).features(torch.rand(3, 1, 8, 8))
        assert torch.get_num_threads() == 2
    assert seen == [embed.COMPUTE_THREADS] and info["steps"] == 5 and feats.shape[0] == 3


def test_plain_adam_takes_torch_adams_steps():
    torch.manual_seed(0)
    a = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3))
    b = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3))
    b.load_state_dict(a.state_dict())
    ours, theirs = embed.PlainAdam(a.parameters(), lr=0.01), torch.optim.Adam(b.parameters(), lr=0.01)
    x, y = torch.randn(16, 6), torch.randint(0, 3, (16,))
    for _ in range(7):
        for net, opt in ((a, ours), (b, theirs)):
            loss = torch.nn.functional.cross_entropy(net(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
    assert not torch.equal(a[0].weight, torch.nn.Sequential(torch.nn.Linear(6, 5))[0].weight)


def test_background_training_holds_while_a_distillation_runs_and_a_page_joins_it(monkeypatch):
    """A job is running: the background work waits between steps. A page then asks for the same network: the
    background work goes on at full speed and the page receives its result — one training, not two."""
    ds = _bars("bars-join")
    calls = _count_training(monkeypatch)
    monkeypatch.setattr(embed_background, "_jobs_running", lambda: 1)
    out: dict = {}
    thread = _in_background(ds, "convnet-trained", out)
    _wait_for_holds(out)
    assert thread.is_alive() and out["stats"]["holds"] >= 3, "the background work did not hold for the job"
    assert not embed.trained_net_cached(ds)
    page: dict = {}
    request = threading.Thread(target=lambda: page.update(fs=embed.feature_space(ds, "convnet-trained")),
                               daemon=True)
    request.start()  # the page's request joins the work in progress
    request.join(30)
    thread.join(30)
    assert not request.is_alive() and not thread.is_alive(), "the page's request waited on held background work"
    assert calls == ["bars-join"], "trained twice"
    fs = page["fs"]
    assert out["space"] is fs and fs.info["cached"] is False and fs.info["test_acc"] > 0.9
    assert embed.trained_net_cached(ds)


def test_background_training_holds_while_a_page_waits_for_another_map(monkeypatch):
    ds, other = _bars("bars-hold"), _bars("bars-other")
    calls = _count_training(monkeypatch)
    monkeypatch.setattr(embed_background, "_jobs_running", lambda: 0)
    out: dict = {}
    with embed_background._demanded(other, "pixels"):  # a page computing another dataset's map
        thread = _in_background(ds, "convnet-trained", out)
        _wait_for_holds(out)
        assert thread.is_alive() and out["stats"]["holds"] >= 3 and not embed.trained_net_cached(ds)
    thread.join(30)  # that page is served: the background work goes on
    assert not thread.is_alive() and calls == ["bars-hold"] and embed.trained_net_cached(ds)
    assert not embed_background._DEMAND, "every demand was withdrawn"


def test_background_work_without_contention_does_not_hold(monkeypatch):
    monkeypatch.setattr(embed_background, "_jobs_running", lambda: 0)
    ds = _bars("bars-free")
    out: dict = {}
    thread = _in_background(ds, "convnet-trained", out)
    thread.join(30)
    assert out["stats"]["holds"] == 0 and embed.trained_net_cached(ds)
    # a page's own calls never hold, even while a job runs
    monkeypatch.setattr(embed_background, "_jobs_running", lambda: 1)
    embed.clear_memory_cache()
    t = time.perf_counter()
    pool = embed.train_features(ds, "convnet-random")
    assert pool.features.shape[0] == len(ds.y_train) and time.perf_counter() - t < 10


@pytest.mark.slow
def test_server_warm_up_prepares_the_trained_map_in_the_background(digits, monkeypatch):
    """What app.py asks at server start: the default dataset's pixels map, then its trained-ConvNet map (network,
    features, UMAP), all on disk afterwards, the trained part reported as background work."""
    monkeypatch.setattr(embed_warm, "_WARM_ASKED", set())  # as in a fresh server process
    monkeypatch.setattr(embed_background, "_jobs_running", lambda: 0)
    assert not embed.is_cached(digits, "convnet-trained")
    thread = embed.warm_up(["digits"], spaces=embed.SERVER_WARM_SPACES)
    assert embed.join_warm_up(300) and not thread.is_alive()
    info = embed.warm_info()
    assert "error" not in info, info
    assert info["background"]["digits/convnet-trained"]["held_s"] == 0
    assert embed.is_cached(digits, "pixels") and embed.is_cached(digits, "convnet-trained")
    embed.clear_memory_cache()
    emb = embed.get_embedding(digits, "convnet-trained")
    assert emb.from_disk and emb.feature_space.info["cached"] is True
    assert emb.feature_space.info["steps"] == embed.TRAIN_STEPS

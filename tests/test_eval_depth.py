"""The evaluation ConvNet's depth by image size, and the benchmark that measures it."""
from __future__ import annotations

from benchmarks import eval_depth
from distill_core import evaluate
from distill_core.evaluate import evaluate_summary
from distill_core.methods import create_method


def test_digits_are_judged_by_two_blocks_and_the_benchmark_changes_only_the_depth(digits):
    summary = create_method("herding", digits, 1, seed=0).summary()
    record = evaluate_summary(summary, digits, "quick", reps=1, device="cpu", epochs=1, split="val").details
    assert (record["depth"], record["eval_model"]) == (2, "convnet-64x2")  # a 3rd block would normalise 2×2 maps
    before = evaluate.PROTOCOLS["quick"]
    got = eval_depth.main(["--methods", "herding", "--ipc", "1", "--depths", "1", "3", "--seeds", "1", "--reps", "1"])
    assert evaluate.PROTOCOLS["quick"] is before  # the protocol is restored
    assert set(got) == {"herding ipc1 depth1", "herding ipc1 depth3"}
    one, three = got["herding ipc1 depth1"][0], got["herding ipc1 depth3"][0]
    assert 50 < one <= 100 and 20 < three <= 100 and one != three  # another network judged the same images

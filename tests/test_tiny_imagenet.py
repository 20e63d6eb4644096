"""Tiny-ImageNet from a small tree in its real layout (JPEGs, wnids.txt, words.txt, val_annotations.txt); the
ConvNet depth that follows the image size; limits that admit a named dataset's known size."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from distill_core.cli import main
from distill_core.data import DATASETS, find_dataset_files, list_datasets, load_dataset
from distill_core.errors import DatasetUnavailableError, InvalidInputError
from distill_core.evaluate import evaluate_summary
from distill_core.limits import LIMITS, limits_for
from distill_core.methods import create_method
from distill_core.models import build_for, build_model, default_depth

WNIDS = ["n01443537", "n01629819", "n02124075"]
WORDS = {"n01443537": "goldfish, Carassius auratus", "n01629819": "European fire salamander, Salamandra salamandra",
         "n02124075": "Egyptian cat", "n09999999": "not one of ours"}
TRAIN_PER_CLASS, VAL_PER_CLASS = 10, 3


def _jpeg(path: Path, rng: np.random.Generator, cls: int, grey: bool = False) -> None:
    """A 64×64 JPEG whose colour depends on the class (so a network can tell them apart)."""
    base = np.zeros((64, 64, 3), dtype=np.float64)
    base[..., cls % 3] = 180.0
    pixels = np.clip(base + rng.normal(0, 30, base.shape), 0, 255).astype(np.uint8)
    img = Image.fromarray(pixels).convert("L") if grey else Image.fromarray(pixels)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, "JPEG", quality=90)


def write_tiny_imagenet(root: Path) -> Path:
    """A Tiny-ImageNet tree as the official zip unpacks: train/<wnid>/images/<wnid>_<i>.JPEG and <wnid>_boxes.txt,
    val/images/val_<i>.JPEG with val/val_annotations.txt, test/images (unlabelled), wnids.txt, words.txt."""
    top = root / "tiny-imagenet-200"
    rng = np.random.default_rng(0)
    (top).mkdir(parents=True)
    (top / "wnids.txt").write_text("\n".join(WNIDS) + "\n")
    (top / "words.txt").write_text("".join(f"{w}\t{t}\n" for w, t in WORDS.items()))
    for c, wnid in enumerate(WNIDS):
        boxes = []
        for i in range(TRAIN_PER_CLASS):
            name = f"{wnid}_{i}.JPEG"
            _jpeg(top / "train" / wnid / "images" / name, rng, c, grey=(c == 2 and i == 0))
            boxes.append(f"{name}\t0\t0\t63\t63")
        (top / "train" / wnid / f"{wnid}_boxes.txt").write_text("\n".join(boxes) + "\n")
    lines = []
    for i in range(VAL_PER_CLASS * len(WNIDS)):
        c = (i * 2) % len(WNIDS)  # interleaved, as the official file is
        _jpeg(top / "val" / "images" / f"val_{i}.JPEG", rng, c)
        lines.append(f"val_{i}.JPEG\t{WNIDS[c]}\t1\t2\t60\t61")
    (top / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    _jpeg(top / "test" / "images" / "test_0.JPEG", rng, 0)
    return top


def _image_at(ds, position: int) -> torch.Tensor:
    """The image read from the `position`-th file (train files in wnids order, then val), whichever split has it."""
    for split in ("train", "val"):
        where = np.flatnonzero(ds.meta["indices"][split] == position)
        if len(where):
            return ds.split(split)[0][int(where[0])]
    raise AssertionError(f"image {position} is in no training split")


@pytest.fixture
def tiny(tmp_path):
    write_tiny_imagenet(tmp_path)
    return load_dataset("tiny-imagenet", data_root=tmp_path), tmp_path


def test_loads_the_real_layout(tiny):
    ds, root = tiny
    assert ds.image_shape == (3, 64, 64) and ds.num_classes == 3
    assert ds.class_names == ["goldfish", "European fire salamander", "Egyptian cat"]
    # train 30 -> 27 train + 3 validation (one per class, stratified); the official val images are the test split
    assert (len(ds.y_train), len(ds.y_val), len(ds.y_test)) == (27, 3, 9)
    assert ds.class_counts("val") == [1, 1, 1] and ds.class_counts("test") == [3, 3, 3]
    assert ds.nbytes() == (27 + 3 + 9) * 3 * 64 * 64  # bytes in memory, like the other sets
    # pixels are the decoded JPEGs; the greyscale one became three equal channels
    top = root / "tiny-imagenet-200"
    first = top / "train" / WNIDS[0] / "images" / f"{WNIDS[0]}_0.JPEG"
    want = torch.from_numpy(np.array(Image.open(first).convert("RGB"))).permute(2, 0, 1).float() / 255
    assert torch.equal(_image_at(ds, 0), want)
    grey = _image_at(ds, 2 * TRAIN_PER_CLASS)  # the first image of class 2
    assert torch.equal(grey[0], grey[1]) and torch.equal(grey[1], grey[2])
    # the test labels follow val_annotations.txt line by line
    assert ds.y_test.tolist() == [(i * 2) % 3 for i in range(9)]
    # class colours survive: each class's mean is brightest in its own channel
    for c in range(3):
        assert int(ds.x_train[ds.y_train == c].mean((0, 2, 3)).argmax()) == c


def test_found_listed_and_missing(tmp_path):
    assert find_dataset_files("tiny-imagenet", tmp_path) is None
    with pytest.raises(DatasetUnavailableError, match="tiny-imagenet-200.*wnids.txt"):
        load_dataset("tiny-imagenet", data_root=tmp_path)
    top = write_tiny_imagenet(tmp_path)
    row = next(r for r in list_datasets(tmp_path) if r["name"] == "tiny-imagenet")
    assert row["available"] and not row["offline"] and row["path"] == str(top) and row["classes"] == 200
    assert find_dataset_files("tiny-imagenet", top).folder == top  # the data root may be the folder itself
    assert DATASETS["tiny-imagenet"].shape == (3, 64, 64)


def test_broken_trees_are_one_clear_error(tmp_path):
    top = write_tiny_imagenet(tmp_path / "a")
    (top / "val" / "val_annotations.txt").write_text("val_0.JPEG\tn00000000\t0\t0\t1\t1\n")
    with pytest.raises(InvalidInputError, match="line 1 does not name"):
        load_dataset("tiny-imagenet", data_root=tmp_path / "a")
    top = write_tiny_imagenet(tmp_path / "b")
    (top / "train" / WNIDS[1] / "images" / f"{WNIDS[1]}_3.JPEG").write_bytes(b"not a jpeg")
    with pytest.raises(InvalidInputError, match=f"{WNIDS[1]}_3.JPEG is not a readable image"):
        load_dataset("tiny-imagenet", data_root=tmp_path / "b")


def test_cli_lists_it(tmp_path, capsys):
    write_tiny_imagenet(tmp_path)
    assert main(["datasets", "--data-root", str(tmp_path), "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out.strip().splitlines()[-1])["datasets"]}
    assert rows["tiny-imagenet"]["available"] and rows["tiny-imagenet"]["shape"] == [3, 64, 64]


# ---------------------------------------------------------------------------------- depth follows the size

def test_default_depth_follows_resolution():
    assert [default_depth(s) for s in (8, 16, 24, 28, 32, 48, 64, 96, 128, 256)] == [2, 2, 2, 3, 3, 3, 4, 4, 5, 6]
    for size, blocks in ((32, 3), (64, 4), (128, 5)):
        net = build_model("convnet", 3, 10, size, width=8)
        convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
        assert len(convs) == blocks == net.depth and net.feature_dim == 8 * 4 * 4
        assert net(torch.zeros(2, 3, size, size)).shape == (2, 10)
    assert build_model("convnet", 1, 10, 28, width=8, depth=2).depth == 2  # an explicit depth wins
    assert len(build_model("mlp", 1, 10, 28, depth=None).features) == 4  # other models keep their own default


def test_networks_on_64px_get_four_blocks(tiny, tmp_path):
    ds, _ = tiny
    assert build_for(ds, width=8).depth == 4
    for name in ("dm", "dc", "mtt"):
        method = create_method(name, ds, 1, seed=0, overrides={"width": 8})
        assert method.config.depth == 4  # settled from 0 ("by image size") and recorded
        net = method.fresh_network(seed=0)
        assert sum(isinstance(m, torch.nn.Conv2d) for m in net.modules()) == 4
    assert create_method("dc", ds, 1, seed=0, overrides={"width": 8, "depth": 3}).config.depth == 3
    dm = create_method("dm", ds, 2, seed=0, overrides={"width": 8})
    for _ in range(2):
        assert np.isfinite(dm.step()["loss"])
    summary = dm.summary()
    assert summary.meta["config"]["depth"] == 4
    result = evaluate_summary(summary, ds, "quick", reps=1, epochs=2, device="cpu")
    assert result.details["depth"] == 4 and result.details["eval_model"] == "convnet-64x4"
    assert result.details["distill_model"] == "convnet-8x4"


# ------------------------------------------------------------------------------------------------ limits

def test_limits_admit_a_named_dataset_and_keep_uploads_bounded():
    tiny = limits_for("tiny-imagenet")
    assert LIMITS.max_classes < 200 <= tiny.max_classes and tiny.max_files >= 110_000
    assert tiny.max_ipc == LIMITS.max_ipc and tiny.upload_max_mb == LIMITS.upload_max_mb
    for name in ("digits", "mnist", "cifar100"):  # known sets inside the limits: nothing is lowered
        got = limits_for(name)
        assert got.max_classes == LIMITS.max_classes and got.max_files >= LIMITS.max_files
    assert limits_for("folder:/somewhere") is LIMITS and limits_for("upload:my.zip") is LIMITS
    assert limits_for(None) is LIMITS


def test_a_folder_of_200_classes_is_still_refused(tmp_path):
    from distill_core.data import load_image_folder

    for c in range(LIMITS.max_classes + 1):
        (tmp_path / f"class{c:03d}").mkdir()
    with pytest.raises(InvalidInputError, match=f"the limit is {LIMITS.max_classes}"):
        load_image_folder(tmp_path)

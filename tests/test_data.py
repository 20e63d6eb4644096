"""Dataset registry: embedded sets, torchvision formats written here, image folders, fixed splits."""
from __future__ import annotations

import pickle
import struct

import numpy as np
import pytest
import torch
from PIL import Image

from distill_core.data import DATASETS, list_datasets, load_dataset, load_image_folder
from distill_core.errors import DatasetUnavailableError, InvalidInputError, UnknownNameError


def test_digits_split_is_fixed_and_stratified(digits):
    assert digits.image_shape == (1, 8, 8)
    assert len(digits.y_train) == 1437 and len(digits.y_test) == 360
    assert digits.x_train.dtype == torch.float32 and digits.y_train.dtype == torch.int64
    assert 0.0 <= float(digits.x_train.min()) and float(digits.x_train.max()) <= 1.0
    # stratified: every class's share of the test split is within a point of its share overall
    train_share = torch.bincount(digits.y_train, minlength=10).float() / len(digits.y_train)
    test_share = torch.bincount(digits.y_test, minlength=10).float() / len(digits.y_test)
    assert torch.allclose(train_share, test_share, atol=0.01)
    # the split is the same on every load (golden values of this split)
    assert digits.y_test[:10].tolist() == load_dataset("digits").y_test[:10].tolist()
    assert abs(digits.mean[0] - float(digits.x_train.mean())) < 1e-5


def test_mnist_5k_split(mnist5k):
    assert mnist5k.image_shape == (1, 28, 28)
    assert len(mnist5k.y_train) == 4000 and len(mnist5k.y_test) == 1000
    train = torch.tensor(mnist5k.class_counts("train"), dtype=torch.float32)
    test = torch.tensor(mnist5k.class_counts("test"), dtype=torch.float32)
    assert int(test.sum()) == 1000 and torch.allclose(train / 4000, test / 1000, atol=0.002)
    x = mnist5k.normalize(mnist5k.x_train[:500])
    assert abs(float(mnist5k.denormalize(x).sub(mnist5k.x_train[:500]).abs().max())) < 1e-5


def test_listing_marks_embedded_sets_offline(tmp_path):
    rows = {r["name"]: r for r in list_datasets(tmp_path)}
    assert rows["digits"]["offline"] and rows["digits"]["available"]
    assert rows["mnist-5k"]["offline"] and rows["mnist-5k"]["available"]
    assert not rows["cifar10"]["available"]
    assert [r["name"] for r in list_datasets(tmp_path)][:2] == ["digits", "mnist-5k"]


def test_unknown_dataset_names_the_choices():
    with pytest.raises(UnknownNameError, match="choose one of digits"):
        load_dataset("imagenet-1k")


def test_missing_torchvision_set_names_the_files(tmp_path):
    with pytest.raises(DatasetUnavailableError) as err:
        load_dataset("mnist", data_root=tmp_path)
    message = str(err.value)
    assert "MNIST/raw/train-images-idx3-ubyte" in message and str(tmp_path) in message


# ------------------------------------------------------------------ real formats written by the test

def _write_idx(path, array: np.ndarray) -> None:
    dtype_code = 0x08  # unsigned byte
    header = struct.pack(">HBB", 0, dtype_code, array.ndim) + b"".join(struct.pack(">I", d) for d in array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(payload)


@pytest.mark.parametrize("name,folder", [("mnist", "MNIST"), ("fashion-mnist", "FashionMNIST")])
def test_idx_files_load_through_torchvision(tmp_path, name, folder):
    rng = np.random.default_rng(0)
    raw = tmp_path / folder / "raw"
    train_x = rng.integers(0, 256, size=(30, 28, 28))
    train_y = np.arange(30) % 10
    test_x = rng.integers(0, 256, size=(20, 28, 28))
    test_y = np.arange(20) % 10
    _write_idx(raw / "train-images-idx3-ubyte", train_x)
    _write_idx(raw / "train-labels-idx1-ubyte", train_y)
    _write_idx(raw / "t10k-images-idx3-ubyte", test_x)
    _write_idx(raw / "t10k-labels-idx1-ubyte", test_y)
    ds = load_dataset(name, data_root=tmp_path)
    assert ds.image_shape == (1, 28, 28) and ds.num_classes == 10
    assert len(ds.y_train) == 30 and len(ds.y_test) == 20
    assert torch.equal(ds.y_train, torch.from_numpy(train_y))
    assert np.allclose(ds.x_train[3, 0].numpy() * 255, train_x[3], atol=1e-3)
    assert list_datasets(tmp_path)[[r["name"] for r in list_datasets(tmp_path)].index(name)]["available"]


def test_cifar10_pickled_batches_load_through_torchvision(tmp_path):
    rng = np.random.default_rng(1)
    base = tmp_path / "cifar-10-batches-py"
    base.mkdir()
    names = [f"class{i}" for i in range(10)]
    batches = {}
    for i in range(1, 6):
        batches[f"data_batch_{i}"] = (rng.integers(0, 256, size=(4, 3072)), list(rng.integers(0, 10, size=4)))
    batches["test_batch"] = (rng.integers(0, 256, size=(6, 3072)), list(range(6)))
    for fname, (data, labels) in batches.items():
        with open(base / fname, "wb") as fh:
            pickle.dump({"data": data.astype(np.uint8), "labels": [int(v) for v in labels]}, fh)
    with open(base / "batches.meta", "wb") as fh:
        pickle.dump({"label_names": names}, fh)
    ds = load_dataset("cifar10", data_root=tmp_path)
    assert ds.image_shape == (3, 32, 32)
    assert ds.class_names == names
    assert len(ds.y_train) == 20 and ds.y_test.tolist() == list(range(6))
    first = batches["data_batch_1"][0][0].reshape(3, 32, 32)
    assert np.allclose(ds.x_train[0].numpy() * 255, first, atol=1e-3)


def test_corrupt_cifar_batch_is_a_clear_error(tmp_path):
    base = tmp_path / "cifar-10-batches-py"
    base.mkdir()
    for fname in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]:
        (base / fname).write_bytes(b"not a pickle")
    with pytest.raises((InvalidInputError, DatasetUnavailableError)):
        load_dataset("cifar10", data_root=tmp_path)


# ------------------------------------------------------------------------------------ image folders

def _make_folder(root, classes=("cat", "dog", "owl"), per_class=6, size=(20, 16), mode="RGB"):
    rng = np.random.default_rng(2)
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            arr = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
            Image.fromarray(arr).convert(mode).save(root / c / f"{i}.png")
    return root


def test_image_folder_colour_resized_and_split(tmp_path):
    root = _make_folder(tmp_path / "imgs")
    (root / "dog" / "notes.txt").write_text("not an image")
    (root / "dog" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    ds = load_image_folder(root, image_size=12)
    assert ds.class_names == ["cat", "dog", "owl"]
    assert ds.image_shape == (3, 12, 12)
    assert len(ds.y_train) + len(ds.y_test) == 18
    assert sorted(set(ds.y_test.tolist())) == [0, 1, 2]  # stratified: every class is tested
    assert any("broken.png" in s for s in ds.meta["skipped"])
    again = load_image_folder(root, image_size=12)
    assert torch.equal(ds.y_test, again.y_test) and torch.equal(ds.x_test, again.x_test)


def test_image_folder_greyscale_becomes_one_channel(tmp_path):
    root = _make_folder(tmp_path / "grey", mode="L")
    ds = load_dataset(f"folder:{root}", image_size=8)
    assert ds.image_shape == (1, 8, 8)


def test_image_folder_needs_two_classes(tmp_path):
    root = _make_folder(tmp_path / "one", classes=("only",))
    with pytest.raises(InvalidInputError, match="at least 2 classes"):
        load_image_folder(root)


def test_image_folder_without_images(tmp_path):
    (tmp_path / "empty" / "a").mkdir(parents=True)
    with pytest.raises(InvalidInputError, match="no readable images"):
        load_image_folder(tmp_path / "empty")


def test_registry_covers_design_table():
    assert {"digits", "mnist-5k", "mnist", "fashion-mnist", "kmnist", "cifar10", "cifar100", "svhn"} <= set(DATASETS)

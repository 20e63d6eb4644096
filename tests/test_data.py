"""Dataset registry: embedded sets, torchvision formats written here, image folders, fixed splits."""
from __future__ import annotations

import gzip
import hashlib
import os
import pickle
import re
import struct

import numpy as np
import pytest
import torch
from PIL import Image

from distill_core import data as dmod
from distill_core import dataset_files  # where the file search looks up SYSTEM_DATA_DIRS
from distill_core.data import (DATASETS, SPLITS, VAL_FRACTION, ZCA_STRENGTH, carve_validation, dataset_available,
                               list_datasets, load_dataset, load_image_folder, read_idx)
from distill_core.errors import DatasetUnavailableError, InvalidInputError, UnknownNameError


# ------------------------------------------------------------------------------ golden split values
# Pinned from the loaders (sha256 prefixes of the images' bytes: ×16 for digits, ×255 for the others). A change to
# a split, to its order or to the pixel values fails here.

def _sha(x: torch.Tensor, scale: int) -> str:
    return hashlib.sha256((x * scale).round().to(torch.uint8).numpy().tobytes()).hexdigest()[:16]


GOLDEN = {
    "digits": {
        "scale": 16, "shape": (1, 8, 8), "mean": 0.30554246423047177, "std": 0.376127854405161,
        "train": (1293, [128, 131, 128, 131, 130, 130, 131, 129, 125, 130], [0, 1, 2, 3, 4, 5],
                  ["9bc74a9fdeea9a14", "627bc62ad7a34d5d", "ffa24dbe03900660"]),
        "val": (144, [14, 15, 14, 15, 15, 15, 14, 14, 14, 14], [15, 16, 18, 19, 22, 27],
                ["42321f76e47a95dd", "cc12b21094b0c880", "78be85b95195f3da"]),
        "test": (360, [36, 36, 35, 37, 36, 37, 36, 36, 35, 36], [21, 24, 28, 34, 35, 37],
                 ["2b0263a8490f2261", "bb58aacbf3f64e8b", "ac5f804faa997e8d"]),
    },
    "mnist-5k": {
        "scale": 255, "shape": (1, 28, 28), "mean": 0.13126561318972033, "std": 0.3084940793617106,
        "train": (3600, [360] * 10, [0, 1, 2, 3, 4, 6], ["2d1c3087ac5f2bed", "be30d31d22840205", "bae9fe7310dbf1ac"]),
        "val": (400, [40] * 10, [5, 19, 20, 44, 46, 66], ["84097896bf61bd0e", "ce4242881c1eebc5", "8be1f095dd1fd7d2"]),
        "test": (1000, [100] * 10, [9, 25, 28, 31, 32, 38],
                 ["212aecef2a29c7ff", "44884e52c9dde7ba", "4fa218010e7f34b9"]),
    },
    "fashion-mnist": {  # the official files; test positions count on from the 60,000 training images
        "scale": 255, "shape": (1, 28, 28), "mean": 0.2859482943177271, "std": 0.3530149892172818,
        "train": (54000, [5400] * 10, [0, 1, 2, 4, 5, 6], ["5bd44e331a6d6998", "9cf80d28fd40cb6b", "489c477715bd5275"]),
        "val": (6000, [600] * 10, [3, 24, 29, 39, 40, 48],
                ["593ff8e28c45d2d3", "96166c6008880ed7", "e87017198a30a702"]),
        "test": (10000, [1000] * 10, [60000, 60001, 60002, 60003, 60004, 60005],
                 ["ffc7351ed0f8bae5", "25138519f4c25d3d", "0e65cd3713adf40e"]),
    },
}


def _fashion_mnist():
    """The full Fashion-MNIST from Debian's package; skipped when it is not installed (a failure under CI, which
    installs it)."""
    if not dataset_available("fashion-mnist", "/nonexistent-data-root") or not any(
            (d / "train-images-idx3-ubyte.gz").is_file() for d in dataset_files.SYSTEM_DATA_DIRS["fashion-mnist"]):
        if os.environ.get("CI"):
            pytest.fail("CI installs the Debian package dataset-fashion-mnist, but its files are missing")
        pytest.skip("Debian package dataset-fashion-mnist is not installed (/usr/share/datasets/fashion-mnist/)")
    return load_dataset("fashion-mnist", data_root="/nonexistent-data-root")


def _check_golden(ds, name: str) -> None:
    g = GOLDEN[name]
    assert ds.image_shape == g["shape"] and ds.num_classes == 10 and ds.meta["zca"] is False
    assert ds.mean[0] == pytest.approx(g["mean"], abs=1e-9) and ds.std[0] == pytest.approx(g["std"], abs=1e-9)
    for split in SPLITS:
        n, counts, first, hashes = g[split]
        x, y = ds.split(split)
        assert x.dtype == torch.float32 and y.dtype == torch.int64 and tuple(x.shape) == (n, *g["shape"])
        assert ds.class_counts(split) == counts, split
        assert ds.meta["indices"][split][:6].tolist() == first, split
        assert [_sha(x[i], g["scale"]) for i in (0, 1, n - 1)] == hashes, split
        assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    # the registry's split description states the same sizes
    sizes = [int(v.replace(",", "")) for v in re.findall(r"\d[\d,]*(?= \(|(?= /))", DATASETS[name].split)]
    assert sizes[:3] == [g[s][0] for s in SPLITS], DATASETS[name].split


def test_digits_golden_splits(digits):
    _check_golden(digits, "digits")


def test_mnist_5k_golden_splits(mnist5k):
    _check_golden(mnist5k, "mnist-5k")


def test_fashion_mnist_from_the_debian_package_golden_splits():
    ds = _fashion_mnist()
    _check_golden(ds, "fashion-mnist")
    assert ds.class_names[0] == "T-shirt/top" and ds.class_names[9] == "Ankle boot"
    # bytes stay bytes until a split is read as float32: 70,000 × 784 bytes
    assert dmod._store(ds, "train").raw.dtype == torch.uint8
    row = next(r for r in list_datasets("/nonexistent-data-root") if r["name"] == "fashion-mnist")
    assert row["offline"] and row["available"] and row["path"] is not None
    assert [r["name"] for r in list_datasets("/nonexistent-data-root")][:3] == ["digits", "mnist-5k", "fashion-mnist"]


@pytest.mark.parametrize("name", ["digits", "mnist-5k", "fashion-mnist"])
def test_train_val_test_are_disjoint(name, digits, mnist5k):
    ds = {"digits": digits, "mnist-5k": mnist5k}.get(name) or _fashion_mnist()
    parts = {s: set(ds.meta["indices"][s].tolist()) for s in SPLITS}
    assert sum(len(p) for p in parts.values()) == len(ds.y_train) + len(ds.y_val) + len(ds.y_test)
    assert not (parts["train"] & parts["val"]) and not (parts["train"] & parts["test"])
    assert not (parts["val"] & parts["test"])
    if name == "fashion-mnist":  # and by content: no image of val or test is also a training image
        train = {hashlib.sha1(r.tobytes()).hexdigest() for r in dmod._store(ds, "train").raw.numpy()}
        for split in ("val", "test"):
            sample = dmod._store(ds, split).raw.numpy()[::5]
            assert not any(hashlib.sha1(r.tobytes()).hexdigest() in train for r in sample), split


@pytest.mark.parametrize("name", ["digits", "mnist-5k"])
def test_normalisation_statistics_are_the_training_split_alone(name, digits, mnist5k):
    ds = {"digits": digits, "mnist-5k": mnist5k}[name]
    train = ds.x_train.double()  # float32 pixels: k/255 rounded, hence the 1e-7 (the statistics are exact)
    assert ds.mean[0] == pytest.approx(float(train.mean()), abs=1e-7)
    assert ds.std[0] == pytest.approx(float(train.std()), abs=1e-7)
    with_val = torch.cat([ds.x_train, ds.x_val]).double()
    assert abs(ds.mean[0] - float(with_val.mean())) > 1e-5  # train+val would give another value (the test can fail)
    x = ds.normalize(ds.x_train)
    assert abs(float(x.mean())) < 1e-5 and abs(float(x.std()) - 1) < 1e-4


def test_validation_split_is_stratified_and_a_tenth(digits):
    assert len(digits.y_val) == round(VAL_FRACTION * (len(digits.y_train) + len(digits.y_val)))
    val = torch.tensor(digits.class_counts("val"), dtype=torch.float64)
    train = torch.tensor(digits.class_counts("train"), dtype=torch.float64)
    share = val / (val + train)
    assert float(share.min()) > 0.09 and float(share.max()) < 0.12


def test_split_accessor_and_unknown_split(digits):
    x, y = digits.split("val")
    assert x is digits.x_val and y is digits.y_val
    assert torch.equal(digits.x_val[digits.class_indices(3, "val")],
                       digits.x_val[digits.y_val == 3])
    for bad in ("validation", "", "Train"):
        with pytest.raises(InvalidInputError, match="unknown split"):
            digits.split(bad)
        with pytest.raises(InvalidInputError, match="unknown split"):
            digits.class_counts(bad)
    assert "1293 train / 144 val / 360 test" in digits.describe()


def test_uint8_images_read_as_float32_once(mnist5k):
    store = dmod._store(mnist5k, "test")
    assert store.raw.dtype == torch.uint8 and tuple(store.raw.shape) == (1000, 1, 28, 28)
    x = mnist5k.x_test
    assert x.dtype == torch.float32 and x is mnist5k.x_test  # converted once, then kept
    assert torch.equal(x, store.raw.float() / 255)
    fresh = dmod.PixelStore(store.raw.clone())
    assert fresh.nbytes() == 1000 * 784  # bytes only, until something reads them
    fresh.images()
    assert fresh.nbytes() == 1000 * 784 * 5


def test_carve_validation_small_and_uneven_classes():
    labels = np.array([0] * 9 + [1] * 3 + [2])  # class 2 has a single image: it keeps it
    keep, val = carve_validation(labels, 0.25, seed=0)
    assert len(val) == 3 and set(keep.tolist()) | set(val.tolist()) == set(range(13))
    assert 12 in keep and sorted(labels[val].tolist()) == [0, 0, 1]
    keep2, val2 = carve_validation(labels, 0.25, seed=0)
    assert np.array_equal(val, val2)
    assert not np.array_equal(carve_validation(np.repeat(np.arange(3), 20), 0.1, seed=1)[1],
                              carve_validation(np.repeat(np.arange(3), 20), 0.1, seed=0)[1])
    assert len(carve_validation(np.array([0, 1, 0, 1]), 0.1)[1]) == 0  # too few for a validation image


# ------------------------------------------------------------------------------------------------ ZCA

@pytest.mark.parametrize("name", ["digits", "mnist-5k"])
def test_zca_round_trip_and_whitened_covariance(name):
    ds = load_dataset(name, zca=True)
    plain = load_dataset(name)
    assert ds is not plain and ds is load_dataset(name, zca=True)  # its own cache entry, reused
    assert ds.meta["zca"] is True and plain.meta["zca"] is False and plain.whitening is None
    assert ds.x_train is plain.x_train and ds.y_val is plain.y_val  # the same images, not a copy
    for split in SPLITS:
        x = ds.split(split)[0][:500]
        assert float((ds.denormalize(ds.normalize(x)) - x).abs().max()) < 1e-4
    assert not torch.allclose(ds.normalize(plain.x_test[:20]), plain.normalize(plain.x_test[:20]), atol=1e-2)
    w = ds.whitening
    d = int(np.prod(ds.image_shape))
    z = plain.normalize(plain.x_train).double().reshape(len(plain.y_train), d)
    cov = torch.cov(z.T, correction=0)
    assert w.regularizer == pytest.approx(ZCA_STRENGTH * float(torch.trace(cov)) / d, rel=1e-6)
    white = ds.normalize(ds.x_train).double().reshape(len(ds.y_train), d)
    assert float(white.mean(0).abs().max()) < 1e-4
    wcov = torch.cov(white.T, correction=0)
    # identity up to the regulariser: W (C + λI) W = I exactly, so cov(white) = I - λ W²
    eye = torch.eye(d, dtype=torch.float64)
    assert torch.allclose(wcov + w.regularizer * w.matrix @ w.matrix, eye, atol=1e-4)
    eig = torch.linalg.eigvalsh(wcov).flip(0)
    strong = w.eigenvalues > 10 * w.regularizer  # directions well above the regulariser are whitened to ~1
    assert int(strong.sum()) >= 5 and float(eig[strong].min()) > 0.9 and float(eig.max()) < 1 + 1e-4


def test_zca_is_differentiable_and_handles_one_image(digits):
    ds = load_dataset("digits", zca=True)
    x = digits.x_train[:4].clone().requires_grad_(True)
    ds.normalize(x).pow(2).sum().backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0
    one = digits.x_test[7]
    assert torch.allclose(ds.normalize(one), ds.normalize(one[None])[0], atol=1e-6)
    assert torch.allclose(ds.denormalize(ds.normalize(one)), one, atol=1e-5)


def test_zca_refuses_large_images(tmp_path):
    root = _make_folder(tmp_path / "big", size=(40, 40))
    with pytest.raises(InvalidInputError, match="ZCA whitening is limited"):
        load_dataset(f"folder:{root}", image_size=40, zca=True)


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

def _idx_bytes(array: np.ndarray, dtype_code: int = 0x08) -> bytes:
    """An IDX file in the real format: two zero bytes, the element type, the rank, big-endian sizes, the bytes."""
    header = struct.pack(">HBB", 0, dtype_code, array.ndim) + b"".join(struct.pack(">I", d) for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def _write_idx(path, array: np.ndarray, compress: bool = False) -> None:
    payload = _idx_bytes(array)
    path.parent.mkdir(parents=True, exist_ok=True)
    if compress:
        path.with_name(path.name + ".gz").write_bytes(gzip.compress(payload))
    else:
        path.write_bytes(payload)


def _idx_set(folder, n_train: int = 30, n_test: int = 20, compress: bool = False, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    arrays = {"train-images-idx3-ubyte": rng.integers(0, 256, size=(n_train, 28, 28)),
              "train-labels-idx1-ubyte": np.arange(n_train) % 10,
              "t10k-images-idx3-ubyte": rng.integers(0, 256, size=(n_test, 28, 28)),
              "t10k-labels-idx1-ubyte": np.arange(n_test) % 10}
    for stem, arr in arrays.items():
        _write_idx(folder / stem, arr, compress)
    return arrays


@pytest.fixture
def no_system_package(monkeypatch):
    """As on a machine without Debian's dataset packages."""
    monkeypatch.setattr(dataset_files, "SYSTEM_DATA_DIRS", {})
    assert not dataset_available("fashion-mnist", "/nonexistent-data-root")  # the file search no longer sees them


@pytest.mark.parametrize("name,layout,compress", [("mnist", "MNIST/raw", False),
                                                  ("fashion-mnist", "FashionMNIST/raw", True),
                                                  ("kmnist", "kmnist", True),
                                                  ("fashion-mnist", "fashion-mnist", False)])
def test_idx_files_load_raw_or_gz_in_both_layouts(tmp_path, no_system_package, name, layout, compress):
    arrays = _idx_set(tmp_path / layout, compress=compress)
    row = next(r for r in list_datasets(tmp_path) if r["name"] == name)
    assert row["available"] and not row["offline"] and row["path"] == str(tmp_path / layout)
    ds = load_dataset(name, data_root=tmp_path)
    assert ds.image_shape == (1, 28, 28) and ds.num_classes == 10 and ds.meta["source"] == str(tmp_path / layout)
    assert (len(ds.y_train), len(ds.y_val), len(ds.y_test)) == (27, 3, 20)  # a tenth of 30 for validation
    train_pos = ds.meta["indices"]["train"]
    assert torch.equal(ds.y_train, torch.from_numpy(arrays["train-labels-idx1-ubyte"][train_pos]))
    assert np.array_equal((ds.x_train[3, 0] * 255).round().numpy(), arrays["train-images-idx3-ubyte"][train_pos[3]])
    assert np.array_equal((ds.x_test[5, 0] * 255).round().numpy(), arrays["t10k-images-idx3-ubyte"][5])
    assert torch.equal(ds.y_test, torch.from_numpy(arrays["t10k-labels-idx1-ubyte"]))


def test_data_root_named_after_the_set_is_its_flat_folder(tmp_path, no_system_package):
    root = tmp_path / "fashion-mnist"
    _idx_set(root, compress=True, seed=5)
    assert len(load_dataset("fashion-mnist", data_root=root).y_test) == 20
    # the three sets share file names: a folder named after one is not read as another
    assert not dataset_available("mnist", root) and not dataset_available("kmnist", root)
    assert not dataset_available("mnist", tmp_path)  # nor is a root holding fashion-mnist/ read as mnist


def test_gz_only_data_root_is_available_and_loads(tmp_path, no_system_package):
    """Availability and loading agree: what `datasets` lists as available, `load_dataset` loads."""
    _idx_set(tmp_path / "FashionMNIST" / "raw", compress=True)
    assert dataset_available("fashion-mnist", tmp_path)
    assert len(load_dataset("fashion-mnist", data_root=tmp_path).y_test) == 20
    (tmp_path / "FashionMNIST" / "raw" / "t10k-labels-idx1-ubyte.gz").unlink()  # three of four files
    fresh = tmp_path / "copy"
    _idx_set(fresh / "MNIST" / "raw", compress=True)
    (fresh / "MNIST" / "raw" / "train-images-idx3-ubyte.gz").unlink()
    assert not dataset_available("mnist", fresh)
    with pytest.raises(DatasetUnavailableError, match="MNIST/raw/train-images-idx3-ubyte"):
        load_dataset("mnist", data_root=fresh)


def test_system_package_folder_makes_fashion_mnist_offline(tmp_path, monkeypatch):
    package = tmp_path / "usr-share-datasets-fashion-mnist"
    _idx_set(package, n_train=40, compress=True, seed=3)
    monkeypatch.setattr(dataset_files, "SYSTEM_DATA_DIRS", {"fashion-mnist": (package,)})
    rows = list_datasets(tmp_path / "empty-root")
    assert [r["name"] for r in rows][:3] == ["digits", "mnist-5k", "fashion-mnist"]
    assert rows[2]["offline"] and rows[2]["available"] and rows[2]["path"] == str(package)
    assert not next(r for r in rows if r["name"] == "mnist")["available"]
    ds = load_dataset("fashion-mnist", data_root=tmp_path / "empty-root")
    assert (len(ds.y_train), len(ds.y_val), len(ds.y_test)) == (36, 4, 20) and ds.meta["system_package"]
    # the data root comes first: a set placed there is the one loaded
    _idx_set(tmp_path / "root" / "fashion-mnist", n_train=50)
    assert len(load_dataset("fashion-mnist", data_root=tmp_path / "root").y_test) == 20
    assert next(r for r in list_datasets(tmp_path / "root") if r["name"] == "fashion-mnist")["offline"] is False


def _corrupt_cases():
    good_images = _idx_bytes(np.random.default_rng(4).integers(0, 256, size=(30, 28, 28)))
    return {
        "not-gzip": ("train-images-idx3-ubyte.gz", b"plain bytes, not gzip", "BadGzipFile"),
        "truncated-gzip": ("train-images-idx3-ubyte.gz", gzip.compress(good_images)[:200], "EOFError"),
        "bad-magic": ("train-images-idx3-ubyte", b"\x01\x02" + good_images[2:], "IDX header"),
        "float-type": ("train-images-idx3-ubyte", good_images[:2] + b"\x0d" + good_images[3:], "element type 0x0d"),
        "short": ("train-images-idx3-ubyte", good_images[:-1], "cut short"),
        "padded": ("train-images-idx3-ubyte.gz", gzip.compress(good_images + b"\x00"), "more bytes"),
        "wrong-rank": ("train-images-idx3-ubyte", _idx_bytes(np.zeros((30, 784))), "rank 2, expected 3"),
        "label-count": ("train-labels-idx1-ubyte", _idx_bytes(np.zeros(29)), "30 images but"),
        "label-range": ("train-labels-idx1-ubyte", _idx_bytes(np.full(30, 12)), "label 12"),
    }


@pytest.mark.parametrize("case", list(_corrupt_cases()))
def test_corrupt_idx_file_is_one_clear_error_naming_it(tmp_path, no_system_package, case):
    filename, payload, why = _corrupt_cases()[case]
    folder = tmp_path / "KMNIST" / "raw"
    _idx_set(folder)
    stem = filename.removesuffix(".gz")
    (folder / stem).unlink()
    (folder / filename).write_bytes(payload)
    assert dataset_available("kmnist", tmp_path)  # the files are there; reading them is what fails
    with pytest.raises(InvalidInputError) as err:
        load_dataset("kmnist", data_root=tmp_path)
    message = str(err.value)
    assert why in message and filename in message and "Traceback" not in message


def test_read_idx_reads_header_shape(tmp_path):
    arr = np.arange(2 * 3 * 5).reshape(2, 3, 5) % 256
    _write_idx(tmp_path / "a-idx3-ubyte", arr, compress=True)
    out = read_idx(tmp_path / "a-idx3-ubyte.gz")
    assert out.dtype == np.uint8 and out.shape == (2, 3, 5) and np.array_equal(out, arr)


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
    assert (len(ds.y_train), len(ds.y_val)) == (18, 2) and ds.y_test.tolist() == list(range(6))
    every = np.concatenate([batches[f"data_batch_{i}"][0] for i in range(1, 6)]).reshape(-1, 3, 32, 32)
    for split in ("train", "val"):
        pos = ds.meta["indices"][split][0]
        assert np.array_equal((ds.split(split)[0][0] * 255).round().numpy(), every[pos])
    assert dmod._store(ds, "train").raw.dtype == torch.uint8


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
    assert (len(ds.y_train), len(ds.y_val), len(ds.y_test)) == (13, 1, 4)  # 80/20, then a tenth of 14 for val
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

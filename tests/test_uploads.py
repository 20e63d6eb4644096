"""Uploads: a zip of class folders becomes a dataset a method runs on; unsafe zips are refused before extraction."""
from __future__ import annotations

import dataclasses
import io
import stat
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from distill_core import uploads
from distill_core.data import load_dataset, unregister_dataset, register_dataset
from distill_core.errors import DistillError, InvalidInputError
from distill_core.limits import LIMITS


def _png(seed: int, size: tuple[int, int] = (20, 20), mode: str = "RGB") -> bytes:
    rng = np.random.default_rng(seed)
    shape = size[::-1] + ((3,) if mode == "RGB" else ())
    buf = io.BytesIO()
    Image.fromarray((rng.random(shape) * 255).astype(np.uint8), mode).save(buf, "PNG")
    return buf.getvalue()


def _zip(files: dict[str, bytes], symlinks: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
        for name, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name)
            info.create_system = 3
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, target)
    return buf.getvalue()


def _three_classes(prefix: str = "", n: int = 6, mode: str = "RGB") -> dict[str, bytes]:
    return {f"{prefix}{c}/{i}.png": _png(10 * k + i, mode=mode) for k, c in enumerate(("cat", "dog", "fox"))
            for i in range(n)}


def test_zip_of_three_classes_runs_a_distillation(tmp_path):
    from distill_core.evaluate import evaluate_summary
    from distill_core.methods import create_method
    from distill_core.pipeline import DistillRun
    from distill_core.runs import load_run, save_run

    ds = uploads.dataset_from_zip(_zip(_three_classes()), image_size=12, name="pets", filename="pets.zip")
    try:
        assert ds.name == "upload:pets (12px)" and ds.class_names == ["cat", "dog", "fox"]
        assert ds.image_shape == (3, 12, 12) and len(ds.y_train) + len(ds.y_val) + len(ds.y_test) == 18
        # stratified 80/20, then a tenth of the 14 training images for validation
        assert sum(ds.class_counts()) == 13 and sum(ds.class_counts("val")) == 1 and min(ds.class_counts("test")) >= 1
        assert float(ds.x_train.min()) >= 0 and float(ds.x_train.max()) <= 1
        register_dataset(ds)
        assert load_dataset(ds.name) is ds
        run = DistillRun(create_method("random", ds, 2, seed=0), 1)
        summary = run.run()
        assert summary.images.shape == (6, 3, 12, 12)
        result = evaluate_summary(summary, ds, "quick", reps=1, epochs=3, device="cpu")
        assert 0.0 <= result.acc_mean <= 1.0
        out = save_run(tmp_path / "run", summary, {"steps": 1, "seed": 0})
        assert load_run(out).summary.dataset == ds.name
    finally:
        unregister_dataset(ds.name)


def test_wrapping_folder_junk_and_symlinks_are_looked_through():
    files = _three_classes("my-images/", mode="L")
    files.update({"__MACOSX/my-images/cat/._0.png": b"junk", "my-images/.DS_Store": b"junk",
                  "my-images/cat/.hidden.png": b"junk", "my-images/notes.txt": b"hello"})
    ds = uploads.dataset_from_zip(_zip(files, symlinks={"my-images/dog/link.png": "/etc/passwd"}), image_size=8)
    assert ds.class_names == ["cat", "dog", "fox"] and ds.channels == 1
    assert len(ds.y_train) + len(ds.y_val) + len(ds.y_test) == 18 and ds.meta["skipped"] == []


def test_file_object_and_path_sources(tmp_path):
    data = _zip(_three_classes())
    ds = uploads.dataset_from_zip(io.BytesIO(data), image_size=8, filename="x.zip")
    assert ds.name == "upload:x (8px)"
    p = tmp_path / "faces.zip"
    p.write_bytes(data)
    assert uploads.dataset_from_zip(p, image_size=8).name == "upload:faces (8px)"


@pytest.mark.parametrize("name", ["../evil/a.png", "cls/../../evil.png", "/abs/a.png", "C:/win/a.png",
                                  "..\\evil\\a.png"])
def test_zip_slip_is_refused(tmp_path, name):
    files = _three_classes()
    files[name] = _png(99)
    dest = tmp_path / "x"
    dest.mkdir()
    with pytest.raises(InvalidInputError, match="refused"):
        uploads.safe_extract(_zip(files), dest)
    assert not any(dest.rglob("*")), "nothing may be extracted from a refused zip"
    assert not (tmp_path / "evil").exists()


def test_zip_bomb_is_refused_before_extracting(tmp_path):
    small = dataclasses.replace(LIMITS, unpacked_max_mb=1)
    files = _three_classes()
    files["cat/big.png"] = b"\0" * (2 * 2 ** 20)  # compresses to a few KB, unpacks to 2 MB
    data = _zip(files)
    assert len(data) < 100_000
    dest = tmp_path / "x"
    dest.mkdir()
    with pytest.raises(InvalidInputError, match="unpack to more than 1 MB"):
        uploads.safe_extract(data, dest, limits=small)
    assert not any(dest.rglob("*"))
    few = dataclasses.replace(LIMITS, max_files=10)
    with pytest.raises(InvalidInputError, match="more than 10 files"):
        uploads.safe_extract(_zip(_three_classes()), dest, limits=few)


def test_upload_size_limit():
    tiny = dataclasses.replace(LIMITS, upload_max_mb=0)
    with pytest.raises(InvalidInputError, match="limit"):
        uploads.dataset_from_zip(_zip(_three_classes()), limits=tiny)


@pytest.mark.parametrize("data,match", [
    (b"", "empty"),
    (_zip({}), "empty"),
    (b"PK\x03\x04 definitely not a zip", "not a zip"),
    (_zip({"a/": b"", "b/": b""}), "no files"),
    (_zip({"a/readme.txt": b"x", "b/readme.txt": b"y"}), "no images"),
    (_zip({"1.png": _png(1), "2.png": _png(2)}), "class folders"),
    (_zip({"a/1.png": _png(1), "a/2.png": _png(2)}), "at least 2 classes"),
], ids=["zero-bytes", "empty-zip", "not-a-zip", "only-folders", "no-images", "no-class-folders", "one-class"])
def test_unusable_zips_give_one_sentence(data, match):
    with pytest.raises(DistillError, match=match) as info:
        uploads.dataset_from_zip(data, image_size=8)
    assert "\n" not in str(info.value)


def test_bad_image_size_and_fraction():
    data = _zip(_three_classes())
    for size in (0, 3, 10_000, 8.5, True):
        with pytest.raises(InvalidInputError, match="image size"):
            uploads.dataset_from_zip(data, image_size=size)
    with pytest.raises(InvalidInputError, match="test fraction"):
        uploads.dataset_from_zip(data, image_size=8, test_fraction=0.9)


def test_server_folder(tmp_path):
    for rel, blob in _three_classes("outer/").items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(blob)
    ds = uploads.dataset_from_folder(str(tmp_path), image_size=8, name="mine")
    assert ds.name == "upload:mine (8px)" and ds.class_names == ["cat", "dog", "fox"]
    assert Path(ds.meta["source"]) == tmp_path / "outer"
    with pytest.raises(InvalidInputError, match="does not exist"):
        uploads.dataset_from_folder(str(tmp_path / "missing"))
    with pytest.raises(InvalidInputError, match="no folder"):
        uploads.dataset_from_folder("  ")


def test_an_upload_kept_with_the_runs_is_rebuilt_by_name(tmp_path):
    data = _zip(_three_classes(prefix="pets/"))
    ds = uploads.dataset_from_zip(data, image_size=12, filename="my pets.zip")
    kept = uploads.store_zip_dataset(ds, data, "my pets.zip", 12, None, runs_dir=tmp_path)
    assert kept.parent == tmp_path / ".datasets" and (kept / "source.zip").read_bytes() == data
    assert uploads.stored_datasets(tmp_path) == ["upload:my pets (12px)"]
    again = uploads.load_stored_dataset(ds.name, tmp_path)
    assert again.name == ds.name and again.class_names == ds.class_names
    assert torch_equal(again.x_train, ds.x_train) and torch_equal(again.y_test, ds.y_test)  # same split
    named = uploads.dataset_from_zip(data, image_size=8, name="zoo", filename="x.zip")
    uploads.store_zip_dataset(named, io.BytesIO(data), "x.zip", 8, "zoo", runs_dir=tmp_path)
    assert set(uploads.stored_datasets(tmp_path)) == {ds.name, "upload:zoo (8px)"}
    assert uploads.load_stored_dataset("upload:zoo (8px)", tmp_path).image_shape == (3, 8, 8)
    with pytest.raises(InvalidInputError, match="not kept with the runs"):
        uploads.load_stored_dataset("upload:nothing (8px)", tmp_path)
    from distill_core.runs import list_runs
    assert list_runs(tmp_path) == []  # the kept datasets are not runs


def test_a_server_folder_is_kept_by_its_path(tmp_path):
    root = tmp_path / "imgs"
    for name, payload in _three_classes().items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(payload)
    ds = uploads.dataset_from_folder(root, image_size=8, name="shapes")
    uploads.store_folder_dataset(ds, root, 8, "shapes", runs_dir=tmp_path / "runs")
    assert uploads.load_stored_dataset(ds.name, tmp_path / "runs").class_names == ["cat", "dog", "fox"]


def torch_equal(a, b) -> bool:
    import torch

    return a.shape == b.shape and bool(torch.equal(a, b))


def test_uploads_keep_their_original_file_names_per_split_and_in_the_stimuli_manifest(tmp_path):
    from distill_core import stimuli
    from distill_core.methods import create_method

    files = _three_classes(prefix="pets/")
    files["pets/dog/broken.png"] = b"not an image"   # skipped: the names of the others stay aligned
    data = _zip(files)
    ds = uploads.dataset_from_zip(data, image_size=12, filename="pets.zip")
    for split, x, y in (("train", ds.x_train, ds.y_train), ("val", ds.x_val, ds.y_val),
                        ("test", ds.x_test, ds.y_test)):
        names = ds.meta[f"{split}_files"]
        assert len(names) == len(y)
        for i, name in enumerate(names):
            cls, stem = name.split("/")
            assert ds.class_names[int(y[i])] == cls and stem != "broken.png"
            # the image at position i is the one decoded from that file (same pixels after the same resize)
            k, j = ("cat", "dog", "fox").index(cls), int(stem.split(".")[0])
            with Image.open(io.BytesIO(_png(10 * k + j))) as img:
                expected = np.asarray(img.convert("RGB").resize((12, 12), Image.BICUBIC), dtype=np.float32) / 255
            assert np.allclose(x[i].permute(1, 2, 0).numpy(), expected, atol=1 / 255 + 1e-6)
    # kept with the runs and rebuilt: the same names
    uploads.store_zip_dataset(ds, data, "pets.zip", 12, None, runs_dir=tmp_path)
    assert uploads.load_stored_dataset(ds.name, tmp_path).meta["train_files"] == ds.meta["train_files"]
    # the stimuli manifest names each selected real image's file
    summary = create_method("random", ds, 2, seed=0).summary()
    items = stimuli.stimuli_from_summary(summary, dataset=ds)
    with zipfile.ZipFile(io.BytesIO(stimuli.stimulus_zip(items))) as zf:
        import csv
        rows = list(csv.DictReader(io.StringIO(zf.read("manifest.csv").decode("utf-8"))))
    assert len(rows) == 6
    assert [r["original_file"] for r in rows] == [ds.meta["train_files"][i] for i in summary.meta["indices"]]
    assert all(r["original_file"].startswith(r["class"] + "/") for r in rows)

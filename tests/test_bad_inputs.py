"""The bad-input corpus through the CLI and the core.

Every case builds its own files in tmp_path and runs the real CLI entry point (`cli.main`, in-process so limits can
be monkeypatched; a few also through `python -m distill_core` in a subprocess). A clean answer is: a non-zero exit
and exactly one line on stderr starting with 'error:' that says what is wrong, no traceback — or, for inputs that
must be accepted (odd image modes, a few bad files among good ones), exit 0 and a run folder.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch

import bad_corpus as bc
from distill_core.cli import main

ROOT = Path(__file__).resolve().parents[1]
OK = None  # the input must be accepted


@dataclass
class Case:
    id: str
    build: Callable[[Path, pytest.MonkeyPatch], list[str]]
    expect: str | None  # regex the error line must match, or OK


def _distill_folder(root: Path, tmp: Path, *extra: str) -> list[str]:
    return ["distill", "--dataset", f"folder:{root}", "--method", "random", "--ipc", "1", "--image-size", "8",
            "--device", "cpu", "--out", str(tmp / "out"), *extra]


def _digits(tmp: Path, *extra: str, method: str = "random", ipc: str = "1") -> list[str]:
    return ["distill", "--dataset", "digits", "--method", method, "--ipc", ipc, "--device", "cpu",
            "--out", str(tmp / "out"), *extra]


def _evaluate(run: Path) -> list[str]:
    return ["evaluate", str(run), "--reps", "1", "--device", "cpu"]


# ------------------------------------------------------------------------------------ folder builders

def _folder_with(files: dict[str, bytes]) -> Callable[[Path], Path]:
    def build(tmp: Path) -> Path:
        root = tmp / "data"
        for rel, data in files.items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(data)
        root.mkdir(exist_ok=True)
        return root
    return build


def _folder_case(id: str, files_or_builder, expect: str | None, *extra: str, limits: dict | None = None) -> Case:
    builder = files_or_builder if callable(files_or_builder) else _folder_with(files_or_builder)

    def build(tmp: Path, mp: pytest.MonkeyPatch) -> list[str]:
        if limits:
            bc.patch_limits(mp, **limits)
        return _distill_folder(builder(tmp), tmp, *extra)
    return Case(id, build, expect)


def _two_classes(name: str, data_for: Callable[[int], bytes], per_class: int = 3) -> dict[str, bytes]:
    return {f"{c}/img{i}{name}": data_for(i + 10 * k) for k, c in enumerate(("a", "b")) for i in range(per_class)}


PNG = bc.png_bytes
_rand = lambda i: bc.rng(i).integers(0, 256, 300, dtype=np.uint8).tobytes()  # noqa: E731


def _mixed_modes(tmp: Path) -> Path:
    root = tmp / "data"
    specs = [("RGBA", "png"), ("P", "png"), ("P-transparent", "png"), ("I;16", "png"), ("CMYK", "jpg"),
             ("LA", "png"), ("1", "png"), ("F", "tiff"), ("I", "tiff"), ("L", "bmp"), ("RGB", "webp"),
             ("P", "gif"), ("CMYK", "tiff")]
    for k, (mode, ext) in enumerate(specs):
        for c in ("a", "b"):
            bc.save_image(root / c / f"{mode.replace(';', '_')}-{k}.{ext}", mode, size=10 + k, seed=k)
    return root


def _mode_folder(mode: str, ext: str = "png") -> Callable[[Path], Path]:
    def build(tmp: Path) -> Path:
        root = tmp / "data"
        for c in ("a", "b"):
            for i in range(3):
                bc.save_image(root / c / f"img{i}.{ext}", mode, size=12, seed=i + (7 if c == "b" else 0))
        return root
    return build


def _symlinks_only(tmp: Path) -> Path:
    real = bc.image_folder(tmp / "elsewhere")
    root = tmp / "data"
    root.mkdir()
    os.symlink(real / "cat", root / "cat")  # symlinked class folders are not followed
    (root / "dog").mkdir()
    for f in (real / "dog").iterdir():
        os.symlink(f, root / "dog" / f.name)  # nor symlinked files
    return root


def _good_plus_junk(tmp: Path) -> Path:
    root = bc.image_folder(tmp / "data", per_class=3)
    (root / "cat" / "broken.png").write_bytes(PNG(seed=5)[:40])
    (root / "dog" / "notes.txt").write_text("hello")
    (root / "dog" / "fake.jpg").write_text("not a jpeg")
    (root / "dog" / "tiny.png").write_bytes(PNG(size=2))
    os.symlink("/etc/hostname", root / "dog" / "link.png")
    return root


def _many_classes(n: int) -> Callable[[Path], Path]:
    return lambda tmp: bc.image_folder(tmp / "data", classes=[f"c{i}" for i in range(n)], per_class=2, size=6)


FOLDER_CASES = [
    _folder_case("corrupt-images", _two_classes(".png", _rand), r"no readable images.*not a readable image"),
    _folder_case("truncated-png", _two_classes(".png", lambda i: PNG(size=40, seed=i)[:120]), "no readable images"),
    _folder_case("truncated-jpeg", _two_classes(".jpg", lambda i: bc.jpeg_bytes(seed=i)[:300]), "no readable images"),
    _folder_case("zero-byte-images", _two_classes(".png", lambda i: b""), "no readable images"),
    _folder_case("text-renamed-png", _two_classes(".png", lambda i: b"hello world\n" * 5), "no readable images"),
    _folder_case("non-image-files", _two_classes(".txt", lambda i: b"a,b\n1,2\n"), "no readable images"),
    _folder_case("empty-folder", {}, "no readable images"),
    _folder_case("images-without-class-folders", {f"img{i}.png": PNG(seed=i) for i in range(4)},
                 "no readable images"),
    _folder_case("one-class", {f"only/img{i}.png": PNG(seed=i) for i in range(4)}, "at least 2 classes"),
    _folder_case("class-with-one-image", {**{f"a/img{i}.png": PNG(seed=i) for i in range(3)},
                                          "b/img0.png": PNG(seed=9)}, r"at least 2 readable images.*\bb\b"),
    _folder_case("images-too-small", _two_classes(".png", lambda i: PNG(size=3, seed=i)),
                 r"no readable images.*smaller than 4 pixels"),
    _folder_case("decompression-bomb-image", _two_classes(".png", lambda i: bc.big_canvas_png(5000, 4000)),
                 r"no readable images.*larger than the limit"),
    _folder_case("symlinks-only", _symlinks_only, "no readable images|at least 2 classes"),
    _folder_case("too-many-classes", _many_classes(5), r"5 class folders; the limit is 4", limits={"max_classes": 4}),
    _folder_case("too-many-files", lambda tmp: bc.image_folder(tmp / "data", per_class=4, size=6),
                 r"more than 5 image files", limits={"max_files": 5}),
    _folder_case("ipc-larger-than-class", lambda tmp: bc.image_folder(tmp / "data", per_class=3),
                 r"IPC 5 is larger than class", "--ipc", "5"),
    _folder_case("image-size-too-small", lambda tmp: bc.image_folder(tmp / "data"), "image size must be between",
                 "--image-size", "2"),
    _folder_case("image-size-too-large", lambda tmp: bc.image_folder(tmp / "data"), "image size must be between",
                 "--image-size", "100000"),
    _folder_case("folder-is-a-file", lambda tmp: (tmp / "f.png").write_bytes(PNG()) and tmp / "f.png",
                 "not a folder"),
    _folder_case("folder-missing", lambda tmp: tmp / "nowhere", "does not exist"),
    # accepted inputs: these must LOAD
    _folder_case("mixed-modes", _mixed_modes, OK),
    _folder_case("mode-RGBA", _mode_folder("RGBA"), OK),
    _folder_case("mode-palette", _mode_folder("P"), OK),
    _folder_case("mode-palette-transparent", _mode_folder("P-transparent"), OK),
    _folder_case("mode-16-bit", _mode_folder("I;16"), OK),
    _folder_case("mode-CMYK-jpeg", _mode_folder("CMYK", "jpg"), OK),
    _folder_case("mode-CMYK-tiff", _mode_folder("CMYK", "tiff"), OK),
    _folder_case("mode-float-tiff", _mode_folder("F", "tiff"), OK),
    _folder_case("mode-bilevel", _mode_folder("1"), OK),
    _folder_case("some-junk-among-good-images", _good_plus_junk, OK),
]


# ------------------------------------------------------------------------------------ parameter cases

def _param_case(id: str, expect: str | None, *extra: str, ipc: str = "1", method: str = "random") -> Case:
    return Case(id, lambda tmp, mp: _digits(tmp, *extra, ipc=ipc, method=method), expect)


LR_METHOD = "dc"  # a distiller: its images' learning rate is a --param


def _lr_param_case(id: str, value: str, expect: str) -> Case:
    def build(tmp: Path, mp: pytest.MonkeyPatch) -> list[str]:
        return _digits(tmp, "--param", f"lr={value}", method=LR_METHOD)
    return Case(id, build, expect)


def _existing_out(tmp: Path, mp: pytest.MonkeyPatch) -> list[str]:
    (tmp / "out").mkdir()
    return _digits(tmp)


def _out_under_a_file(tmp: Path, mp: pytest.MonkeyPatch) -> list[str]:
    (tmp / "afile").write_text("x")
    return ["distill", "--dataset", "digits", "--method", "random", "--ipc", "1", "--out", str(tmp / "afile" / "run")]


PARAM_CASES = [
    _param_case("ipc-zero", r"IPC .*positive", ipc="0"),
    _param_case("ipc-negative", r"IPC .*positive", ipc="-3"),
    _param_case("ipc-above-limit", r"IPC 101 is above the limit", ipc="101"),
    _param_case("ipc-not-a-number", r"--ipc: invalid int value", ipc="two"),
    _param_case("steps-zero", r"steps must be a positive whole number", "--steps", "0"),
    _param_case("steps-negative", r"steps must be a positive whole number", "--steps", "-5"),
    _param_case("steps-above-limit", r"steps 1000001 is above the limit", "--steps", "1000001"),
    _param_case("steps-not-a-number", r"--steps: invalid int value", "--steps", "1e3"),
    _param_case("lr-nan", r"--lr must be a positive finite number, got nan", "--lr", "nan"),
    _param_case("lr-inf", r"--lr must be a positive finite number, got inf", "--lr", "inf"),
    _param_case("lr-negative-inf", r"--lr must be a positive finite number", "--lr=-inf"),
    _param_case("lr-zero", r"--lr must be a positive finite number", "--lr", "0"),
    _param_case("lr-negative", r"--lr must be a positive finite number", "--lr=-0.1"),
    _lr_param_case("param-lr-nan", "nan", r"must be (a )?finite|positive finite"),
    _lr_param_case("param-lr-inf", "inf", r"must be (a )?finite|positive finite"),
    _lr_param_case("param-lr-negative", "-1", r"must not be negative|must be positive"),
    _lr_param_case("param-lr-not-a-number", "fast", r"not a valid float"),
    _param_case("param-without-equals", r"--param needs KEY=VALUE", "--param", "lr"),
    _param_case("param-unknown-setting", r"unknown setting 'bogus'", "--param", "bogus=1"),
    _param_case("unknown-method", r"unknown method 'nope'; choose one of", method="nope"),
    Case("unknown-dataset", lambda tmp, mp: ["distill", "--dataset", "imagenet", "--method", "random", "--ipc", "1"],
         r"unknown dataset 'imagenet'"),
    Case("empty-dataset-name", lambda tmp, mp: ["distill", "--dataset", " ", "--method", "random", "--ipc", "1"],
         r"no dataset name"),
    Case("offline-torchvision-set", lambda tmp, mp: ["distill", "--dataset", "cifar10", "--method", "random",
                                                     "--ipc", "1", "--data-root", str(tmp / "empty")],
         r"not available offline: place .*data_batch_1"),
    _param_case("unknown-device", r"--device: invalid choice", "--device", "tpu"),
    _param_case("unknown-eval-protocol", r"unknown protocol 'bogus'", "--eval", "bogus"),
    _param_case("eval-reps-zero", r"--eval-reps must be at least 1", "--eval", "quick", "--eval-reps", "0"),
    Case("out-exists", _existing_out, r"already exists"),
    Case("out-under-a-file", _out_under_a_file, r"cannot (write|create)"),
    Case("bench-ipc-zero", lambda tmp, mp: ["bench", "--dataset", "digits", "--ipc", "0", "--methods", "random"],
         r"every --ipc must be a positive"),
    Case("bench-steps-negative", lambda tmp, mp: ["bench", "--dataset", "digits", "--ipc", "1", "--methods", "random",
                                                  "--steps", "-1"], r"steps must be a positive"),
    Case("no-command", lambda tmp, mp: [], r"required: command|the following arguments are required"),
]


# ------------------------------------------------------------------------------------- run folders

def _run_case(id: str, spoil: Callable[[Path], None] | None, expect: str | None, extra: tuple = ()) -> Case:
    def build(tmp: Path, mp: pytest.MonkeyPatch) -> list[str]:
        run = bc.good_run(tmp / "run")
        if spoil is not None:
            spoil(run)
        return [*_evaluate(run), *extra]
    return Case(id, build, expect)


def _write(name: str, data: bytes | str) -> Callable[[Path], None]:
    def spoil(run: Path) -> None:
        p = run / name
        p.write_bytes(data if isinstance(data, bytes) else data.encode())
    return spoil


def _truncate(name: str, keep: int) -> Callable[[Path], None]:
    return lambda run: (run / name).write_bytes((run / name).read_bytes()[:keep])


def _tensors(**t) -> Callable[[Path], None]:
    return lambda run: torch.save(t, run / "summary.pt")


def _config(**changes) -> Callable[[Path], None]:
    return lambda run: bc.edit_config(run, **changes)


def _drop_key(key: str) -> Callable[[Path], None]:
    def spoil(run: Path) -> None:
        cfg = json.loads((run / "config.json").read_text())
        cfg.pop(key)
        (run / "config.json").write_text(json.dumps(cfg))
    return spoil


def _path_case(id: str, make: Callable[[Path], Path], expect: str) -> Case:
    return Case(id, lambda tmp, mp: _evaluate(make(tmp)), expect)


_GOOD_IMAGES = torch.rand(10, 1, 8, 8, generator=torch.Generator().manual_seed(0))

RUN_CASES = [
    _path_case("run-missing", lambda tmp: tmp / "nope", r"not a run folder"),
    _path_case("run-is-a-file", lambda tmp: (tmp / "f").write_text("x") and tmp / "f", r"not a run folder"),
    _path_case("run-empty-folder", lambda tmp: (tmp / "e").mkdir() or tmp / "e", r"config.json and summary.pt"),
    _run_case("config-not-json", _write("config.json", "{not json"), r"config.json .* not valid JSON"),
    _run_case("config-empty", _write("config.json", ""), r"config.json .* not valid JSON"),
    _run_case("config-binary", _write("config.json", b"\xff\xfe\x00garbage"), r"config.json .* not valid JSON"),
    _run_case("config-a-list", _write("config.json", "[1, 2]"), r"not a JSON object"),
    _run_case("config-no-format-version", _drop_key("format_version"), r"no format_version"),
    _run_case("config-format-version-string", _config(format_version="1"), r"no format_version|format_version"),
    _run_case("newer-format-version", _config(format_version=99), r"run format 99, newer .* upgrade"),
    _run_case("config-missing-method", _drop_key("method"), r"lacks 'method'"),
    _run_case("config-class-names-not-a-list", _config(class_names=7), r"class_names"),
    _run_case("config-ipc-not-a-number", _config(ipc="many"), r"ipc"),
    _run_case("config-unknown-dataset", _config(dataset="nope"), r"unknown dataset 'nope'"),
    _run_case("config-dataset-folder-gone", _config(dataset="folder:/no/such/place"), r"does not exist"),
    _run_case("summary-truncated", _truncate("summary.pt", 60), r"summary.pt .* not a readable"),
    _run_case("summary-half", lambda run: _truncate("summary.pt", (run / "summary.pt").stat().st_size // 2)(run),
              r"summary.pt .* not a readable"),
    _run_case("summary-garbage", _write("summary.pt", bytes(range(256)) * 8), r"summary.pt .* not a readable"),
    _run_case("summary-empty", _write("summary.pt", b""), r"summary.pt .* not a readable"),
    _run_case("summary-json", _write("summary.pt", '{"images": [1]}'), r"summary.pt .* not a readable"),
    _run_case("summary-list-not-dict", lambda run: torch.save([torch.zeros(1)], run / "summary.pt"),
              r"does not hold a dict of tensors"),
    _run_case("summary-missing-labels", _tensors(images=_GOOD_IMAGES), r"images .* and matching labels"),
    _run_case("summary-3d-images", _tensors(images=torch.zeros(10, 8, 8), labels=torch.arange(10)),
              r"images .* and matching labels"),
    _run_case("summary-length-mismatch", _tensors(images=_GOOD_IMAGES, labels=torch.arange(9)),
              r"images .* and matching labels"),
    _run_case("summary-empty-tensors", _tensors(images=torch.zeros(0, 1, 8, 8), labels=torch.zeros(0).long()),
              r"images .* and matching labels"),
    _run_case("summary-labels-out-of-range", _tensors(images=_GOOD_IMAGES, labels=torch.arange(10) + 5),
              r"labels outside the 10 classes"),
    _run_case("summary-float-hard-labels", _tensors(images=_GOOD_IMAGES, labels=torch.arange(10).float()),
              r"labels outside|labels"),
    _run_case("summary-nan-pixels", _tensors(images=torch.full((10, 1, 8, 8), float("nan")), labels=torch.arange(10)),
              r"NaN or infinite"),
    _run_case("summary-wrong-image-shape", _tensors(images=torch.rand(10, 3, 5, 5), labels=torch.arange(10)),
              r"images are \(3, 5, 5\) but digits"),
    _run_case("summary-missing", lambda run: (run / "summary.pt").unlink(), r"config.json and summary.pt"),
    _run_case("unknown-model", None, r"unknown model 'resnet9000'", ("--model", "resnet9000")),
    _run_case("unknown-protocol", None, r"unknown protocol 'bogus'", ("--protocol", "bogus")),
    _run_case("reps-zero", None, r"reps must be a positive", ("--reps", "0")),
    # accepted: a torn metrics line and garbage snapshots do not stop an evaluation (it never reads them); the
    # closed-form krr protocol keeps this case fast (the network protocols read the run the same way)
    _run_case("metrics-torn-grid-missing", lambda run: (_write("metrics.jsonl", '{"step": 1}\n{"step": 2, "lo')(run),
                                                        (run / "grid.png").unlink()), OK, ("--protocol", "krr")),
]

ALL_CASES = FOLDER_CASES + PARAM_CASES + RUN_CASES


def _run_main(argv: list[str], capsys) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse usage errors
        code = exc.code if isinstance(exc.code, int) else 1
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("case", ALL_CASES, ids=[c.id for c in ALL_CASES])
def test_bad_input_through_cli(case: Case, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("DISTILL_DEBUG", raising=False)
    argv = case.build(tmp_path, monkeypatch)
    capsys.readouterr()
    code, out, err = _run_main(argv, capsys)
    if case.expect is OK:
        assert code == 0, err
        assert "Traceback" not in err
        return
    assert code != 0, f"accepted a bad input: {out}"
    line = bc.clean_error(err)
    assert re.search(case.expect, line), line
    assert "unexpected" not in line, f"not a user-facing message: {line}"


def test_corpus_size():
    assert len(ALL_CASES) >= 80 and len({c.id for c in ALL_CASES}) == len(ALL_CASES)


# ------------------------------------------------------------------ accepted image modes load properly

@pytest.mark.parametrize("mode,ext,channels", [
    ("RGBA", "png", 3), ("LA", "png", 1), ("P", "png", 3), ("P-transparent", "png", 3), ("I;16", "png", 1),
    ("I", "tiff", 1), ("F", "tiff", 1), ("1", "png", 1), ("CMYK", "jpg", 3), ("CMYK", "tiff", 3), ("L", "bmp", 1),
    ("RGB", "webp", 3), ("P", "gif", 3),
])
def test_odd_modes_load_as_valid_images(mode, ext, channels, tmp_path):
    from distill_core.data import load_image_folder

    root = _mode_folder(mode, ext)(tmp_path)
    ds = load_image_folder(root, image_size=8)
    assert ds.channels == channels and ds.num_classes == 2 and ds.meta["skipped"] == []
    x = torch.cat([ds.x_train, ds.x_test])
    assert x.shape == (6, channels, 8, 8) and torch.isfinite(x).all() and x.min() >= 0 and x.max() <= 1
    assert float(x.std()) > 0.01  # not a blank image: the pixels survived the mode conversion


def test_sixteen_bit_uses_its_full_range(tmp_path):
    from PIL import Image

    from distill_core.data import load_image_folder

    for c in ("a", "b"):
        for i in range(3):
            arr = np.tile(np.linspace(0, 65535, 16, dtype=np.uint16), (16, 1))
            (tmp_path / c).mkdir(exist_ok=True)
            Image.fromarray(arr).save(tmp_path / c / f"{i}.png")
    ds = load_image_folder(tmp_path, image_size=16)
    row = ds.x_train[0, 0, 8]
    assert row[0] < 0.05 and row[-1] > 0.95 and torch.all(row[1:] >= row[:-1] - 1e-6)


def test_transparent_pixels_become_white(tmp_path):
    from PIL import Image

    from distill_core.data import load_image_folder

    for c in ("a", "b"):
        for i in range(3):
            (tmp_path / c).mkdir(exist_ok=True)
            Image.new("RGBA", (8, 8), (0, 0, 0, 0)).save(tmp_path / c / f"{i}.png")
    ds = load_image_folder(tmp_path, image_size=8)
    assert torch.allclose(ds.x_train, torch.ones_like(ds.x_train))


def test_junk_among_good_images_is_listed_as_skipped(tmp_path):
    from distill_core.data import load_image_folder

    ds = load_image_folder(_good_plus_junk(tmp_path), image_size=8)
    assert len(ds.y_train) + len(ds.y_val) + len(ds.y_test) == 6
    skipped = " ".join(ds.meta["skipped"])
    assert "broken.png" in skipped and "fake.jpg" in skipped and "tiny.png" in skipped
    assert "link.png" not in skipped  # a symlink is not even looked at


# ------------------------------------------------------------------ pickles are refused, never executed

@pytest.mark.parametrize("as_torch", [True, False], ids=["torch-save", "raw-pickle"])
@pytest.mark.parametrize("member", ["summary.pt", "snapshots.pt"])
def test_pickled_object_is_refused_and_never_executed(member, as_torch, tmp_path):
    from distill_core.errors import RunFormatError
    from distill_core.runs import load_run

    marker = tmp_path / "PWNED"
    run = bc.good_run(tmp_path / "run")
    bc.evil_pt(run / member, marker, as_torch=as_torch)
    # sanity: the payload really would create the marker if unpickled without protection
    probe = tmp_path / "probe"
    bc.evil_pt(probe, tmp_path / "PROBE_MARKER", as_torch=as_torch)
    if as_torch:
        torch.load(probe, weights_only=False)
    else:
        import pickle

        pickle.loads(probe.read_bytes())
    assert (tmp_path / "PROBE_MARKER").exists()

    with pytest.raises(RunFormatError, match="refused|not a readable"):
        load_run(run)
    assert not marker.exists()
    if member == "summary.pt":
        done = subprocess.run([sys.executable, "-m", "distill_core", "evaluate", str(run), "--reps", "1",
                               "--device", "cpu"], capture_output=True, text=True, cwd=ROOT, timeout=300)
        assert done.returncode != 0
        assert re.search(r"summary.pt .* not a readable", bc.clean_error(done.stderr))
    assert not marker.exists(), "unpickling ran code from the file"


# ------------------------------------------------------------------ a few cases through a real process

@pytest.mark.parametrize("case_id", ["corrupt-images", "newer-format-version", "summary-garbage", "steps-zero",
                                     "ipc-not-a-number", "lr-nan"])
def test_bad_input_through_a_real_process(case_id, tmp_path, monkeypatch):
    case = next(c for c in ALL_CASES if c.id == case_id)
    argv = case.build(tmp_path, monkeypatch)
    env = {**os.environ, "DISTILL_RUNS_DIR": str(tmp_path / "runs")}
    env.pop("DISTILL_DEBUG", None)
    done = subprocess.run([sys.executable, "-m", "distill_core", *argv], capture_output=True, text=True, cwd=ROOT,
                          timeout=300, env=env)
    assert done.returncode != 0
    assert re.search(case.expect, bc.clean_error(done.stderr))

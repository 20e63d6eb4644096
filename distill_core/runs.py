"""Run folders: save and load a method's result so the CLI and the app can open each other's runs.

A run folder holds `config.json` (every setting, seed, package versions, evaluations), `summary.pt` (tensors only,
loaded with weights_only=True), `metrics.jsonl` (one line per logged step), `snapshots.pt` (the bounded history of
the summary) and `grid.png`. It is written under a hidden temporary name and renamed into place, so a crash never
leaves half a run under the real name.

Snapshots have a byte budget (`SNAPSHOT_BUDGET_MB`, the CLI's `--snapshot-budget-mb`): a summary of Tiny-ImageNet at
IPC 50 is 245 MB per float16 snapshot, so 64 of them would be 16 GB. When the budget would be exceeded fewer are
kept, evenly spaced over the run, the last always among them; `snapshot_capacity` bounds a run's history in memory
the same way while it runs.
"""
from __future__ import annotations

import json
import os
import platform
import shutil
import time
import uuid
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

import torch

from . import __version__
from .atomic import write_text_atomically
from .errors import InvalidInputError, RunFormatError, RunWriteError
from .limits import LIMITS
from .summary import Summary

FORMAT_VERSION = 1
SNAPSHOT_BUDGET_MB = LIMITS.snapshot_budget_mb
RUNS_DIR_ENV = "DISTILL_RUNS_DIR"
PARTIAL_MARK = ".partial-"
OLD_MARK = ".old-"  # a run being replaced (see clean_partials)


def default_runs_dir() -> Path:
    return Path(os.environ.get(RUNS_DIR_ENV) or "runs")


def package_versions() -> dict[str, str]:
    """Versions of the packages a run depends on, read from their metadata (importing umap alone takes seconds)."""
    from importlib import metadata

    versions = {"python": platform.python_version(), "distill_core": __version__, "torch": torch.__version__}
    for key, dist in (("torchvision", "torchvision"), ("numpy", "numpy"), ("sklearn", "scikit-learn"),
                      ("streamlit", "streamlit"), ("umap", "umap-learn")):
        try:
            versions[key] = metadata.version(dist)
        except Exception:  # an optional package that is absent or broken
            continue
    return versions


def new_run_name(dataset: str, method: str, ipc: int) -> str:
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in dataset.replace("folder:", ""))[-40:]
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return f"{safe}-{method}-ipc{ipc}-{stamp}-{uuid.uuid4().hex[:4]}"


@dataclass
class RunRecord:
    """A loaded run folder."""

    path: Path
    config: dict
    summary: Summary
    metrics: list[dict] = field(default_factory=list)
    snapshots: dict[str, torch.Tensor] | None = None

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def evaluations(self) -> list[dict]:
        return list(self.config.get("evaluations", []))


def _json_default(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item"):
        return obj.item()
    return str(obj)


def _write_json(path: Path, data: Any) -> None:
    write_text_atomically(path, json.dumps(data, indent=2, default=_json_default), fsync=True, make_parent=False)


def snapshot_bytes(num_images: int, image_shape: tuple[int, ...], element_size: int = 2) -> int:
    """Bytes one snapshot of `num_images` images takes (float16 by default, as histories keep them)."""
    n = int(num_images) * int(element_size)
    for d in image_shape:
        n *= int(d)
    return n


def snapshot_capacity(wanted: int, one_snapshot_bytes: int, budget_mb: float | None = SNAPSHOT_BUDGET_MB) -> int:
    """How many snapshots fit: at most `wanted`, and at most the budget's worth (0 when one alone exceeds it)."""
    wanted = max(0, int(wanted))
    if budget_mb is None or one_snapshot_bytes <= 0:
        return wanted
    return min(wanted, int(float(budget_mb) * 2 ** 20 // one_snapshot_bytes))


def thin_snapshots(snapshots: dict[str, torch.Tensor], keep: int) -> dict[str, torch.Tensor]:
    """At most `keep` of the snapshots, evenly spaced by position; the last is always kept (and the first, when
    two or more are). keep 0 gives an empty history."""
    steps, images = snapshots["steps"], snapshots["images"]
    n = len(steps)
    if keep >= n:
        return snapshots
    if keep <= 0:
        return {"steps": steps[:0], "images": images[:0]}
    if keep == 1:
        idx = torch.tensor([n - 1])
    else:
        idx = torch.unique(torch.round(torch.linspace(0, n - 1, keep, dtype=torch.float64)).long())
    return {"steps": steps[idx], "images": images[idx]}


def fit_snapshot_budget(snapshots: dict[str, torch.Tensor],
                        budget_mb: float | None = SNAPSHOT_BUDGET_MB) -> dict[str, torch.Tensor]:
    """The snapshots thinned (evenly spaced, last kept) until they fit `budget_mb` (None: no budget)."""
    if budget_mb is None or not len(snapshots.get("steps", [])):
        return snapshots
    images = snapshots["images"]
    one = images[0].numel() * images.element_size()
    return thin_snapshots(snapshots, snapshot_capacity(len(snapshots["steps"]), one, budget_mb))


def save_run(out_dir: str | os.PathLike, summary: Summary, config: dict[str, Any],
             metrics: Iterable[dict] | None = None, snapshots: dict[str, torch.Tensor] | None = None,
             evaluations: list[dict] | None = None, overwrite: bool = False,
             snapshot_budget_mb: float | None = SNAPSHOT_BUDGET_MB) -> Path:
    """Write a complete run folder atomically and return its path.

    Snapshots beyond `snapshot_budget_mb` are thinned (`fit_snapshot_budget`); config.json's `snapshots` says how
    many were offered and kept, and the budget."""
    out = Path(out_dir)
    offered = len(snapshots.get("steps", [])) if snapshots is not None else 0
    if snapshots is not None:
        snapshots = fit_snapshot_budget(snapshots, snapshot_budget_mb)
    if out.exists() and not overwrite:
        raise InvalidInputError(f"run folder {out} already exists; choose another --out")
    tmp = out.parent / f".{out.name}{PARTIAL_MARK}{uuid.uuid4().hex[:8]}"
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp.mkdir()
    except OSError as exc:
        raise RunWriteError(f"cannot create run folder {out}: {exc.strerror or exc}") from None
    try:
        full_config = {
            "format_version": FORMAT_VERSION,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "method": summary.method,
            "dataset": summary.dataset,
            "ipc": summary.ipc,
            "class_names": summary.class_names,
            "soft_labels": summary.soft,
            "summary_meta": summary.meta,
            "versions": package_versions(),
            **config,
            "evaluations": list(evaluations or config.get("evaluations", [])),
        }
        if offered:
            full_config["snapshots"] = {"offered": offered, "kept": len(snapshots["steps"]),  # type: ignore[index]
                                        "budget_mb": snapshot_budget_mb}
        _write_json(tmp / "config.json", full_config)
        torch.save({"images": summary.images.detach().float().cpu().contiguous(),
                    "labels": summary.labels.detach().cpu().contiguous()}, tmp / "summary.pt")
        with open(tmp / "metrics.jsonl", "w", encoding="utf-8") as fh:
            for row in metrics or []:
                fh.write(json.dumps(row, default=_json_default) + "\n")
        if snapshots is not None and len(snapshots.get("steps", [])):
            torch.save({"steps": snapshots["steps"].cpu(), "images": snapshots["images"].cpu()}, tmp / "snapshots.pt")
        render_grid(summary.images, summary.class_names, summary.hard_labels).save(tmp / "grid.png")
        if out.exists():  # overwrite: swap the old folder out only once the new one is complete
            trash = out.parent / f".{out.name}{OLD_MARK}{uuid.uuid4().hex[:8]}"
            os.rename(out, trash)
            os.rename(tmp, out)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.rename(tmp, out)
    except OSError as exc:  # disk full, permissions: one clear message, and no half-written folder left
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, RunWriteError):
            raise
        raise RunWriteError(f"cannot write run folder {out}: {exc.strerror or exc}") from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _load_tensors(path: Path, what: str) -> dict[str, torch.Tensor]:
    try:
        with warnings.catch_warnings():  # e.g. 'Detected pickle protocol 4': the refusal below says it all
            warnings.simplefilter("ignore")
            data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        raise RunFormatError(f"{what} in {path.parent} is not a readable distill-lab file (corrupt, truncated, "
                             f"or it holds objects other than tensors, which are refused)") from None
    if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise RunFormatError(f"{what} in {path.parent} does not hold a dict of tensors")
    return data


def load_run(path: str | os.PathLike, with_snapshots: bool = True) -> RunRecord:
    """Read a run folder, checking its format version and tensor shapes."""
    run_dir = Path(path)
    if not run_dir.is_dir():
        raise RunFormatError(f"{run_dir} is not a run folder (it does not exist or is not a folder)")
    cfg_path = run_dir / "config.json"
    if not cfg_path.is_file() or not (run_dir / "summary.pt").is_file():
        raise RunFormatError(f"{run_dir} is not a run folder: config.json and summary.pt are needed")
    try:
        config = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        raise RunFormatError(f"config.json in {run_dir} is not valid JSON") from None
    if not isinstance(config, dict):
        raise RunFormatError(f"config.json in {run_dir} is not a JSON object")
    version = config.get("format_version")
    if not isinstance(version, int):
        raise RunFormatError(f"config.json in {run_dir} has no format_version")
    if version > FORMAT_VERSION:
        raise RunFormatError(f"{run_dir} was written in run format {version}, newer than this version of "
                             f"distill-lab reads ({FORMAT_VERSION}); upgrade distill-lab to open it")
    for key in ("method", "dataset", "ipc", "class_names"):
        if key not in config:
            raise RunFormatError(f"config.json in {run_dir} lacks '{key}'")
    if not isinstance(config["method"], str) or not isinstance(config["dataset"], str):
        raise RunFormatError(f"config.json in {run_dir} has a method or dataset that is not a name")
    if isinstance(config["ipc"], bool) or not isinstance(config["ipc"], int) or config["ipc"] < 1:
        raise RunFormatError(f"config.json in {run_dir} has ipc {config['ipc']!r}, not a positive whole number")
    if not isinstance(config["class_names"], list) or not config["class_names"] \
            or not all(isinstance(c, (str, int)) for c in config["class_names"]):
        raise RunFormatError(f"config.json in {run_dir} has class_names that are not a list of names")
    tensors = _load_tensors(run_dir / "summary.pt", "summary.pt")
    images, labels = tensors.get("images"), tensors.get("labels")
    if images is None or labels is None or images.dim() != 4 or labels.dim() not in (1, 2) \
            or len(images) != len(labels) or len(images) == 0:
        raise RunFormatError(f"summary.pt in {run_dir} does not hold images (K×C×H×W) and matching labels")
    n_classes = len(config["class_names"])
    if labels.dim() == 1 and (labels.dtype not in (torch.int64, torch.int32) or int(labels.min()) < 0
                              or int(labels.max()) >= n_classes):
        raise RunFormatError(f"summary.pt in {run_dir} has labels outside the {n_classes} classes")
    if labels.dim() == 2 and labels.shape[1] != n_classes:
        raise RunFormatError(f"summary.pt in {run_dir} has label vectors of the wrong length")
    if not torch.isfinite(images.float()).all():
        raise RunFormatError(f"summary.pt in {run_dir} holds NaN or infinite pixels")
    summary = Summary(images.float(), labels.long() if labels.dim() == 1 else labels.float(), str(config["method"]),
                      str(config["dataset"]), int(config["ipc"]), list(config["class_names"]),
                      dict(config.get("summary_meta") or {}))
    metrics: list[dict] = []
    metrics_path = run_dir / "metrics.jsonl"
    if metrics_path.is_file():
        for line in metrics_path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue  # a torn last line is skipped, not fatal
            if isinstance(row, dict):
                metrics.append(row)
    snapshots = None
    if with_snapshots and (run_dir / "snapshots.pt").is_file():
        snap = _load_tensors(run_dir / "snapshots.pt", "snapshots.pt")
        if "steps" in snap and "images" in snap and len(snap["steps"]) == len(snap["images"]):
            snapshots = snap
    return RunRecord(run_dir, config, summary, metrics, snapshots)


def add_evaluation(run_dir: str | os.PathLike, evaluation: dict) -> None:
    """Append an evaluation result to a run's config.json (atomic replace)."""
    cfg_path = Path(run_dir) / "config.json"
    config = json.loads(cfg_path.read_text(encoding="utf-8"))
    config.setdefault("evaluations", []).append(evaluation)
    _write_json(cfg_path, config)


def list_runs(root: str | os.PathLike | None = None) -> list[dict]:
    """One row per readable run folder under `root` (newest first); unreadable folders are listed with an error."""
    base = Path(root) if root is not None else default_runs_dir()
    if not base.is_dir():
        return []
    rows = []
    for d in base.iterdir():
        if not d.is_dir() or d.name.startswith(".") or not (d / "config.json").is_file():
            continue
        row: dict[str, Any] = {"name": d.name, "path": str(d)}
        try:
            cfg = json.loads((d / "config.json").read_text(encoding="utf-8"))
            evals = cfg.get("evaluations") or []
            last = evals[-1] if evals else {}
            row.update(dataset=cfg.get("dataset"), method=cfg.get("method"), ipc=cfg.get("ipc"),
                       steps=cfg.get("steps"), created=cfg.get("created"), acc=last.get("acc_mean"),
                       protocol=last.get("protocol"))
        except (OSError, ValueError, AttributeError):
            row["error"] = "config.json is unreadable"
        row["mtime"] = d.stat().st_mtime
        rows.append(row)
    return sorted(rows, key=lambda r: r["mtime"], reverse=True)


def delete_run(path: str | os.PathLike, root: str | os.PathLike | None = None) -> None:
    """Remove a run folder (only a folder that looks like a run, and inside `root` when given)."""
    run_dir = Path(path).resolve()
    if root is not None and Path(root).resolve() not in run_dir.parents:
        raise InvalidInputError(f"{run_dir} is not inside the runs folder {root}")
    if not (run_dir / "config.json").is_file():
        raise RunFormatError(f"{run_dir} is not a run folder")
    shutil.rmtree(run_dir)


def clean_partials(root: str | os.PathLike | None = None, older_than_s: float = 3600) -> int:
    """Tidy what a crash during `save_run` can leave; returns how many folders were removed or restored.

    - '.NAME.partial-*' (a half-written run) older than `older_than_s`: removed.
    - '.NAME.old-*' (a run being replaced when the process died between its two renames): put back as NAME when
      NAME is missing, so an overwrite that crashed never loses the previous run; removed when NAME exists.
    """
    base = Path(root) if root is not None else default_runs_dir()
    count = 0
    if not base.is_dir():
        return 0
    for d in sorted(base.iterdir()):
        try:
            if not d.is_dir() or d.is_symlink() or not d.name.startswith("."):
                continue
            if PARTIAL_MARK in d.name:
                if time.time() - d.stat().st_mtime > older_than_s:
                    shutil.rmtree(d, ignore_errors=True)
                    count += 1
            elif OLD_MARK in d.name:
                original = base / d.name[1:d.name.rindex(OLD_MARK)]
                if original.name and not original.exists():
                    os.rename(d, original)
                else:
                    shutil.rmtree(d, ignore_errors=True)
                count += 1
        except OSError:  # another process got there first
            continue
    return count


# ------------------------------------------------------------------------------------------ pictures

def to_uint8(images: torch.Tensor) -> "torch.Tensor":
    """K×C×H×W pixel-space floats -> K×H×W×C uint8 (clamped to [0, 1])."""
    x = images.detach().float().cpu().clamp(0, 1)
    return (x * 255).round().to(torch.uint8).permute(0, 2, 3, 1)


def render_grid(images: torch.Tensor, class_names: list[str], labels: torch.Tensor | None = None,
                tile: int | None = None, label_width: int = 64, gap: int = 2):
    """A PIL image: one row per class (its name on the left), that class's images left to right."""
    from PIL import Image, ImageDraw

    if labels is None:
        per = max(1, len(images) // max(1, len(class_names)))
        labels = torch.arange(len(class_names)).repeat_interleave(per)[:len(images)]
    labels = labels.cpu()
    rows = [torch.nonzero(labels == c, as_tuple=False).flatten() for c in range(len(class_names))]
    cols = max(1, max(len(r) for r in rows))
    h = int(images.shape[-2])
    tile = tile or max(h, min(64, h * 4))
    pix = to_uint8(images).numpy()
    width = label_width + cols * (tile + gap) + gap
    height = len(class_names) * (tile + gap) + gap
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for r, idx in enumerate(rows):
        y = gap + r * (tile + gap)
        draw.text((4, y + tile // 2 - 6), str(class_names[r])[:10], fill=(20, 20, 20))
        for c, i in enumerate(idx.tolist()):
            arr = pix[i]
            img = Image.fromarray(arr[..., 0], "L") if arr.shape[-1] == 1 else Image.fromarray(arr, "RGB")
            img = img.resize((tile, tile), Image.NEAREST if h < tile else Image.BILINEAR).convert("RGB")
            canvas.paste(img, (label_width + gap + c * (tile + gap), y))
    return canvas

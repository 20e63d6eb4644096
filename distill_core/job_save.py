"""Saving a job as a run folder: the config and live evaluation the folder gets, an explicit `save`, and the one
autosave a job started with `autosave_dir` makes when it finishes or is stopped. Kept apart from the threads: it
only reads the job through its public, thread-safe methods."""
from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from .errors import InvalidInputError
from .job_spec import FINISHED, STOPPED, _short_error

if TYPE_CHECKING:
    from .job_runner import Job


class JobSaver:
    """Writes one job's latest summary as a run folder; remembers where it autosaved (or why that failed)."""

    def __init__(self, job: "Job"):
        self.job = job
        self._lock = threading.Lock()
        self.saved_path: Path | None = None
        self.save_error: str | None = None

    def run_config(self) -> dict[str, Any]:
        """The config.json fields a saved run gets (the same keys as the CLI's, plus source and status)."""
        job = self.job
        st = job.state()
        rows = job.metrics()
        return {"steps": st.step, "seed": job.spec.seed, "device": job.device.type,
                "seconds": round(st.elapsed_s, 3), "profile": job.config.profile,
                "method_config": job.config.to_dict(), "data_root": None,
                "image_size": int(job.dataset.image_shape[-1]), "final_metrics": rows[-1] if rows else {},
                "source": "app", "status": st.status, "total_steps": job.total_steps}

    def evaluations(self) -> list[dict[str, Any]]:
        """The live evaluation of the latest published step, in the run folder's evaluation format."""
        st = self.job.state()
        last = st.last_accuracy
        if last is None or last["step"] != st.step:
            return []
        return [{"protocol": last["protocol"], "model": last.get("model", "convnet"), "reps": 1,
                 "acc_mean": last["acc"], "acc_std": 0.0, "accs": [last["acc"]], "seconds": last["seconds"],
                 "source": "app-live", **({"epochs": last["epochs"]} if "epochs" in last else {})}]

    def autosave(self) -> Path | None:
        """Save once into the job's `autosave_dir` (a finished or stopped job with a summary); later calls return
        the same folder. A failure is kept as `save_error` and returns None."""
        job = self.job
        with self._lock:
            if self.saved_path is not None or job.autosave_dir is None or self.save_error is not None:
                return self.saved_path
            if job.state().status not in (FINISHED, STOPPED) or job.summary() is None:
                return None
            try:
                self.saved_path = job.save(runs_dir=job.autosave_dir)
            except Exception as exc:  # noqa: BLE001 - a full disk must not crash the worker thread
                self.save_error = _short_error(exc)
            return self.saved_path

    def save(self, out_dir: str | Path | None = None, runs_dir: str | Path | None = None) -> Path:
        """Write the latest summary as a run folder (default: a new name under the runs folder)."""
        from .runs import default_runs_dir, new_run_name, save_run

        job = self.job
        summary = job.summary()
        if summary is None:
            raise InvalidInputError("nothing to save yet: the job has not produced a summary")
        steps, images = job.snapshots()
        snaps = ({"steps": torch.tensor(steps, dtype=torch.int64), "images": torch.stack(images)}
                 if steps else None)
        if out_dir is None:
            base = Path(runs_dir) if runs_dir is not None else default_runs_dir()
            out_dir = base / new_run_name(job.dataset.name, job.spec.method, job.spec.ipc)
        return save_run(out_dir, summary, job.run_config(), job.metrics(), snaps, job.evaluations())

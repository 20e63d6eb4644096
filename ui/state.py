"""The app's session state: the keys pages share, the session's job slot, the chosen dataset, presets.

Keys in `st.session_state` (other pages, the upload feature and the tests read and write them):

| key                                   | type                 | meaning                                               |
|---------------------------------------|----------------------|-------------------------------------------------------|
| `dataset`                             | str                  | dataset picked in the sidebar (a registry name, `folder:PATH`, or a key of `user_datasets`) |
| `user_datasets`                       | dict[str, ImageSet]  | datasets uploaded in this session (name -> ImageSet); the upload feature fills it and also calls `data.register_dataset` |
| `distill.method`                      | str                  | method chosen on the distill page                     |
| `distill.ipc`                         | int                  | images per class                                      |
| `distill.steps`                       | int                  | optimisation steps (distillers)                       |
| `distill.seed`                        | int                  | seed                                                  |
| `distill.setting.<method>.<field>`    | int/float/bool/str   | one field of the method's Config (see `setting_key`)  |
| `distill.preset`                      | dict                 | a pending preset, applied before the next run's widgets (see `request_preset`) |
| `distill.message`                     | (level, text)        | the last message of a distill-page button (error/success), shown until the next action |
| `library.selected`                    | str                  | name of the run folder open on the library page       |

Widget values under `PERSISTENT_KEYS` / `PERSISTENT_PREFIXES` survive page switches (`keep_widget_state`).
The session's job lives in `session_slot()`: one `JobSlot` per browser session, released (job stopped) when the
session ends.
"""
from __future__ import annotations

import logging
import threading
import weakref
from typing import Any

import streamlit as st

from distill_core.data import ImageSet, list_datasets, load_dataset
from distill_core.errors import InvalidInputError
from distill_core.jobs import Job, JobSpec, start_job

KEY_DATASET = "dataset"
KEY_USER_DATASETS = "user_datasets"
KEY_METHOD = "distill.method"
KEY_IPC = "distill.ipc"
KEY_STEPS = "distill.steps"
KEY_SEED = "distill.seed"
KEY_PRESET = "distill.preset"
KEY_MESSAGE = "distill.message"
KEY_LIBRARY_SELECTED = "library.selected"
SETTING_PREFIX = "distill.setting."

PERSISTENT_KEYS = (KEY_DATASET, KEY_METHOD, KEY_IPC, KEY_STEPS, KEY_SEED, KEY_LIBRARY_SELECTED)
PERSISTENT_PREFIXES = (SETTING_PREFIX,)

DEFAULT_DATASET = "digits"
_log = logging.getLogger("distill_lab.app")


def setting_key(method: str, field: str) -> str:
    """Session-state key of one method setting's widget."""
    return f"{SETTING_PREFIX}{method}.{field}"


# ----------------------------------------------------------------------------------------------- job slot

class JobSlot:
    """The (at most one) job of a browser session."""

    def __init__(self) -> None:
        self._box: list[Job | None] = [None]  # shared with a finalizer in the session_state fallback
        self._lock = threading.Lock()

    @property
    def job(self) -> Job | None:
        return self._box[0]

    @job.setter
    def job(self, value: Job | None) -> None:
        self._box[0] = value

    def start(self, spec: JobSpec, dataset: ImageSet | None = None) -> Job:
        """Start a job, replacing a finished one; refuses while this session's job is still active."""
        with self._lock:
            if self.job is not None and self.job.state().active:
                raise InvalidInputError("this session is already running a distillation; stop it first")
            old, self.job = self.job, None
            if old is not None:
                old.stop(wait=False)  # ends a final evaluation still running
            self.job = start_job(spec, dataset)
            return self.job

    def close(self) -> None:
        """Stop the job (called when the session ends)."""
        job = self.job
        if job is not None:
            job.stop(wait=True, timeout=5.0)


def _release_slot(slot: JobSlot) -> None:
    try:
        slot.close()
    except Exception:  # noqa: BLE001 - releasing must never raise into Streamlit's cache machinery
        _log.exception("could not stop a session's job")


def _stop_boxed(box: list[Job | None]) -> None:
    if box[0] is not None:
        box[0].stop(wait=False)


try:
    @st.cache_resource(scope="session", on_release=_release_slot, show_spinner=False)
    def _session_slot() -> JobSlot:
        return JobSlot()
    _SESSION_SCOPED = True
except TypeError:  # Streamlit without session-scoped resources: keep the slot in session_state
    _SESSION_SCOPED = False

    def _session_slot() -> JobSlot:
        slot = st.session_state.get("_job_slot")
        if slot is None:
            slot = JobSlot()
            weakref.finalize(slot, _stop_boxed, slot._box)  # the session's state is dropped -> stop its job
            st.session_state["_job_slot"] = slot
        return slot


def session_slot() -> JobSlot:
    """This browser session's job slot (created on first use; its job is stopped when the session ends)."""
    return _session_slot()


def current_job() -> Job | None:
    return session_slot().job


# ----------------------------------------------------------------------------------------------- datasets

def user_datasets() -> dict[str, ImageSet]:
    data = st.session_state.get(KEY_USER_DATASETS)
    return data if isinstance(data, dict) else {}


def dataset_choices() -> list[str]:
    """Embedded datasets first, then other available registry datasets, then this session's uploads."""
    names = [row["name"] for row in list_datasets() if row["available"]]
    names += [n for n in user_datasets() if n not in names]
    return names


def resolve_dataset(name: str) -> ImageSet:
    """The ImageSet for a sidebar choice (uploads from session state, the rest from the registry)."""
    uploads = user_datasets()
    if name in uploads and isinstance(uploads[name], ImageSet):
        return uploads[name]
    return load_dataset(name)


def dataset_or_stop(name: str) -> ImageSet:
    """The dataset `name`, loaded; when it cannot be, a clear message and the page stops here."""
    from ui.errors import guard

    ds = None
    with guard(f"Dataset {name} could not be loaded"):
        ds = resolve_dataset(name)
    if ds is None:
        st.stop()
    return ds


def selected_dataset_name() -> str:
    name = st.session_state.get(KEY_DATASET)
    return name if isinstance(name, str) and name else DEFAULT_DATASET


# ----------------------------------------------------------------------------------------------- widgets

def keep_widget_state() -> None:
    """Re-assign persistent widget values so Streamlit keeps them while their page is not shown.

    Call at the top of app.py, before any widget is drawn.
    """
    for key in list(st.session_state.keys()):
        if key in PERSISTENT_KEYS or any(str(key).startswith(p) for p in PERSISTENT_PREFIXES):
            try:
                st.session_state[key] = st.session_state[key]
            except Exception:  # noqa: BLE001 - a key some widget forbids setting: leave it alone
                continue


def request_preset(preset: dict[str, Any]) -> None:
    """Ask the next run to configure the distill page: keys dataset, method, ipc, steps, seed, settings."""
    st.session_state[KEY_PRESET] = dict(preset)


def apply_pending_preset() -> dict[str, Any] | None:
    """Move a pending preset into the widget keys (call before any widget is drawn); returns it."""
    preset = st.session_state.pop(KEY_PRESET, None)
    if not isinstance(preset, dict):
        return None
    if preset.get("dataset"):
        st.session_state[KEY_DATASET] = preset["dataset"]
    method = preset.get("method")
    if method:
        st.session_state[KEY_METHOD] = method
    for field, key in (("ipc", KEY_IPC), ("steps", KEY_STEPS), ("seed", KEY_SEED)):
        if preset.get(field) is not None:
            st.session_state[key] = preset[field]
    for prefix_key in [k for k in st.session_state.keys() if method and str(k).startswith(setting_key(method, ""))]:
        del st.session_state[prefix_key]  # start from the method's defaults, then the preset's settings
    for field, value in (preset.get("settings") or {}).items():
        st.session_state[setting_key(method, field)] = value
    st.session_state[KEY_MESSAGE] = ("info", f"Preset loaded: {preset.get('title') or method}. Press Start.")
    return preset


def set_message(level: str, text: str) -> None:
    st.session_state[KEY_MESSAGE] = (level, text)


def show_message() -> None:
    """Show the last distill-page message (error, success or info)."""
    msg = st.session_state.get(KEY_MESSAGE)
    if not (isinstance(msg, tuple) and len(msg) == 2):
        return
    level, text = msg
    {"error": st.error, "success": st.success, "warning": st.warning}.get(level, st.info)(text)

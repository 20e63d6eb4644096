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
| `distill.profile`                     | str                  | settings profile, "fast" or "paper" (`distill_core.profiles.PROFILES`) |
| `distill.setting.<method>.<field>`    | int/float/bool/str   | one field of the method's Config (see `setting_key`)  |
| `distill.preset`                      | dict                 | a pending preset, applied before the next run's widgets (see `request_preset`) |
| `distill.message`                     | (level, text)        | the last message of a distill-page button (error/success), shown until the next action |
| `distill.token`                       | str                  | this session's job token (also in the URL as `?run=`) |
| `distill.present`                     | bool                 | presentation mode of the distill page (big grid first, controls folded) |
| `library.selected`                    | str                  | name of the run folder open on the library page       |

Widget values under `PERSISTENT_KEYS` / `PERSISTENT_PREFIXES` survive page switches (`keep_widget_state`).
Jobs live in the server-wide `distill_core.jobs.registry()` under an unguessable token; the distill page's URL
carries it (`?run=TOKEN`) and the session holds it through `session_slot()` (see `JobSlot`), so a reload finds
the same job. Uploaded datasets are also kept under the runs folder (`distill_core.uploads`), so every session
and page can reopen them by name.
"""
from __future__ import annotations

import logging
import threading
import uuid
import weakref
from typing import Any

import streamlit as st

from distill_core.data import ImageSet, list_datasets, load_dataset, register_dataset
from distill_core.errors import DistillError, InvalidInputError
from distill_core.runs import default_runs_dir
from distill_core.uploads import load_stored_dataset, store_root, stored_datasets
from distill_core import jobs
from distill_core.jobs import Job, JobRegistry, JobSpec

KEY_DATASET = "dataset"
KEY_USER_DATASETS = "user_datasets"
KEY_METHOD = "distill.method"
KEY_IPC = "distill.ipc"
KEY_STEPS = "distill.steps"
KEY_SEED = "distill.seed"
KEY_PROFILE = "distill.profile"
KEY_PRESET = "distill.preset"
KEY_MESSAGE = "distill.message"
KEY_LIBRARY_SELECTED = "library.selected"
KEY_PRESENT = "distill.present"
KEY_TOKEN = "distill.token"
SETTING_PREFIX = "distill.setting."
QUERY_RUN = "run"   # the URL query parameter holding the job token

PERSISTENT_KEYS = (KEY_DATASET, KEY_METHOD, KEY_IPC, KEY_STEPS, KEY_SEED, KEY_PROFILE, KEY_LIBRARY_SELECTED,
                   KEY_PRESENT)
PERSISTENT_PREFIXES = (SETTING_PREFIX,)

DEFAULT_DATASET = "digits"
_log = logging.getLogger("distill_lab.app")


def setting_key(method: str, field: str) -> str:
    """Session-state key of one method setting's widget."""
    return f"{SETTING_PREFIX}{method}.{field}"


# ----------------------------------------------------------------------------------------------- the job

class JobSlot:
    """A browser session's hold on its job, which lives in the server-wide `jobs.registry()` under a token.

    The token (unguessable, from `jobs.new_token`) also sits in the page's URL (`?run=TOKEN`), so a reload or a
    reconnect — a new Streamlit session — finds the same job again with `attach`. When the session ends Streamlit
    releases the slot: the session lets go of its token, and once no session holds it the registry's idle timer
    runs (the job is stopped after `jobs.DEFAULT_IDLE_TIMEOUT_S`, or $DISTILL_JOB_IDLE_S). A session runs at most
    one job at a time."""

    def __init__(self, registry: JobRegistry | None = None) -> None:
        self.holder = uuid.uuid4().hex
        self._registry = registry
        self._token: str | None = None
        self._lock = threading.Lock()
        self._box: list = [self.registry, None, self.holder]  # what a finalizer needs, without the slot

    @property
    def registry(self) -> JobRegistry:
        return self._registry if self._registry is not None else jobs.registry()

    @property
    def token(self) -> str | None:
        return self._token

    def _set_token(self, token: str | None) -> None:
        self._token = token
        self._box[1] = token

    @property
    def job(self) -> Job | None:
        return self.registry.get(self._token) if self._token else None

    def attach(self, token: str | None) -> Job | None:
        """Hold `token` (a reload's, a reconnect's); returns its job or None for an unknown token. The token held
        before, if another, is let go."""
        with self._lock:
            if token == self._token:
                return self.registry.attach(token, self.holder) if token else None
            job = self.registry.attach(token, self.holder) if token else None
            if job is None:
                return None
            if self._token:
                self.registry.release(self._token, self.holder)
            self._set_token(token)
            return job

    def start(self, spec: JobSpec, dataset: ImageSet | None = None, autosave_dir=None) -> Job:
        """Start a job under a fresh token; refuses while this session's job is still active."""
        with self._lock:
            old = self.job
            if old is not None and old.state().active:
                raise InvalidInputError("this session is already running a distillation; stop it first")
            token = jobs.new_token()
            job = self.registry.start(token, spec, dataset, holder=self.holder, autosave_dir=autosave_dir)
            if self._token:
                self.registry.release(self._token, self.holder)
            self._set_token(token)
            return job

    def close(self) -> None:
        """Let go of the token (the session ended): the registry's idle timer takes over."""
        with self._lock:
            if self._token:
                self.registry.release(self._token, self.holder)


def _release_slot(slot: JobSlot) -> None:
    try:
        slot.close()
    except Exception:  # noqa: BLE001 - releasing must never raise into Streamlit's cache machinery
        _log.exception("could not release a session's job")


def _release_box(box: list) -> None:
    registry, token, holder = box
    if token:
        registry.release(token, holder)


try:
    @st.cache_resource(scope="session", on_release=_release_slot, show_spinner=False)
    def _session_slot() -> JobSlot:
        return JobSlot()
except TypeError:  # Streamlit without session-scoped resources: the slot lives in session_state
    def _session_slot() -> JobSlot:
        slot = st.session_state.get("_job_slot")
        if slot is None:
            slot = JobSlot()
            weakref.finalize(slot, _release_box, slot._box)  # the session's state is dropped -> let go
            st.session_state["_job_slot"] = slot
        return slot


def session_slot() -> JobSlot:
    """This browser session's hold on its job (created on first use; let go when the session ends)."""
    return _session_slot()


def url_token() -> str | None:
    """The job token in the page's URL (`?run=`), when it has a token's shape."""
    try:
        value = st.query_params.get(QUERY_RUN)
    except Exception:  # noqa: BLE001 - no script context (a plain import)
        return None
    return value if jobs.valid_token(value) else None


def current_job() -> Job | None:
    """The job this page shows: the URL's token first (a reload, a shared link), else this session's own token
    (kept in session_state, so page switches keep it); the URL then carries it, so a reload comes back. A made-up
    or expired token finds nothing."""
    slot = session_slot()
    job = None
    for token in dict.fromkeys(t for t in (url_token(), st.session_state.get(KEY_TOKEN)) if jobs.valid_token(t)):
        job = slot.attach(token)
        if job is not None:
            st.session_state[KEY_TOKEN] = token
            if url_token() != token:
                st.query_params[QUERY_RUN] = token
            break
    return job


def start_job(spec: JobSpec, dataset: ImageSet | None = None) -> Job:
    """Start this session's job (autosaved to the runs folder when it ends) and put its token in the URL."""
    from distill_core.runs import default_runs_dir

    slot = session_slot()
    own = current_job()
    if own is not None and own.state().active:
        raise InvalidInputError("this session is already running a distillation; stop it first")
    job = slot.start(spec, dataset, autosave_dir=default_runs_dir())
    st.session_state[KEY_TOKEN] = slot.token
    st.query_params[QUERY_RUN] = slot.token
    return job


# ----------------------------------------------------------------------------------------------- datasets

def user_datasets() -> dict[str, ImageSet]:
    data = st.session_state.get(KEY_USER_DATASETS)
    return data if isinstance(data, dict) else {}


def kept_datasets() -> list[str]:
    """Uploaded datasets kept with the runs (any session's, any earlier server's), newest first."""
    try:
        return stored_datasets(default_runs_dir())
    except OSError:
        return []


def dataset_choices() -> list[str]:
    """Embedded datasets first, then other available registry datasets, then this session's uploads, then the
    uploads kept with the runs."""
    names = [row["name"] for row in list_datasets() if row["available"]]
    names += [n for n in user_datasets() if n not in names]
    names += [n for n in kept_datasets() if n not in names]
    return names


@st.cache_resource(show_spinner=False, max_entries=8)
def _kept_dataset(name: str, runs_dir: str, mtime: float) -> ImageSet:
    ds = load_stored_dataset(name, runs_dir)
    register_dataset(ds)
    return ds


def resolve_dataset(name: str) -> ImageSet:
    """The ImageSet for a sidebar choice (this session's uploads, the registry, then the uploads kept with the
    runs — so a run made on an upload reopens in any session)."""
    uploads = user_datasets()
    if name in uploads and isinstance(uploads[name], ImageSet):
        return uploads[name]
    try:
        return load_dataset(name)
    except DistillError:
        if name not in kept_datasets():
            raise
    root = store_root(default_runs_dir())
    return _kept_dataset(name, str(default_runs_dir()), root.stat().st_mtime if root.exists() else 0.0)


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
    st.session_state[KEY_PROFILE] = preset.get("profile") or "fast"  # a preset's settings are a fast recipe
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
    """The distill page's message until the next action (server temporary paths stripped)."""
    from ui.errors import strip_server_paths

    st.session_state[KEY_MESSAGE] = (level, strip_server_paths(text))


def clear_message() -> None:
    st.session_state.pop(KEY_MESSAGE, None)


def show_message() -> None:
    """Show the last distill-page message (error, success or info)."""
    msg = st.session_state.get(KEY_MESSAGE)
    if not (isinstance(msg, tuple) and len(msg) == 2):
        return
    level, text = msg
    {"error": st.error, "success": st.success, "warning": st.warning}.get(level, st.info)(text)

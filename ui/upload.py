"""Your own images: a zip of class folders (or a folder on the server) becomes a dataset of this session.

`upload_widget()` draws the controls (the sidebar calls it); `add_zip` / `add_folder` do the work and
`register_user_dataset` files the result under `st.session_state["user_datasets"]` and in the data registry, so
the sidebar's picker and `data.load_dataset(name)` both find it. The zip (or the folder's path) is also kept under
the runs folder (`uploads.store_zip_dataset`), so runs made on it reopen on every page, in every session, and after
a restart.
"""
from __future__ import annotations

from typing import BinaryIO

import streamlit as st

from distill_core.data import ImageSet, register_dataset
from distill_core.errors import DistillError
from distill_core.limits import LIMITS
from distill_core.uploads import (dataset_from_folder, dataset_from_zip, store_folder_dataset,
                                  store_zip_dataset)
from ui import state
from ui.errors import describe, strip_server_paths

KEY_STORE_ERROR = "upload.store_error"

KEY_KIND = "upload.kind"
KEY_FILE = "upload.file"
KEY_FOLDER = "upload.folder"
KEY_SIZE = "upload.size"
KEY_NAME = "upload.name"
KEY_MESSAGE = "upload.message"
SIZE_CHOICES = (8, 16, 28, 32, 48, 64, 96, 128)


def register_user_dataset(ds: ImageSet, select: bool = True) -> str:
    """Keep an uploaded dataset for this session (and in the registry); optionally make it the sidebar's choice."""
    datasets = st.session_state.get(state.KEY_USER_DATASETS)
    if not isinstance(datasets, dict):
        datasets = {}
    datasets[ds.name] = ds
    st.session_state[state.KEY_USER_DATASETS] = datasets
    register_dataset(ds)
    if select:
        st.session_state[state.KEY_DATASET] = ds.name
    return ds.name


def add_zip(data: bytes | BinaryIO, filename: str, image_size: int, name: str | None = None) -> ImageSet:
    """A zip (bytes or a file object such as Streamlit's UploadedFile) -> a registered dataset of this session."""
    ds = dataset_from_zip(data, image_size=int(image_size), name=name or None, filename=filename)
    register_user_dataset(ds)
    _keep(lambda: store_zip_dataset(ds, data, filename, int(image_size), name))
    return ds


def add_folder(path: str, image_size: int, name: str | None = None) -> ImageSet:
    """A folder of class folders on the server -> a registered dataset of this session."""
    ds = dataset_from_folder(path, image_size=int(image_size), name=name or None)
    register_user_dataset(ds)
    _keep(lambda: store_folder_dataset(ds, path, int(image_size), name))
    return ds


def _keep(store) -> None:
    """Keep the dataset with the runs; when that fails the dataset still works in this session (and says why)."""
    st.session_state.pop(KEY_STORE_ERROR, None)
    try:
        store()
    except Exception as exc:  # noqa: BLE001 - a read-only runs folder must not refuse the upload itself
        st.session_state[KEY_STORE_ERROR] = describe(exc)


def _message(ds: ImageSet, source: str = "") -> tuple[str, str]:
    """The verdict shown under the Add button; a zip's names the file it read."""
    skipped = ds.meta.get("skipped") or []
    text = f"Added {ds.describe()}" + (f" from {source}." if source else ".")
    if skipped:
        text += f" {len(skipped)} file(s) skipped, e.g. {strip_server_paths(str(skipped[0]))}."
    kept = st.session_state.get(KEY_STORE_ERROR)
    if kept:
        text += f" It is not kept with the runs ({kept}), so it lasts for this session only."
    return "success", text


def _on_add() -> None:
    """The Add button's callback: it runs before the next script run draws any widget, so it may also select the
    new dataset in the sidebar's picker."""
    ss = st.session_state
    source = ""
    try:
        size, name = int(ss.get(KEY_SIZE) or 32), ss.get(KEY_NAME) or None
        if ss.get(KEY_KIND, "zip file") == "zip file":
            upload = ss.get(KEY_FILE)
            if upload is None:
                raise DistillError("choose a zip file first")
            source = str(getattr(upload, "name", "upload.zip"))[:80]
            ds = add_zip(upload, source, size, name)
        else:
            ds = add_folder(str(ss.get(KEY_FOLDER) or ""), size, name)
        ss[KEY_MESSAGE] = _message(ds, source)
    except Exception as exc:  # noqa: BLE001 - never a traceback in the app (server paths stripped)
        # a zip's verdict names the file it is about (the uploader may list another one by then)
        ss[KEY_MESSAGE] = ("error", f"{source}: {describe(exc)}" if source else describe(exc))


def _forget_message() -> None:
    """A new file or folder was chosen: the verdict on the previous one no longer applies to what is shown."""
    st.session_state.pop(KEY_MESSAGE, None)


def upload_widget(expanded: bool = False) -> None:
    """The controls: a zip upload or a server folder path, an image size, a name, and an Add button."""
    with st.expander("Your own images", expanded=expanded, icon=":material/upload:"):
        kind = st.radio("Source", ["zip file", "server folder"], key=KEY_KIND, horizontal=True,
                        label_visibility="collapsed")
        if kind == "zip file":
            upload = st.file_uploader(f"A zip of class folders (≤ {LIMITS.upload_max_mb} MB)", type=["zip"],
                                      key=KEY_FILE, on_change=_forget_message,
                                      help="cats/1.png, cats/2.png, dogs/1.jpg, … — one folder per class; a single "
                                           "wrapping folder is fine")
            path = ""
        else:
            upload = None
            path = st.text_input("Folder on the server", key=KEY_FOLDER, placeholder="/data/my-images",
                                 on_change=_forget_message,
                                 help="a folder holding one sub-folder of images per class")
        c1, c2 = st.columns(2)
        size = c1.selectbox("Image size", SIZE_CHOICES, index=SIZE_CHOICES.index(32), key=KEY_SIZE,
                            help="images are centre-cropped to squares and resized to this many pixels")
        c2.text_input("Name", key=KEY_NAME, placeholder="optional")
        ready = upload is not None if kind == "zip file" else bool(path.strip())
        st.button("Add dataset", key="upload.add", disabled=not ready, icon=":material/add:", on_click=_on_add)
        msg = st.session_state.get(KEY_MESSAGE)
        if isinstance(msg, tuple) and len(msg) == 2:
            (st.success if msg[0] == "success" else st.error)(msg[1])

"""The sidebar every page shares (below st.navigation's page list): dataset picker, uploads, the device in use."""
from __future__ import annotations

import streamlit as st

from distill_core.device import describe_device, resolve_device
from distill_core.errors import DistillError
from ui import state, upload
from ui.errors import describe


@st.cache_resource(show_spinner=False)
def _device_text() -> str:
    return describe_device(resolve_device("auto"))


def render() -> None:
    """Draw the shared sidebar (call from app.py after st.navigation, before the page runs)."""
    with st.sidebar:
        choices = state.dataset_choices()
        uploads = state.user_datasets()
        current = st.session_state.get(state.KEY_DATASET)
        if current not in choices:  # first visit, or a dataset that went away (an upload of an ended session)
            st.session_state[state.KEY_DATASET] = state.DEFAULT_DATASET if state.DEFAULT_DATASET in choices \
                else choices[0]
        st.selectbox("Dataset", choices, key=state.KEY_DATASET,
                     format_func=lambda n: f"{n} (uploaded)" if n in uploads else n,
                     help="Embedded datasets work offline; torchvision sets appear once their files are in the "
                          "data root; uploads appear after you add them.")
        name = state.selected_dataset_name()
        try:
            with st.spinner("Loading the dataset…"):
                ds = state.resolve_dataset(name)
            st.caption(ds.describe())
        except DistillError as exc:
            st.error(str(exc))
        except Exception as exc:  # noqa: BLE001
            st.error(describe(exc))
        upload.upload_widget()  # the user's own images (ui/upload.py)
        st.caption(f"Device: **{_device_text()}**")

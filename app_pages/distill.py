"""Distill: pick a method, IPC, steps and settings; Start / Pause / Resume / Stop; watch the archetypes evolve."""
from __future__ import annotations

import streamlit as st

from distill_core.limits import LIMITS
from distill_core.methods import METHODS
from ui import distill_view as view
from ui import state
from ui.errors import guard

st.title("Distill")

job = state.current_job()
status = job.state().status if job is not None else None
busy = status in view.ACTIVE_STATUSES
dataset = None
with guard("The dataset could not be loaded"):
    dataset = state.resolve_dataset(state.selected_dataset_name())

if not METHODS:
    st.error("No method is registered.")
    st.stop()

names = sorted(METHODS, key=lambda n: (METHODS[n].kind != "distiller", n))
if st.session_state.get(state.KEY_METHOD) not in METHODS:
    st.session_state[state.KEY_METHOD] = "kip" if "kip" in METHODS else names[0]
if dataset is not None:
    st.caption(f"Dataset: **{dataset.describe()}** — change it in the sidebar.")

view.sanitize_int(state.KEY_IPC, 1, LIMITS.max_ipc, view.default_ipc(dataset.class_counts() if dataset else []))
view.sanitize_int(state.KEY_STEPS, 1, LIMITS.max_steps, int(METHODS[st.session_state[state.KEY_METHOD]].default_steps))
view.sanitize_int(state.KEY_SEED, 0, 2 ** 31 - 1, 0)

c1, c2, c3, c4 = st.columns([2, 1, 1, 1])
with c1:
    method = st.selectbox("Method", names, key=state.KEY_METHOD, format_func=view.method_label, disabled=busy,
                          on_change=view.on_method_change)
cls = METHODS[method]
with c2:
    st.number_input("Images per class (IPC)", min_value=1, max_value=LIMITS.max_ipc, step=1, key=state.KEY_IPC,
                    disabled=busy, help="How many images each class gets in the summary.")
with c3:
    st.number_input("Steps", min_value=1, max_value=LIMITS.max_steps, step=10, key=state.KEY_STEPS,
                    disabled=busy or cls.kind != "distiller",
                    help="Optimisation steps (selectors do their work in one step).")
with c4:
    st.number_input("Seed", min_value=0, max_value=2 ** 31 - 1, step=1, key=state.KEY_SEED, disabled=busy)
st.caption(cls.description or "")

with st.expander(f"Settings of {method}", expanded=False):
    view.settings_widgets(cls, dataset.name if dataset is not None else state.selected_dataset_name(), busy)
    st.button("Reset to defaults", key="distill.reset", on_click=view.reset_settings, args=(method,),
              disabled=busy)

b1, b2, b3, b4, _ = st.columns([1, 1, 1, 1, 3])
b1.button("Start", key="distill.start", type="primary", icon=":material/play_arrow:", on_click=view.on_start,
          disabled=busy or dataset is None)
b2.button("Pause", key="distill.pause", icon=":material/pause:", on_click=view.on_pause,
          disabled=status not in (view.STARTING, view.RUNNING))
b3.button("Resume", key="distill.resume", icon=":material/resume:", on_click=view.on_resume,
          disabled=status != view.PAUSED)
b4.button("Stop", key="distill.stop", icon=":material/stop:", on_click=view.on_stop, disabled=not busy)
state.show_message()

job = state.current_job()
if job is not None:
    status = job.state().status
    with guard("The live view failed"):
        view.live_panel(job, status)
    if status not in (view.STARTING, view.RUNNING):
        with guard("Replay failed"):
            view.replay(job)
        with guard("Exports failed"):
            view.exports_row(job)
    else:
        st.caption("Pause or wait for the end to replay the stored snapshots and export.")

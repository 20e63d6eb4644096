"""Distill: pick a method, IPC, steps and settings; Start / Pause / Resume / Stop; watch the archetypes evolve.

The run lives on the server under a token in this page's URL (`?run=…`): a reload comes back to it, and it is
saved to the run library by itself when it ends. Start is disabled, with the reason, while a shown value cannot
run. Presentation mode puts the grid first and large, the controls folded away.
"""
from __future__ import annotations

import math

import streamlit as st

from distill_core.limits import LIMITS
from distill_core import run_warnings
from distill_core.methods import METHODS, by_family
from distill_core.profiles import PROFILES
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

present = st.toggle("Presentation mode", key=state.KEY_PRESENT,
                    help="The archetype grid large and first, the controls folded away (for a projector)")
if state.url_token() is None and st.query_params.get(state.QUERY_RUN) and job is None:
    st.info("There is no live run under this link (it ended, or the link is wrong). Finished runs are in the "
            "Run library.")


def controls() -> None:
    names = by_family()  # grouped by family; the labels name it ("Kernel · kip")
    if st.session_state.get(state.KEY_METHOD) not in METHODS:
        st.session_state[state.KEY_METHOD] = "kip" if "kip" in METHODS else names[0]
    if dataset is not None:
        st.caption(f"Dataset: **{dataset.describe()}** — change it in the sidebar.")
        tiny = run_warnings.tiny_test_warning(len(dataset.y_test))
        if tiny:
            st.warning(tiny, icon=":material/straighten:")

    if st.session_state.get(state.KEY_PROFILE) not in PROFILES:
        st.session_state[state.KEY_PROFILE] = "fast"
    dataset_name = dataset.name if dataset is not None else state.selected_dataset_name()
    view.sanitize_int(state.KEY_IPC, view.default_ipc(dataset.class_counts() if dataset else []))
    chosen = METHODS[st.session_state[state.KEY_METHOD]]
    view.sanitize_int(state.KEY_STEPS, view.default_steps(chosen, dataset_name, ipc=view.shown_ipc()))
    view.sanitize_int(state.KEY_SEED, 0)
    if not busy:
        view.follow_default_steps(chosen, dataset_name)

    c1, c2, c3, c4 = st.columns([2, 1, 1, 1])
    with c1:
        method = st.selectbox("Method", names, key=state.KEY_METHOD, format_func=view.method_label, disabled=busy,
                              on_change=view.on_method_change)
    cls = METHODS[method]
    smallest = min(dataset.class_counts()) if dataset is not None else LIMITS.max_ipc
    # no min/max on the boxes: what is typed is what the page holds, and Start says why a value cannot run
    with c2:
        st.number_input("Images per class (IPC)", step=1, key=state.KEY_IPC, disabled=busy,
                        on_change=state.clear_message,
                        help=f"How many images each class gets in the summary (1 to {min(smallest, LIMITS.max_ipc)}"
                             f" here: the smallest class has {smallest} training images).")
    with c3:
        st.number_input("Steps", step=10, key=state.KEY_STEPS, disabled=busy or cls.kind != "distiller",
                        on_change=state.clear_message,
                        help=f"Optimisation steps, 1 to {LIMITS.max_steps:,} (selectors do their work in one step).")
    with c4:
        st.number_input("Seed", step=1, key=state.KEY_SEED, disabled=busy, on_change=state.clear_message)
    st.caption(cls.description or "")
    st.radio("Profile", PROFILES, key=state.KEY_PROFILE, horizontal=True, disabled=busy,
             on_change=view.on_profile_change, format_func=view.profile_label,
             help="fast: settings sized for a CPU in minutes; paper: the published recipe of the method's "
                  "authors (wider networks, more steps: hours on a CPU, use a GPU). Choosing one resets the "
                  "settings and steps to its defaults.")

    with st.expander(f"Settings of {method}", expanded=False):
        view.settings_widgets(cls, dataset.name if dataset is not None else state.selected_dataset_name(), busy)
        st.button("Reset to defaults", key="distill.reset", on_click=view.reset_settings, args=(method,),
                  disabled=busy)

    problem = None if busy else view.start_problem(dataset)
    b1, b2, b3, b4, _ = st.columns([1, 1, 1, 1, 3])
    b1.button("Start", key="distill.start", type="primary", icon=":material/play_arrow:", on_click=view.on_start,
              disabled=busy or problem is not None, help=f"Cannot start: {problem}" if problem else None)
    b2.button("Pause", key="distill.pause", icon=":material/pause:", on_click=view.on_pause,
              disabled=status not in (view.STARTING, view.RUNNING))
    b3.button("Resume", key="distill.resume", icon=":material/resume:", on_click=view.on_resume,
              disabled=status != view.PAUSED)
    b4.button("Stop", key="distill.stop", icon=":material/stop:", on_click=view.on_stop, disabled=not busy)
    # below the buttons, so that the buttons keep their place on the page whatever is said here
    if problem:
        st.warning(f"Start is disabled: {problem}", icon=":material/block:")
    elif not busy and dataset is not None:  # the expected time; a warning above about two minutes
        note, warn = view.time_note(method, dataset.name, int(st.session_state[state.KEY_IPC]),
                                    int(st.session_state[state.KEY_STEPS]),
                                    pixels=math.prod(dataset.image_shape), stored=view.first_use_stored(dataset))
        memory = view.memory_note(dataset)
        (st.warning if warn else st.caption)(f"{note} {memory}".strip())


def run_view() -> None:
    job = state.current_job()
    if job is None:
        return
    status = job.state().status
    with guard("The live view failed"):
        view.live_panel(job, status, present=present)
    if status in (view.STARTING, view.RUNNING):
        return
    if not present:  # downloads right under the progress; in presentation mode the grid comes first
        with guard("Exports failed"):
            view.exports_row(job)
    with guard("The result could not be drawn"):
        view.result_view(job, present=present)
    if present:
        with guard("Exports failed"):
            view.exports_row(job)


if present:
    with st.expander("Controls", expanded=False, icon=":material/tune:"):
        controls()
    state.show_message()
    run_view()
else:
    controls()
    state.show_message()
    run_view()

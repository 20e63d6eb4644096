"""Learn: what dataset distillation is, each family of methods in plain words, and one-click presets."""
from __future__ import annotations

import streamlit as st

from distill_core.data import dataset_available
from distill_core.estimates import describe_seconds
from ui import learn, state

st.title("Learn")
st.caption("For teachers and the curious: each method in plain words, with a preset that starts at once on the "
           "Distill page and finishes in under a minute on a 2-core laptop CPU (its expected time is on the "
           "button). Distillers start from random noise, so you can watch the images turn into digits.")


def _open(preset: learn.Preset) -> None:
    state.request_preset(preset.as_request(start=True))
    st.switch_page("app_pages/distill.py")


def _before_after(preset: learn.Preset) -> None:
    pair = preset.before_after()
    if pair is None:
        return
    left, right, _ = st.columns([1, 1, 3])
    left.image(str(pair[0]), caption="step 0: random noise")
    right.image(str(pair[1]), caption=f"step {preset.run_steps():,}: after distilling")


for topic in learn.TOPICS:
    st.header(topic.title, anchor=topic.key)
    st.markdown(topic.text)
    for i, preset in enumerate(topic.presets):
        ready = preset.available and dataset_available(preset.dataset)
        secs = preset.expected_seconds()
        label = f"Try it: {preset.title}" + (f" ({describe_seconds(secs)})" if secs is not None else "")
        if st.button(label, key=f"learn.{topic.key}.{i}", disabled=not ready, icon=":material/play_circle:",
                     help="Starts the run on the Distill page right away."):
            _open(preset)
        if not preset.available:
            st.caption(f"Not available yet: the method ({' / '.join(preset.methods)}) is not in this build. "
                       "The button turns on by itself once it is.")
        elif preset.settings.get("init") == "noise":
            _before_after(preset)

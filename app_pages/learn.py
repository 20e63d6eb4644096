"""Learn: what dataset distillation is, each family of methods in plain words, and one-click presets."""
from __future__ import annotations

import streamlit as st

from distill_core.data import dataset_available
from ui import learn, state

st.title("Learn")
st.caption("For teachers and the curious: each method in plain words, with a preset that opens the Distill page "
           "configured and finishes in well under a minute on a laptop CPU.")


def _open(preset: learn.Preset) -> None:
    state.request_preset(preset.as_request())
    st.switch_page("app_pages/distill.py")


for topic in learn.TOPICS:
    st.header(topic.title, anchor=topic.key)
    st.markdown(topic.text)
    for i, preset in enumerate(topic.presets):
        ready = preset.available and dataset_available(preset.dataset)
        label = f"Try it: {preset.title}"
        if st.button(label, key=f"learn.{topic.key}.{i}", disabled=not ready, icon=":material/play_circle:"):
            _open(preset)
        if not preset.available:
            st.caption(f"Not available yet: the method ({' / '.join(preset.methods)}) is not in this build. "
                       "The button turns on by itself once it is.")

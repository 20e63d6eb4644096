"""Learn: what dataset distillation is, each family of methods in plain words, and one-click presets."""
from __future__ import annotations

import streamlit as st

from distill_core.data import dataset_available
from distill_core.estimates import describe_seconds
from distill_core.methods import FAMILIES
from ui import learn, state

st.title("Learn")
st.caption("For teachers and the curious: each family of methods and each method in plain words, with a preset that starts at once on the "
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


FAMILY_INTRO = {
    "selection": "Keep (or average) a few real images per class.",
    "kernel": "Fit the summary so that a closed-form kernel predictor trained on it gets real images right.",
    "gradient": "Make a network's gradients on the summary and on real data agree.",
    "distribution": "Make the summary's features look like the real data's, on average, through many networks.",
    "trajectory": "Make training on the summary follow the path training on real data takes.",
    "decoupled": "No bi-level loop: a trained teacher picks, assembles and relabels real image crops.",
}


def _topic(topic: learn.Topic, heading) -> None:
    heading(topic.title, anchor=topic.key)
    st.markdown(topic.text)
    for i, preset in enumerate(topic.presets):
        ready = preset.available and dataset_available(preset.dataset)
        secs = preset.expected_seconds(stored=preset.stored()) if ready else preset.expected_seconds()
        label = f"Try it: {preset.title}" + (f" ({describe_seconds(secs)})" if secs is not None else "")
        if st.button(label, key=f"learn.{topic.key}.{i}", disabled=not ready, icon=":material/play_circle:",
                     help="Starts the run on the Distill page right away."):
            _open(preset)
        if not preset.available:
            st.caption(f"Not available yet: the method ({' / '.join(preset.methods)}) is not in this build. "
                       "The button turns on by itself once it is.")
        elif preset.settings.get("init") == "noise":
            _before_after(preset)


for family, topics in learn.family_topics():
    if not family:  # the general sections stand alone
        for topic in topics:
            _topic(topic, st.header)
        continue
    st.header(f"{FAMILIES[family]} methods", anchor=f"family-{family}")
    st.caption(FAMILY_INTRO.get(family, ""))
    for topic in topics:
        _topic(topic, st.subheader)

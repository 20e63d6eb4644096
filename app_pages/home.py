"""Home: what the lab is, and the archetypes of a small ready-made example run."""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from ui import library_view, nav
from ui.errors import guard

EXAMPLE = Path(__file__).resolve().parent.parent / "assets" / "example-run"

st.title("distill-lab")
st.markdown("""
**Learn a tiny training set — a few images per class — on which a network trains almost as well as on the whole
dataset, and watch it happen.**

Each class gets a handful of *archetype* images. Distillers (KIP, DM, DC/DSA, MTT) *learn* their pixels;
selectors (random, herding, k-center, facility location, k-means) *pick or average* real images. Everything runs
offline on a CPU on the embedded datasets (`digits`, `mnist-5k`); a GPU is used when there is one.
""")

c1, c2, c3 = st.columns(3)
c1.page_link("app_pages/distill.py", label="Distill a dataset", icon=":material/auto_awesome:")
if nav.has_page("app_pages/learn.py"):
    c2.page_link("app_pages/learn.py", label="Learn how the methods work", icon=":material/school:")
if nav.has_page("app_pages/library.py"):
    c3.page_link("app_pages/library.py", label="Open the run library", icon=":material/folder_open:")

st.subheader("An example: archetypes learned from MNIST")
if (EXAMPLE / "config.json").is_file():
    with guard("The example run could not be shown"):
        record = library_view.open_run(EXAMPLE)
        library_view.show_run(record, key="home.example")
        st.caption(f"Each row is one class. A network trained on these {len(record.summary)} images alone reaches "
                   "the accuracy above on the real test set."
                   + (" Drag the slider to replay their evolution." if record.snapshots is not None else ""))
else:
    st.info("The example run (assets/example-run) is missing; make one on the Distill page.")

"""distill-lab, the app: `streamlit run app.py`.

A router (st.navigation) over the page files in app_pages/ — a page whose file is missing is left out — with the
shared sidebar (dataset, device, run library). Helpers live in ui/; the pages are thin over distill_core.
"""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from ui import distill_view, learn, nav, sidebar, state, warm
from distill_core.embed import SERVER_WARM_SPACES, warm_up as embed_warm_up

ASSETS = Path(__file__).resolve().parent / "assets"

st.set_page_config(page_title="distill-lab", page_icon=str(ASSETS / "favicon.png"), layout="wide",
                   initial_sidebar_state="expanded")
if (ASSETS / "logo.png").is_file():
    st.logo(str(ASSETS / "logo.png"), icon_image=str(ASSETS / "favicon.png"))

warm.start_once()             # first-use costs (torch imports, the embedded dataset) paid in the background
# maps, in the background (idempotent): umap's numba compile, the default dataset's pixels map, then its trained
# ConvNet map (as work that holds still while a distillation runs or a page waits for another map)
embed_warm_up([state.DEFAULT_DATASET], spaces=SERVER_WARM_SPACES)
_preset = state.apply_pending_preset()  # a preset from the learn page configures the widgets before they are drawn
if _preset and _preset.get(learn.START_FLAG):  # ... and, from its one-click button, starts the run at once
    distill_view.on_start()
state.keep_widget_state()      # widget values survive page switches
page = st.navigation(nav.build_pages())
sidebar.render()
page.run()

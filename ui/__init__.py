"""Helpers shared by the Streamlit pages (the pages themselves stay thin over distill_core).

- `ui.state`    session-state keys (documented there), the session's job slot, dataset resolution, presets
- `ui.sidebar`  the shared sidebar: dataset picker, uploads, device
- `ui.nav`      the page list for st.navigation (pages whose file is missing are left out)
- `ui.grid`     per-class grids and snapshot timelines as images
- `ui.plots`    plotly figures: loss curves, accuracy curves
- `ui.errors`   `guard()`: DistillError -> st.error(message); anything else -> a short st.error, never a traceback
- `ui.downloads` download buttons whose bytes are built only when clicked (where Streamlit supports it)
- `ui.presets`  one-click configurations for the learn page
"""


"""Helpers shared by the Streamlit pages (the pages themselves stay thin over distill_core).

- `ui.state`    session-state keys (documented there), the session's job slot, dataset resolution, presets
- `ui.sidebar`  the shared sidebar: dataset picker, device, link to the run library
- `ui.nav`      the page list for st.navigation (pages whose file is missing are left out)
- `ui.grid`     per-class grids and snapshot timelines as images
- `ui.plots`    plotly figures: loss curves, accuracy curves
- `ui.errors`   `guard()`: DistillError -> st.error(message); anything else -> a short st.error, never a traceback
- `ui.downloads` download buttons whose bytes are built only when clicked (where Streamlit supports it)
- `ui.presets`  one-click configurations for the learn page
"""


def _leave_legacy_multipage_mode() -> None:
    """Streamlit decides per process, on its first session, whether the app uses st.navigation or the legacy
    `pages/` folder. A server whose very first request is a deep link (/library) picks the legacy mode and then
    runs page files alone — no sidebar, raw file names in the menu — until app.py runs once. Every page imports
    `ui`, so this flips the process to st.navigation mode and reruns (app.py then routes to the same page)."""
    try:
        from streamlit.runtime.pages_manager import PagesManager
        from streamlit.runtime.scriptrunner_utils.script_run_context import get_script_run_ctx
    except Exception:  # noqa: BLE001 - another Streamlit layout: nothing to do
        return
    if PagesManager.uses_pages_directory and get_script_run_ctx() is not None:
        PagesManager.uses_pages_directory = False
        import streamlit as st

        st.rerun()


_leave_legacy_multipage_mode()

"""AppTest helpers for apps that use st.navigation *and* keep their pages in a folder named `pages/`.

AppTest resets `PagesManager.uses_pages_directory` to None before every run; with a `pages/` folder present it then
takes the legacy (v1) multipage path, which runs a switched-to page's file *alone* — app.py (the sidebar, the preset
hand-over) is skipped after the first run. A real server runs app.py every time once st.navigation has been called
(the flag stays False for the process). `force_navigation_v2(monkeypatch)` makes AppTest behave like the server.
"""
from __future__ import annotations


def force_navigation_v2(monkeypatch) -> None:
    from streamlit.runtime.pages_manager import PagesManager

    original = PagesManager.__init__

    def init(self, *args, **kwargs):
        PagesManager.uses_pages_directory = False  # as after the app's first st.navigation call
        original(self, *args, **kwargs)

    monkeypatch.setattr(PagesManager, "__init__", init)

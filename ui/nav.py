"""The page list for st.navigation. A page whose file does not exist (yet) is left out, so the app runs before
and after other pages land."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import streamlit as st

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class PageSpec:
    path: str          # relative to the app's root, e.g. "app_pages/distill.py" (also what st.switch_page takes)
    title: str
    icon: str
    default: bool = False


PAGES: tuple[PageSpec, ...] = (
    PageSpec("app_pages/home.py", "Home", ":material/home:", default=True),
    PageSpec("app_pages/distill.py", "Distill", ":material/auto_awesome:"),
    PageSpec("app_pages/embedding.py", "Embedding", ":material/scatter_plot:"),
    PageSpec("app_pages/archetypes.py", "Archetypes", ":material/grid_view:"),
    PageSpec("app_pages/benchmark.py", "Benchmark", ":material/leaderboard:"),
    PageSpec("app_pages/library.py", "Run library", ":material/folder_open:"),
    PageSpec("app_pages/learn.py", "Learn", ":material/school:"),
)


def existing_pages(root: Path = ROOT) -> list[PageSpec]:
    """The pages whose files exist under `root`."""
    return [p for p in PAGES if (root / p.path).is_file()]


def has_page(path: str, root: Path = ROOT) -> bool:
    return (root / path).is_file()


def build_pages(root: Path = ROOT) -> list["st.Page"]:
    return [st.Page(p.path, title=p.title, icon=p.icon, default=p.default) for p in existing_pages(root)]

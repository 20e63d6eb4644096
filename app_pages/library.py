"""Run library: every run folder under the runs folder (made here or by the CLI); open, export or delete one."""
from __future__ import annotations

import streamlit as st

from distill_core.runs import default_runs_dir, delete_run
from ui import library_view, state
from ui.errors import guard

st.title("Run library")
root = default_runs_dir()
st.caption(f"Run folders under `{root}` (set `$DISTILL_RUNS_DIR` to use another folder). "
           "Runs saved from the Distill page and made by `python -m distill_core distill` both appear here.")

rows = []
with guard("The runs folder could not be read"):
    rows = library_view.table_rows(root)

if not rows:
    st.info("No runs yet. Distill something (a run saves itself here when it ends), or run "
            "`python -m distill_core distill --dataset digits --method random --ipc 10 --eval quick`.")
    st.stop()

st.dataframe(rows, hide_index=True, column_config={"accuracy %": st.column_config.NumberColumn(format="%.1f")})
names = [r["run"] for r in rows]
if st.session_state.get(state.KEY_LIBRARY_SELECTED) not in names:
    st.session_state[state.KEY_LIBRARY_SELECTED] = names[0]
name = st.selectbox("Open a run", names, key=state.KEY_LIBRARY_SELECTED)
path = root / name

with guard(f"Run {name} could not be opened"):
    record = library_view.open_run(path)
    library_view.show_run(record, key=f"library.{name}")
    library_view.export_buttons(record, key=f"library.dl.{name}")

with st.expander("Delete this run"):
    sure = st.checkbox(f"Yes, delete {name} permanently", key=f"library.confirm.{name}")
    if st.button("Delete", key="library.delete", type="primary", disabled=not sure, icon=":material/delete:"):
        with guard("Could not delete the run"):
            delete_run(path, root=root)
            st.session_state.pop(state.KEY_LIBRARY_SELECTED, None)
            st.toast(f"Deleted {name}")
            st.rerun()

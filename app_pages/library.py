"""Run library: every run folder under the runs folder (made here or by the CLI), its accuracies compared under
one evaluation protocol; open a run, name it, write notes, export it, re-run it with its settings, or delete it."""
from __future__ import annotations

import streamlit as st

from distill_core import library
from distill_core.runs import default_runs_dir, delete_run
from ui import library_view, state
from ui.errors import guard

KEY_PROTOCOL = "library.protocol"
KEY_SELECT_NEXT = "library.select_next"

st.title("Run library")
root = default_runs_dir()
st.caption(f"Run folders under `{root}` (set `$DISTILL_RUNS_DIR` to use another folder). "
           "Runs saved from the Distill page and made by `python -m distill_core distill` both appear here.")

runs = []
with guard("The runs folder could not be read"):
    runs = library.library_runs(root)

if not runs:
    st.info("No runs yet. Distill something (a run saves itself here when it ends), or run "
            "`python -m distill_core distill --dataset digits --method random --ipc 10 --eval quick`.")
    st.stop()

labels = library.protocol_labels(runs)
options = labels + [library.LATEST]
if st.session_state.get(KEY_PROTOCOL) not in options:
    st.session_state[KEY_PROTOCOL] = options[0]
label = st.selectbox(
    "Compare accuracies under", options, key=KEY_PROTOCOL,
    format_func=lambda o: "each run's latest evaluation (protocol shown beside it)" if o == library.LATEST else o,
    help="Figures of different protocols do not compare: `krr` (kernel ridge regression) scores far above a "
         "briefly trained network (`quick`). One protocol per column; runs not evaluated under it are blank "
         "(`python -m distill_core evaluate RUN --protocol P` adds one).")
rows = library_view.table_rows(root, label, runs)
acc_col = next(k for k in rows[0] if k.startswith("accuracy %"))
st.dataframe(rows, hide_index=True, column_config={acc_col: st.column_config.NumberColumn(format="%.1f"),
                                                   "± std": st.column_config.NumberColumn(format="%.1f")})
if label != library.LATEST:
    missing = sum(r[acc_col] is None for r in rows)
    if missing:
        st.caption(f"{missing} run(s) have no `{label}` evaluation; their accuracy is blank.")

names = [r["run"] for r in rows]
if st.session_state.get(KEY_SELECT_NEXT) in names:  # a run just renamed stays open under its new name
    st.session_state[state.KEY_LIBRARY_SELECTED] = st.session_state.pop(KEY_SELECT_NEXT)
if st.session_state.get(state.KEY_LIBRARY_SELECTED) not in names:
    st.session_state[state.KEY_LIBRARY_SELECTED] = names[0]
name = st.selectbox("Open a run", names, key=state.KEY_LIBRARY_SELECTED)
path = root / name

record = None
with guard(f"Run {name} could not be opened"):
    record = library_view.open_run(path)
    library_view.show_run(record, key=f"library.{name}")
    library_view.export_buttons(record, key=f"library.dl.{name}")

if record is not None:
    preset, why = library_view.rerun_request(record)
    if st.button("Re-run with these settings", key="library.rerun", icon=":material/replay:", disabled=preset is None,
                 help=why or "Opens the Distill page set to this run's dataset, method, IPC, steps, seed and "
                             "settings; press Start there to run it."):
        state.request_preset(preset)
        st.switch_page("app_pages/distill.py")

with st.expander("Name and notes", expanded=bool(library.read_notes(path))):
    with st.form(key=f"library.edit.{name}", border=False):
        new_name = st.text_input("Name (the run folder's name)", value=name, key=f"library.name.{name}",
                                 max_chars=library.NAME_MAX_CHARS)
        notes = st.text_area("Notes", value=library.read_notes(path), key=f"library.notes.{name}", height=120,
                             max_chars=library.NOTES_MAX_CHARS,
                             placeholder="what you tried, what you saw (stored in the run folder as notes.md)")
        if st.form_submit_button("Save name and notes", icon=":material/save:"):
            with guard("Could not save"):
                library.check_run_name(new_name)  # a bad name changes nothing, notes included
                library.write_notes(path, notes)
                new_path = library.rename_run(path, new_name, root=root)
                st.session_state[KEY_SELECT_NEXT] = new_path.name
                st.toast(f"Saved {new_path.name}")
                st.rerun()

with st.expander("Delete this run"):
    sure = st.checkbox(f"Yes, delete {name} permanently", key=f"library.confirm.{name}")
    if st.button("Delete", key="library.delete", type="primary", disabled=not sure, icon=":material/delete:"):
        with guard("Could not delete the run"):
            delete_run(path, root=root)
            st.session_state.pop(state.KEY_LIBRARY_SELECTED, None)
            st.toast(f"Deleted {name}")
            st.rerun()

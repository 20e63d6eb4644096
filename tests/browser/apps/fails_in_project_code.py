"""A test app whose script fails inside the project's own code: an unknown dataset name reaches
`distill_core.data.load_dataset`, which raises. Served by tests/browser/test_server_log_check.py to show that the
browser tests' server-log check reports a traceback through project code."""
import streamlit as st

from distill_core.data import load_dataset

st.title("Fails in project code")
load_dataset("no-such-dataset")

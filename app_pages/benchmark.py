"""Benchmark: accuracy against IPC for chosen methods, run here in the background or opened from saved results."""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from distill_core.bench import parse_settings
from distill_core.bench_results import SPLIT_WORDS, BenchJob, list_bench, load_bench, save_bench
from distill_core.evaluate import SPLITS, protocol_names
from distill_core.methods import METHODS, by_family, family_label
from distill_core.models import MODELS
from distill_core.profiles import PROFILES
from distill_core.relabel import RELABEL_MODES, RELABEL_WORDS
from distill_core.runs import default_runs_dir
from ui import bench_view, state
from ui.distill_view import profile_label
from ui.errors import guard

IPC_CHOICES = (1, 2, 5, 10, 20, 50)

st.title("Benchmark")
st.caption("Every chosen method at every chosen IPC on the same split and seeds, evaluated with one protocol; "
           "accuracy is the mean ± std over freshly trained networks. Results saved here, and those written by "
           "`python -m distill_core bench --out FILE` under the runs folder's `bench/`, can be reopened.")

slot = bench_view.session_slot()
source = st.segmented_control("Results", ["Run a benchmark", "Open saved results"], key="benchmark.source",
                              default="Run a benchmark")

if source == "Open saved results":
    saved = list_bench(default_runs_dir())
    if not saved:
        st.info(f"No saved bench results under `{Path(default_runs_dir()) / 'bench'}` yet. Run one here and press "
                "*Save*, or `python -m distill_core bench --dataset digits --ipc 1 10 --methods random "
                f"--out {Path(default_runs_dir()) / 'bench' / 'digits.json'}`.")
        st.stop()
    pick = st.selectbox("Saved result", [r["name"] for r in saved], key="benchmark.saved")
    with guard(f"{pick} could not be opened"):
        payload = load_bench(next(r["path"] for r in saved if r["name"] == pick))
        st.caption(f"{payload.get('dataset')} · protocol {payload.get('protocol')} · device {payload.get('device', '?')}"
                   f" · {payload.get('seconds', '?')} s")
        bench_view.show_results(payload, key="benchmark.saved")
    st.stop()

name = state.selected_dataset_name()
ds = state.dataset_or_stop(name)

job = slot.job
running = job is not None and job.state().active
smallest = min(ds.class_counts())
with st.form("benchmark.form", border=True):
    c1, c2 = st.columns(2)
    methods = c1.multiselect("Methods", by_family(), default=[m for m in ("random",) if m in METHODS],
                             format_func=family_label, key="benchmark.methods")
    ipcs = c2.multiselect("IPCs", [i for i in IPC_CHOICES if i <= smallest], default=[1, 5] if smallest >= 5 else [1],
                          key="benchmark.ipcs")
    c3, c4, c5, c6 = st.columns(4)
    steps = int(c3.number_input("Steps (distillers)", 0, 100_000, 50, key="benchmark.steps",
                                help="optimisation steps of each distiller (selectors ignore it); 0: each "
                                     "distiller's own number of steps in the chosen profile, as the README's "
                                     "figures use"))
    protocols = protocol_names()
    protocol = c4.selectbox("Evaluation", protocols, index=protocols.index("quick") if "quick" in protocols else 0,
                            key="benchmark.protocol")
    reps = int(c5.number_input("Networks per seed", 1, 10, 2, key="benchmark.reps"))
    seed = int(c6.number_input("First seed", 0, 2 ** 31 - 1, 0, key="benchmark.seed"))
    c7, c8, c9, c10 = st.columns(4)
    seeds = int(c7.number_input("Seeds", 1, 10, 1, key="benchmark.seeds",
                                help="distillation seeds (first seed, first + 1, ...); with several, each result "
                                     "is the mean ± std over them, as the field reports"))
    profile = c8.selectbox("Profile", PROFILES, key="benchmark.profile", format_func=profile_label)
    split = c9.selectbox("Split", SPLITS, key="benchmark.split", format_func=lambda s: SPLIT_WORDS[s],
                         help="validation: for choosing settings (carved from the training split, which no method "
                              "sees); test: for reporting figures")
    models = c10.multiselect("Judged by", list(MODELS), default=["convnet"], key="benchmark.models",
                             help="the evaluating architectures; several give a cross-architecture table (each "
                                  "summary is distilled once)")
    settings = st.text_input("Settings for every method (optional)", key="benchmark.settings",
                             placeholder="e.g. init=herding, lr=0.3",
                             help="KEY=VALUE pairs given to every chosen method on top of its profile, as `bench "
                                  "--param` does; each must be a setting of every chosen method (they are checked "
                                  "before anything runs)")
    relabel = st.selectbox("Teacher relabelling (rded, random-soft)", RELABEL_MODES, key="benchmark.relabel",
                           format_func=RELABEL_WORDS.get,
                           help="RDED's own evaluation: the teacher labels every augmented batch while each network "
                                "trains, instead of the one fixed soft label per image (with CutMix, as RDED's "
                                "students train); other methods are unchanged")
    submitted = st.form_submit_button("Start", type="primary", disabled=running, icon=":material/play_arrow:")

if submitted and not running:
    with guard("The benchmark could not start"):
        slot.job = BenchJob(ds, methods, ipcs, steps=steps or None, protocol=protocol, reps=reps, seed=seed,
                            relabel=relabel, seeds=seeds, profile=profile, split=split,
                            models=models, overrides=parse_settings(settings)).start()
        st.rerun()

if slot.job is None:
    st.info("Choose methods and IPCs, then press **Start**. It runs in the background; this page updates as "
            "results arrive.")
    st.stop()

active = slot.job.state().active


@st.fragment(run_every=1.0 if active else None)
def live() -> None:
    """Redraws the running benchmark once a second; reruns the page once when it ends."""
    job = slot.job
    if job is None:
        return
    s = job.state()
    if active and not s.active:
        st.rerun()  # finished: redraw the whole page once without polling
    done = len(s.rows)
    st.progress(min(1.0, done / max(1, s.total)),
                text=f"{s.status}: {done}/{s.total} results · {s.seconds:.0f} s")
    if s.error:
        st.error(f"The benchmark failed: {s.error}")
    if s.active and st.button("Stop", key="benchmark.stop", icon=":material/stop:"):
        job.stop()
    bench_view.show_results(s.payload, key="benchmark.live")
    if not s.active and s.rows and st.button("Save these results", key="benchmark.save", icon=":material/save:"):
        with guard("Could not save the results"):
            path = save_bench(s.payload, runs_dir=default_runs_dir())
            st.success(f"Saved to {path}")


live()

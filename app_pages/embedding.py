"""Embedding: a UMAP map of the real data, with distilled images, coreset picks, centroids and trajectories."""
from __future__ import annotations

import streamlit as st

from distill_core import embed
from distill_core.archetypes import PROTOTYPE_METHODS
from distill_core.runs import default_runs_dir, list_runs, load_run
from ui import maps, state
from ui.errors import guard

st.title("Embedding")
st.caption("UMAP is fitted once on the real training images of a feature space (cached on disk); everything "
           "else — distilled images, coreset picks, centroids, snapshots — is placed on that map with `transform`. "
           "Select points (click, box or lasso) to see their images.")

name = state.selected_dataset_name()
ds = state.dataset_or_stop(name)

embed.warm_up()  # no-op when the server already started it
runs = maps.runs_for_dataset(list_runs(default_runs_dir()), ds.name)
run_names = [r["name"] for r in runs]
smallest = min(ds.class_counts())

with st.container(border=True):
    c1, c2, c3 = st.columns([1.2, 2, 2])
    space = c1.selectbox("Feature space", list(embed.SPACES), key="embedding.space",
                         format_func=lambda s: s, help="\n".join(f"- **{k}**: {v}" for k, v in embed.SPACES.items()))
    chosen_runs = c2.multiselect("Distilled runs", run_names, key="embedding.runs",
                                 placeholder="saved runs of this dataset" if run_names else "no saved runs yet")
    protos = c3.multiselect("Prototypes and coreset picks", list(PROTOTYPE_METHODS), key="embedding.protos",
                            format_func=lambda m: maps.OVERLAY_LABELS.get(m, m), default=["mean"])
    c4, c5, c6, c7 = st.columns(4)
    ipc = c4.number_input("Picks per class", 1, max(1, min(20, smallest)), min(3, smallest), key="embedding.ipc",
                          help="images per class for k-means, medoids and the coreset pickers")
    trace = c5.toggle("Trajectories", key="embedding.trace", help="paths of synthetic images through the "
                      "snapshots of the chosen runs")
    animate = c6.toggle("Animate", key="embedding.animate", disabled=not trace)
    per_class = c7.number_input("Traced images per class", 1, 10, 1, key="embedding.per_class", disabled=not trace)
    traced_classes = None
    if trace:
        kept = [c for c in st.session_state.get("embedding.trace_classes") or [] if 0 <= c < ds.num_classes]
        st.session_state["embedding.trace_classes"] = kept  # another dataset may have fewer classes
        traced_classes = st.multiselect(
            "Classes to trace", list(range(ds.num_classes)), key="embedding.trace_classes",
            format_func=lambda c: f"class {ds.class_names[c]}", placeholder="every class",
            help="one path per traced image, labelled 'class c · image j'; click a legend entry to hide or show "
                 "one path, double-click to show it alone") or None

if not embed.is_warm():
    st.info("The map engine is warming up (umap's code is compiled once per server start; with its disk cache "
            "this takes a few seconds).", icon=":material/hourglass_top:")
if embed.warm_info().get("error"):
    st.caption(f"Warm-up note: {embed.warm_info()['error']}")

emb = None
with guard("The map could not be made"):
    if embed.is_cached(ds, space):
        message = f"Loading the {space} map of {ds.name}…"
    else:
        message = (f"First {space} map of {ds.name}: "
                   + ("training a small ConvNet on the real images, then " if space == "convnet-trained" else "")
                   + "fitting UMAP — done once, then cached on disk (a few seconds on a CPU)…")
    with st.spinner(message):
        emb = embed.get_embedding(ds, space)
if emb is None:
    st.stop()

overlays: list[maps.Overlay] = []
trajectories: list[maps.Trajectory] = []
notes: list[str] = []
with st.spinner("Placing overlays on the map…"):
    for name_ in protos:
        with guard(f"{maps.OVERLAY_LABELS.get(name_, name_)} could not be placed"):
            ov, why = maps.prototype_overlay(emb, ds, name_, int(ipc))
            if ov is None:
                notes.append(why)
            else:
                overlays.append(ov)
    for i, run_name in enumerate(chosen_runs):
        row = next((r for r in runs if r["name"] == run_name), None)
        if row is None:
            continue
        with guard(f"Run {run_name} could not be placed"):
            record = load_run(row["path"], with_snapshots=trace)
            overlays.append(maps.run_overlay(emb, record, maps.RUN_SYMBOLS[i % len(maps.RUN_SYMBOLS)]))
            if trace:
                tr = maps.run_trajectory(emb, record, per_class=int(per_class), classes=traced_classes)
                if tr is None:
                    notes.append(f"run {run_name} has no snapshots to trace (selectors make none)")
                else:
                    trajectories.append(tr)
for note in notes:
    st.caption(f"Note: {note}.")
if animate and len(trajectories) > 1:
    st.caption("The animation follows the first traced run; the others are drawn as paths.")

fig = maps.map_figure(emb, ds.class_names, overlays, trajectories, animate=animate and bool(trajectories))
event = st.plotly_chart(fig, key="embedding.map", on_select="rerun", selection_mode=("points", "box", "lasso"),
                        width="stretch")
net_info = emb.feature_space.info if emb.feature_space is not None else {}
net_note = (f" The feature ConvNet classifies {100 * net_info['test_acc']:.0f}% of test images correctly."
            if isinstance(net_info.get("test_acc"), float) and space == "convnet-trained" else "")
st.caption(f"{len(emb.indices)} real training images of {ds.name} ({embed.SPACES[space]}); "
           + ("map loaded from the cache." if emb.from_disk else f"map fitted in {emb.fit_seconds:.1f} s.")
           + net_note)

picked = maps.selected_images(maps.selected_points(event), ds, overlays)
with st.container(border=True):
    if not picked:
        st.caption("Selected points' images appear here: click a point, or drag a box or lasso around several.")
    else:
        st.markdown(f"**{len(picked)} selected point(s)**")
        cols = st.columns(min(8, len(picked)))
        for j, (img, caption) in enumerate(picked):
            cols[j % len(cols)].image(maps.thumbnail(img), caption=caption)

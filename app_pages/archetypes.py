"""Archetypes: per class, prototypes and distilled images side by side; nearest real images; typicality; export."""
from __future__ import annotations

import streamlit as st
import torch

from distill_core import archetypes, embed, stimuli
from distill_core.runs import default_runs_dir, list_runs, load_run
from ui import archetype_view as view, maps, state
from ui.downloads import cached_download
from ui.errors import guard

st.title("Archetypes")
st.caption("Per class: the class mean, medoids, k-means centres, coreset picks and distilled images side by side; "
           "each distilled image's nearest real training images and its difference from the class mean; the real "
           "images ranked by typicality; and a stimulus export for experiments.")

name = state.selected_dataset_name()
ds = state.dataset_or_stop(name)

runs = maps.runs_for_dataset(list_runs(default_runs_dir()), ds.name)
run_names = [r["name"] for r in runs]
smallest = min(ds.class_counts())

with st.container(border=True):
    c1, c2, c3 = st.columns([1, 2, 2])
    c = c1.selectbox("Class", range(ds.num_classes), key="archetypes.class",
                     format_func=lambda i: f"{i}: {ds.class_names[i]}")
    chosen_runs = c2.multiselect("Distilled runs", run_names, key="archetypes.runs",
                                 default=run_names[:1],
                                 placeholder="saved runs of this dataset" if run_names else "no saved runs yet")
    protos = c3.multiselect("Prototypes and coreset picks", list(archetypes.PROTOTYPE_METHODS),
                            key="archetypes.protos", default=["mean", "medoids", "kmeans"],
                            format_func=lambda m: maps.OVERLAY_LABELS.get(m, m))
    c4, c5, c6, c7 = st.columns(4)
    ipc = int(c4.number_input("Picks per class", 1, max(1, min(20, smallest)), min(3, smallest),
                              key="archetypes.ipc"))
    space = c5.selectbox("Feature space", list(embed.SPACES), key="archetypes.space", index=0,
                         format_func=lambda s: f"{s} (recommended)" if s == archetypes.RECOMMENDED_SPACE else s,
                         help="\n".join(f"- **{k}**: {v}" for k, v in embed.SPACES.items())
                         + f"\n\n{archetypes.WHY_RECOMMENDED}")
    metric = c6.selectbox("Similarity", list(archetypes.METRICS), index=1, key="archetypes.metric",
                          help="cosine similarity, or minus the Euclidean distance, to the archetype")
    k = int(c7.number_input("Neighbours / exemplars", 1, 20, 5, key="archetypes.k"))
    normalize = st.checkbox("Contrast-normalise pixels (each image: mean 0, standard deviation 1)", value=True,
                            key="archetypes.normalize",
                            help="Pixel-space neighbours and typicality compare shapes, not overall brightness.")
st.caption(archetypes.WHY_RECOMMENDED)
if not normalize:
    st.warning(archetypes.RAW_PIXELS_WARNING)
px_label = archetypes.space_label("pixels", normalize)

if space == "convnet-trained" and not embed.trained_net_cached(ds):
    st.caption("The first use of the trained feature space trains a small ConvNet on the real images (once per "
               "dataset, cached on disk); this can take a minute on a CPU.")

records = []
for run_name in chosen_runs:
    row = next((r for r in runs if r["name"] == run_name), None)
    if row is not None:
        with guard(f"Run {run_name} could not be opened"):
            records.append(load_run(row["path"], with_snapshots=False))

# ------------------------------------------------------------------------------------------ side by side
st.subheader(f"Class {ds.class_names[c]}: side by side")
notes = []
with st.spinner("Computing prototypes…"):
    for proto in protos:
        with guard(f"{proto} could not be computed"):
            if proto == "mean":
                st.markdown("**class mean**")
                view.image_row([archetypes.class_means(ds)[c]], ["mean"])
                continue
            summary, why = archetypes.prototype_summary(ds, proto, ipc)
            if summary is None:
                notes.append(why)
                continue
            imgs = summary.images[summary.hard_labels == c]
            st.markdown(f"**{maps.OVERLAY_LABELS.get(proto, proto)}**")
            view.image_row(imgs, [f"{proto} {j + 1}" for j in range(len(imgs))])
for rec in records:
    imgs = view.class_images(rec, c)
    st.markdown(f"**{rec.summary.method} IPC {rec.summary.ipc}** · `{rec.name}`")
    if len(imgs):
        view.image_row(imgs, [f"#{j + 1}" for j in range(len(imgs))])
    else:
        st.caption("no image of this class")
for note in notes:
    st.caption(f"Note: {note}.")

# ------------------------------------------------------------------------------------ nearest real images
if records:
    st.subheader("Distilled images against the real data")
    st.caption(f"Each distilled image, its difference from the class mean (red: brighter, blue: darker), and its "
               f"{k} nearest real training images in {px_label} and in the {space} space (distances under "
               f"each).")
    with guard("Nearest real images could not be found"), st.spinner("Searching the real images…"):
        for rec in records:
            imgs = view.class_images(rec, c)
            if not len(imgs):
                continue
            labels = torch.full((len(imgs),), c, dtype=torch.long)
            diffs, dist_mean = archetypes.difference_from_mean(ds, imgs, labels)
            near_px = archetypes.nearest_real(ds, imgs, k, "pixels", "euclidean", normalize=normalize)
            near_ft = archetypes.nearest_real(ds, imgs, k, space, metric) if space != "pixels" else None
            for j in range(len(imgs)):
                with st.container(border=True):
                    left, mid, right = st.columns([1, 1, 6])
                    left.image(maps.thumbnail(imgs[j]), caption=f"{rec.summary.method} #{j + 1}")
                    mid.image(view.diff_picture(diffs[j]), caption=f"− mean: {dist_mean[j]:.2f}")
                    with right:
                        st.caption(f"nearest real, {px_label} (Euclidean distance)")
                        view.image_row([ds.x_train[i] for i in near_px.indices[j]],
                                       [f"#{i} · {d:.2f}" for i, d in zip(near_px.indices[j], near_px.distances[j])],
                                       per_row=max(k, 5), tile=56)
                        if near_ft is not None:
                            st.caption(f"nearest real, {space} ({metric} distance)")
                            view.image_row([ds.x_train[i] for i in near_ft.indices[j]],
                                           [f"#{i} · {d:.3f}" for i, d in
                                            zip(near_ft.indices[j], near_ft.distances[j])],
                                           per_row=max(k, 5), tile=56)

# ------------------------------------------------------------------------------------------ typicality
st.subheader("Typicality")
arch_choices = ["class centroid"] + [f"{rec.name} #{j + 1}" for rec in records
                                     for j in range(len(view.class_images(rec, c)))]
arch = st.selectbox("Archetype", arch_choices, key="archetypes.arch",
                    help="real images are ranked by similarity to this, in the chosen feature space")
table = None
with guard("Typicality could not be computed"), st.spinner(f"Ranking class {ds.class_names[c]}…"):
    if arch == "class centroid":
        table = archetypes.typicality(ds, c, space, metric=metric, normalize=normalize)
    else:
        rec_name, num = arch.rsplit(" #", 1)
        rec = next(r for r in records if r.name == rec_name)
        table = archetypes.typicality(ds, c, space, archetype=view.class_images(rec, c)[int(num) - 1],
                                      metric=metric, archetype_name=arch, normalize=normalize)
if table is not None:
    idx, sc = table.most(k)
    st.markdown(f"**Most typical** ({metric}, {table.space}, archetype: {table.archetype})")
    view.image_row([ds.x_train[i] for i in idx], [f"#{i} · {s:.3f}" for i, s in zip(idx, sc)], per_row=max(k, 5))
    idx, sc = table.least(k)
    st.markdown("**Least typical**")
    view.image_row([ds.x_train[i] for i in idx], [f"#{i} · {s:.3f}" for i, s in zip(idx, sc)], per_row=max(k, 5))
    with st.expander(f"Full ranking of class {ds.class_names[c]} ({len(table.indices)} images)"):
        st.dataframe(table.rows(), hide_index=True, height=300)

    def _typicality_csv() -> bytes:
        tables = [archetypes.typicality(ds, cc, space, metric=metric, normalize=normalize)
                  for cc in range(ds.num_classes)]
        return stimuli.typicality_csv(tables).encode("utf-8")

    cached_download("Download typicality CSV (all classes, class centroid)", _typicality_csv,
                    file_name=f"typicality-{space}-{metric}.csv", mime="text/csv", key="archetypes.dl.csv",
                    cache_key=f"archetypes.csv|{ds.name}|{space}|{metric}|{normalize}")

# ------------------------------------------------------------------------------------------ export
st.subheader("Stimulus export")
st.caption("A zip of PNGs, manifest.csv (stable stimulus ID, file, class, source — selected real image, averaged "
           "real images or distilled —, method, dataset, steps, seed, typicality with its space, metric, rank and "
           "percentile in the class, measured luminance and contrast), README.txt (how the images were made) and, "
           "optionally, trials.csv (counterbalanced orders per participant).")
e1, e2, e3, e4 = st.columns(4)
size = int(e1.number_input("Size (pixels)", stimuli.MIN_SIZE, stimuli.MAX_SIZE, 128, step=8, key="archetypes.size"))
mode = e2.selectbox("Colour", list(stimuli.MODES), index=0 if ds.channels == 1 else 1, key="archetypes.mode")
resample = e3.selectbox("Resampling", list(stimuli.RESAMPLING), index=2, key="archetypes.resample")
typical_k = int(e4.number_input("Most/least typical per class", 0, 50, 0, key="archetypes.typical_k"))
q1, q2, q3, q4, q5 = st.columns(5)
invert = q1.checkbox("Invert polarity", key="archetypes.invert", help="each pixel value v becomes 1 − v")
equal = q2.checkbox("Equalise luminance and contrast", key="archetypes.equalise",
                    help="every image gets the same mean luminance and RMS contrast (standard deviation of "
                         "luminance in [0, 1]), measured after resizing; the measured values go to the manifest")
target_mean = float(q3.number_input("Target mean luminance", 0.05, 0.95, 0.5, step=0.05, format="%.2f",
                                    key="archetypes.target_mean", disabled=not equal))
target_rms = float(q4.number_input("Target RMS contrast", 0.01, 0.45, 0.2, step=0.01, format="%.2f",
                                   key="archetypes.target_rms", disabled=not equal))
padding = int(q5.number_input("Padding (pixels)", 0, stimuli.MAX_PADDING, 0, step=4, key="archetypes.padding"))
r1, r2, r3, r4 = st.columns(4)
background = r1.color_picker("Background (padding) colour", "#808080", key="archetypes.background",
                             disabled=padding == 0)
classes = r2.multiselect("Classes", list(range(ds.num_classes)), default=list(range(ds.num_classes)),
                         format_func=lambda i: f"{i}: {ds.class_names[i]}", key="archetypes.export_classes")
participants = int(r3.number_input("Trial lists: participants (0: none)", 0, stimuli.MAX_PARTICIPANTS, 0,
                                   key="archetypes.participants"))
design = r4.selectbox("Order design", list(stimuli.DESIGNS), key="archetypes.design", disabled=participants == 0,
                      format_func={"latin": "Williams Latin square", "shuffle": "seeded shuffles (Latin squares)"}.get,
                      help="Both put every stimulus equally often at every position when the number of "
                           "participants is a multiple of the number of stimuli.")
options = stimuli.StimulusOptions(size=size, mode=mode, resample=resample, invert=invert,
                                  mean_luminance=target_mean if equal else None,
                                  rms_contrast=target_rms if equal else None, background=background,
                                  padding=padding)


def _items() -> list[stimuli.Stimulus]:
    items = view.stimulus_list(ds, records, protos, ipc, typical_k, space, metric, normalize)
    return stimuli.select_stimuli(items, classes=classes)


picked: list[str] | None = None
if st.checkbox("Hand-pick the images", key="archetypes.handpick",
               help="choose individual images by their stable ID (it does not change with the selection)"):
    with guard("The images could not be listed"), st.spinner("Listing the images…"):
        listed = _items()
        labels = {s.stimulus_id: f"{s.stimulus_id} · {s.class_name} · {s.method} · {s.source_detail or s.source}"
                  for s in listed}
        picked = st.multiselect("Images to export", list(labels), format_func=labels.get,
                                key="archetypes.picked")


def _zip() -> bytes:
    items = _items()
    if picked is not None:
        items = stimuli.select_stimuli(items, ids=picked)
    return stimuli.stimulus_zip(items, options=options, participants=participants, design=design, seed=0)


n_items = sum(len(r.summary) for r in records) + typical_k * 2 * ds.num_classes
st.caption(f"{n_items} image(s) from runs and typical exemplars, plus the chosen prototypes, of the chosen classes."
           if picked is None else f"{len(picked)} hand-picked image(s).")
# built in this run and cached by everything it shows (as on the distill page), so a click after a rerun finds it
_zip_key = "|".join(map(repr, ("archetypes.zip", ds.name, [r.name for r in records], protos, ipc, typical_k, space,
                                metric, normalize, options, classes, picked, participants, design)))
with st.spinner("Preparing the stimuli…"):
    cached_download("Download stimuli (zip)", _zip, file_name=f"stimuli-{ds.name.replace(':', '-')}.zip",
                    mime="application/zip", key="archetypes.dl.zip", cache_key=_zip_key,
                    disabled=not (records or protos or typical_k) or not classes or picked == [])

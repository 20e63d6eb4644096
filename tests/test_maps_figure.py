"""The map figure's readability: real points under overlays, legend outside the plot, one labelled path per
traced image. A 2-D PCA stands in for UMAP as the map's reducer (a real linear map, fitted in milliseconds)."""
from __future__ import annotations

import numpy as np
import torch
from sklearn.decomposition import PCA

from distill_core import embed
from distill_core.runs import RunRecord
from distill_core.summary import Summary
from ui import maps


def _linear_map(ds) -> embed.Embedding:
    idx = embed.sample_indices(ds.y_train, 300)
    feats = ds.x_train[torch.from_numpy(idx)].reshape(len(idx), -1).numpy()
    reducer = PCA(2, random_state=0).fit(feats)
    return embed.Embedding(embed.dataset_key(ds), "pixels", idx, ds.y_train.numpy()[idx],
                           reducer.transform(feats).astype(np.float32), None, reducer,
                           feature_space=embed.feature_space(ds, "pixels"))


def _record(ds, tmp_path) -> RunRecord:
    labels = torch.arange(10).repeat_interleave(2)
    images = torch.stack([ds.x_train[ds.y_train == c][:2] for c in range(10)]).reshape(20, *ds.image_shape)
    snaps = {"steps": torch.tensor([0, 10, 20]),
             "images": torch.stack([images * t + (1 - t) * 0.5 for t in (0.0, 0.5, 1.0)])}
    summary = Summary(images, labels, "fake", ds.name, 2, list(ds.class_names), {})
    return RunRecord(tmp_path / "run-a", {"method": "fake"}, summary, [], snaps)


def test_one_labelled_path_per_chosen_image(digits, tmp_path):
    emb = _linear_map(digits)
    record = _record(digits, tmp_path)
    tr = maps.run_trajectory(emb, record, per_class=2, classes=[3, 7])
    assert tr.coords.shape == (3, 4, 2) and tr.labels.tolist() == [3, 3, 7, 7] and tr.image_ids == [1, 2, 1, 2]
    assert [tr.label(k, digits.class_names) for k in range(4)] == [
        "class 3 · image 1", "class 3 · image 2", "class 7 · image 1", "class 7 · image 2"]
    # the path ends where the final images sit on the map
    final = emb.transform(record.summary.images[[6, 7, 14, 15]], memo=False)
    np.testing.assert_allclose(tr.coords[-1], final, atol=1e-4)
    assert maps.run_trajectory(emb, record, classes=[]) is None
    assert maps.run_trajectory(emb, record).labels.tolist() == list(range(10))  # every class, one image each

    fig = maps.map_figure(emb, digits.class_names, [maps.run_overlay(emb, record, "diamond")], [tr], animate=True)
    kinds = [("real" if d.legendgroup == "real" else "path" if d.legendgroup.startswith("tr-") else "overlay")
             for d in fig.data[:-1]]
    # drawing order: real points, then paths, then overlays on top (the last trace is the animation's marker)
    assert kinds == ["real"] * 10 + ["path"] * 4 + ["overlay"]
    paths = fig.data[10:14]
    assert [p.name for p in paths] == [tr.label(k, digits.class_names) for k in range(4)]
    assert paths[0].legendgrouptitle.text == "paths · run-a" and paths[1].legendgrouptitle.text is None
    assert paths[0].hovertemplate and paths[0].customdata is None  # hover says class/image/step; no selection
    assert len(fig.frames) == 3


def test_real_points_stay_visible_and_the_legend_is_outside(digits, tmp_path):
    emb = _linear_map(digits)
    record = _record(digits, tmp_path)
    fig = maps.map_figure(emb, digits.class_names, [maps.run_overlay(emb, record, "diamond")])
    real, overlay = fig.data[0], fig.data[-1]
    assert real.marker.size >= 5 and real.marker.opacity >= 0.6
    assert overlay.marker.opacity < 1 and overlay.marker.size <= 2.5 * real.marker.size
    legend = fig.layout.legend
    assert legend.orientation == "h" and legend.y < 0 and legend.yanchor == "top"  # below the plot area
    # selection still maps points back to real images and overlay images
    assert real.customdata[0][0] == 0 and overlay.customdata[3] == [1, 3]

"""The archetypes page's export options through streamlit.testing: contrast normalisation and its warning, the
recommended space, equalisation, trial lists and hand-picking by stable ID."""
from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("DISTILL_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


def _clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


@pytest.mark.slow
def test_export_options_and_hand_picking(digits):
    from distill_core import archetypes

    at = AppTest.from_file(str(ROOT / "app_pages" / "archetypes.py"), default_timeout=180)
    at.session_state["dataset"] = "digits"
    at.run()
    _clean(at)
    assert at.selectbox(key="archetypes.space").value == "pixels"
    assert "convnet-trained (recommended)" in at.selectbox(key="archetypes.space").options
    assert any(archetypes.WHY_RECOMMENDED in c.value for c in at.caption)
    assert any("pixels (contrast-normalised)" in m.value for m in at.markdown)  # the typicality heading
    assert not at.warning
    at.checkbox(key="archetypes.normalize").uncheck().run()
    _clean(at)
    assert any("brightness" in w.value for w in at.warning)
    at.checkbox(key="archetypes.normalize").check().run()

    at.checkbox(key="archetypes.equalise").check().run()
    assert not at.number_input(key="archetypes.target_mean").disabled
    at.number_input(key="archetypes.participants").set_value(4).run()
    assert not at.selectbox(key="archetypes.design").disabled
    at.multiselect(key="archetypes.export_classes").set_value([2, 5]).run()
    at.checkbox(key="archetypes.handpick").check().run()
    _clean(at)
    options = at.multiselect(key="archetypes.picked").options
    # class mean, medoids and k-means centroids of classes 2 and 5 at 3 per class: 2 × (1 + 3 + 3)
    assert len(options) == 14 and all(o.split(" · ")[1] in ("2", "5") for o in options)
    ids = [o.split(" · ")[0] for o in options]   # the stable IDs behind the labels
    at.multiselect(key="archetypes.picked").set_value([ids[0], ids[-1]]).run()
    _clean(at)
    assert any("2 hand-picked image(s)" in c.value for c in at.caption)

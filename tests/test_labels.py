"""The words table of the distill page's settings (ui/labels.py): every setting of every method has words."""
from __future__ import annotations

import dataclasses

import pytest

from distill_core.methods import METHODS
from distill_core.methods.base import Method, MethodConfig
from ui import labels


def test_every_config_field_of_every_registered_method_has_words():
    assert labels.missing_words(METHODS) == []


def test_a_method_without_words_is_reported():
    @dataclasses.dataclass
    class NewConfig(MethodConfig):
        lr: float = 0.1
        brand_new_knob: int = 3

    class NewMethod(Method):
        name = "brand-new"
        Config = NewConfig

    assert labels.missing_words({"brand-new": NewMethod}) == ["brand-new.brand_new_knob"]


@pytest.mark.parametrize("name", sorted(METHODS))
def test_words_are_a_label_and_one_sentence(name):
    for field in labels.config_fields(METHODS[name].Config):
        w = labels.words(name, field)
        assert w.label and w.label[0].isupper() and len(w.label) <= 40, (name, field, w.label)
        text = w.help.strip()
        assert text.endswith(".") and len(text) <= 260, (name, field, text)
        # one sentence: no full stop followed by a new sentence inside it
        assert ". " not in text.replace("e.g. ", ""), (name, field, text)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_choices_contain_the_default_and_only_values_the_config_accepts(name):
    cls = METHODS[name]
    cfg = cls.Config()
    for field in labels.config_fields(cls.Config):
        options = labels.words(name, field).options()
        if options is None:
            continue
        default = getattr(cfg, field)
        assert isinstance(default, str) and default in options, (name, field, default, options)
        for option in options:  # every choice is accepted by the Config's own check
            candidate = dataclasses.replace(cfg, **{field: option})
            candidate.validate()


def test_overrides_take_precedence_and_text_fields_with_fixed_values_are_select_boxes():
    assert labels.words("kip", "depth").label.startswith("Kernel depth")
    assert labels.words("dm", "depth").label.startswith("Network depth")
    assert labels.words("kip", "kernel").options() == ["ntk", "nngp", "rbf"]
    assert labels.words("dc", "init").options() == ["real", "herding", "noise"]
    assert "random" in labels.words("ls", "support").options()
    assert labels.words("kip", "nonexistent") is None


def test_advanced_settings_are_folded_but_every_method_keeps_its_main_ones_visible():
    for name, cls in METHODS.items():
        fields = labels.config_fields(cls.Config)
        if not fields:
            continue
        shown = [f for f in fields if not labels.words(name, f).advanced]
        assert shown or name in {"kmeans", "facility"}, name
    assert labels.words("kip", "ridge").advanced and not labels.words("kip", "kernel").advanced

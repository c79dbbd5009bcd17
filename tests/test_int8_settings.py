"""A cached int8 build and an int8 record belong to the family's int8 defaults they were made with."""

import dataclasses

from edgepose.bench.bundles import _int8_settings
from edgepose.quantization import scopes
from edgepose.quantization.scopes import choice_for, settings_digest


def test_changed_int8_defaults_change_the_digest(monkeypatch):
    before = settings_digest("dsta")
    assert before == _int8_settings("dsta_mnv2_coco") == _int8_settings("dsta_mnv2")
    assert before != settings_digest("distilpose")
    choice = choice_for("dsta")
    for changed in (
        dataclasses.replace(choice, options={**choice.options, "weight_type": "s8"}),  # a re-measured knob
        dataclasses.replace(choice, chosen=choice.chosen[:-1]),  # one scope less kept float
    ):
        monkeypatch.setattr(scopes, "choice_for", lambda family, c=changed: c)
        assert settings_digest("dsta") != before  # so a cached build made before is not reused
        assert _int8_settings("dsta_mnv2_coco") == settings_digest("dsta")

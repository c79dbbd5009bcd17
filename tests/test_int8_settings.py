"""A cached int8 build and an int8 record belong to the family's int8 defaults they were made with."""

import dataclasses

from edgepose.quantization import scopes
from edgepose.quantization.scopes import choice_for, settings_digest
from edgepose.zoo.pretrained import int8_settings


def test_changed_int8_defaults_change_the_digest(monkeypatch):
    before = settings_digest("dsta")
    assert before == int8_settings("dsta_mnv2_coco") == int8_settings("dsta_mnv2")
    assert before != settings_digest("distilpose")
    choice = choice_for("dsta")
    for changed in (
        dataclasses.replace(choice, options={**choice.options, "weight_type": "s8"}),  # a re-measured knob
        dataclasses.replace(choice, chosen=choice.chosen[:-1]),  # one scope less kept float
    ):
        monkeypatch.setattr(scopes, "choice_for", lambda family, c=changed: c)
        assert settings_digest("dsta") != before  # so a cached build made before is not reused
        assert int8_settings("dsta_mnv2_coco") == settings_digest("dsta")

"""Model families: one object per zoo family holding its training task, recipe, layer-decay rule,
teacher reader, int8 float scopes, QAT outputs and export extras (see :mod:`.base`); looked up by
name or spec."""

from .base import DerivedInput, Family, TeacherReader, last_stage
from .registry import (
    FAMILY_MODULES,
    derived_inputs,
    families,
    find_family,
    get_family,
    model_family,
    refresh,
)

__all__ = [
    "FAMILY_MODULES",
    "DerivedInput",
    "Family",
    "TeacherReader",
    "derived_inputs",
    "families",
    "find_family",
    "get_family",
    "last_stage",
    "model_family",
    "refresh",
]

"""Model families: one object per zoo family holding its training task, recipe, layer-decay rule,
teacher reader, int8 float scopes and QAT outputs (see :mod:`.base`); looked up by name or spec."""

from .base import Family, TeacherReader, last_stage
from .registry import FAMILY_MODULES, families, get_family, refresh

__all__ = ["FAMILY_MODULES", "Family", "TeacherReader", "families", "get_family", "last_stage", "refresh"]

"""The family registry: family name -> :class:`~.base.Family`.

Each module named in ``FAMILY_MODULES`` holds one ``FAMILY``; adding a family means adding a
module and one line here. Modules are imported on the first lookup (they import torch).
"""

from __future__ import annotations

import importlib

from .base import DerivedInput, Family

FAMILY_MODULES: tuple[str, ...] = (
    "edgepose.families.dsta",
    "edgepose.families.distilpose",
    "edgepose.families.sharpose",
    "edgepose.families.tar_vitpose",
    "edgepose.families.pavenet",
)

_FAMILIES: dict[str, Family] = {}


def _load() -> dict[str, Family]:
    if not _FAMILIES:
        for mod in FAMILY_MODULES:
            family = importlib.import_module(mod).FAMILY
            if family.name in _FAMILIES:
                raise RuntimeError(f"model family {family.name!r} registered twice")
            _FAMILIES[family.name] = family
    return _FAMILIES


def refresh() -> None:
    """Forget the loaded families, so that a changed ``FAMILY_MODULES`` is read again."""
    _FAMILIES.clear()


def families() -> dict[str, Family]:
    """Every registered family by name, in registry order."""
    return dict(_load())


def get_family(spec_or_name) -> Family:
    """The family of a ``ModelSpec`` (its ``.family``) or of a family name."""
    name = getattr(spec_or_name, "family", spec_or_name)
    known = _load()
    if name not in known:
        raise KeyError(
            f"unknown model family {name!r}: add its module to edgepose.families.registry.FAMILY_MODULES "
            f"(known: {', '.join(known)})"
        )
    return known[name]


def find_family(name: str | None) -> Family | None:
    """The family named ``name``; None for a model outside the registered families (a test stand-in)."""
    return _load().get(name) if name else None


def model_family(model) -> str | None:
    """The family of a model built by ``create_model`` (its ``spec_name``); None for other modules."""
    from ..zoo.registry import get_spec  # lazy: keeps this registry importable without the zoo

    name = getattr(model, "spec_name", None)
    try:
        return get_spec(name).family if name else None
    except KeyError:
        return None


def derived_inputs(family: str | None) -> dict[str, DerivedInput]:
    """The family's stage inputs made from earlier outputs (none for an unknown family)."""
    found = find_family(family)
    return dict(found.derived_inputs) if found else {}

"""The model registry: name -> ModelSpec.

Each architecture module lists its specs in a module-level ``SPECS`` tuple;
the registry is the union of the modules named in ``MODEL_MODULES``. Adding a
model means adding a module and one line here.
"""

from __future__ import annotations

import difflib
import importlib

from .spec import ModelSpec

MODEL_MODULES = (
    "edgepose.zoo.dsta",
    "edgepose.zoo.distilpose",
    "edgepose.zoo.sharpose",
    "edgepose.zoo.tar_vitpose",
    "edgepose.zoo.pavenet",
)

_REGISTRY: dict[str, ModelSpec] = {}


def _load() -> dict[str, ModelSpec]:
    if not _REGISTRY:
        for mod in MODEL_MODULES:
            for spec in importlib.import_module(mod).SPECS:
                if spec.name in _REGISTRY:
                    raise RuntimeError(f"model name {spec.name!r} registered twice")
                _REGISTRY[spec.name] = spec
    return _REGISTRY


def list_models(include_variants: bool = False) -> list[str]:
    """Registered model names; ``*_tiny`` test variants only when asked for."""
    return [n for n, s in _load().items() if include_variants or s.variant_of is None]


def get_spec(name: str) -> ModelSpec:
    reg = _load()
    if name not in reg:
        close = difflib.get_close_matches(name, list(reg), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise KeyError(f"unknown model {name!r}{hint} Known models: {', '.join(reg)}")
    return reg[name]


def create_model(name: str, **overrides):
    """Build a model from its spec; ``overrides`` replace config entries (e.g. ``frames=5``)."""
    spec = get_spec(name)
    unknown = set(overrides) - set(spec.config) - set(getattr(spec.builder, "EXTRA_OPTIONS", ()))
    if unknown:
        raise TypeError(
            f"{name}: unknown config option(s) {sorted(unknown)}; options are {sorted(spec.config)}"
        )
    model = spec.build(**overrides)
    model.spec_name = name
    model.config = {**spec.config, **overrides}
    return model

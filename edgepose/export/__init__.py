"""Export: zoo models -> verified stage bundles (ONNX, OpenVINO, TFLite, Core ML).

    from edgepose.export import export, verify_bundle
    result = export("dsta_mnv2", weights="dsta.pt", format="all", out="bundles/dsta")
    bundle = edgepose.load("bundles/dsta")        # edgepose.runtimes.bundle: torch-free

Names resolve lazily, so reading the format table (``edgepose.export.formats``,
torch-free) does not import torch or any converter.
"""

from __future__ import annotations

import importlib
import sys
import types

_LAZY = {
    "export": "exporter",
    "ExportResult": "exporter",
    "BundleResult": "exporter",
    "verify_bundle": "verify",
    "BundleCheck": "verify",
    "FORMATS": "formats",
    "PRECISIONS": "formats",
    "ExportError": "formats",
    "ConverterUnavailable": "formats",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class _CallableModule(types.ModuleType):
    """``edgepose.export(...)`` is the package called as its ``export`` function: the top-level API
    name and the subpackage are one object, so it works whichever of them was imported first."""

    def __call__(self, *args, **kwargs):
        return self.export(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule

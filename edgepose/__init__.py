"""edgepose: video pose models for edge devices.

The top level imports nothing heavy: names resolve on first use, so device-side
code (``edgepose.load``, ``PoseEstimator`` -- a ``TopDownEstimator`` or a
``WholeFrameEstimator`` by the bundle --, ``VideoPipeline``) runs with numpy,
opencv and one runtime installed, and torch loads only for the zoo, training
and export.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# public name -> "module:attribute"
_PUBLIC = {
    "list_models": "edgepose.zoo.registry:list_models",
    "get_spec": "edgepose.zoo.registry:get_spec",
    "create_model": "edgepose.zoo.registry:create_model",
    "load_weights": "edgepose.zoo.checkpoints:load_weights",
    "load_pretrained": "edgepose.zoo.pretrained:load_pretrained",
    "export": "edgepose.export",  # the package, callable as its export()
    "quantize": "edgepose.quantization.api:quantize",
    "load": "edgepose.runtimes.bundle:load",
    "PoseEstimator": "edgepose.sdk.estimator:PoseEstimator",
    "TopDownEstimator": "edgepose.sdk.estimator:TopDownEstimator",
    "WholeFrameEstimator": "edgepose.sdk.estimator:WholeFrameEstimator",
    "VideoPipeline": "edgepose.sdk.pipeline:VideoPipeline",
}

__all__ = ["__version__", *_PUBLIC]


def __getattr__(name: str):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'edgepose' has no attribute {name!r}")
    module, _, attr = _PUBLIC[name].partition(":")
    value = importlib.import_module(module)
    value = getattr(value, attr) if attr else value
    globals()[name] = value
    return value


def __dir__():
    return sorted(__all__)

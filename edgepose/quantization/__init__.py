"""INT8 for every export format: PTQ per format, PyTorch QAT, and a report per artifact.

    from edgepose.quantization import quantize
    result = quantize("dsta_mnv2", weights="dsta.pt", method="ptq", data="synthetic",
                      format="all", out="bundles/dsta-int8")

=================  ==========================================================================
module             holds
=================  ==========================================================================
``api``            ``quantize()``: calibration -> (QAT) -> int8 + fp32 export -> check,
                   accuracy, latency -> report; atomic install
``calibration``    real crops through the inference preprocessing; per-stage calibration sets
``pipeline``       composing stages like ``model.forward`` (torch modules or runtime sessions)
``scopes``         the parts each model keeps in float, and matching graph nodes to them
``hook``           the export hook: one row per format
``onnx_ptq``       ONNX Runtime ``quantize_static`` (QDQ, per-channel, Conv/MatMul/Gemm)
``openvino_ptq``   NNCF ``quantize`` on the IR (TRANSFORMER for attention stages)
``tflite_ptq``     litert-torch PT2E full-integer, int8 I/O policy
``coreml_int8``    int8 weights (``linear_quantize_weights``) or W8A8 through PT2E
``pt2e``           torchao PT2E helpers (export, scoped quantizer, calibration)
``qat``            torchao PT2E QAT fine-tuning with the family's task and loss
``evaluate``       accuracy on the val split (format metric, PCKh, PCK) for models and bundles
``check``          per-stage int8 check on real crops -> manifest verification
``latency``        int8 vs fp32 timing, interleaved, per batch size
``report``         the per-artifact report (table, markdown, JSON, manifest extra)
=================  ==========================================================================

Names resolve lazily: importing the package does not import torch or any converter.
"""

from __future__ import annotations

import importlib

_LAZY = {
    "quantize": "api",
    "QuantizeResult": "api",
    "QuantizationError": "api",
    "ArtifactReport": "report",
    "FLOAT_SCOPES": "scopes",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

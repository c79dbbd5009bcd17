"""The INT8 quantiser handed to ``edgepose.export.export`` as its ``hook``: one table row per format.

``export`` calls ``before_convert`` on the torch module a converter is about to convert
and ``after_convert`` on the float artifact it wrote (``edgepose.export.stages``). What
each format does with them:

=========  ==============================================  ==========================================
format     PTQ                                             QAT (``qat_modules`` given)
=========  ==============================================  ==========================================
onnx       after: ORT ``quantize_static`` QDQ               before: the converted QAT graph (QDQ)
openvino   after: ``nncf.quantize`` on the IR               before: the same QDQ graph -> FakeQuantize IR
tflite     before: PT2E (litert-torch quantizer); after:    PTQ as on the left, from the QAT weights
           int8 I/O policy, scales into the manifest
coreml     after: int8 weights (or W8A8 via PT2E)           as on the left, from the QAT weights
=========  ==============================================  ==========================================
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from . import coreml_int8, onnx_ptq, openvino_ptq, tflite_ptq
from .calibration import Calibration
from .scopes import FloatScopes


def _qat_graph_info(job, artifact, hook: "Int8Hook"):
    """ONNX/OpenVINO from a QAT graph: already quantised; record what it holds."""
    if job.fmt.name == "onnx":
        folded = onnx_ptq.store_int8_weights(job)
        artifact.info.update({"quantizer": "torchao PT2E QAT (X86InductorQuantizer) -> torch.onnx (QDQ)",
                              "int8_weights": folded, "ops": onnx_ptq.quantized_op_count(job.file)})
    else:
        openvino_ptq.compress_weights(job)
        artifact.info.update({"quantizer": "torchao PT2E QAT QDQ ONNX -> OpenVINO (FakeQuantize, int8 weights)",
                              "fake_quantize": openvino_ptq.fake_quantize_count(job.file)})
    artifact.info["float_nodes"] = len(hook.qat_float_nodes.get(job.stage, []))
    return artifact


@dataclass(frozen=True)
class FormatQuantizer:
    before: Callable | None  # (job, module, hook) -> module
    after: Callable  # (job, artifact, hook) -> artifact
    uses_qat_graph: bool  # with QAT, the converted QAT graph is what gets converted


FORMAT_QUANTIZERS: dict[str, FormatQuantizer] = {
    "onnx": FormatQuantizer(
        None,
        lambda job, art, h: onnx_ptq.apply(job, art, h.calibration, h.scopes.for_stage(job.stage), h.options),
        uses_qat_graph=True,
    ),
    "openvino": FormatQuantizer(
        None,
        lambda job, art, h: openvino_ptq.apply(job, art, h.calibration, h.scopes.for_stage(job.stage), h.options),
        uses_qat_graph=True,
    ),
    "tflite": FormatQuantizer(
        lambda job, mod, h: tflite_ptq.before_convert(job, mod, h.calibration, h.scopes.for_stage(job.stage), h.state),
        lambda job, art, h: tflite_ptq.after_convert(job, art, h.state),
        uses_qat_graph=False,
    ),
    "coreml": FormatQuantizer(
        None,
        lambda job, art, h: coreml_int8.apply(job, art, h.calibration, h.scopes.for_stage(job.stage), h.options),
        uses_qat_graph=False,
    ),
}


@dataclass
class Int8Hook:
    """``QuantizationHook`` for precision int8 (see ``edgepose.export.stages``)."""

    calibration: Calibration
    scopes: FloatScopes
    options: dict[str, Any] = field(default_factory=dict)
    qat_modules: dict[str, Any] | None = None  # stage -> converted PT2E QAT GraphModule (positional inputs)
    qat_float_nodes: dict[str, list[str]] = field(default_factory=dict)
    state: dict = field(default_factory=dict)
    precision: str = "int8"

    def _row(self, job) -> FormatQuantizer:
        if job.fmt.name not in FORMAT_QUANTIZERS:
            raise ValueError(f"no int8 quantiser for format {job.fmt.name}; formats: {list(FORMAT_QUANTIZERS)}")
        return FORMAT_QUANTIZERS[job.fmt.name]

    def _qat(self, job) -> bool:
        return self.qat_modules is not None and self._row(job).uses_qat_graph

    def before_convert(self, job, module):
        if self._qat(job):
            return self.qat_modules[job.stage]
        row = self._row(job)
        return row.before(job, module, self) if row.before is not None else module

    def converter_options(self, job) -> dict:
        if job.fmt.name == "tflite":
            return tflite_ptq.converter_options(job, self.state)
        return {}

    def after_convert(self, job, artifact):
        if self._qat(job):
            return _qat_graph_info(job, artifact, self)
        return self._row(job).after(job, artifact, self)

"""The INT8 quantiser handed to ``edgepose.export.export`` as its ``hook``: one module per format.

``export`` calls ``before_convert`` on the torch module a converter is about to convert
and ``after_convert`` on the float artifact it wrote (``edgepose.export.stages``). Which
module quantises a format is the format row's ``int8`` column (``edgepose.core.formats``);
the module exposes ``int8_after(job, artifact, hook)`` and optionally ``int8_before(job,
module, hook)``, ``int8_converter_options(job, hook)``, ``int8_qat_graph(job, artifact, hook)``
and ``USES_QAT_GRAPH``. What the four shipped ones do:

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

import importlib
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from ..core.formats import FORMATS
from .calibration import Calibration
from .scopes import FloatScopes


def quantizer_module(fmt: str) -> ModuleType:
    """The int8 quantiser module of format ``fmt`` (its row's ``int8`` column)."""
    row = FORMATS.get(fmt)
    if row is None or row.int8 is None:
        have = [f.name for f in FORMATS.values() if f.int8]
        raise ValueError(f"no int8 quantiser for format {fmt}; formats: {have}")
    return importlib.import_module(row.int8)


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

    def _qat(self, job) -> bool:
        return self.qat_modules is not None and getattr(
            quantizer_module(job.fmt.name), "USES_QAT_GRAPH", False
        )

    def before_convert(self, job, module):
        if self._qat(job):
            return self.qat_modules[job.stage]
        before = getattr(quantizer_module(job.fmt.name), "int8_before", None)
        return before(job, module, self) if before is not None else module

    def converter_options(self, job) -> dict:
        opts = getattr(quantizer_module(job.fmt.name), "int8_converter_options", None)
        return opts(job, self) if opts is not None else {}

    def after_convert(self, job, artifact):
        mod = quantizer_module(job.fmt.name)
        if self._qat(job):
            artifact = mod.int8_qat_graph(job, artifact, self)
            artifact.info["float_nodes"] = len(self.qat_float_nodes.get(job.stage, []))
            return artifact
        return mod.int8_after(job, artifact, self)

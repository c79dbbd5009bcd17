"""TFLite full-integer PTQ: litert-torch's PT2E route, then int8 I/O where it makes sense.

``before_convert`` gets the channel-last module litert-torch is about to trace, exports it
(static batch), runs torchao ``prepare_pt2e`` with litert-torch's ``PT2EQuantizer``
(symmetric int8, per-channel weights; the model's float scopes removed), calibrates on the
stage's real calibration set and returns ``convert_pt2e(fold_quantize=False)``; the
converter then lowers the q/dq pairs to int8 kernels (``quant_config`` with the same
quantizer, ``qdq_conversion_mode=STATIC``).

I/O: the converter folds the graph's first quantise and last dequantise into the
signature, so inputs and quantised outputs come out int8. That suits the image input
(a camera frame quantised once) and the frame stage's features (the ring buffer keeps
int8: 4x less memory); it does not suit what gets decoded, where an int8 output adds a
rounding step of its own (coords at 1/256 of their range). ``after_convert`` therefore
appends a DEQUANTIZE to each int8 output named in ``FLOAT_OUTPUTS`` so it leaves the graph
as float32, and records every int8 tensor's scale/zero-point in the manifest (the
runtime session quantises and dequantises with them). LiteRT's int8 kernels leave
ConvTranspose in float (TAR-ViTPose's deconvs run dequantised).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path

import numpy as np

from ..export.to_tflite import sample_kwargs, write_with_metadata
from ..runtimes.tflite import _info, interpreter_module
from .pt2e import quantize_module, scoped_quantizer
from .scopes import Scope

# outputs that are decoded or thresholded: they leave the graph in float32
FLOAT_OUTPUTS = frozenset({"coords", "sigma", "scores", "heatmaps", "quality", "relevance"})


def litert_quantizer():
    from litert_torch.quantize import pt2e_quantizer as pq  # lazy: litert_torch

    return pq.PT2EQuantizer().set_global(pq.get_symmetric_quantization_config(is_per_channel=True))


def _nhwc_batches(calibration, job, nhwc):
    for feeds in calibration.tensors(job.stage, job.batch or 1):
        yield {n: (t.permute(0, 2, 3, 1).contiguous() if n in nhwc else t) for n, t in feeds.items()}


def before_convert(job, module, calibration, scopes: tuple[Scope, ...], state: dict):
    nhwc, example = sample_kwargs(job)
    inner = litert_quantizer()
    quantizer = scoped_quantizer(inner, scopes)
    converted = quantize_module(module, example, quantizer, _nhwc_batches(calibration, job, nhwc))
    state[("tflite", job.stage)] = {"quantizer": inner, "float_nodes": list(quantizer.float_nodes)}
    return converted


def converter_options(job, state: dict) -> dict:
    from litert_torch.quantize import quant_config as qc  # lazy: litert_torch

    entry = state.get(("tflite", job.stage))
    return {"quant_config": qc.QuantConfig(pt2e_quantizer=entry["quantizer"])} if entry else {}


# ----------------------------------------------------------------------------- flatbuffer surgery


def _opcode(model, builtin: int) -> int:
    from ai_edge_litert import schema_py_generated as schema  # lazy: ai_edge_litert

    for i, oc in enumerate(model.operatorCodes):
        if max(oc.builtinCode, oc.deprecatedBuiltinCode) == builtin:
            return i
    oc = schema.OperatorCodeT()
    oc.builtinCode = builtin
    oc.deprecatedBuiltinCode = min(builtin, 127)
    oc.version = 1
    model.operatorCodes.append(oc)
    return len(model.operatorCodes) - 1


def dequantize_outputs(path: Path, names: frozenset[str] | set[str]) -> list[str]:
    """Make the int8 outputs (by signature name) in ``names`` float32 with a DEQUANTIZE; returns those changed."""
    from ai_edge_litert import schema_py_generated as schema  # lazy: ai_edge_litert
    from ai_edge_litert.tools import flatbuffer_utils as fb  # lazy: ai_edge_litert

    model = fb.read_model(str(path))
    sg = model.subgraphs[0]
    sig = model.signatureDefs[0] if model.signatureDefs else None
    by_name = {}
    if sig is not None:
        by_name = {_s(m.name): m for m in sig.outputs}
    else:
        by_name = {_s(sg.tensors[i].name): i for i in sg.outputs}
    changed = []
    deq = _opcode(model, schema.BuiltinOperator.DEQUANTIZE)
    for name, ref in by_name.items():
        idx = ref.tensorIndex if sig is not None else ref
        t = sg.tensors[idx]
        if name not in names or t.type not in (schema.TensorType.INT8, schema.TensorType.UINT8):
            continue
        buf = schema.BufferT()
        model.buffers.append(buf)
        out = schema.TensorT()
        out.shape = None if t.shape is None else np.array(t.shape, dtype=np.int32)
        out.shapeSignature = None if t.shapeSignature is None else np.array(t.shapeSignature, dtype=np.int32)
        out.type = schema.TensorType.FLOAT32
        out.buffer = len(model.buffers) - 1
        out.name = t.name
        t.name = (_s(t.name) + "_int8").encode()
        sg.tensors.append(out)
        new = len(sg.tensors) - 1
        op = schema.OperatorT()
        op.opcodeIndex = deq
        op.inputs = np.array([idx], dtype=np.int32)
        op.outputs = np.array([new], dtype=np.int32)
        sg.operators.append(op)
        sg.outputs = np.array([new if o == idx else o for o in sg.outputs], dtype=np.int32)
        if sig is not None:
            ref.tensorIndex = new
        changed.append(name)
    if changed:
        fb.write_model(model, str(path))
    return changed


def _s(raw) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def io_infos(path: Path) -> dict[str, tuple[str, float | None, int | None]]:
    """{signature tensor name: (dtype, scale, zero_point)} of a .tflite's inputs and outputs."""

    itp = interpreter_module().Interpreter(model_path=str(path))
    sigs = itp.get_signature_list()
    runner = itp.get_signature_runner(next(iter(sigs)))
    out = {}
    for details in (runner.get_input_details(), runner.get_output_details()):
        for n, d in details.items():
            info = _info(n, d)
            out[n] = (info.dtype, info.scale, info.zero_point)
    return out


def int8_tensor_count(path: Path) -> dict[str, int]:
    """Tensors by type and the quantised operators' count in a .tflite (for the report and tests)."""

    itp = interpreter_module().Interpreter(model_path=str(path))
    types = Counter(np.dtype(d["dtype"]).name for d in itp.get_tensor_details())
    return dict(types)


def after_convert(job, artifact, state: dict):
    changed = dequantize_outputs(job.file, FLOAT_OUTPUTS)
    write_with_metadata(job.file, job.file, job.metadata)
    infos = io_infos(job.file)

    def update(t):
        if t.name not in infos:
            return t
        dtype, scale, zp = infos[t.name]
        if dtype == "int32" and t.dtype == "int32":
            return t
        return dataclasses.replace(t, dtype=dtype, scale=scale, zero_point=zp)

    artifact.inputs = tuple(update(t) for t in artifact.inputs)
    artifact.outputs = tuple(update(t) for t in artifact.outputs)
    entry = state.get(("tflite", job.stage), {})
    artifact.info.update(
        {
            "quantizer": "litert-torch PT2EQuantizer (symmetric int8, per-channel weights) via torchao "
            "prepare_pt2e/convert_pt2e(fold_quantize=False)",
            "float_nodes": len(entry.get("float_nodes", [])),
            "dequantized_outputs": changed,
            "tensor_types": int8_tensor_count(job.file),
        }
    )
    return artifact


# ---- the int8 hook's interface (edgepose.quantization.hook; the format row names this module)

USES_QAT_GRAPH = False  # with QAT, PTQ as usual from the fine-tuned weights


def int8_before(job, module, hook):
    return before_convert(job, module, hook.calibration, hook.scopes.for_stage(job.stage), hook.state)


def int8_converter_options(job, hook) -> dict:
    return converter_options(job, hook.state)


def int8_after(job, artifact, hook):
    return after_convert(job, artifact, hook.state)

"""ONNX Runtime PTQ: ``quantize_static`` to QDQ, per-channel weights, the linear operators and clamps only.

Only Conv/ConvTranspose/MatMul/Gemm and the ReLU/ReLU6 clamps between them are quantised:
quantising everything (an ORT default) also put a soft-argmax head's arithmetic in int8 and
zeroed its output (DESIGN §5), and LayerNorm/Softmax in int8 buy nothing on CPU. ``quant_pre_process`` (symbolic shape
inference + ORT's basic graph optimisation) runs first, as ORT recommends; where the
symbolic shape inference cannot follow a graph it is retried without it. Nodes inside the
model's float scopes (``scopes``) are excluded by name. Weights are int8 symmetric per
output channel, activations uint8 asymmetric per tensor (u8s8: what MLAS accelerates with
AVX-512 VNNI), ranges by MinMax over the calibration set unless told otherwise.

``fmt="qoperator"`` writes QLinearConv/QLinearMatMul operators instead of QDQ pairs (an
option kept for the speed study in ``benchmarks/int8_report.py``; QDQ is the portable
form other runtimes and OpenVINO read).

The int8 graph drops the dynamo exporter's per-node debug metadata (module scopes and
source locations, a sixth of a small model's file); the model-level ``edgepose.*``
metadata stays.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np

from ..export.to_onnx import fp32_graph
from .scopes import Scope, onnx_nodes_in

LINEAR_OPS = ("Conv", "ConvTranspose", "MatMul", "Gemm")
# ReLU/ReLU6 between two quantised convolutions: left out, ONNX Runtime runs QLinearConv ->
# DequantizeLinear -> Clip -> QuantizeLinear -> QLinearConv, and those float round trips took
# more than half of MobileNet-V2's int8 time here (profile in benchmarks/results/int8_report.md);
# quantised, the clamp folds into the quantisation range and the pair disappears. A clamp is
# exact in uint8, unlike the decoding arithmetic that must stay float.
CLAMP_OPS = ("Clip", "Relu")
OP_TYPES = LINEAR_OPS + CLAMP_OPS
CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
FORMATS = ("qdq", "qoperator")
WEIGHT_TYPES = ("s8", "u8", "u8_signed_inputs", "s7_signed_inputs", "s7_dense")


def saturating_weights(graph, exclude: set[str], dense: bool = False) -> list[str]:
    """Weights of the convolutions whose input is not a ReLU/ReLU6 output (``*_signed_inputs`` weight
    types); ``dense``: of every convolution but the depthwise ones (``s7_dense``).

    Without VNNI, u8 x s8 pair sums overflow int16 when both codes are large: common where the input
    is quantised around a mid-range zero point (the image, a residual sum), rarer after a clamp
    (zero point 0), possible anywhere. Depthwise weights are left at 8 bits: with nine weights per
    channel, 7 bits cost more than they saved (``reduce_range`` everywhere: held-out AP 78.0 against
    80.1, benchmarks/results/int8_real.md).
    """
    producer = {o: n.op_type for n in graph.node for o in n.output}
    inits = {t.name: t for t in graph.initializer}

    def depthwise(n) -> bool:
        group = next((a.i for a in n.attribute if a.name == "group"), 1)
        return group > 1 and list(inits[n.input[1]].dims)[1] == 1

    return [
        n.input[1]
        for n in graph.node
        if n.op_type == "Conv"
        and n.name not in exclude
        and len(n.input) > 1
        and n.input[1] in inits
        and (not depthwise(n) if dense else producer.get(n.input[0]) not in CLAMP_OPS)
    ]


def _reader(batches):
    from onnxruntime.quantization import CalibrationDataReader  # lazy: onnxruntime

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._it = iter(batches)

        def get_next(self):
            return next(self._it, None)

    return Reader()


def preprocess(src: Path, dest: Path) -> str:
    """ORT's recommended pre-processing; returns a note if symbolic shape inference had to be skipped.

    Runs in a scratch working directory: ORT's symbolic shape inference writes
    ``sym_shape_infer_temp.onnx`` and its external data there, and leaves them behind when it fails."""
    from onnxruntime.quantization.shape_inference import quant_pre_process  # lazy: onnxruntime

    src, dest = Path(src).resolve(), Path(dest).resolve()
    with tempfile.TemporaryDirectory(prefix="edgepose-ortprep-") as scratch, contextlib.chdir(scratch):
        try:
            quant_pre_process(str(src), str(dest))
            return ""
        except Exception as e:  # noqa: BLE001 - symbolic shape inference fails on some graphs
            quant_pre_process(str(src), str(dest), skip_symbolic_shape=True)
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
            return f"quant_pre_process without symbolic shape inference ({type(e).__name__}: {first})"


def quantize_file(
    src: Path,
    dest: Path,
    batches,
    scopes: tuple[Scope, ...] = (),
    per_channel: bool = True,
    method: str = "minmax",
    fmt: str = "qdq",
    op_types: tuple[str, ...] = OP_TYPES,
    reduce_range: bool = False,
    weight_type: str = "s8",
    scope_graph: Path | None = None,
    exclude_nodes: tuple[str, ...] | list[str] = (),
) -> dict:
    """Quantise the float ONNX ``src`` into ``dest``; returns facts for the manifest (excluded nodes, op counts).

    ``scope_graph``: the exporter's original graph to read module paths from (pre-processing
    keeps node names but drops their metadata); default ``src``. ``exclude_nodes``: more node
    names to leave in float. ``weight_type``: ``s8`` (u8s8, what VNNI runs), ``u8`` (u8u8:
    on AVX2 without VNNI, MLAS multiplies u8 by s8 with ``vpmaddubsw``, whose int16 pair sums
    saturate; u8u8 does not, at a speed cost), ``u8_signed_inputs`` (u8 only for the
    convolutions of ``saturating_weights``) or ``s7_signed_inputs`` (7-bit s8 weights there:
    no pair sum reaches int16's limit, the fast u8s8 kernel kept) or ``s7_dense`` (7-bit s8
    weights in every convolution but the depthwise ones).
    """
    import onnx  # lazy: onnx
    from onnxruntime.quantization import (  # lazy: onnxruntime
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    if method not in CALIBRATION_METHODS:
        raise ValueError(f"calibration method must be one of {CALIBRATION_METHODS}, got {method!r}")
    if weight_type not in WEIGHT_TYPES:
        raise ValueError(f"ONNX int8 weight type must be one of {WEIGHT_TYPES}, got {weight_type!r}")
    if fmt not in FORMATS:
        raise ValueError(f"ONNX int8 format must be one of {FORMATS}, got {fmt!r}")
    graph = onnx.load(str(scope_graph or src), load_external_data=False).graph
    exclude = sorted(set(onnx_nodes_in(graph, scopes)) | set(exclude_nodes))
    with tempfile.TemporaryDirectory(prefix="edgepose-ortq-") as tmp:
        pre = Path(tmp) / "pre.onnx"
        note = preprocess(src, pre)
        extra = {"WeightSymmetric": True, "ActivationSymmetric": False}
        signed = []
        if weight_type not in ("s8", "u8"):
            signed = saturating_weights(
                onnx.load(str(pre)).graph, set(exclude), weight_type.endswith("_dense")
            )
            override = (
                {"quant_type": QuantType.QUInt8} if weight_type.startswith("u8") else {"reduce_range": True}
            )
            if per_channel:
                override["axis"] = 0
            extra["TensorQuantOverrides"] = {w: [dict(override)] for w in signed}
        quantize_static(
            str(pre),
            str(dest),
            _reader(batches),
            quant_format=QuantFormat.QDQ if fmt == "qdq" else QuantFormat.QOperator,
            op_types_to_quantize=list(op_types),
            per_channel=per_channel,
            reduce_range=reduce_range,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QUInt8 if weight_type == "u8" else QuantType.QInt8,
            nodes_to_exclude=exclude,
            calibrate_method={
                "minmax": CalibrationMethod.MinMax,
                "entropy": CalibrationMethod.Entropy,
                "percentile": CalibrationMethod.Percentile,
            }[method],
            extra_options=extra,
        )
    ops = Counter(n.op_type for n in onnx.load(str(dest), load_external_data=False).graph.node)
    info = {
        "quantizer": f"onnxruntime quantize_static ({fmt.upper()}, {method}, "
        f"{'per-channel' if per_channel else 'per-tensor'} {'7-bit ' if reduce_range else ''}{weight_type} weights, "
        "u8 activations)",
        "op_types": list(op_types),
        "float_nodes": len(exclude),
        "ops": dict(ops.most_common()),
    }
    if signed:
        info["saturating_weights"] = len(signed)
    if note:
        info["note"] = note
    return info


def _fold_quantize(n, inits):
    from onnx import numpy_helper  # lazy: onnx

    w = numpy_helper.to_array(inits[n.input[0]]).astype(np.float32)
    scale = numpy_helper.to_array(inits[n.input[1]]).astype(np.float32)
    zp = numpy_helper.to_array(inits[n.input[2]]) if len(n.input) > 2 and n.input[2] else np.uint8(0)
    axis = next((a.i for a in n.attribute if a.name == "axis"), 1)
    zp_b = zp
    if scale.ndim == 1 and scale.size > 1:
        shape = [1] * w.ndim
        shape[axis % w.ndim] = -1
        scale, zp_b = scale.reshape(shape), zp.reshape(shape)
    info = np.iinfo(zp.dtype)
    return np.clip(np.rint(w / scale) + zp_b.astype(np.int32), info.min, info.max).astype(zp.dtype)


def _fold_clip(n, inits):
    from onnx import numpy_helper  # lazy: onnx

    x = numpy_helper.to_array(inits[n.input[0]])
    lo = numpy_helper.to_array(inits[n.input[1]]) if len(n.input) > 1 and n.input[1] else None
    hi = numpy_helper.to_array(inits[n.input[2]]) if len(n.input) > 2 and n.input[2] else None
    return np.clip(x, lo, hi).astype(x.dtype)


_FOLDABLE = {"QuantizeLinear": _fold_quantize, "Clip": _fold_clip}


def fold_weight_quantizers(model) -> int:
    """Store quantised weights as int8: ``QuantizeLinear`` (and the range ``Clip``) of constants folded.

    A PT2E graph exported with ``convert_pt2e(fold_quantize=False)`` keeps every weight in float
    and quantises (and clamps) it again at each inference: the file is larger than fp32's.
    Folding computes ``clip(round(w / scale) + zero_point)`` once, exactly as the operators would
    (round half to even), leaving int8 initializers feeding ``DequantizeLinear``. Returns the
    number of nodes folded.
    """
    from onnx import numpy_helper  # lazy: onnx

    folded = 0
    while True:
        inits = {t.name: t for t in model.graph.initializer}
        keep, new_inits = [], []
        for n in model.graph.node:
            fold = _FOLDABLE.get(n.op_type)
            if fold is not None and all(i in inits for i in n.input if i):
                new_inits.append(numpy_helper.from_array(fold(n, inits), n.output[0]))
                continue
            keep.append(n)
        if not new_inits:
            return folded
        folded += len(new_inits)
        del model.graph.node[:]
        model.graph.node.extend(keep)
        used = {i for n in keep for i in n.input} | {o.name for o in model.graph.output}
        kept = [t for t in model.graph.initializer if t.name in used]
        del model.graph.initializer[:]
        model.graph.initializer.extend(kept + [t for t in new_inits if t.name in used])


def quantized_op_count(path: Path) -> dict[str, int]:
    """Quantisation operators in an ONNX graph (QuantizeLinear, DequantizeLinear, QLinear*)."""
    import onnx  # lazy: onnx

    ops = Counter(n.op_type for n in onnx.load(str(path), load_external_data=False).graph.node)
    return {
        k: v for k, v in ops.items() if "Quant" in k or k.startswith("QLinear") or k.startswith("ConvInteger")
    }


def store_int8_weights(job) -> int:
    """A QAT graph's weights as int8 initializers (``fold_weight_quantizers``), metadata kept."""
    import onnx  # lazy: onnx

    model = onnx.load(str(job.file))
    folded = fold_weight_quantizers(model)
    for node in model.graph.node:
        del node.metadata_props[:]
    onnx.save(model, str(job.file))
    onnx.checker.check_model(str(job.file))
    return folded


def apply(job, artifact, calibration, scopes: tuple[Scope, ...], options: dict):
    """The hook's ``after_convert`` for ONNX: quantise the float graph the converter wrote, in place."""
    import onnx  # lazy: onnx

    src_graph, _, _ = fp32_graph(job)
    # a fixed-batch graph takes its own batch; otherwise 8 (fewer when the calibration set is smaller:
    # a short clip's few people must still calibrate, not yield no batch at all)
    batch = job.batch or min(int(options.get("calibration_batch", 8)), calibration.count(job.stage))
    dest = job.file.with_suffix(".int8.tmp.onnx")
    info = quantize_file(
        job.file,
        dest,
        calibration.batches(job.stage, batch),
        scopes,
        per_channel=options.get("per_channel", True),
        method=options.get("calibration_method", "minmax"),
        fmt=options.get("onnx_format", "qdq"),
        reduce_range=bool(options.get("reduce_range", False)),
        weight_type=options.get("weight_type", "s8"),
        scope_graph=src_graph,
    )
    model = onnx.load(str(dest))
    for node in model.graph.node:  # the exporter's per-node debug records (module scopes, stack traces)
        del node.metadata_props[:]
    del model.metadata_props[:]
    for k, v in job.metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = k, v
    model.producer_name = "edgepose"
    onnx.save(model, str(job.file))
    dest.unlink()
    onnx.checker.check_model(str(job.file))
    artifact.info.update(info)
    return artifact


# ---- the int8 hook's interface (edgepose.quantization.hook; the format row names this module)

USES_QAT_GRAPH = True  # with QAT, the converted QAT graph (QDQ) is what gets exported


def int8_after(job, artifact, hook):
    return apply(job, artifact, hook.calibration, hook.scopes.for_stage(job.stage), hook.options)


def int8_qat_graph(job, artifact, hook):
    """From a QAT graph: already quantised; store int8 weights and record what it holds."""
    folded = store_int8_weights(job)
    artifact.info.update(
        {
            "quantizer": "torchao PT2E QAT (X86InductorQuantizer) -> torch.onnx (QDQ)",
            "int8_weights": folded,
            "ops": quantized_op_count(job.file),
        }
    )
    return artifact

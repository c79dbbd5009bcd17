"""Core ML int8: weights (W8, the default) or weights and activations (W8A8).

* ``w8``: ``coremltools.optimize.coreml.linear_quantize_weights`` on the float ML program
  the converter wrote: int8 symmetric per output channel for every weight of at least
  ``WEIGHT_THRESHOLD`` elements (``constexpr_affine_dequantize`` ops); compute stays in
  float, as Core ML runs weight-compressed models (smaller, not int8 arithmetic). With no
  activation quantised there is nothing for the float scopes to protect beyond weights, and
  the heads' weights are mostly below the threshold.
* ``w8a8``: the stage is quantised in PyTorch with PT2E (the same litert-torch symmetric
  int8 quantizer as TFLite, calibrated on the same real crops, ``fold_quantize=True``) and
  the quantised ``ExportedProgram`` converted by coremltools, whose torch frontend maps
  ``quantized_decomposed`` ops to MIL ``quantize``/``dequantize`` (iOS 17). Fixed batch.

What cannot be done on Linux: running either model (Core ML's ``predict`` is macOS-only,
so the bundles are checked structurally and their accuracy is the PyTorch simulation of
the same quantisation); calibrating activations on the ML program itself
(``coremltools.optimize.coreml.experimental.linear_quantize_activations`` predicts);
and coremltools' own PyTorch quantizers (``LinearQuantizer``/``PostTrainingQuantizer``),
which trace with ``torch.fx`` and stop at the zoo models' shape checks.
"""

from __future__ import annotations

import copy
import dataclasses
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from ..export.stages import named_module, quiet
from .pt2e import quantize_module, scoped_quantizer
from .scopes import Scope
from .tflite_ptq import litert_quantizer

MODES = ("w8", "w8a8")
WEIGHT_THRESHOLD = 1024  # smaller tensors (biases, norms, tiny 1x1 convs) stay float: no size to win


def _save(mlmodel, dest: Path, metadata: dict[str, str], description: str) -> None:
    for k, v in metadata.items():
        mlmodel.user_defined_metadata[k] = v
    mlmodel.short_description = description
    tmp = dest.with_name(dest.stem + ".int8-tmp.mlpackage")
    shutil.rmtree(tmp, ignore_errors=True)
    mlmodel.save(str(tmp))
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)


def mil_ops(mlmodel) -> Counter:
    prog = mlmodel._mil_program
    if prog is None:  # loaded from disk: count from the spec
        spec = mlmodel.get_spec()
        return Counter(
            op.type
            for f in spec.mlProgram.functions.values()
            for b in f.block_specializations.values()
            for op in b.operations
        )
    return Counter(op.op_type for f in prog.functions.values() for op in f.operations)


def weights_int8(job, artifact, scopes: tuple[Scope, ...]):
    import coremltools as ct  # lazy: coremltools
    import coremltools.optimize as cto  # lazy: coremltools

    with quiet():
        mlmodel = ct.models.MLModel(str(job.file), skip_model_load=True)
        cfg = cto.coreml.OptimizationConfig(
            global_config=cto.coreml.OpLinearQuantizerConfig(
                mode="linear_symmetric",
                dtype="int8",
                granularity="per_channel",
                weight_threshold=WEIGHT_THRESHOLD,
            )
        )
        quantized = cto.coreml.linear_quantize_weights(mlmodel, cfg)
        _save(
            quantized, job.file, job.metadata, f"edgepose {job.model_name} stage {job.stage} (int8 weights)"
        )
        ops = mil_ops(ct.models.MLModel(str(job.file), skip_model_load=True))
    artifact.info.update(
        {
            "quantizer": f"coremltools {ct.__version__} linear_quantize_weights (int8 symmetric per-channel, "
            f"tensors >= {WEIGHT_THRESHOLD} elements); float compute",
            "mode": "w8",
            "int8_weights": ops.get("constexpr_affine_dequantize", 0)
            + ops.get("constexpr_blockwise_shift_scale", 0),
        }
    )
    return artifact


def w8a8(job, artifact, calibration, scopes: tuple[Scope, ...]):
    """Replace the float ML program with one converted from the PT2E-quantised stage (fixed batch)."""
    import coremltools as ct  # lazy: coremltools

    batch = job.batch or 1
    module = named_module(job.module.eval(), job.input_names, job.output_names)
    example = {n: t[:1].expand(batch, *t.shape[1:]).contiguous() for n, t in job.example.items()}
    quantizer = scoped_quantizer(litert_quantizer(), scopes)
    with quiet():
        gm = quantize_module(
            module, example, quantizer, calibration.tensors(job.stage, batch), dynamic_batch=False, fold=True
        )
        ep = torch.export.export(gm, tuple(example.values()), strict=False).run_decompositions({})
        inputs = [
            ct.TensorType(
                name=n, shape=tuple(t.shape), dtype=np.int32 if t.dtype == torch.int64 else np.float32
            )
            for n, t in example.items()
        ]
        outputs = [ct.TensorType(name=n, dtype=np.float32) for n in job.output_names]
        mlmodel = ct.convert(
            ep,
            inputs=inputs,
            outputs=outputs,
            convert_to="mlprogram",
            minimum_deployment_target=ct.target.iOS17,
        )
        _save(mlmodel, job.file, job.metadata, f"edgepose {job.model_name} stage {job.stage} (W8A8)")
        ops = mil_ops(mlmodel)
    ins, outs = dataclasses.replace(job, batch=batch).tensor_infos(int64_as="int32")
    artifact.inputs, artifact.outputs, artifact.batch = ins, outs, batch
    if job.batch is None:
        artifact.notes.append(f"stage {job.stage}: Core ML W8A8 is converted with a fixed batch of {batch}")
    artifact.info.update(
        {
            "quantizer": "torchao PT2E (litert-torch symmetric int8 quantizer, per-channel weights) -> "
            f"ExportedProgram -> coremltools {ct.__version__} (MIL quantize/dequantize, iOS 17)",
            "mode": "w8a8",
            "float_nodes": len(quantizer.float_nodes),
            "quantize_ops": ops.get("quantize", 0),
            "dequantize_ops": ops.get("dequantize", 0),
            "int8_weights": ops.get("constexpr_affine_dequantize", 0)
            + ops.get("constexpr_blockwise_shift_scale", 0),
        }
    )
    return artifact


def apply(job, artifact, calibration, scopes: tuple[Scope, ...], options: dict):
    mode = options.get("coreml_mode", "w8")
    if mode not in MODES:
        raise ValueError(f"Core ML int8 mode must be one of {MODES}, got {mode!r}")
    if mode == "w8a8":
        return w8a8(job, artifact, calibration, scopes)
    return weights_int8(job, artifact, scopes)


def simulate_weights_int8(model: torch.nn.Module, threshold: int = WEIGHT_THRESHOLD) -> torch.nn.Module:
    """A copy of ``model`` whose Conv/Linear weights are rounded as ``linear_quantize_weights`` stores them.

    int8 symmetric per output channel (scale = max|w| / 127), the Core ML W8 bundle's weights
    exactly up to float rounding; this is how its accuracy is measured off macOS.
    """

    sim = copy.deepcopy(model).eval()
    with torch.no_grad():
        for m in sim.modules():
            w = getattr(m, "weight", None)
            if not isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d, torch.nn.Linear)) or w is None:
                continue
            if w.numel() < threshold:
                continue
            axis = 1 if isinstance(m, torch.nn.ConvTranspose2d) else 0
            dims = [d for d in range(w.dim()) if d != axis]
            scale = w.abs().amax(dim=dims, keepdim=True).clamp(min=1e-12) / 127.0
            w.copy_(torch.clamp(torch.round(w / scale), -127, 127) * scale)
    return sim


# ---- the int8 hook's interface (edgepose.quantization.hook; the format row names this module)

USES_QAT_GRAPH = False  # with QAT, quantised as usual from the fine-tuned weights


def int8_after(job, artifact, hook):
    return apply(job, artifact, hook.calibration, hook.scopes.for_stage(job.stage), hook.options)

"""OpenVINO PTQ through NNCF: ``nncf.quantize`` on the float IR the converter wrote.

A stage holding attention (any Softmax in its graph: the ViTs, DSTA's temporal blocks) is
quantised with ``model_type=TRANSFORMER``, which keeps NNCF's transformer rules (no
quantisers on LayerNorm/Softmax/GELU paths, per-tensor activations where its kernels
want them); DESIGN §5 measured it cutting the error about 4x on a ViT. Convolutional
stages use NNCF's default (performance preset, symmetric). The model's float scopes
become an ``IgnoredScope`` of node names: OpenVINO names each operation after the ONNX
node it came from, so the names read from the exporter's module paths apply directly
(``validate=False``: the frontend may fuse a few away).
"""

from __future__ import annotations

from pathlib import Path

from ..export.stages import quiet
from ..export.to_onnx import fp32_graph
from ..export.to_openvino import RT_INFO_KEY
from .scopes import Scope, onnx_nodes_in

PRESETS = ("performance", "mixed")
OVERFLOW_FIXES = ("enable", "first_layer_only", "disable")
ACTIVATION_RANGES = ("minmax", "mean_minmax", "median_minmax", "mean_no_outliers_minmax", "mean_quantile")


def nncf_options(options: dict) -> dict:
    """The NNCF knobs among a run's quantiser ``options``, as ``quantize_ir`` takes them."""
    out = {}
    if "transformer" in options:
        out["transformer"] = options["transformer"]
    if "fast_bias_correction" in options:
        out["fast_bias_correction"] = bool(options["fast_bias_correction"])
    if options.get("preset"):
        out["preset"] = options["preset"]
    for key in ("activation_range", "overflow_fix"):
        if options.get(key):
            out[key] = options[key]
    return out


def _has_attention(model) -> bool:
    return any(op.get_type_name() == "Softmax" for op in model.get_ordered_ops())


def quantize_ir(
    model,
    items: list[dict],
    ignored: list[str],
    transformer: bool | None = None,
    fast_bias_correction: bool = True,
    preset: str | None = None,
    activation_range: str | None = None,
    overflow_fix: str | None = None,
):
    """Return the NNCF-quantised copy of an ``ov.Model`` and what was done.

    ``preset``: NNCF's ``performance`` (symmetric activations) or ``mixed`` (asymmetric
    activations); None leaves NNCF's default for the model type. ``activation_range``: how
    per-tensor activation ranges come from the calibration statistics, one of
    ``ACTIVATION_RANGES`` (NNCF's default ``mean_minmax`` averages each sample's min and max,
    ``minmax`` takes the extremes over all samples, as ONNX Runtime's MinMax does).
    ``overflow_fix``: NNCF's 7-bit weights against int16 saturation of u8*s8 pair sums on CPUs
    without VNNI (``enable``: every layer; NNCF's default ``first_layer_only``; ``disable``).
    """
    import nncf  # lazy: nncf

    transformer = _has_attention(model) if transformer is None else transformer
    kwargs = {}
    if preset is not None:
        if preset not in PRESETS:
            raise ValueError(f"NNCF preset must be one of {PRESETS}, got {preset!r}")
        kwargs["preset"] = nncf.QuantizationPreset(preset)
    advanced = {}
    if activation_range is not None:
        if activation_range not in ACTIVATION_RANGES:
            raise ValueError(f"activation range must be one of {ACTIVATION_RANGES}, got {activation_range!r}")
        from nncf.quantization.range_estimator import RangeEstimatorParametersSet  # lazy: nncf

        advanced["activations_range_estimator_params"] = getattr(
            RangeEstimatorParametersSet, activation_range.upper()
        )
    if overflow_fix is not None:
        if overflow_fix not in OVERFLOW_FIXES:
            raise ValueError(f"overflow fix must be one of {OVERFLOW_FIXES}, got {overflow_fix!r}")
        from nncf.quantization.advanced_parameters import OverflowFix  # lazy: nncf

        advanced["overflow_fix"] = OverflowFix(overflow_fix)
    if advanced:
        from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters  # lazy: nncf

        kwargs["advanced_parameters"] = AdvancedQuantizationParameters(**advanced)
    if transformer:
        kwargs["model_type"] = nncf.ModelType.TRANSFORMER
    if ignored:
        kwargs["ignored_scope"] = nncf.IgnoredScope(names=list(ignored), validate=False)
    quantized = nncf.quantize(
        model,
        nncf.Dataset(items),
        subset_size=len(items),
        fast_bias_correction=fast_bias_correction,
        **kwargs,
    )
    knobs = (
        (["model_type=TRANSFORMER"] if transformer else [])
        + ([f"preset={preset}"] if preset else [])
        + ([] if fast_bias_correction else ["fast_bias_correction=False"])
        + ([f"activations {activation_range}"] if activation_range else [])
        + ([f"overflow_fix={overflow_fix}"] if overflow_fix else [])
    )
    info = {
        "quantizer": f"nncf {nncf.__version__} quantize" + (f" ({', '.join(knobs)})" if knobs else ""),
        "float_nodes": len(ignored),
        "fake_quantize": sum(op.get_type_name() == "FakeQuantize" for op in quantized.get_ordered_ops()),
    }
    return quantized, info


def apply(job, artifact, calibration, scopes: tuple[Scope, ...], options: dict):
    """The hook's ``after_convert`` for OpenVINO: quantise the IR in place (float ``.xml``/``.bin`` replaced)."""
    import onnx  # lazy: onnx
    import openvino as ov  # lazy: openvino

    src_graph, _, _ = fp32_graph(job)
    ignored = onnx_nodes_in(onnx.load(str(src_graph), load_external_data=False).graph, scopes)
    items = list(calibration.batches(job.stage, job.batch or 1))
    with quiet():
        model = ov.Core().read_model(str(job.file))  # not constant-folded first: see fold_constants
        quantized, info = quantize_ir(model, items, ignored, **nncf_options(options))
        for k, v in job.metadata.items():
            quantized.set_rt_info(v, [RT_INFO_KEY, k])
        tmp = Path(str(job.file) + ".int8.xml")
        ov.save_model(quantized, str(tmp), compress_to_fp16=False)
    tmp.replace(job.file)
    tmp.with_suffix(".bin").replace(job.file.with_suffix(".bin"))
    artifact.info.update(info)
    return artifact


def fold_constants(model) -> None:
    """OpenVINO's offline MOC transformations with constant folding, in place (the QAT path's
    weight compression only).

    Not before NNCF PTQ: on the trained synthetic-benchmark models, folding first cost DSTA-MNv2
    14.4 PoseTrack mAP and DistilPose-S 12.8 COCO AP at int8 against 1.1 and 0 without it
    (benchmarks/results/int8_report.md), for a small speed gain:

    The IR read from the dynamo ONNX graph computes every depthwise weight's reshape and every
    bias broadcast from ``ShapeOf`` at run time; NNCF then quantises those weights behind a
    non-constant path and the CPU plugin falls back to float depthwise kernels with layout
    reorders around them (measured on DSTA's frame stage: int8 0.56 ms vs fp32 0.58). Folded
    first, the depthwise convolutions run int8 (0.46 ms vs 0.54) and the IR shrinks.
    """
    from openvino._offline_transformations import apply_moc_transformations  # lazy: openvino

    apply_moc_transformations(model, cf=True)


def compress_weights(job) -> None:
    """Weights behind a FakeQuantize stored as int8 (OpenVINO's compress_quantize_weights), in place."""
    import openvino as ov  # lazy: openvino
    from openvino._offline_transformations import compress_quantize_weights_transformation  # lazy: openvino

    with quiet():
        model = ov.Core().read_model(str(job.file))
        fold_constants(model)
        compress_quantize_weights_transformation(model)
        for k, v in job.metadata.items():
            model.set_rt_info(v, [RT_INFO_KEY, k])
        tmp = Path(str(job.file) + ".int8.xml")
        ov.save_model(model, str(tmp), compress_to_fp16=False)
    tmp.replace(job.file)
    tmp.with_suffix(".bin").replace(job.file.with_suffix(".bin"))


def fake_quantize_count(path: Path) -> int:
    import openvino as ov  # lazy: openvino

    return sum(
        op.get_type_name() == "FakeQuantize" for op in ov.Core().read_model(str(path)).get_ordered_ops()
    )


# ---- the int8 hook's interface (edgepose.quantization.hook; the format row names this module)

USES_QAT_GRAPH = True  # with QAT, the QDQ graph becomes a FakeQuantize IR


def int8_after(job, artifact, hook):
    return apply(job, artifact, hook.calibration, hook.scopes.for_stage(job.stage), hook.options)


def int8_qat_graph(job, artifact, hook):
    compress_weights(job)
    artifact.info.update(
        {
            "quantizer": "torchao PT2E QAT QDQ ONNX -> OpenVINO (FakeQuantize, int8 weights)",
            "fake_quantize": fake_quantize_count(job.file),
        }
    )
    return artifact

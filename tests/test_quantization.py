"""INT8: calibration from real crops, PTQ per format (quantised ops present, runs in its runtime, close
to fp32), QAT a few steps, float scopes, the report in the manifest and as JSON, the CLI.

Tiny zoo models keep this fast; their random weights test the machinery (structure, runtimes,
error against fp32 on real crops at stated bounds). Accuracy against fp32 on the evaluation
metric needs a model that finds joints: that test uses the shipped demo weights.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from edgepose.cli import app
from edgepose.core.manifest import read_manifest
from edgepose.data.synth_dataset import write_dataset
from edgepose.data.synthetic import SynthConfig
from edgepose.export.formats import PRECISIONS
from edgepose.export.source import build
from edgepose.quantization import quantize
from edgepose.quantization.calibration import collect, open_data
from edgepose.quantization.pipeline import StagePlan
from edgepose.quantization.scopes import (
    Scope,
    choice_for,
    fx_node_path,
    model_path,
    onnx_node_path,
    resolve,
)
from edgepose.zoo import create_model, get_spec

# Bounds of the tiny random-init DistilPose against fp32 PyTorch on the val crops (int8 in its
# runtime). Measured here (90th percentile, 64x48 crop): ONNX Runtime and LiteRT under 0.5 px,
# OpenVINO 0.73 px since its IR is constant-folded before NNCF (the depthwise convolutions then
# run int8 too); the bounds leave room for other CPUs' rounding and stay far under the 4 px
# int8 tolerance of the export table, which a broken graph exceeds many times over.
REL_RMS = 0.05
KP_P90_PX = 1.5


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Four short synthetic videos (two train, two val) in PoseTrack and COCO form."""
    out = tmp_path_factory.mktemp("q") / "data"
    write_dataset(
        out, SynthConfig.preset("easy", width=256, height=192, frames=6), videos=4, seed=3, split_val=0.5
    )
    return out


def _ops(path) -> Counter:
    import onnx

    return Counter(n.op_type for n in onnx.load(str(path)).graph.node)


def _ort_optimized_ops(path) -> tuple[Counter, int]:
    """Operator counts of the graph ONNX Runtime builds from ``path`` (QDQ fused into QLinear*), and
    how many Clip nodes sit inside it (not producing a graph output: the model's own final clamp
    of its outputs is float by design; a ReLU6 left between int8 convolutions is not)."""
    import tempfile

    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        so.optimized_model_filepath = f"{tmp}/opt.onnx"
        ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        g = onnx.load(f"{tmp}/opt.onnx").graph
        outputs = {o.name for o in g.output}
        inner_clips = sum(n.op_type == "Clip" and not set(n.output) & outputs for n in g.node)
        return Counter(n.op_type for n in g.node), inner_clips


def _rel_rms(ref, got) -> float:
    ref, got = np.asarray(ref, np.float64), np.asarray(got, np.float64)
    return float(np.sqrt(np.mean((ref - got) ** 2)) / np.sqrt(np.mean(ref**2)))


# ----------------------------------------------------------------------------- scopes and calibration


def test_module_paths_of_graph_nodes():
    import onnx

    assert model_path("stage.model.head_coord.1") == "head_coord.1" and model_path("stage") == ""
    node = onnx.helper.make_node("MatMul", ["a", "b"], ["c"], name="node_MatMul_1")
    entry = node.metadata_props.add()
    entry.key, entry.value = (
        "pkg.torch.onnx.name_scopes",
        "['', 'stage', 'stage.model.head', 'stage.model.head.1', 'linear']",
    )
    assert onnx_node_path(node) == "head.1"
    ts = onnx.helper.make_node("MatMul", ["a", "b"], ["c"], name="/stage/model/blocks.0/attn/MatMul")
    assert onnx_node_path(ts) == "blocks.0.attn"
    ts2 = onnx.helper.make_node(
        "MatMul", ["a", "b"], ["c"], name="/stage/model/head_coord/head_coord.1/MatMul"
    )
    assert onnx_node_path(ts2) == "head_coord.1"
    attn = Scope("blocks.*.attn", direct=True)
    assert attn.matches("blocks.3.attn") and not attn.matches("blocks.3.attn.qkv")
    assert Scope("head").matches("head.1") and not Scope("head").matches("header")
    with pytest.raises(KeyError, match="unknown float scope"):
        resolve("dsta", ["nope"])


def test_pt2e_nodes_know_their_module():
    from edgepose.export.stages import named_module
    from edgepose.quantization.pt2e import export_for_quantization

    m = create_model("dsta_mnv2_tiny").eval()
    ins, outs = m.stage_io("temporal")
    gm = export_for_quantization(
        named_module(m.stage("temporal"), ins, outs),
        m.example_inputs("temporal", 2),
        dynamic_batch=True,
        positional=True,
    )
    paths = {fx_node_path(n) for n in gm.graph.nodes if n.op == "call_function"}
    assert {"head_coord.1", "head_sigma.1", "fuse"} <= paths


def test_calibration_feeds_each_stage_what_it_sees_at_run_time(data):
    m = create_model("dsta_mnv2_tiny").eval()
    src = open_data(data, get_spec("dsta_mnv2_tiny"))
    ds = src.calibration_set
    cal = collect(m, ds, count=4, batch=2)
    assert set(cal.stages) == {"frame", "temporal"}
    tokens = cal.stages["temporal"]["tokens"]
    assert tokens.shape == (4, 3, 17, 16) and cal.count("frame") == 4
    # the temporal stage's calibration = fp32 frame outputs of real windows, stacked in time order
    idx = np.unique(np.linspace(0, len(ds) - 1, 4).round().astype(int))
    window = ds[int(idx[1])]["frames"]
    with torch.no_grad():
        expect = m.forward_frame(window)["tokens"].numpy()
    np.testing.assert_allclose(tokens[1], expect, rtol=1e-5, atol=1e-6)
    # crops are the inference preprocessing: ImageNet-normalised RGB, not raw pixels
    assert -3 < cal.stages["frame"]["image"].mean() < 3 and cal.stages["frame"]["image"].std() > 0.3


def test_family_knobs_are_defaults_the_caller_overrides():
    from edgepose.quantization.scopes import options_for

    measured = choice_for("dsta").options
    assert measured, "DSTA's quantiser knobs were measured (benchmarks/results/int8_real.md)"
    assert options_for("dsta") == measured
    key = next(iter(measured))
    assert options_for("dsta", {key: "mine", "per_channel": False}) == {
        **measured,
        key: "mine",
        "per_channel": False,
    }
    assert options_for("sharpose", {"per_channel": False}) == {
        **choice_for("sharpose").options,
        "per_channel": False,
    }


def _tiny_conv_onnx(path):
    """conv (fed by the graph input) -> ReLU -> depthwise conv."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = rng.normal(size=(8, 4, 3, 3)).astype(np.float32)
    dw = rng.normal(size=(8, 1, 3, 3)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["x", "w"], ["y"], name="conv", pads=[1, 1, 1, 1]),
            helper.make_node("Relu", ["y"], ["r"], name="relu"),
            helper.make_node("Conv", ["r", "dw"], ["z"], name="dwconv", pads=[1, 1, 1, 1], group=8),
        ],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4, 6, 6])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [None, 8, 6, 6])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(dw, "dw")],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


@pytest.mark.parametrize("weight_type", ["s8", "u8"])
def test_ort_weight_type_sets_the_stored_weights(tmp_path, weight_type):
    import onnx

    from edgepose.quantization.onnx_ptq import quantize_file

    _tiny_conv_onnx(tmp_path / "f.onnx")
    rng = np.random.default_rng(1)
    batches = [{"x": rng.normal(size=(2, 4, 6, 6)).astype(np.float32)} for _ in range(4)]
    info = quantize_file(tmp_path / "f.onnx", tmp_path / "q.onnx", batches, weight_type=weight_type)
    g = onnx.load(str(tmp_path / "q.onnx")).graph
    want = onnx.TensorProto.INT8 if weight_type == "s8" else onnx.TensorProto.UINT8
    weights = [t for t in g.initializer if len(t.dims) == 4]
    assert weights and all(t.data_type == want for t in weights)
    assert f"{weight_type} weights" in info["quantizer"]
    with pytest.raises(ValueError, match="weight type"):
        quantize_file(tmp_path / "f.onnx", tmp_path / "r.onnx", batches, weight_type="s4")


def test_ort_7_bit_weights_where_u8s8_can_saturate(tmp_path):
    """The first conv takes the graph input (a mid-range zero point): 7-bit weights (|w| <= 63, so
    no u8 x s8 pair sum reaches int16's limit) under both s7 types; the depthwise conv after the
    ReLU keeps 8 bits under both; plain s8 uses the full +-127 everywhere."""
    import onnx
    from onnx import numpy_helper

    from edgepose.quantization.onnx_ptq import quantize_file

    _tiny_conv_onnx(tmp_path / "f.onnx")
    rng = np.random.default_rng(1)
    batches = [{"x": rng.normal(size=(2, 4, 6, 6)).astype(np.float32)} for _ in range(4)]
    for wt in ("s8", "s7_signed_inputs", "s7_dense"):
        info = quantize_file(tmp_path / "f.onnx", tmp_path / f"{wt}.onnx", batches, weight_type=wt)
        g = onnx.load(str(tmp_path / f"{wt}.onnx")).graph
        peak = {
            t.dims[1]: int(np.abs(numpy_helper.to_array(t).astype(np.int32)).max())
            for t in g.initializer
            if len(t.dims) == 4
        }  # input channels per group: 4 (dense), 1 (depthwise)
        assert peak[1] >= 120, wt
        assert (peak[4] <= 64) == (wt != "s8"), wt
        assert info.get("saturating_weights", 0) == (0 if wt == "s8" else 1)


def test_nncf_knobs_reach_the_quantiser():
    """``activation_range=minmax`` covers every calibration sample; NNCF's default averages per sample."""
    import openvino as ov
    import openvino.opset13 as ops

    from edgepose.quantization.openvino_ptq import nncf_options, quantize_ir

    def tiny():
        x = ops.parameter([1, 4, 6, 6], np.float32, name="x")
        w = ops.constant(np.random.default_rng(0).normal(size=(8, 4, 3, 3)).astype(np.float32))
        y = ops.relu(ops.convolution(x, w, [1, 1], [1, 1], [1, 1], [1, 1]))
        w2 = ops.constant(np.random.default_rng(1).normal(size=(8, 8, 1, 1)).astype(np.float32))
        return ov.Model([ops.convolution(y, w2, [1, 1], [0, 0], [0, 0], [1, 1])], [x])

    rng = np.random.default_rng(2)
    items = [{"x": rng.normal(size=(1, 4, 6, 6)).astype(np.float32)} for _ in range(16)]
    items[3]["x"] *= 20  # one outlier sample
    peak = max(float(np.abs(i["x"]).max()) for i in items)

    def input_range(**kw):
        q, info = quantize_ir(tiny(), items, [], transformer=False, **kw)
        fq = next(
            op
            for op in q.get_ordered_ops()
            if op.get_type_name() == "FakeQuantize"
            and op.input_value(0).get_node().get_type_name() == "Parameter"
        )
        return float(np.abs(fq.input_value(2).get_node().get_data()).max()), info["quantizer"]

    default, _ = input_range()
    full, how = input_range(activation_range="minmax")
    assert full >= 0.99 * peak > 2 * default and "activations minmax" in how
    assert "overflow_fix=enable" in input_range(overflow_fix="enable")[1]
    assert nncf_options({"overflow_fix": "enable", "weight_type": "u8", "preset": "mixed"}) == {
        "overflow_fix": "enable",
        "preset": "mixed",
    }
    for bad in ({"preset": "fast"}, {"activation_range": "max"}, {"overflow_fix": "yes"}):
        with pytest.raises(ValueError):
            quantize_ir(tiny(), items, [], transformer=False, **bad)


# ----------------------------------------------------------------------------- PTQ per format


@pytest.fixture(scope="module")
def ptq(data, tmp_path_factory):
    """DistilPose-tiny PTQ in every format (one run; the report evaluates on the val videos)."""
    out = tmp_path_factory.mktemp("ptq") / "b"
    result = quantize(
        "distilpose_s_tiny",
        out=out,
        data=data,
        calib=16,
        format="all",
        eval_limit=None,
        batches=(1, 2),
        onnx_exporter="torchscript",
        strict=False,
    )
    return result, out


def test_ptq_onnx_holds_qdq_runs_and_keeps_the_head_float(ptq):
    result, out = ptq
    path = out / "onnx" / "model.onnx"
    ops = _ops(path)
    assert ops["QuantizeLinear"] > 0 and ops["DequantizeLinear"] > 0
    import onnx

    g = onnx.load(str(path)).graph
    produced_by = {o: n for n in g.node for o in n.output}
    head = [
        n
        for n in g.node
        if n.op_type in ("MatMul", "Gemm") and Scope("head").matches(onnx_node_path(n) or "-")
    ]
    assert head, "the head's Linear is in the graph"
    for n in head:  # the float scope: its weight is not dequantised from int8
        assert all(
            produced_by.get(i) is None or produced_by[i].op_type != "DequantizeLinear" for i in n.input[1:]
        )
    r = result["onnx"]
    assert r.size_bytes < r.fp32_size_bytes and r.verified is not False
    fused, inner_clips = _ort_optimized_ops(
        path
    )  # what ONNX Runtime runs: int8 kernels, no float round trips
    assert fused["QLinearConv"] > 0 and fused["Conv"] + fused["FusedConv"] == 0 and inner_clips == 0


@pytest.mark.parametrize("fmt", ["onnx", "openvino", "tflite"])
def test_ptq_runs_in_its_runtime_close_to_fp32(ptq, data, fmt):
    from edgepose.runtimes.bundle import load

    result, out = ptq
    m = read_manifest(out / fmt)
    assert m.precision == "int8" and "int8_report" in m.extra
    v = m.verification_for("model")
    assert v.passed is True, v.reason  # the per-stage int8 check on real crops
    assert v.keypoint_error_px <= PRECISIONS["int8"].tolerance.keypoint_px
    model = build("distilpose_s_tiny").model  # the seeded model quantize() built
    src = open_data(data, get_spec("distilpose_s_tiny"))
    x = torch.stack([src.eval_set[i]["image"] for i in range(len(src.eval_set))])
    with torch.no_grad():
        ref = model(x)
    with load(out / fmt) as bundle:
        got = bundle.run_stage("model", {"image": bundle.to_graph_layout(x.numpy())})
    assert got["coords"].shape == (len(x), 17, 2) and got["coords"].dtype == np.float32
    assert _rel_rms(ref["coords"], got["coords"]) < REL_RMS
    px = np.linalg.norm((ref["coords"].numpy() - got["coords"]) * np.array([48, 64]), axis=-1)
    assert np.percentile(px, 90) < KP_P90_PX
    rep = result[fmt]
    assert rep.latency_ms["int8"] and rep.latency_ms["fp32"] and rep.accuracy["metric_name"] == "COCO AP"


def test_openvino_ir_holds_fake_quantize(ptq):
    import openvino as ov

    _, out = ptq
    ops = Counter(
        op.get_type_name()
        for op in ov.Core().read_model(str(out / "openvino" / "model.xml")).get_ordered_ops()
    )
    assert ops["FakeQuantize"] > 0


def test_tflite_is_full_integer_with_int8_image_and_float_coords(ptq):
    from ai_edge_litert.interpreter import Interpreter

    _, out = ptq
    it = Interpreter(model_path=str(out / "tflite" / "model.tflite"))
    types = Counter(np.dtype(d["dtype"]).name for d in it.get_tensor_details())
    assert types["int8"] > 20
    m = read_manifest(out / "tflite")
    image = m.stage("model").inputs[0]
    assert image.dtype == "int8" and image.scale > 0 and image.shape == (1, 64, 48, 3)
    assert {t.name: t.dtype for t in m.stage("model").outputs}["coords"] == "float32"


def test_coreml_weights_are_int8_and_report_says_simulated(ptq):
    import coremltools as ct

    from edgepose.quantization.coreml_int8 import mil_ops

    result, out = ptq
    ops = mil_ops(ct.models.MLModel(str(out / "coreml" / "model.mlpackage"), skip_model_load=True))
    assert ops["constexpr_affine_dequantize"] + ops["constexpr_blockwise_shift_scale"] > 0
    r = result["coreml"]
    assert r.size_bytes < 0.5 * r.fp32_size_bytes and "simulated" in r.accuracy_source
    v = read_manifest(out / "coreml").verification_for("model")
    assert v.passed is None and "Structure OK" in v.reason


def test_report_json_and_manifest_agree(ptq):
    result, out = ptq
    report = json.loads((out / "int8_report.json").read_text())
    assert [a["format"] for a in report["artifacts"]] == ["onnx", "openvino", "tflite", "coreml"]
    for a in report["artifacts"]:
        m = read_manifest(out / a["format"])
        assert m.extra["int8_report"]["size_bytes"] == a["size_bytes"]
        assert a["accuracy"]["metric"] is not None and a["fp32_accuracy"]["metric"] is not None
        assert set(a["deviation"]) == {"mean_px", "p90_px", "max_px"}
    assert report["float_scopes"]["names"] == ["head"]


def test_coreml_w8a8_converts_with_quantize_ops(data, tmp_path):
    import coremltools as ct

    from edgepose.quantization.coreml_int8 import mil_ops

    result = quantize(
        "distilpose_s_tiny",
        out=tmp_path / "c",
        data=data,
        calib=4,
        format="coreml",
        eval_limit=None,
        latency=False,
        options={"coreml_mode": "w8a8"},
        strict=False,
    )
    ops = mil_ops(ct.models.MLModel(str(tmp_path / "c" / "model.mlpackage"), skip_model_load=True))
    assert ops["quantize"] > 0 and ops["dequantize"] > 0
    assert "macOS" in result["coreml"].accuracy_source


# ----------------------------------------------------------------------------- QAT


def test_qat_few_steps_ties_shared_weights_and_exports_qdq(data, tmp_path):
    import onnxruntime as ort

    from edgepose.export.stages import named_module
    from edgepose.quantization.qat import finetune
    from edgepose.training.tasks import build_task

    model = create_model("sharpose_s_tiny").eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    spec = get_spec("sharpose_s_tiny")
    src = open_data(data, spec)
    train = src.dataset("train", train=True, heatmap_size=build_task(spec, model).heatmap_size())
    result = finetune(model, spec, train, resolve("sharpose"), max_steps=2, batch_size=4)
    assert result.steps == 2 and np.isfinite(result.history[-1]["loss"])
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items()), (
        "the input model is untouched"
    )
    changed = [k for k, v in result.model.state_dict().items() if not torch.equal(v, before[k])]
    assert any(k.startswith("blocks.") for k in changed)
    # coarse and fine run one ViT: one set of weights came out of training
    assert result.float_nodes["coarse"], "quality/relevance/head stay float"
    qdq = {
        s: sum("quantize_per" in str(n.target) for n in gm.graph.nodes) for s, gm in result.modules.items()
    }
    assert min(qdq.values()) > 0
    ins, outs = model.stage_io("coarse")
    example = tuple(model.example_inputs("coarse", 2).values())
    path = tmp_path / "coarse.onnx"
    batch = torch.export.Dim("batch", min=1, max=64)
    torch.onnx.export(
        named_module(result.modules["coarse"], ins, outs),
        example,
        str(path),
        dynamo=True,
        input_names=list(ins),
        output_names=list(outs),
        dynamic_shapes={"image": {0: batch}},
        external_data=False,
    )
    assert _ops(path)["QuantizeLinear"] > 0
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = model.example_inputs("coarse", 3, seed=1)["image"]
    heat = sess.run(None, {"image": x.numpy()})[0]
    with torch.no_grad():
        ref = result.model.forward_coarse(x)["heatmaps"].numpy()
    assert heat.shape == ref.shape and _rel_rms(ref, heat) < 0.5


def test_qat_through_the_api_writes_weights_and_qdq_bundle(data, tmp_path):
    result = quantize(
        "dsta_mnv2_tiny",
        out=tmp_path / "q",
        method="qat",
        data=data,
        calib=8,
        format="onnx",
        qat_steps=2,
        qat_batch_size=4,
        eval_limit=None,
        latency=False,
        strict=False,
    )
    assert (tmp_path / "q" / "qat_weights.pt").is_file() and result.qat["steps"] == 2
    assert _ops(tmp_path / "q" / "frame.onnx")["QuantizeLinear"] > 0
    # DSTA's temporal stage is a float scope (0.002 of 0.297 GFLOPs; int8 moved real keypoints 6.7 px)
    assert _ops(tmp_path / "q" / "temporal.onnx").get("QuantizeLinear", 0) == 0
    import onnx

    frame = onnx.load(str(tmp_path / "q" / "frame.onnx")).graph
    assert sum(t.data_type == onnx.TensorProto.INT8 for t in frame.initializer) >= 50  # weights stored int8
    assert result["onnx"].size_bytes < 0.4 * result["onnx"].fp32_size_bytes
    fused, _ = _ort_optimized_ops(tmp_path / "q" / "frame.onnx")
    # every conv but the joint decoder's (a float scope) runs as QLinearConv, residual adds as QLinearAdd
    assert fused["QLinearConv"] >= 50 and fused["QLinearAdd"] > 0 and fused["Conv"] + fused["FusedConv"] <= 1
    assert "QAT" in read_manifest(tmp_path / "q").extra["exporter"]["frame"]["quantizer"]


# ----------------------------------------------------------------------------- CLI, errors


def test_cli_quantize_json(data, tmp_path):
    res = CliRunner().invoke(
        app,
        [
            "quantize",
            "dsta_mnv2_tiny",
            "--data",
            str(data),
            "--format",
            "onnx",
            "--out",
            str(tmp_path / "o"),
            "--calib",
            "8",
            "--no-latency",
            "--no-strict",
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["method"] == "ptq" and report["artifacts"][0]["format"] == "onnx"
    assert StagePlan.from_manifest(read_manifest(tmp_path / "o")).names == ("frame", "temporal")
    # a plain run quantises with DSTA's measured knobs (ScopeChoice.options)
    quantizer = read_manifest(tmp_path / "o").extra["exporter"]["frame"]["quantizer"]
    assert f"{choice_for('dsta').options.get('weight_type', 's8')} weights" in quantizer


def test_clear_errors_before_any_work(data, tmp_path):
    from edgepose.quantization.api import QuantizationError

    with pytest.raises(QuantizationError, match="method must be one of"):
        quantize("dsta_mnv2_tiny", out=tmp_path / "x", method="awq", data=data)
    res = CliRunner().invoke(
        app,
        [
            "quantize",
            "dsta_mnv2_tiny",
            "--data",
            str(data),
            "--out",
            str(tmp_path / "y"),
            "--float-scopes",
            "nope",
        ],
    )
    assert res.exit_code == 2 and "unknown float scope" in res.output
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


# ----------------------------------------------------------------------------- trained weights


def test_trained_demo_weights_keep_their_accuracy_in_int8(data, tmp_path):
    """The shipped demo weights (trained on the synthetic benchmark): ONNX Runtime PTQ keeps the metric."""
    from edgepose.zoo.pretrained import WEIGHTS_DIR, list_pretrained, pretrained_info

    if "distilpose_s" not in list_pretrained():
        pytest.skip(
            "no shipped demo weights in edgepose/assets/weights (benchmarks/train_synthetic.py "
            "--ship-weights writes them)"
        )
    weights = WEIGHTS_DIR / pretrained_info("distilpose_s")["file"]
    result = quantize(
        "distilpose_s",
        weights=weights,
        out=tmp_path / "t",
        data=data,
        calib=32,
        format="onnx",
        eval_limit=None,
        latency=False,
    )
    r = result["onnx"]
    assert r.verified is True
    assert r.deviation["p90_px"] < 2.0  # measured: about 0.6 px at 64x48
    assert abs(r.metric_drop) < 3.0 and abs(r.fp32_accuracy["pckh@0.5"] - r.accuracy["pckh@0.5"]) < 3.0


def test_tflite_ptq_of_a_stage_with_an_integer_input(data, tmp_path):
    """SHaRPose's fine stage takes an int64 patch index: no observer may sit on integer tensors."""
    result = quantize(
        "sharpose_s_tiny",
        out=tmp_path / "s",
        data=data,
        calib=8,
        format="tflite",
        eval_limit=None,
        latency=False,
        strict=False,
    )
    row = result["tflite"]
    assert row.verified is not False and row.size_bytes < row.fp32_size_bytes
    assert read_manifest(tmp_path / "s").precision == "int8"


def test_preprocess_leaves_no_scratch_files_in_the_working_directory(tmp_path, monkeypatch):
    """ORT's symbolic shape inference writes scratch files into the working directory and leaves them
    when it fails; the retry without it must still run and nothing may be left where the user is."""
    pytest.importorskip("onnxruntime")
    from onnxruntime.quantization import shape_inference

    from edgepose.quantization import onnx_ptq

    calls = []

    def fake(src, dest, skip_symbolic_shape=False):
        calls.append(skip_symbolic_shape)
        Path("sym_shape_infer_temp.onnx").write_bytes(b"scratch")
        if not skip_symbolic_shape:
            raise RuntimeError("Incomplete symbolic shape inference")
        Path(dest).write_bytes(Path(src).read_bytes())

    monkeypatch.setattr(shape_inference, "quant_pre_process", fake)
    work = tmp_path / "user"
    work.mkdir()
    monkeypatch.chdir(work)
    (tmp_path / "in.onnx").write_bytes(b"graph")
    note = onnx_ptq.preprocess(Path("../in.onnx"), Path("../out.onnx"))
    assert calls == [False, True] and "without symbolic shape inference" in note
    assert (tmp_path / "out.onnx").read_bytes() == b"graph"  # relative paths still mean the user's
    assert list(work.iterdir()) == [] and Path.cwd() == work

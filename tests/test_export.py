"""Export: every zoo model (tiny) x every format, verified against PyTorch; bundles, errors, atomicity, CLI.

Each tiny model is exported once to all formats (a module fixture) and the
tests read those bundles. Core ML is checked structurally on Linux (its
``predict`` needs macOS); the others run in their runtimes at batch 3 (dynamic)
or their fixed batch.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

import edgepose
from edgepose.core.manifest import read_manifest
from edgepose.export import export, verify_bundle
from edgepose.export.formats import FORMATS, PRECISIONS, ConverterUnavailable, ExportError
from edgepose.runtimes.bundle import FORMAT_BACKENDS, load

TINY = ("dsta_mnv2_tiny", "distilpose_s_tiny", "sharpose_s_tiny", "tar_vitpose_s_tiny")
NUMERIC = ("onnx", "openvino", "tflite")  # run here; Core ML is structural off macOS


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    return {name: export(name, out=root / name, format="all") for name in TINY}


def test_format_table_is_consistent():
    import importlib

    from edgepose.core.manifest import FORMATS as MANIFEST_FORMATS

    for fmt in FORMATS.values():
        mod = importlib.import_module(fmt.converter)
        assert callable(mod.convert) and callable(mod.read_metadata)
        assert FORMAT_BACKENDS[fmt.name] == fmt.backend
        assert fmt.name in MANIFEST_FORMATS
        assert set(fmt.precisions) <= set(PRECISIONS)


@pytest.mark.parametrize("name", TINY)
def test_every_format_verified(bundles, name):
    result = bundles[name]
    assert [b.format for b in result.bundles] == list(FORMATS)
    model = edgepose.create_model(name)
    for b in result.bundles:
        m = read_manifest(b.path)
        assert b.path == result.out / b.format and m.format == b.format
        assert m.model == name and m.stage_names == list(model.stage_names)
        assert m.frame_offsets == model.frame_offsets and m.input_size == model.input_size
        assert m.extra["source"]["init_seed"] == 0 and len(m.extra["source"]["state_sha256"]) == 64
        for entry in m.stages:
            ins, outs = model.stage_io(entry.name)
            assert entry.input_names == list(ins) and entry.output_names == list(outs)
            for f in entry.files:
                assert (b.path / f).exists()
            v = m.verification_for(entry.name)
            if b.format in NUMERIC:
                assert v.passed is True, v.reason
                assert v.max_abs_error is not None and v.max_abs_error <= v.tolerance
                assert v.backend == FORMATS[b.format].backend
            else:
                assert v.passed is None and "Structure OK" in v.reason and "darwin" in v.reason
        final = m.stages[-1].name
        if b.format in NUMERIC:
            assert m.verification_for(final).keypoint_error_px < PRECISIONS["fp32"].tolerance.keypoint_px


@pytest.mark.parametrize("name", TINY)
def test_metadata_travels_inside_every_artifact(bundles, name):
    for b in bundles[name].bundles:
        mod = FORMATS[b.format].module()
        for entry in b.manifest.stages:
            meta = mod.read_metadata(b.path / entry.file)
            assert meta["edgepose.model"] == name and meta["edgepose.stage"] == entry.name
            assert meta["edgepose.format"] == b.format and meta["edgepose.precision"] == "fp32"
            assert json.loads(meta["edgepose.inputs"]) == entry.input_names


def test_batch_and_layout_per_format(bundles):
    result = bundles["tar_vitpose_s_tiny"]
    onnx, tflite = result["onnx"].manifest, result["tflite"].manifest
    assert onnx.layout == "NCHW" and onnx.stage("frame").inputs[0].shape == ("batch", 3, 64, 48)
    assert onnx.stage("temporal").inputs[0].shape[:2] == ("batch", 3)
    assert tflite.layout == "NHWC" and tflite.stage("frame").inputs[0].shape == (1, 64, 48, 3)
    assert tflite.extra["batch"] == 1 and onnx.extra["batch"] == "dynamic"
    sharp = bundles["sharpose_s_tiny"]
    assert sharp["tflite"].manifest.stage("fine").inputs[1].dtype == "int32"  # LiteRT has no int64 I/O
    assert sharp["onnx"].manifest.stage("fine").inputs[1].dtype == "int64"
    assert sharp["onnx"].manifest.extra["derived_inputs"]["patch_index"]["of"] == "relevance"
    coreml = sharp["coreml"].manifest
    assert coreml.stage("coarse").inputs[0].shape[0] == "batch"
    detail = sharp["onnx"].manifest.extra["verification_detail"]["fine"]
    assert (
        detail["batch"] == 3
        and detail["outputs"]["heatmaps"]["max_abs"] <= detail["outputs"]["heatmaps"]["bound"]
    )


def test_load_runs_stages_like_pytorch(bundles):
    out = bundles["dsta_mnv2_tiny"].out
    with edgepose.load(out) as bundle:  # a root of several formats: picks onnx here, and says why
        assert bundle.format == "onnx" and "onnx" in bundle.reason
        torch.manual_seed(0)  # the seed a weight-less export initialises with
        model = edgepose.create_model("dsta_mnv2_tiny").eval()
        frames = torch.randn(2, 3, 3, 64, 48)
        tokens = [bundle.run_stage("frame", {"image": frames[:, t].numpy()})["tokens"] for t in range(3)]
        got = bundle.run_stage("temporal", {"tokens": np.stack(tokens, axis=1)})
        with torch.no_grad():
            ref = model(frames)
        assert np.abs(got["coords"] - ref["coords"].numpy()).max() < 1e-4
    with load(out / "tflite") as bundle:
        x = np.random.default_rng(0).standard_normal((2, 3, 64, 48)).astype(np.float32)
        assert bundle.run_stage("frame", {"image": bundle.to_graph_layout(x)})["tokens"].shape == (2, 17, 16)


def test_verify_rebuilds_source_and_can_fail(bundles):
    out = bundles["distilpose_s_tiny"].out
    checks = verify_bundle(out / "onnx")
    assert checks[0].passed is True and "seed 0" in checks[0].source
    with torch.random.fork_rng():
        torch.manual_seed(123)
        other = edgepose.create_model("distilpose_s_tiny").eval()
    bad = verify_bundle(out / "onnx", model=other)[0]
    assert bad.passed is False and "max abs error" in bad.verifications[0].reason


def test_cli_verify_json(bundles):
    from typer.testing import CliRunner

    from edgepose.cli import app

    res = CliRunner().invoke(app, ["verify", str(bundles["sharpose_s_tiny"].out), "--json"])
    assert res.exit_code == 0, res.output
    checks = json.loads(res.stdout)
    assert {c["format"] for c in checks} == set(FORMATS)
    assert all(c["passed"] is True for c in checks if c["format"] in NUMERIC)


def test_cli_export_static_batch_fp16(tmp_path):
    from typer.testing import CliRunner

    from edgepose.cli import app

    out = tmp_path / "b"
    res = CliRunner().invoke(
        app,
        [
            "export",
            "distilpose_s_tiny",
            "--format",
            "onnx",
            "--precision",
            "fp16",
            "--batch",
            "2",
            "--out",
            str(out),
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    info = json.loads(res.stdout)["bundles"][0]
    assert info["precision"] == "fp16" and info["batch"] == 2 and info["verified"] is True
    m = read_manifest(out)
    assert m.stage("model").inputs[0].shape == (2, 3, 64, 48)
    assert m.verification_for("model").inputs.startswith("seed 1, batch 2")


def test_torchscript_fallback_and_frames(tmp_path):
    r = export("dsta_mnv2_tiny", out=tmp_path / "d", format="onnx", frames=5, onnx_exporter="torchscript")
    m = r["onnx"].manifest
    assert m.frame_offsets == (-2, -1, 0, 1, 2) and m.stage("temporal").inputs[0].shape[:2] == ("batch", 5)
    assert m.extra["exporter"]["frame"]["exporter"] == "torchscript" and m.verified


def test_baked_batch_is_caught(tmp_path, monkeypatch):
    """The ViT trap: a graph that names its batch dynamic but computes with the export batch."""
    from edgepose.export import to_onnx

    real_export = to_onnx._export

    def baked(job, path, exporter):
        real_export(replace(job, batch=2), path, "torchscript")  # fixed batch 2 ...
        import onnx

        m = onnx.load(str(path))
        for v in (*m.graph.input, *m.graph.output):
            v.type.tensor_type.shape.dim[0].dim_param = "batch"  # ... relabelled dynamic
        onnx.save(m, str(path))

    monkeypatch.setattr(to_onnx, "_export", baked)
    monkeypatch.setattr(to_onnx, "check_graph", lambda job, path: None)  # let it through to verification
    with pytest.raises(ExportError, match="runtime failed at batch 3") as e:
        export("distilpose_s_tiny", out=tmp_path / "b", format="onnx", onnx_exporter="torchscript")
    assert "No bundle was written" in str(e.value) and not (tmp_path / "b").exists()


def test_coreml_falls_back_to_fixed_batch_per_stage(tmp_path, monkeypatch):
    from edgepose.export import to_coreml

    real = to_coreml._convert

    def no_flexible_fine(job, batch):
        if job.stage == "fine" and batch is None:
            raise AssertionError("symbolic shape not supported")
        return real(job, batch)

    monkeypatch.setattr(to_coreml, "_convert", no_flexible_fine)
    m = export("sharpose_s_tiny", out=tmp_path / "c", format="coreml")["coreml"].manifest
    assert m.stage("coarse").inputs[0].shape[0] == "batch" and m.stage("fine").inputs[0].shape[0] == 1
    assert m.extra["stage_batch"] == {"fine": 1} and "fixed batch of 1" in m.extra["notes"][0]
    assert m.verification_for("fine").passed is None and "Structure OK" in m.verification_for("fine").reason


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"format": "tensorrt"}, "unknown format"),
        ({"precision": "int8"}, "edgepose quantize"),
        ({"precision": "bf16"}, "unknown precision"),
        ({"format": "tflite", "batch": "dynamic"}, "no dynamic batch"),
        ({"batch": "0"}, "--batch"),
        ({"frames": 5}, "--frames applies to temporal models"),
    ],
)
def test_clear_errors_before_any_work(tmp_path, kwargs, message):
    with pytest.raises((ExportError, KeyError, ValueError)) as e:
        export("distilpose_s_tiny", out=tmp_path / "x", **kwargs)
    assert message in str(e.value)
    assert not (tmp_path / "x").exists()


def test_missing_converter_names_the_extra(tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "coremltools" else real(n, *a)
    )
    with pytest.raises(ConverterUnavailable, match=r"pip install 'edgepose\[coreml\]'"):
        export("distilpose_s_tiny", out=tmp_path / "x", format="coreml")


def test_refuses_non_bundle_out_and_failed_export_touches_nothing(tmp_path, monkeypatch):
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "notes.txt").write_text("mine")
    with pytest.raises(ExportError, match="not a bundle directory"):
        export("distilpose_s_tiny", out=junk, format="onnx")
    assert (junk / "notes.txt").read_text() == "mine"

    out = tmp_path / "bundle"
    export("distilpose_s_tiny", out=out, format="onnx", verify=False)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert read_manifest(out).verification[0].reason.startswith("verification skipped")

    from edgepose.export import to_onnx

    def broken(job):
        job.file.write_bytes(b"half a graph")
        raise RuntimeError("converter crashed")

    monkeypatch.setattr(to_onnx, "convert", broken)
    with pytest.raises(ExportError, match="converter crashed"):
        export("distilpose_s_tiny", out=out, format="onnx")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle", "junk"]  # no staging dirs left


def test_bundle_loader_is_torch_free():
    code = "import sys, edgepose.runtimes.bundle; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[1])


@pytest.mark.slow
def test_full_size_models_onnx_openvino(tmp_path):
    for name in ("dsta_mnv2", "distilpose_s", "sharpose_s", "tar_vitpose_s"):
        r = export(name, out=tmp_path / name, format="onnx,openvino")
        for b in r.bundles:
            assert b.manifest.verified, [v.to_dict() for v in b.manifest.verification]
            final = b.manifest.verification_for(b.manifest.stage_names[-1])
            assert final.keypoint_error_px < 0.5


def test_a_root_of_bundles_with_its_int8_report_can_be_written_again(tmp_path):
    """quantize --format all leaves int8_report.json beside its bundles; a second run (or export) into
    that root replaces them instead of refusing the root as foreign; any other file still stops it."""
    from edgepose.export.exporter import INT8_REPORT

    root = tmp_path / "int8"
    export("distilpose_s_tiny", out=root, format="onnx,openvino", verify=False)
    (root / INT8_REPORT).write_text("{}")
    r = export("distilpose_s_tiny", out=root, format="onnx,openvino", verify=False)
    assert sorted(b.format for b in r.bundles) == ["onnx", "openvino"]
    (root / "notes.txt").write_text("mine")
    with pytest.raises(ExportError, match="not a directory of bundles"):
        export("distilpose_s_tiny", out=root, format="onnx,openvino", verify=False)

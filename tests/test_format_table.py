"""The one table of formats and runtimes (edgepose.core.formats): a new row flows everywhere, TensorRT
refuses clearly where it is absent, and export and quantization do not import each other."""

from __future__ import annotations

import shutil
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

import edgepose
from edgepose.core import formats as table
from edgepose.core.manifest import Manifest, read_manifest, write_manifest
from edgepose.export.formats import FORMATS as EXPORT_FORMATS
from edgepose.export.formats import check_combination, resolve_formats
from edgepose.runtimes import DeviceUnavailable, devices, open_session
from edgepose.runtimes.bundle import FORMAT_BACKENDS, load
from edgepose.runtimes.onnxruntime import OrtSession

ROOT = Path(__file__).resolve().parents[1]


def _dummy_runtime_module() -> types.ModuleType:
    """A runtime module as a fifth backend would write it: targets, probe, check_file, open_session."""
    mod = types.ModuleType("edgepose_test_dummy_runtime")
    mod.TARGETS = {"cpu": (devices.Target("DummyCPU"),), "gpu": (), "npu": ()}
    mod.probe = lambda: ({"DummyCPU"}, "")
    mod.check_file = lambda path: None
    mod.opened = []

    class DummySession(OrtSession):  # runs the ONNX graph, but under its own backend name
        backend = "dummyrt"

    def open_dummy(path, choice, allow_fallback=False, **options):
        mod.opened.append((Path(path).name, choice.name, options))
        cpu = devices.Resolution("onnxruntime", "cpu", devices.Target("CPUExecutionProvider"), choice.reason)
        s = DummySession(Path(path), cpu, **{k: v for k, v in options.items() if k != "marker"})
        s.device = choice.name
        return s

    mod.open_session = open_dummy
    mod.session_options = lambda manifest, stage: {"marker": f"{manifest.format}/{stage}"}
    return mod


@pytest.fixture
def dummy_rows(monkeypatch):
    """One runtime row + its module, one format row: nothing else is edited."""
    mod = _dummy_runtime_module()
    monkeypatch.setitem(sys.modules, mod.__name__, mod)
    monkeypatch.setitem(
        table.RUNTIMES,
        "dummyrt",
        table.Runtime(
            "dummyrt",
            mod.__name__,
            (".dummy",),
            (".onnx", ".dummy"),
            ("numpy",),
            "numpy",
            None,
            label="Dummy",
        ),
    )
    monkeypatch.setitem(
        table.FORMATS,
        "dummy",
        table.Format(
            "dummy",
            ".onnx",
            "edgepose.export.to_onnx",
            "dummyrt",
            ("onnx",),
            "onnx",
            ("fp32",),
            preference={"*": -1},
        ),
    )
    devices.clear_cache()
    yield mod
    devices.clear_cache()


def test_register_functions_add_rows(monkeypatch):
    monkeypatch.setattr(table, "FORMATS", dict(table.FORMATS))
    monkeypatch.setattr(table, "RUNTIMES", dict(table.RUNTIMES))
    f = table.register_format(table.Format("x", ".x", None, "y"))
    r = table.register_runtime(table.Runtime("y", "m", (".x",), (".x",), (), "y", None))
    assert table.FORMATS["x"] is f and table.RUNTIMES["y"] is r and table.runtime_of("x") == "y"


def test_a_dummy_format_and_runtime_flow_through(dummy_rows, tiny_bundle, tmp_path):
    # the export view, the loader's table and the manifest all see the new rows
    assert "dummy" in EXPORT_FORMATS and "dummy" in [f.name for f in resolve_formats("all")]
    check_combination(EXPORT_FORMATS["dummy"], "fp32", None)
    assert FORMAT_BACKENDS["dummy"] == "dummyrt" and table.load_preference()[0] == "dummy"
    m = read_manifest(tiny_bundle).replace(format="dummy")
    assert Manifest.from_json(m.to_json()).format == "dummy"  # the manifest validates it
    # the device table and resolution read the runtime's module
    assert devices.DEVICE_TABLE["dummyrt"]["cpu"][0].name == "DummyCPU"
    assert devices.resolve("dummyrt").name == "DummyCPU"
    # a bundle of the new format opens with the new runtime, from its manifest alone
    b = tmp_path / "b"
    shutil.copytree(tiny_bundle, b)
    write_manifest(b, read_manifest(b).replace(format="dummy"), seal=True)
    with load(b) as bundle:
        assert {s.backend for s in bundle.sessions.values()} == {"dummyrt"}
        assert {s.device for s in bundle.sessions.values()} == {"DummyCPU"}
        x = np.zeros((1, 3, *bundle.manifest.input_size), np.float32)
        assert "tokens" in bundle.run_stage("frame", {"image": x})
    assert [o[2]["marker"] for o in dummy_rows.opened] == ["dummy/frame", "dummy/temporal"]
    # a root holding it is tried first (its preference), the others as before
    root = tmp_path / "root"
    root.mkdir()
    shutil.copytree(b, root / "dummy")
    shutil.copytree(tiny_bundle, root / "onnx")
    with load(root) as picked:
        assert picked.format == "dummy" and "dummy" in picked.reason


def test_tensorrt_is_a_row_and_refuses_in_one_line_where_absent(tiny_bundle):
    import onnxruntime as ort

    if "TensorrtExecutionProvider" in ort.get_available_providers():
        pytest.skip("TensorRT is present here")
    assert table.RUNTIMES["tensorrt"].reads == (".onnx",) and table.RUNTIMES["tensorrt"].suffixes == ()
    for attempt in (
        lambda: open_session(tiny_bundle / "frame.onnx", backend="tensorrt"),
        lambda: open_session(tiny_bundle / "frame.onnx", backend="tensorrt", allow_fallback=True),
        lambda: load(tiny_bundle, backend="tensorrt"),
        lambda: edgepose.load(tiny_bundle, backend="trt", allow_fallback=True),
    ):
        with pytest.raises(DeviceUnavailable) as e:
            attempt()
        msg = str(e.value)
        assert "\n" not in msg and "TensorrtExecutionProvider" in msg and "onnxruntime-gpu" in msg
        assert "backend='onnxruntime'" in msg


def test_tensorrt_never_falls_back_silently_when_the_provider_is_dropped(monkeypatch, tiny_bundle):
    # a GPU wheel lists TensorRT without its libraries: ONNX Runtime then runs on what is left
    monkeypatch.setitem(devices.PROBES, "tensorrt", lambda: ({"TensorrtExecutionProvider"}, ""))
    devices.clear_cache()
    try:
        for fallback in (False, True):
            with pytest.raises(DeviceUnavailable, match="dropped TensorrtExecutionProvider"):
                open_session(tiny_bundle / "frame.onnx", backend="tensorrt", allow_fallback=fallback)
    finally:
        devices.clear_cache()


def test_tensorrt_options_follow_the_bundle(tiny_bundle, tmp_path):
    from edgepose.runtimes import tensorrt

    m = read_manifest(tiny_bundle)
    opts = tensorrt.session_options(m, "frame")
    assert opts["precision"] == m.precision and len(opts["cache_key"]) == 16
    other = m.replace(files={k: {**v, "sha256": "0" * 64} for k, v in m.files.items()})
    assert tensorrt.bundle_hash(other) != opts["cache_key"]  # other graphs, other engine directory
    d = tensorrt.cache_dir(opts["cache_key"], tmp_path)
    assert d == tmp_path / opts["cache_key"]
    assert tensorrt.trt_options("fp16", d)["trt_fp16_enable"] == "True"
    assert tensorrt.trt_options("fp32", d)["trt_fp16_enable"] == "False"
    int8 = tensorrt.trt_options("int8", d)
    assert int8["trt_int8_enable"] == "True" and int8["trt_engine_cache_path"] == str(d)


def test_no_import_between_export_and_quantization_but_the_one_direction():
    def grep(pattern: str, where: str) -> str:
        r = subprocess.run(
            ["grep", "-rn", "-e", pattern, where], cwd=ROOT, capture_output=True, text=True, check=False
        )
        return r.stdout

    assert grep(r"edgepose\.quantization\|from \.\.quantization", "edgepose/export") == ""
    # quantize() calls export() and its hook plugs into the converters: that direction only
    assert grep(r"from \.\.export", "edgepose/quantization") != ""
    assert grep("_check_out", "edgepose/quantization") == ""


def test_format_names_appear_only_in_the_table_and_their_own_modules():
    names = [n for n in table.FORMATS if n != "torch"]
    allowed = {"core/formats.py"} | {f"export/to_{n}.py" for n in names}
    watched = [
        "core/manifest.py",
        "runtimes/bundle.py",
        "runtimes/registry.py",
        "export/exporter.py",
        "export/formats.py",
        "quantization/hook.py",
        "bench/backends.py",
    ]
    for rel in watched:
        assert rel not in allowed
        text = (ROOT / "edgepose" / rel).read_text()
        code = "\n".join(ln for ln in text.splitlines() if not ln.lstrip().startswith(("#", "``", "=")))
        for n in names:
            assert f'"{n}"' not in code, f"{rel} names the format {n!r} outside the table"

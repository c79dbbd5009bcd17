"""Runtimes: real small graphs built here, run through every backend's Session and compared to torch;
device resolution; corrupt files; missing packages; the real BlazePose model."""

from __future__ import annotations

import os
import sys
import zipfile

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn

from edgepose.core.assets import asset_path, missing_reason
from edgepose.runtimes import (
    BackendUnavailable,
    DeviceUnavailable,
    ModelFileError,
    SessionInputError,
    available_backends,
    backend_for_path,
    devices,
    open_session,
    resolve,
)

H, W = 32, 24


class TinyNet(nn.Module):
    """Two convs and a pooled score: the shape of a pose head (heatmaps + per-joint scores)."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, padding=1)
        self.c2 = nn.Conv2d(8, 4, 3, stride=2, padding=1)

    def forward(self, image):
        hm = self.c2(torch.relu(self.c1(image)))
        return hm, torch.sigmoid(hm.mean(dim=(2, 3)))


class Named(nn.Module):
    """Dict outputs so litert-torch names the signature outputs."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, image):
        hm, sc = self.net(image)
        return {"heatmaps": hm, "scores": sc}


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return TinyNet().eval()


def _x(batch, seed=1):
    return np.random.default_rng(seed).standard_normal((batch, 3, H, W)).astype(np.float32)


def _ref(net, x):
    with torch.no_grad():
        hm, sc = net(torch.from_numpy(x))
    return {"heatmaps": hm.numpy(), "scores": sc.numpy()}


def _max_err(a: dict, b: dict) -> float:
    assert set(a) == set(b), (sorted(a), sorted(b))
    return max(float(np.abs(a[k] - b[k]).max()) for k in a)


@pytest.fixture(scope="module")
def onnx_file(net, tmp_path_factory):
    path = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    torch.onnx.export(
        net,
        (torch.from_numpy(_x(2)),),
        str(path),
        input_names=["image"],
        output_names=["heatmaps", "scores"],
        dynamic_axes={"image": {0: "batch"}, "heatmaps": {0: "batch"}, "scores": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )
    return path


@pytest.fixture(scope="module")
def ir_file(onnx_file, tmp_path_factory):
    ov = pytest.importorskip("openvino")
    path = tmp_path_factory.mktemp("ir") / "tiny.xml"
    ov.save_model(ov.convert_model(str(onnx_file)), str(path), compress_to_fp16=False)
    return path


@pytest.fixture(scope="module")
def litert_torch():
    return pytest.importorskip("litert_torch")


@pytest.fixture(scope="module")
def tflite_file(net, litert_torch, tmp_path_factory):
    path = tmp_path_factory.mktemp("tflite") / "tiny.tflite"
    litert_torch.convert(
        Named(net).eval(), sample_args=(), sample_kwargs={"image": torch.from_numpy(_x(1))}
    ).export(str(path))
    return path


@pytest.fixture(scope="module")
def int8_tflite_file(net, litert_torch, tmp_path_factory):
    """Int8 with int8 I/O through PT2E (litert-torch's quantizer), calibrated on a few random inputs."""
    from litert_torch.quantize import pt2e_quantizer as pq
    from litert_torch.quantize.quant_config import QuantConfig
    from torchao.quantization.pt2e import quantize_pt2e

    x = torch.from_numpy(_x(1))
    m = torch.export.export(net, (x,)).module()
    quantizer = pq.PT2EQuantizer().set_global(pq.get_symmetric_quantization_config(is_per_channel=True))
    m = quantize_pt2e.prepare_pt2e(m, quantizer)
    for s in range(8):
        m(torch.from_numpy(_x(1, seed=100 + s)))
    m = quantize_pt2e.convert_pt2e(m, fold_quantize=False)
    path = tmp_path_factory.mktemp("int8") / "tiny_int8.tflite"
    litert_torch.convert(m, (x,), quant_config=QuantConfig(pt2e_quantizer=quantizer)).export(str(path))
    return path


# ------------------------------------------------------------------ every backend against torch


def test_onnxruntime_session_matches_torch_at_batch_3(net, onnx_file):
    with open_session(onnx_file) as s:
        assert (s.backend, s.device) == ("onnxruntime", "CPUExecutionProvider")
        assert "auto" in s.reason
        assert s.input_names == ["image"] and s.output_names == ["heatmaps", "scores"]
        assert s.inputs[0].shape == ("batch", 3, H, W) and s.inputs[0].dtype == "float32"
        x = _x(3)
        assert _max_err(s.run({"image": x}), _ref(net, x)) < 1e-5
        # float64 input is cast to the graph's float32
        assert _max_err(s.run({"image": x.astype(np.float64)}), _ref(net, x)) < 1e-5


def test_openvino_session_matches_torch_and_reads_onnx_too(net, onnx_file, ir_file):
    x = _x(3)
    with open_session(ir_file, precision="fp32") as s:
        assert s.backend == "openvino" and s.device == "CPU"
        assert s.input_names == ["image"] and sorted(s.output_names) == ["heatmaps", "scores"]
        assert s.inputs[0].shape[0] == "batch"
        assert _max_err(s.run({"image": x}), _ref(net, x)) < 1e-4
    with open_session(onnx_file, backend="openvino", names=["image", "heatmaps", "scores"]) as s:
        assert _max_err(s.run({"image": x}), _ref(net, x)) < 1e-4


def test_openvino_fp16_computes_in_f16_only_where_the_device_has_native_fp16(ir_file):
    """OpenVINO maps an f16 hint to bf16 on CPUs without fp16 arithmetic (an AMD EPYC with
    AVX512-BF16), which lost SHaRPose-S 5.4 px; an fp16 bundle must then compute in f32. CPUs
    with AVX512-FP16 (recent Xeons) compute it in f16. The hint is compared as an element type:
    its text ("<Type: 'float16'>") holds neither "f16" nor "bf16"."""
    import openvino as ov

    native = "FP16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    with open_session(ir_file, precision="fp16") as s:
        hint = s._compiled.get_property("INFERENCE_PRECISION_HINT")
    assert hint == (ov.Type.f16 if native else ov.Type.f32), (hint, native)


def test_tflite_session_matches_torch_and_loops_a_static_batch(net, tflite_file):
    with open_session(tflite_file) as s:
        assert (s.backend, s.device) == ("tflite", "XNNPACK")
        assert s.input_names == ["image"] and s.output_names == ["heatmaps", "scores"]
        assert s.inputs[0].shape == (1, 3, H, W)
        x1 = _x(1)
        assert _max_err(s.run({"image": x1}), _ref(net, x1)) < 1e-4
        x3 = _x(3, seed=5)  # the graph's batch is 1: the session runs the three samples in turn
        out = s.run({"image": x3})
        assert out["heatmaps"].shape == (3, 4, H // 2, W // 2)
        assert _max_err(out, _ref(net, x3)) < 1e-4
        with pytest.raises(SessionInputError, match="expected"):
            s.run({"image": _x(1)[:, :, :16]})
        with pytest.raises(SessionInputError, match="missing"):
            s.run({"img": x1})


def test_tflite_int8_io_is_quantised_and_dequantised(net, int8_tflite_file):
    from ai_edge_litert.interpreter import Interpreter

    s = open_session(int8_tflite_file)
    (inp,) = s.inputs
    assert inp.dtype == "int8" and inp.is_quantized and inp.scale > 0 and inp.host_dtype == "float32"
    hm_info = s.outputs[0]  # heatmaps: int8; the sigmoid score head stays float in this quantiser
    assert len(s.outputs) == 2 and hm_info.dtype == "int8" and hm_info.is_quantized
    x = _x(1, seed=3)
    got = s.run({inp.name: x})
    assert all(v.dtype == np.float32 for v in got.values())
    # exactly what quantise -> int8 graph -> dequantise by hand gives
    runner = Interpreter(str(int8_tflite_file)).get_signature_runner()
    si, zi = runner.get_input_details()[inp.name]["quantization"]
    raw = runner(**{inp.name: np.clip(np.rint(x / si) + zi, -128, 127).astype(np.int8)})
    assert raw[hm_info.name].dtype == np.int8
    for name, q in raw.items():
        so, zo = runner.get_output_details()[name]["quantization"]
        expect = (q.astype(np.float32) - zo) * np.float32(so) if q.dtype == np.int8 else q
        np.testing.assert_array_equal(got[name], expect)
    # and close to the float model: a few quantisation steps
    ref = _ref(net, x)
    by_shape = {v.shape: v for v in got.values()}
    for k, r in ref.items():
        g = by_shape[r.shape]
        assert np.abs(g - r).max() < 0.05 * np.abs(r).max() + 0.02, k
    assert np.corrcoef(by_shape[ref["heatmaps"].shape].ravel(), ref["heatmaps"].ravel())[0, 1] > 0.99


def test_torch_backend_runs_torchscript_and_exported_program(net, tmp_path):
    x = _x(2)
    ts = tmp_path / "tiny.pt"
    torch.jit.save(torch.jit.trace(net, (torch.from_numpy(x),)), str(ts))
    with open_session(ts) as s:
        assert s.backend == "torch" and s.device == "cpu" and s.input_names == ["image"]
        out = s.run({"image": x})
        assert np.abs(out["output_0"] - _ref(net, x)["heatmaps"]).max() < 1e-6
    ep = tmp_path / "tiny.pt2"
    torch.export.save(torch.export.export(Named(net).eval(), (torch.from_numpy(x),)), str(ep))
    with open_session(ep) as s:
        assert s.inputs[0].shape == (2, 3, H, W)
        assert _max_err(s.run({"image": x}), _ref(net, x)) < 1e-6


def test_torch_backend_runs_a_zoo_checkpoint_stage(tmp_path):
    from edgepose.zoo.checkpoints import save_checkpoint
    from edgepose.zoo.registry import create_model

    try:
        model = create_model("distilpose_s_tiny").eval()
    except Exception as e:  # the zoo is written by others; this test is about the runtime side
        pytest.skip(f"zoo model distilpose_s_tiny unavailable: {type(e).__name__}: {e}")
    ck = save_checkpoint(model, tmp_path / "tiny.pt")
    stage = model.stage_names[0]
    s = open_session(ck, stage=stage)
    assert s.kind == "checkpoint" and s.input_names == list(model.stage_io(stage)[0])
    ex = model.example_inputs(stage, batch=2)
    with torch.no_grad():
        ref = model.run_stage(stage, **ex)
    out = s.run({k: v.numpy() for k, v in ex.items()})
    for k in s.output_names:
        assert np.abs(out[k] - ref[k].numpy()).max() < 1e-5


def test_coreml_inspect_reads_structure_and_open_says_macos(net, tmp_path):
    ct = pytest.importorskip("coremltools")
    x = torch.from_numpy(_x(1))
    ml = ct.convert(
        torch.jit.trace(net, (x,)),
        inputs=[ct.TensorType(name="image", shape=x.shape, dtype=np.float32)],
        outputs=[
            ct.TensorType(name="heatmaps", dtype=np.float32),
            ct.TensorType(name="scores", dtype=np.float32),
        ],
        convert_to="mlprogram",
        minimum_deployment_target=ct.target.iOS17,
    )
    path = tmp_path / "tiny.mlpackage"
    ml.save(str(path))
    from edgepose.runtimes.coreml import inspect

    info = inspect(path)
    assert info.model_type == "mlProgram" and info.size_bytes > 1000
    assert [t.name for t in info.inputs] == ["image"] and info.inputs[0].shape == (1, 3, H, W)
    assert [t.name for t in info.outputs] == ["heatmaps", "scores"]
    assert info.outputs[0].dtype == "float32"
    assert info.ops["conv"] == 2 and info.ops["relu"] == 1
    assert backend_for_path(path).name == "coreml"
    if sys.platform != "darwin":
        with pytest.raises(DeviceUnavailable, match="macOS"):
            open_session(path)
    else:
        with open_session(path, device="cpu") as s:
            assert (
                np.abs(s.run({"image": x.numpy()})["heatmaps"] - _ref(net, x.numpy())["heatmaps"]).max()
                < 1e-2
            )
    (path / "Manifest.json").unlink()
    with pytest.raises(ModelFileError, match="tiny.mlpackage"):
        inspect(path)


# ------------------------------------------------------------------ the real BlazePose model


def test_blazepose_landmark_model_runs_with_documented_shapes():
    path = asset_path("pose_landmark_full.tflite")
    if path is None:
        pytest.skip(missing_reason("pose_landmark_full.tflite"))
    import cv2

    s = open_session(path)
    assert s.inputs[0].shape == (1, 256, 256, 3)  # NHWC, [0, 1]
    shapes = {t.name: t.shape for t in s.outputs}
    # DESIGN.md §7: 39x5 landmarks, presence, segmentation, a 64x64x39 heatmap, 39x3 world landmarks
    assert sorted(shapes.values()) == sorted([(1, 195), (1, 1), (1, 256, 256, 1), (1, 64, 64, 39), (1, 117)])
    gray = np.full((1, 256, 256, 3), 0.5, np.float32)
    out = s.run({s.input_names[0]: gray})
    assert {k: v.shape for k, v in out.items()} == shapes
    presence = next(k for k, v in shapes.items() if v == (1, 1))
    assert out[presence].item() < 0.5  # nobody in a flat grey image
    img = asset_path("messi5.jpg")
    if img is not None:  # a real person: present, landmarks inside the 256x256 crop
        rgb = cv2.cvtColor(cv2.resize(cv2.imread(str(img)), (256, 256)), cv2.COLOR_BGR2RGB)
        res = s.run({s.input_names[0]: (rgb.astype(np.float32) / 255)[None]})
        assert res[presence].item() > 0.5
        lm = res[next(k for k, v in shapes.items() if v == (1, 195))].reshape(39, 5)
        assert np.all((lm[:33, :2] > -20) & (lm[:33, :2] < 276))


# ------------------------------------------------------------------ device resolution


def test_auto_picks_what_is_present_and_absent_devices_are_clear_errors():
    r = resolve("onnxruntime")
    present = set(__import__("onnxruntime").get_available_providers())
    if not present & {"CUDAExecutionProvider", "TensorrtExecutionProvider", "QNNExecutionProvider"}:
        assert (r.name, r.kind) == ("CPUExecutionProvider", "cpu") and "auto" in r.reason
    ov_present = devices.present("openvino")[0]
    if "NPU" not in ov_present:
        with pytest.raises(DeviceUnavailable, match="NPU.*driver") as e:
            resolve("openvino", "npu")
        assert "allow_fallback" in str(e.value)
        fb = resolve("openvino", "npu", allow_fallback=True)
        assert fb.name == "CPU" and fb.fell_back and "fell back to CPU" in fb.reason
    if "GPU" not in ov_present:
        with pytest.raises(DeviceUnavailable, match="GPU"):
            resolve("openvino", "gpu")
    if not devices.present("tflite")[0] - {"XNNPACK"}:
        assert resolve("tflite").name == "XNNPACK"
        with pytest.raises(DeviceUnavailable, match="libtensorflowlite_gpu_delegate"):
            resolve("tflite", "gpu")
        assert resolve("tflite", "npu", allow_fallback=True).name == "XNNPACK"
    with pytest.raises(DeviceUnavailable, match="no npu target"):
        resolve("torch", "npu")
    assert resolve("onnxruntime", "cpu").reason == "cpu requested: CPUExecutionProvider is present"
    with pytest.raises(ValueError, match="unknown backend"):
        resolve("nonesuch")


def test_backend_specific_names_can_be_pinned():
    assert resolve("openvino", "CPU").name == "CPU"
    assert resolve("openvino", "AUTO").name == "AUTO"  # OpenVINO's own virtual device
    assert resolve("onnxruntime", "CPUExecutionProvider").name == "CPUExecutionProvider"
    if "CUDAExecutionProvider" not in devices.present("onnxruntime")[0]:
        with pytest.raises(DeviceUnavailable, match="onnxruntime-gpu"):
            resolve("onnxruntime", "CUDAExecutionProvider")


@pytest.mark.skipif(sys.platform == "darwin", reason="Core ML is present on macOS")
def test_coreml_resolution_says_macos_only():
    with pytest.raises(DeviceUnavailable, match="macOS only"):
        resolve("coreml", "auto", allow_fallback=True)


@pytest.fixture
def fake_cuda(monkeypatch):
    """Pretend ONNX Runtime lists CUDA (as GPU builds do even when the CUDA libraries are missing)."""
    monkeypatch.setitem(
        devices.PROBES, "onnxruntime", lambda: ({"CUDAExecutionProvider", "CPUExecutionProvider"}, "")
    )
    devices.clear_cache()
    yield
    devices.clear_cache()


def test_a_listed_provider_that_does_not_initialise_is_caught(fake_cuda, onnx_file, net):
    r = resolve("onnxruntime")
    assert (r.name, r.kind) == ("CUDAExecutionProvider", "gpu")
    if "CUDAExecutionProvider" in __import__("onnxruntime").get_available_providers():
        pytest.skip("this machine really has CUDA")
    with pytest.raises(DeviceUnavailable, match="CUDAExecutionProvider"):
        open_session(onnx_file, device="gpu")
    with open_session(onnx_file, device="gpu", allow_fallback=True) as s:
        assert s.device == "CPUExecutionProvider" and "CUDAExecutionProvider" in s.reason
        x = _x(2)
        assert _max_err(s.run({"image": x}), _ref(net, x)) < 1e-5


# ------------------------------------------------------------------ corrupt files, missing packages


def test_truncated_onnx_is_rejected_naming_the_file(onnx_file, tmp_path, monkeypatch):
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(onnx_file.read_bytes()[: onnx_file.stat().st_size // 2])
    with pytest.raises(ModelFileError, match="broken.onnx.*not a valid ONNX model.*re-export"):
        open_session(bad)
    with monkeypatch.context() as m:  # a device install without the onnx package: ORT's parser catches it
        m.setitem(sys.modules, "onnx", None)
        with pytest.raises(ModelFileError, match="broken.onnx.*onnxruntime.*re-export"):
            open_session(bad)
    (tmp_path / "empty.onnx").write_bytes(b"")
    with pytest.raises(ModelFileError, match="empty.onnx"):
        open_session(tmp_path / "empty.onnx")
    with pytest.raises(ModelFileError, match="does not exist"):
        open_session(tmp_path / "absent.onnx")


def test_corrupt_tflite_is_rejected_naming_the_file(tflite_file, tmp_path):
    rnd = tmp_path / "random.tflite"
    rnd.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(ModelFileError, match="random.tflite.*TFL3"):
        open_session(rnd)
    cut = tmp_path / "cut.tflite"
    cut.write_bytes(tflite_file.read_bytes()[:2000])  # the header survives, the flatbuffer does not
    with pytest.raises(ModelFileError, match="cut.tflite.*re-export"):
        open_session(cut)


def test_broken_openvino_ir_is_rejected_naming_the_file(ir_file, tmp_path):
    xml = tmp_path / "broken.xml"
    text = ir_file.read_text()
    xml.write_text(text[: len(text) // 2])
    (tmp_path / "broken.bin").write_bytes(ir_file.with_suffix(".bin").read_bytes())
    with pytest.raises(ModelFileError, match="broken.xml.*re-export"):
        open_session(xml)
    lone = tmp_path / "lone.xml"
    lone.write_text(text)
    with pytest.raises(ModelFileError, match="lone.bin"):
        open_session(lone)
    junk = tmp_path / "junk.xml"
    junk.write_bytes(b"\x00\x01 not xml at all " * 10)
    (tmp_path / "junk.bin").write_bytes(b"\x00" * 64)
    with pytest.raises(ModelFileError, match="junk.xml"):
        open_session(junk)


def test_corrupt_torch_archive_is_rejected(tmp_path):
    bad = tmp_path / "model.pt2"
    bad.write_bytes(b"PK\x03\x04" + b"\x00" * 200)
    with pytest.raises(ModelFileError, match="model.pt2"):
        open_session(bad)
    odd = tmp_path / "odd.pt"
    with zipfile.ZipFile(odd, "w") as z:
        z.writestr("odd/readme.txt", "not a model")
    with pytest.raises(ModelFileError, match="odd.pt"):
        open_session(odd)


@pytest.mark.parametrize(
    "backend,modules,extra",
    [
        ("onnxruntime", ["onnxruntime"], "edgepose[onnx]"),
        ("tflite", ["ai_edge_litert", "tflite_runtime"], "edgepose[tflite]"),
        ("openvino", ["openvino"], "edgepose[openvino]"),
    ],
)
def test_missing_backend_package_names_the_pip_extra(monkeypatch, tmp_path, backend, modules, extra):
    for m in modules:
        monkeypatch.setitem(sys.modules, m, None)  # makes `import m` raise ImportError
    suffix = {"onnxruntime": ".onnx", "tflite": ".tflite", "openvino": ".xml"}[backend]
    f = tmp_path / f"m{suffix}"
    f.write_bytes(b"\x00" * 64)
    with pytest.raises(BackendUnavailable, match=extra.replace("[", r"\[").replace("]", r"\]")):
        open_session(f)
    devices.clear_cache()
    with pytest.raises(BackendUnavailable, match="pip install"):
        resolve(backend)
    devices.clear_cache()


def test_backend_table_and_suffixes():
    names = available_backends()
    assert {"onnxruntime", "openvino", "tflite", "torch"} <= set(names)
    for suffix, backend in [
        (".onnx", "onnxruntime"),
        (".xml", "openvino"),
        (".tflite", "tflite"),
        (".mlmodel", "coreml"),
        (".mlpackage", "coreml"),
        (".pt2", "torch"),
        (".pt", "torch"),
    ]:
        assert backend_for_path(f"x{suffix}").name == backend
    with pytest.raises(ValueError, match="backend=..."):
        backend_for_path("model.bin")
    with pytest.raises(ValueError, match="does not read"):
        open_session("model.onnx", backend="tflite")


def test_runtimes_import_no_torch():
    import subprocess

    code = (
        "import sys, edgepose.runtimes as r, edgepose.core.manifest, edgepose.core.assets;"
        "r.resolve('onnxruntime'); r.resolve('tflite');"
        "import edgepose.runtimes.tflite, edgepose.runtimes.onnxruntime, edgepose.runtimes.openvino,"
        " edgepose.runtimes.coreml, edgepose.runtimes.torch_backend;"
        "sys.exit(1 if 'torch' in sys.modules else 0)"
    )
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    assert subprocess.run([sys.executable, "-c", code], env=env).returncode == 0

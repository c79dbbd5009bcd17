"""NanoDet at other input sizes and in int8: derived files refused unless on record, the decoder's grid
at a non-416 size, what ``auto`` resolves to, and int8 boxes against fp32 on a real frame."""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgepose.core.assets import asset_path, missing_reason
from edgepose.external import check, derived, nanodet, registry
from edgepose.external.nanodet import NanoDet
from edgepose.sdk import detectors as sdk
from edgepose.sdk.tracker import iou_matrix

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "detectors.json"


def need(*names):
    for n in names:
        if asset_path(n) is None:
            pytest.skip(missing_reason(n))
        if n.endswith(".onnx") and not check.available(n):
            pytest.skip(f"{n} is present but does not pass its check; rerun scripts/fetch_assets.sh")


def vtest_frame(index: int = 600) -> np.ndarray:
    need("vtest.avi")
    cap = cv2.VideoCapture(str(asset_path("vtest.avi")))
    cap.set(cv2.CAP_PROP_POS_FRAMES, index)
    ok, frame = cap.read()
    cap.release()
    assert ok
    return frame


# -- derived files are refused unless derived.json records them ------------------------------------
def _fake_assets(tmp_path, monkeypatch) -> Path:
    """A checked stand-in for nanodet.onnx (its conversion record passed) in a private asset folder."""
    monkeypatch.setenv("EDGEPOSE_ASSETS", str(tmp_path))
    src = tmp_path / "nanodet.onnx"
    src.write_bytes(b"fp32 graph")
    rec = {"nanodet.onnx": {"sha256": hashlib.sha256(b"fp32 graph").hexdigest(), "passed": True}}
    (tmp_path / "external.json").write_text(json.dumps(rec))
    return check.verified_path("nanodet.onnx")


def _writer(data: bytes):
    def build(src: Path, dest: Path) -> dict:
        dest.write_bytes(data + src.read_bytes())
        return {"recipe": "test"}

    return build


def test_an_int8_file_whose_hash_is_not_on_record_is_refused(tmp_path, monkeypatch):
    src = _fake_assets(tmp_path, monkeypatch)
    free = derived.derived_path(nanodet.FREE, src, _writer(b"free "))
    int8 = derived.derived_path(nanodet.INT8, src, _writer(b"int8 "))
    assert int8.read_bytes() == b"int8 fp32 graph"
    record = json.loads((tmp_path / derived.RECORD).read_text())
    assert record[nanodet.INT8]["from"] == "nanodet.onnx" and record[nanodet.INT8]["recipe"] == "test"
    assert nanodet.model_file(src, "int8", 320) == int8  # present and on record: used, not rebuilt

    int8.write_bytes(b"int8 fp32 grapH")  # same size, another hash
    with pytest.raises(check.ExternalModelError, match=r"nanodet\.int8\.onnx changed since it was derived"):
        nanodet.model_file(src, "int8", 416)
    with pytest.raises(check.ExternalModelError, match="changed since"):
        registry.load_detector("nanodet", precision="int8")

    int8.unlink()
    (tmp_path / "stray.onnx").write_bytes(b"x")  # a file nobody recorded is refused too
    with pytest.raises(check.ExternalModelError, match="not recorded"):
        derived.checked(tmp_path / "stray.onnx", free)


def test_a_derived_file_from_another_source_is_refused(tmp_path, monkeypatch):
    src = _fake_assets(tmp_path, monkeypatch)
    derived.derived_path(nanodet.FREE, src, _writer(b"free "))
    src.write_bytes(b"fp32 grapH")  # a re-converted source, recorded as passed
    rec = {"nanodet.onnx": {"sha256": hashlib.sha256(b"fp32 grapH").hexdigest(), "passed": True}}
    (tmp_path / "external.json").write_text(json.dumps(rec))
    with pytest.raises(check.ExternalModelError, match="derived from another nanodet.onnx"):
        nanodet.model_file(check.verified_path("nanodet.onnx"), "fp32", 320)


def test_fp32_at_416_runs_the_checked_file_itself_and_sizes_are_checked(tmp_path, monkeypatch):
    src = _fake_assets(tmp_path, monkeypatch)
    assert nanodet.model_file(src) == src
    assert not (tmp_path / derived.RECORD).exists()  # nothing derived for the plain model
    for bad in (300, 32, 0):
        with pytest.raises(ValueError, match="multiple of 32"):
            nanodet.model_file(src, "fp32", bad)
    with pytest.raises(ValueError, match="precision"):
        nanodet.model_file(src, "int4")


# -- the decoder follows the input size ----------------------------------------------------------------
class _Output:
    def __init__(self, name):
        self.name = name


class _Session:
    """NanoDet's six outputs at ``size``: one person at one stride-16 cell, all four distances 2 bins."""

    def __init__(self, size: int, cell: int):
        self.size = size
        self.inputs = [_Output("input_1:0")]
        self.outputs = [_Output(f"{kind}{s}") for s in nanodet.STRIDES for kind in ("cls", "reg")]
        self.out = {}
        for s in nanodet.STRIDES:
            n = (size // s) ** 2
            cls = np.zeros((1, n, 80), np.float32)
            reg = np.full((1, n, 4, nanodet.BINS), -20.0, np.float32)
            reg[..., 2] = 20.0  # softmax all on bin 2: each distance is 2 * stride
            if s == 16:
                cls[0, cell, nanodet.PERSON] = 0.9
            self.out[f"cls{s}"], self.out[f"reg{s}"] = cls, reg.reshape(1, n, -1)

    def run(self, feeds):
        self.fed = feeds["input_1:0"].shape
        return dict(self.out)


def test_the_decoder_grid_follows_a_non_416_input():
    g = 320 // 16  # 20 cells a side at stride 16 (26 at 416)
    cell = 7 * g + 13
    det = NanoDet(_Session(320, cell), size=320)
    cx, cy = (13 + 0.5) * 16, (7 + 0.5) * 16
    boxes, scores = det.decode(det.session.run({"input_1:0": np.zeros((1, 3, 320, 320), np.float32)}))
    np.testing.assert_allclose(boxes, [[cx - 32, cy - 32, cx + 32, cy + 32]], atol=1e-3)
    np.testing.assert_allclose(scores, [0.9], atol=1e-6)
    frame = np.zeros((480, 640, 3), np.uint8)  # 4:3: one pass, boxes scaled back to frame pixels
    got = det(frame).boxes
    assert det.session.fed == (1, 3, 320, 320)
    np.testing.assert_allclose(
        got, [[(cx - 32) * 2, (cy - 32) * 1.5, (cx + 32) * 2, (cy + 32) * 1.5]], atol=1e-2
    )
    with pytest.raises(ValueError, match="no unique class/box maps"):
        NanoDet(_Session(320, cell), size=416)  # a 416 decoder cannot read a 320 graph's maps


# -- auto --------------------------------------------------------------------------------------------
def test_auto_is_the_measured_choice():
    """AUTO_DETECTOR is what the committed benchmark found: the fastest NanoDet within 0.01 recall."""
    from edgepose.bench.detectors import auto_choice

    result = json.loads(RESULTS.read_text())
    table = result[0] if isinstance(result, list) else result
    rows = {r[0]: r for r in table["rows"]}
    names = [n for n in rows if n.startswith("nanodet:")]
    recall = {n: rows[n][1] for n in names}
    ms = {n: rows[n][3] for n in names}
    assert len(names) >= 4 and auto_choice(recall, ms) == sdk.AUTO_DETECTOR
    assert sdk.AUTO_DETECTOR == table["extra"]["auto"]


def test_auto_choice_rule():
    from edgepose.bench.detectors import REFERENCE, auto_choice

    recall = {REFERENCE: 0.90, "nanodet:int8,416": 0.895, "nanodet:int8,320": 0.85, "centernet": 0.95}
    ms = {REFERENCE: 50.0, "nanodet:int8,416": 30.0, "nanodet:int8,320": 18.0, "centernet": 10.0}
    assert auto_choice(recall, ms) == "nanodet:int8,416"  # 320 is faster but loses 0.05
    assert auto_choice(recall, ms, tolerance=0.06) == "nanodet:int8,320"


def test_auto_resolves_to_the_measured_configuration():
    need("nanodet.onnx", "vtest.avi")
    opts = registry.variant_options("nanodet", sdk.AUTO_DETECTOR.partition(":")[2])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing to fall back from
        det = sdk.make_detector("auto", threads=1)
    assert isinstance(det, NanoDet)
    assert (det.precision, det.size) == (opts.get("precision", "fp32"), opts.get("size", nanodet.SIZE))


def test_auto_runs_plain_nanodet_when_its_variant_cannot_be_made(monkeypatch):
    need("nanodet.onnx")
    monkeypatch.setattr(sdk, "AUTO_DETECTOR", "nanodet:int8,320")

    def no_int8(path, precision="fp32", size=nanodet.SIZE):
        if (precision, size) != ("fp32", nanodet.SIZE):
            raise check.ExternalModelError("int8 calibration needs vtest.avi")
        return path

    monkeypatch.setattr(nanodet, "model_file", no_int8)
    with pytest.warns(UserWarning, match=r"running nanodet: nanodet:int8,320 is not available \(int8 calib"):
        det = sdk.make_detector("auto", threads=1)
    assert (det.precision, det.size) == ("fp32", 416)


def test_detector_strings_stay_backward_compatible():
    assert registry.variant_options("nanodet", None) == {}
    assert registry.variant_options("nanodet", "int8,320") == {"precision": "int8", "size": 320}
    assert registry.variant_options("nanodet", "288") == {"size": 288}
    for bad in ("int4", "int8,fp32", "320,288"):
        with pytest.raises(ValueError, match="PRECISION,SIZE"):
            registry.variant_options("nanodet", bad)
    with pytest.raises(ValueError, match="takes no argument"):
        sdk.make_detector("centernet:int8")
    assert "nanodet[:fp32|int8,SIZE]" in sdk.detector_help()
    for kind in ("auto", "nanodet", "centernet", "hog", "movenet_multipose", "onnx", "boxes"):
        assert kind in sdk.DETECTORS


# -- the real graphs ---------------------------------------------------------------------------------
def test_the_free_input_graph_equals_the_converted_one_at_416():
    need("nanodet.onnx", "vtest.avi")
    ort = pytest.importorskip("onnxruntime")
    src = check.verified_path("nanodet.onnx")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    fixed, free = (
        ort.InferenceSession(str(p), opts, providers=["CPUExecutionProvider"])
        for p in (src, nanodet.model_file(src, "fp32", 320))
    )
    frame = vtest_frame()
    name = fixed.get_inputs()[0].name
    a = fixed.run(None, {name: NanoDet.blob(cv2.resize(frame, (416, 416)))})
    b = free.run(None, {name: NanoDet.blob(cv2.resize(frame, (416, 416)))})
    assert max(float(np.abs(x - y).max()) for x, y in zip(a, b)) < 1e-5
    small = free.run(None, {name: NanoDet.blob(cv2.resize(frame, (320, 320)))})
    assert sorted(v.shape[1] for v in small) == [100, 100, 400, 400, 1600, 1600]


def test_int8_nanodet_boxes_match_fp32_on_a_real_frame():
    """The int8 PTQ (built on first use from vtest's training frames) finds the same walkers."""
    need("nanodet.onnx", "vtest.avi")
    frame = vtest_frame(600)  # a held-out frame: calibration never saw it
    for size in (416, 320):
        ref = registry.load_detector("nanodet", size=size, threads=1)(frame)
        got = registry.load_detector("nanodet", precision="int8", size=size, threads=1)(frame)
        sure = ref.boxes[ref.scores >= 0.5]
        assert len(sure) >= 4, size
        best = iou_matrix(sure, got.boxes).max(1)
        assert np.median(best) > 0.85 and (best > 0.5).all(), (size, best)
        assert abs(len(got) - len(ref)) <= max(2, len(ref) // 4), (size, len(got), len(ref))

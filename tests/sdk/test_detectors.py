"""Detectors: a user ONNX detector built here (both output formats, letterbox undone), HOG on synthetic
and real frames, given boxes, boxes from poses and the detect-every-N scheduler."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from edgepose.core.assets import asset_path, missing_reason
from edgepose.sdk.detectors import (
    GivenBoxes,
    HogDetector,
    OnnxDetector,
    ReusePoses,
    boxes_from_poses,
    letterbox,
    make_detector,
    nms,
)
from edgepose.sdk.types import Detections

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper


def _save(graph, path, opset=17):
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def bright_box_detector(path, h=256, w=320):
    """A real (tiny) detector graph: the box around pixels brighter than 0.8, as one (1, 1, 6) row.

    It computes its answer from the image, so the test checks the whole round trip: letterbox,
    RGB [0, 1] input, and mapping the input-pixel box back to the frame.
    """
    n = helper.make_node
    nodes = [
        n("ReduceMean", ["images"], ["gray"], axes=[1], keepdims=0),  # (1, H, W)
        n("Greater", ["gray", "thr"], ["mask_b"]),
        n("Cast", ["mask_b"], ["mask"], to=TensorProto.FLOAT),
        n("ReduceMax", ["mask"], ["cols"], axes=[1], keepdims=0),  # (1, W)
        n("ReduceMax", ["mask"], ["rows"], axes=[2], keepdims=0),  # (1, H)
        n("ArgMax", ["cols"], ["x1i"], axis=1, keepdims=1),
        n("ArgMax", ["cols"], ["x2i"], axis=1, keepdims=1, select_last_index=1),
        n("ArgMax", ["rows"], ["y1i"], axis=1, keepdims=1),
        n("ArgMax", ["rows"], ["y2i"], axis=1, keepdims=1, select_last_index=1),
        *[n("Cast", [f"{k}i"], [f"{k}f"], to=TensorProto.FLOAT) for k in ("x1", "x2", "y1", "y2")],
        n("Add", ["x2f", "one"], ["x2e"]),  # last bright pixel -> right edge
        n("Add", ["y2f", "one"], ["y2e"]),
        n("Concat", ["x1f", "y1f", "x2e", "y2e", "score", "cls"], ["row"], axis=1),  # (1, 6)
        n("Unsqueeze", ["row", "ax0"], ["detections"]),  # (1, 1, 6)
    ]
    inits = [
        numpy_helper.from_array(np.array(0.8, np.float32), "thr"),
        numpy_helper.from_array(np.array([[1.0]], np.float32), "one"),
        numpy_helper.from_array(np.array([[0.9]], np.float32), "score"),
        numpy_helper.from_array(np.array([[0.0]], np.float32), "cls"),
        numpy_helper.from_array(np.array([0], np.int64), "ax0"),
    ]
    graph = helper.make_graph(
        nodes,
        "bright_box",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, h, w])],
        [helper.make_tensor_value_info("detections", TensorProto.FLOAT, [1, 1, 6])],
        inits,
    )
    return _save(graph, path)


# YOLO-style candidates in input pixels: cx, cy, w, h, then 3 class scores (person, bicycle, car).
YOLO_ROWS = np.array(
    [
        [100, 120, 40, 100, 0.90, 0.0, 0.0],  # person
        [103, 121, 40, 100, 0.80, 0.0, 0.0],  # the same person again: NMS removes it
        [250, 140, 50, 110, 0.70, 0.0, 0.1],  # a second person
        [200, 60, 80, 40, 0.05, 0.0, 0.95],  # a car: not a person
        [30, 30, 10, 20, 0.10, 0.0, 0.0],  # a low-score person
    ],
    np.float32,
)


def yolo_constant_detector(path):
    """A graph with a dynamic image input that emits fixed YOLOv8-layout candidates (1, 7, 16)."""
    n = helper.make_node
    rows = np.concatenate([YOLO_ROWS, np.zeros((11, 7), np.float32)])  # most anchors score nothing
    head = rows.T[None]  # (1, 4 + 3, 16)
    nodes = [
        n("ReduceMean", ["images"], ["m"], keepdims=0),  # ties the output to the input
        n("Mul", ["m", "zero"], ["z"]),
        n("Add", ["head", "z"], ["output0"]),
    ]
    inits = [
        numpy_helper.from_array(head, "head"),
        numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
    ]
    graph = helper.make_graph(
        nodes,
        "yolo_const",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, "height", "width"])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, list(head.shape))],
        inits,
    )
    return _save(graph, path)


def test_letterbox_round_trip():
    img = np.zeros((360, 640, 3), np.uint8)
    canvas, scale, (px, py) = letterbox(img, (256, 320))
    assert canvas.shape == (256, 320, 3) and scale == pytest.approx(0.5) and (px, py) == (0, 38)
    assert (canvas[:38] == 114).all() and (canvas[38:218] == 0).all() and (canvas[218:] == 114).all()


def test_onnx_detector_finds_the_box_in_frame_pixels(tmp_path):
    det = OnnxDetector(bright_box_detector(tmp_path / "bright.onnx"), output_format="boxes")
    assert det.input_size == (256, 320)
    frame = np.full((360, 640, 3), 30, np.uint8)
    frame[100:300, 200:300] = 255  # a bright "person" at x 200..300, y 100..300
    out = det(frame, 0)
    assert isinstance(out, Detections) and len(out) == 1
    np.testing.assert_allclose(out.boxes[0], [200, 100, 300, 300], atol=2.5)
    assert out.scores[0] == pytest.approx(0.9)
    # Format detection from the output shape gives the same answer.
    auto = OnnxDetector(tmp_path / "bright.onnx")
    np.testing.assert_allclose(auto(frame).boxes, out.boxes)
    # A portrait frame letterboxes horizontally instead.
    tall = np.full((640, 360, 3), 30, np.uint8)
    tall[50:250, 100:200] = 255
    np.testing.assert_allclose(det(tall).boxes[0], [100, 50, 200, 250], atol=3.5)


def test_onnx_detector_yolo_format_filters_person_and_applies_nms(tmp_path):
    path = yolo_constant_detector(tmp_path / "yolo.onnx")
    with pytest.raises(ValueError, match="dynamic size"):
        OnnxDetector(path)
    det = OnnxDetector(path, input_size=(320, 320), score_threshold=0.3)
    frame = np.zeros((480, 640, 3), np.uint8)  # scale 0.5, vertical padding 40
    out = det(frame)
    assert len(out) == 2
    np.testing.assert_allclose(out.scores, [0.9, 0.7], atol=1e-6)
    expect = np.array([[80, 70, 120, 170], [225, 85, 275, 195]], np.float32)  # input pixels
    expect = (expect - [0, 40, 0, 40]) / 0.5
    np.testing.assert_allclose(out.boxes, expect, atol=1e-3)
    # Every class: the car comes back too.
    anyclass = OnnxDetector(path, input_size=(320, 320), score_threshold=0.3, person_class=None)
    assert len(anyclass(frame)) == 3
    with pytest.raises(ValueError, match="person_class 5"):
        OnnxDetector(path, input_size=(320, 320), person_class=5)(frame)


def test_onnx_detector_errors(tmp_path):
    path = bright_box_detector(tmp_path / "b.onnx")
    with pytest.raises(ValueError, match="fixed at"):
        OnnxDetector(path, input_size=(320, 320))
    with pytest.raises(ValueError, match="unknown output_format"):
        OnnxDetector(path, output_format="ssd")
    with pytest.raises(ValueError, match="'yolo' format"):
        OnnxDetector(path, output_format="yolo")(np.zeros((64, 64, 3), np.uint8))
    with pytest.raises(Exception, match="does not exist"):
        OnnxDetector(tmp_path / "missing.onnx")


def test_nms_keeps_best_of_overlapping():
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [20, 20, 30, 30]], np.float32)
    assert nms(boxes, np.array([0.5, 0.9, 0.4]), 0.5).tolist() == [1, 2]


def test_hog_runs_on_synthetic_small_frame():
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
    cv2.rectangle(frame, (60, 20), (90, 110), (20, 20, 20), -1)
    out = HogDetector()(frame)  # upscaled 4x to 480 rows internally
    assert out.boxes.shape[1] == 4 and len(out.scores) == len(out.boxes)
    if len(out):
        assert (out.boxes[:, [0, 2]] <= 160).all() and (out.boxes[:, [1, 3]] <= 120).all()


def test_hog_missing_gives_clear_error(monkeypatch):
    monkeypatch.delattr(cv2, "HOGDescriptor")
    with pytest.raises(RuntimeError, match="opencv-python-headless<5"):
        HogDetector()


def test_hog_finds_people_in_real_street_video():
    path = asset_path("vtest.avi")
    if path is None:
        pytest.skip(missing_reason("vtest.avi"))
    cap = cv2.VideoCapture(str(path))
    det = HogDetector()
    found = 0
    for i in (0, 100, 200):
        cap.set(cv2.CAP_PROP_POS_FRAMES, i)
        ok, frame = cap.read()
        assert ok
        out = det(frame, i)
        found += len(out)
        h, w = frame.shape[:2]
        assert (out.boxes >= 0).all() and (out.boxes[:, 2] <= w).all() and (out.boxes[:, 3] <= h).all()
        bw, bh = out.boxes[:, 2] - out.boxes[:, 0], out.boxes[:, 3] - out.boxes[:, 1]
        assert ((bh / bw > 1.2) & (bh / bw < 4.0)).all(), (bw, bh)  # upright people
    cap.release()
    assert found >= 3  # 2-8 people walk through every frame; HOG finds some in each


def test_given_boxes_sources(tmp_path):
    per_frame = {0: np.array([[0, 0, 10, 20, 0.9], [5, 5, 15, 25, 0.2]]), 2: [[1, 2, 3, 4]]}
    g = GivenBoxes(per_frame, score_threshold=0.5)
    assert len(g(None, 0)) == 1 and len(g(None, 1)) == 0
    assert g(None, 2).scores.tolist() == [1.0]
    seq = GivenBoxes([np.zeros((0, 4)), [[0, 0, 1, 1]]])
    assert len(seq(None, 0)) == 0 and len(seq(None, 1)) == 1 and len(seq(None, 9)) == 0
    fn = GivenBoxes(lambda t: [[t, t, t + 1, t + 1]])
    assert fn(None, 3).boxes.tolist() == [[3, 3, 4, 4]]
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        GivenBoxes({0: [[1, 2, 3]]})(None, 0)
    lines = [
        {"frame": 4, "track_id": 1, "box": [1, 2, 3, 4], "box_score": 0.7},
        {"frame": 4, "box": [5, 6, 7, 8]},
    ]
    (tmp_path / "d.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    from_file = GivenBoxes.from_jsonl(tmp_path / "d.jsonl")
    np.testing.assert_allclose(from_file(None, 4).scores, [0.7, 1.0])
    (tmp_path / "bad.jsonl").write_text('{"frame": 1}\n')
    with pytest.raises(ValueError, match="bad.jsonl:1"):
        GivenBoxes.from_jsonl(tmp_path / "bad.jsonl")


def test_boxes_from_poses():
    kp = np.zeros((2, 17, 3), np.float32)
    kp[0, :, 0] = np.linspace(100, 200, 17)
    kp[0, :, 1] = np.linspace(50, 250, 17)
    kp[0, :, 2] = 0.8
    kp[0, 0] = [0, 0, 0.1]  # a low-score joint far away does not stretch the box
    kp[1, :2, 2] = 0.9  # only two confident joints: no box
    out = boxes_from_poses(kp, pad=0.1, image_size=(640, 480))
    assert len(out) == 1
    x1, y1 = 100 + 100 / 16, 50 + 200 / 16
    np.testing.assert_allclose(
        out.boxes[0],
        [x1 - 0.1 * (200 - x1), y1 - 0.1 * (250 - y1), 200 + 0.1 * (200 - x1), 250 + 0.1 * (250 - y1)],
        rtol=1e-5,
    )
    assert out.scores[0] == pytest.approx(0.8) and out.keypoints.shape == (1, 17, 3)
    assert len(boxes_from_poses(np.zeros((0, 17, 3)))) == 0
    with pytest.raises(ValueError, match="scores"):
        boxes_from_poses(np.zeros((1, 17, 2)))


def test_reuse_poses_runs_detector_every_n_frames():
    calls = []

    def detector(image, frame_index=0):
        calls.append(frame_index)
        return Detections([[10, 10, 50, 100]], [0.9])

    kp = np.zeros((1, 17, 3), np.float32)
    kp[0, :, :2] = np.random.default_rng(0).uniform(20, 80, (17, 2))
    kp[0, :, 2] = 0.9
    sched = ReusePoses(detector, every=3)
    frame = np.zeros((120, 160, 3), np.uint8)
    used = []
    for t in range(7):
        out = sched(frame, t)
        used.append(sched.ran_detector)
        sched.observe(kp)
        assert len(out) == 1
    assert calls == [0, 3, 6] and used == [True, False, False, True, False, False, True]
    # Nobody in the last poses: detect now rather than wait.
    sched.observe(np.zeros((0, 17, 3)))
    sched(frame, 7)
    assert calls[-1] == 7


def test_make_detector_table(tmp_path):
    assert isinstance(make_detector("hog"), HogDetector)
    assert isinstance(make_detector(bright_box_detector(tmp_path / "b.onnx")), OnnxDetector)
    fn = GivenBoxes({})
    assert make_detector(fn) is fn
    with pytest.raises(ValueError, match="unknown detector 'yolo'"):
        make_detector("yolo")
    with pytest.raises(ValueError, match="needs your ONNX detector's path: use 'onnx:PATH'"):
        make_detector("onnx")
    with pytest.raises(ValueError, match="needs a JSON-lines file"):
        make_detector("boxes")
    boxes = tmp_path / "boxes.jsonl"
    boxes.write_text('{"frame": 2, "box": [1, 2, 30, 40], "box_score": 0.5}\n')
    given = make_detector(f"boxes:{boxes}")
    assert len(given(None, 2)) == 1 and len(given(None, 1)) == 0


def test_auto_detector_falls_back_to_hog_with_a_warning(monkeypatch):
    """Without NanoDet's checked file, ``auto`` (the default everywhere) warns and runs HOG."""
    from edgepose.external import check

    monkeypatch.setattr(check, "asset_path", lambda name: None)
    with pytest.warns(UserWarning, match="falling back to the HOG person detector.*fetch_assets"):
        det = make_detector("auto")
    assert isinstance(det, HogDetector)
    with pytest.raises(check.ExternalModelError, match="nanodet.onnx.*fetch_assets"):
        make_detector("nanodet")

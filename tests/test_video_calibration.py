"""int8 calibration from unlabelled footage (``--data video:PATH``) and the int8-by-default rule.

The crops must be what the labelled path feeds the model (``TopDownDataset`` at evaluation) for the same
box, only frames inside the asked range may be read, and int8 is chosen only where it was measured
within 1 AP of fp32 on the CPU."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from edgepose.cli.run import INT8_MAX_LOSS, default_precision
from edgepose.core.keypoints import get_layout
from edgepose.data.records import FrameRecord, PersonRecord, VideoRecord
from edgepose.data.topdown import TopDownDataset
from edgepose.quantization.calibration import open_data
from edgepose.quantization.video_calibration import VideoCrops, VideoSource, parse_video_data
from edgepose.sdk.types import Detections
from edgepose.zoo import get_spec


def write_video(path, n=12, size=(96, 128)):
    rng = np.random.default_rng(0)
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (size[1], size[0]))
    frames = []
    for t in range(n):
        img = rng.integers(0, 255, (*size, 3), dtype=np.uint8)
        img[20:80, 30 + 2 * t : 60 + 2 * t] = (40, 200, 90)
        vw.write(img)
        frames.append(img)
    vw.release()
    return frames


class OneBox:
    """A stand-in detector: one box, and a record of the frames it was asked about."""

    def __init__(self):
        self.seen = []

    def __call__(self, image, frame_index=0):
        self.seen.append(frame_index)
        return Detections(
            np.array([[30 + 2 * frame_index, 20, 60 + 2 * frame_index, 80]], np.float32), np.ones(1)
        )


def test_crops_equal_the_labelled_path_and_stay_in_range(tmp_path):
    video = tmp_path / "clip.avi"
    write_video(video)
    spec = get_spec("dsta_mnv2_tiny")
    det = OneBox()
    crops = VideoCrops(spec, video, first=2, stop=8, every=3, detector=det)
    assert det.seen == [2, 5] and len(crops) == 2
    assert set(crops.frames) <= set(range(2, 8))  # windows clamp inside [first, stop)
    item = crops[1]  # frame 5, window -1..1
    assert item["frames"].shape == (len(spec.frame_offsets), 3, *spec.input_size)
    # the same box through the labelled path (decoded frames written as images)
    cap, images = cv2.VideoCapture(str(video)), []
    while True:
        ok, img = cap.read()
        if not ok:
            break
        images.append(img)
    paths = []
    for i, img in enumerate(images):
        paths.append(tmp_path / f"{i:03d}.png")
        cv2.imwrite(str(paths[-1]), img)
    kp = np.zeros((len(get_layout(spec.layout)), 3), np.float32)
    kp[0] = [45 + 10, 50, 1]
    kp[1] = [50 + 10, 60, 1]
    person = PersonRecord(keypoints=kp, bbox=np.array([40, 20, 70, 80], np.float64), layout=spec.layout)
    frames = [
        FrameRecord(i, p.name, p, [person] if i == 5 else [], 128, 96, "clip", i, is_labeled=(i == 5))
        for i, p in enumerate(paths)
    ]
    ds = TopDownDataset.for_spec(spec, [VideoRecord("clip", frames)], train=False)
    assert len(ds) == 1
    ref = ds[0]["frames"]
    torch.testing.assert_close(item["frames"], ref, atol=1e-6, rtol=0)


def test_video_data_strings(tmp_path):
    video = tmp_path / "clip.avi"
    write_video(video)
    assert parse_video_data(f"video:{video}") == (video, 0, None)
    assert parse_video_data(f"video:{video}:3-9") == (video, 3, 9)
    with pytest.raises(ValueError, match="empty"):
        parse_video_data(f"video:{video}:9-3")
    with pytest.raises(FileNotFoundError, match="no video file"):
        parse_video_data(f"video:{tmp_path / 'missing.avi'}")
    src = open_data(f"video:{video}:0-6", get_spec("dsta_mnv2_tiny"))
    assert isinstance(src, VideoSource) and not src.labelled


def test_int8_by_default_only_where_measured_within_one_ap(monkeypatch):
    from edgepose.quantization.scopes import settings_digest

    now = settings_digest("dsta")
    ok = {
        "model": "dsta_mnv2_coco",
        "int8": {
            "onnx": {"ap": 81.6, "fp32_ap": 82.4, "settings": now},
            "openvino": {"ap": 80.0, "fp32_ap": 82.4, "settings": now},
        },
    }
    assert default_precision(ok, "onnx", "cpu") == "int8"
    # measured with other int8 defaults (or before records said which): says nothing about today's build
    for stale in ("0" * 8, None):
        old = {**ok, "int8": {"onnx": {"ap": 81.6, "fp32_ap": 82.4, "settings": stale}}}
        assert default_precision(old, "onnx", "cpu") == "fp32"
    assert default_precision(ok, "openvino", "cpu") == "fp32"  # 2.4 > INT8_MAX_LOSS
    assert default_precision(ok, "tflite", "cpu") == "fp32"  # not measured
    assert default_precision({}, "onnx", "cpu") == "fp32"
    assert default_precision(ok, "onnx", "gpu") == "fp32"
    assert INT8_MAX_LOSS == 1.0

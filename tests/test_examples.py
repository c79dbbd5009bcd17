"""The examples run as scripts, headless, on a short generated video, and write what they say."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import cv2
import pytest

pytest.importorskip("onnxruntime")
torch = pytest.importorskip("torch")

from edgepose.bench.workload import make_clip
from edgepose.sdk.sinks import read_jsonl
from edgepose.sdk.sources import gstreamer_available

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
FRAMES = 12


@pytest.fixture(scope="module")
def material(tmp_path_factory):
    from edgepose.export import export
    from edgepose.zoo import create_model

    d = tmp_path_factory.mktemp("examples")
    torch.manual_seed(0)
    export(
        create_model("dsta_mnv2_tiny").eval(),
        out=d / "tiny",
        format="onnx",
        onnx_exporter="torchscript",
        verify=False,
    )
    clip = make_clip(2, FRAMES, size=(240, 320))
    w = cv2.VideoWriter(str(d / "clip.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 25, (320, 240))
    for f in clip.frames:
        w.write(f)
    w.release()
    with open(d / "boxes.jsonl", "w") as f:
        for i, boxes in enumerate(clip.boxes):
            for b in boxes:
                f.write(json.dumps({"frame": i, "box": b.tolist()}) + "\n")
    return d


def run(script: str, *args, cwd=None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}  # headless
    env["OMP_NUM_THREADS"] = "1"
    return subprocess.run(
        [sys.executable, str(EXAMPLES / script), *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=300,
    )


def frame_count(path: Path) -> int:
    cap = cv2.VideoCapture(str(path))
    n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    cap.release()
    return n


def test_jetson_camera_falls_back_to_the_file_and_records(material, tmp_path):
    rec, js = tmp_path / "rec.mp4", tmp_path / "poses.jsonl"
    p = run(
        "jetson_camera.py",
        "--bundle",
        material / "tiny",
        "--video",
        material / "clip.mp4",
        "--detector",
        f"boxes:{material / 'boxes.jsonl'}",
        "--detect-every",
        1,
        "--max-frames",
        10,
        "--record",
        rec,
        "--json",
        js,
    )
    assert p.returncode == 0, p.stderr
    first = p.stdout.splitlines()[0]
    assert first.startswith(f"source: file {material / 'clip.mp4'}")
    if not gstreamer_available():  # pip OpenCV: the CSI pipeline cannot open, and the script says why
        assert "csi: this OpenCV has no GStreamer" in first
    if not os.path.exists("/dev/video0"):
        assert "usb: no /dev/video0" in first
    assert "CPUExecutionProvider" in first or "TensorRT" in first or "CUDA" in first
    assert "recording to" in p.stdout and "10 frames in" in p.stdout
    assert frame_count(rec) == 10
    per_frame = Counter(r["frame"] for r in read_jsonl(js))
    assert per_frame and max(per_frame.values()) == 2  # online mode: both people once tracks confirm


def test_jetson_camera_records_by_default_when_headless(material, tmp_path):
    p = run(
        "jetson_camera.py",
        "--bundle",
        material / "tiny",
        "--source",
        material / "clip.mp4",
        "--detector",
        f"boxes:{material / 'boxes.jsonl'}",
        "--max-frames",
        4,
        cwd=tmp_path,
    )
    assert p.returncode == 0, p.stderr
    assert "(no display here)" in p.stdout and frame_count(tmp_path / "jetson_camera.mp4") == 4


def test_jetson_camera_says_when_no_source_opens(material):
    p = run("jetson_camera.py", "--bundle", material / "tiny", "--source", "usb", "--usb-index", 97)
    assert p.returncode != 0 and "no video source could be opened" in p.stderr and "usb:" in p.stderr


def test_tensorrt_options_cover_the_dynamic_batch(material):
    sys.path.insert(0, str(EXAMPLES))
    try:
        import jetson_camera
    finally:
        sys.path.remove(str(EXAMPLES))
    from edgepose.core.manifest import read_manifest

    m = read_manifest(material / "tiny")
    opts = jetson_camera.tensorrt_options(m.stage("frame"), 8, Path("/tmp/trt"), fp16=True)
    assert opts["trt_engine_cache_enable"] == "True" and opts["trt_fp16_enable"] == "True"
    assert opts["trt_profile_min_shapes"] == "image:1x3x64x48"
    assert opts["trt_profile_max_shapes"] == "image:8x3x64x48"
    temporal = jetson_camera.tensorrt_options(m.stage("temporal"), 8, Path("/tmp/trt"), fp16=False)
    assert all(s.split(":")[1].startswith("8x3x") for s in temporal["trt_profile_max_shapes"].split(","))


def test_video_file_example(material, tmp_path):
    out, js = tmp_path / "v.mp4", tmp_path / "v.jsonl"
    p = run(
        "video_file.py",
        material / "clip.mp4",
        "--bundle",
        material / "tiny",
        "--boxes",
        material / "boxes.jsonl",
        "--out",
        out,
        "--json",
        js,
    )
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith(f"{FRAMES} frames") and "2 tracks" in p.stdout
    assert frame_count(out) == FRAMES and len(list(read_jsonl(js))) > FRAMES


def test_python_api_example(tmp_path):
    p = run("python_api.py", "--out", tmp_path / "api", "--frames", 6)
    assert p.returncode == 0, p.stderr
    assert "verified True" in p.stdout and "person box" in p.stdout
    assert frame_count(tmp_path / "api" / "poses.mp4") == 6
    assert list(read_jsonl(tmp_path / "api" / "poses.jsonl"))

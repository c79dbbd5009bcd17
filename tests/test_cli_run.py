"""``edgepose run``: a generated video through a tiny bundle, the real street video with HOG, and the
errors a user meets (bad sources, corrupt bundles) as one line with exit code 2."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("onnxruntime")
torch = pytest.importorskip("torch")

from typer.testing import CliRunner

from edgepose.bench.workload import make_clip
from edgepose.cli import app
from edgepose.core.assets import asset_path, missing_reason
from edgepose.sdk.sinks import read_jsonl

FRAMES, PERSONS = 12, 2


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    """A short mp4 with two people-sized blobs and a JSON-lines file of their boxes."""
    d = tmp_path_factory.mktemp("video")
    clip = make_clip(PERSONS, FRAMES, size=(240, 320))
    w = cv2.VideoWriter(str(d / "clip.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 25, (320, 240))
    for f in clip.frames:
        w.write(f)
    w.release()
    with open(d / "boxes.jsonl", "w") as f:
        for i, boxes in enumerate(clip.boxes):
            f.writelines(json.dumps({"frame": i, "box": b.tolist(), "box_score": 0.9}) + "\n" for b in boxes)
    return d / "clip.mp4", d / "boxes.jsonl"


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def error_lines(res) -> list[str]:
    return [ln for ln in res.stderr.splitlines() if ln.strip()]


@pytest.mark.parametrize("mode", ["offline", "online"])
def test_run_writes_video_json_and_timing(tiny_bundle, video, tmp_path, mode):
    clip, boxes = video
    out, js = tmp_path / "out.mp4", tmp_path / "poses.jsonl"
    res = invoke(
        "run",
        clip,
        "--bundle",
        tiny_bundle,
        "--detector",
        f"boxes:{boxes}",
        "--mode",
        mode,
        "--out",
        out,
        "--json-out",
        js,
        "--json",
    )
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["frames"] == FRAMES and summary["mode"] == mode and summary["model"] == "dsta_mnv2_tiny"
    stages = {r["stage"]: r for r in summary["stages"]}
    assert {"detect", "track", "frame stage", "temporal stage", "decode", "total"} <= set(stages)
    assert stages["total"]["ms_per_frame"] >= stages["frame stage"]["ms_per_frame"] > 0
    # the annotated video has every frame; the JSON lines hold both people on (almost) every frame
    cap = cv2.VideoCapture(str(out))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == FRAMES
    cap.release()
    recs = list(read_jsonl(js))
    per_frame = Counter(r["frame"] for r in recs)
    assert max(per_frame.values()) == PERSONS and len(per_frame) >= FRAMES - 3
    assert summary["poses"] == len(recs) and summary["tracks"] == PERSONS
    assert all(len(r["keypoints"]) == 17 and np.isfinite(np.asarray(r["keypoints"])).all() for r in recs)


def test_pose_workers_give_the_same_poses(tiny_bundle, video, tmp_path):
    clip, boxes = video
    got = []
    for workers in (1, 2):
        js = tmp_path / f"poses{workers}.jsonl"
        res = invoke(
            "run", clip, "--bundle", tiny_bundle, "--detector", f"boxes:{boxes}", "--pose-workers", workers,
            "--json-out", js, "--json",
        )  # fmt: skip
        assert res.exit_code == 0, res.output
        assert json.loads(res.stdout)["pose_workers"] == workers
        got.append(list(read_jsonl(js)))
    assert len(got[0]) == len(got[1]) > 0
    for a, b in zip(*got):
        assert (a["frame"], a["track_id"]) == (b["frame"], b["track_id"])
        np.testing.assert_allclose(a["keypoints"], b["keypoints"], atol=1e-3)


def test_run_prints_progress_and_a_stage_table(tiny_bundle, video):
    clip, boxes = video
    res = invoke(
        "run", clip, "--bundle", tiny_bundle, "--detector", f"boxes:{boxes}", "--max-frames", 5, "--no-smooth"
    )
    assert res.exit_code == 0, res.output
    assert (
        "Per-stage timing: 5 frames" in res.stdout and "frame stage" in res.stdout and "total" in res.stdout
    )
    assert "5/5" in res.stderr  # the progress bar reached the end


@pytest.mark.parametrize(
    "make_args, expect",
    [
        (lambda b, d, c: [d / "missing.mp4", "--bundle", b], "does not exist"),
        (lambda b, d, c: [d / "notes.txt", "--bundle", b], "cannot open"),
        (lambda b, d, c: ["97", "--bundle", b], "cannot open capture '97'"),
        (lambda b, d, c: [c, "--bundle", d / "nowhere"], "does not exist"),
        (lambda b, d, c: [c, "--bundle", b, "--model", "dsta_mnv2"], "exactly one of --bundle"),
        (lambda b, d, c: [c], "exactly one of --bundle"),
        (
            lambda b, d, c: [c, "--bundle", b, "--detector", "yolo"],
            "unknown detector 'yolo': use auto | nanodet",
        ),
        (lambda b, d, c: [c, "--bundle", b, "--mode", "live"], "--mode must be"),
        (lambda b, d, c: [c, "--model", "no_such_model"], "unknown model"),
        (lambda b, d, c: [c, "--bundle", b, "--out", d / "x.gif"], ".mp4 or .avi"),
        (lambda b, d, c: [c, "--bundle", b, "--precision", "int8"], "--precision applies to --model"),
        (lambda b, d, c: [c, "--bundle", b, "--precision", "int4"], "--precision must be one of"),
    ],
)
def test_bad_arguments_and_sources_are_one_line_errors(tiny_bundle, video, tmp_path, make_args, expect):
    clip, _ = video
    (tmp_path / "notes.txt").write_text("not a video")
    res = invoke("run", *make_args(tiny_bundle, tmp_path, clip))
    assert res.exit_code == 2, res.output
    lines = error_lines(res)
    assert len(lines) == 1 and lines[0].startswith("error:") and expect in lines[0], lines
    assert "Traceback" not in res.output


@pytest.mark.parametrize(
    "damage, expect",
    [
        (lambda d: (d / "manifest.json").write_text("{not json"), "manifest"),
        (lambda d: (d / "manifest.json").unlink(), "manifest.json"),
        (lambda d: (d / "frame.onnx").write_bytes((d / "frame.onnx").read_bytes()[:200]), "frame.onnx"),
        (lambda d: (d / "temporal.onnx").unlink(), "temporal.onnx"),
    ],
)
def test_corrupt_bundles_are_one_line_errors(tiny_bundle, video, tmp_path, damage, expect):
    clip, boxes = video
    bad = tmp_path / "bad"
    shutil.copytree(tiny_bundle, bad)
    damage(bad)
    res = invoke("run", clip, "--bundle", bad, "--detector", f"boxes:{boxes}")
    assert res.exit_code == 2, res.output
    lines = error_lines(res)
    assert len(lines) == 1 and lines[0].startswith("error:") and expect in lines[0], lines


def test_real_street_video_with_hog_forms_tracks(tiny_bundle, tmp_path):
    """vtest.avi (768x576, walking people): HOG boxes -> tracks lasting many frames -> JSON lines."""
    path = asset_path("vtest.avi")
    if path is None:
        pytest.skip(missing_reason("vtest.avi"))
    frames = 24
    js = tmp_path / "street.jsonl"
    res = invoke(
        "run",
        path,
        "--bundle",
        tiny_bundle,
        "--detector",
        "hog",
        "--max-frames",
        frames,
        "--json-out",
        js,
        "--json",
    )
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["frames"] == frames and summary["mode"] == "offline"
    recs = list(read_jsonl(js))
    assert recs and {r["frame"] for r in recs} <= set(range(frames))
    lengths = Counter(r["track_id"] for r in recs)
    assert summary["tracks"] == len(lengths) >= 2
    assert max(lengths.values()) >= frames // 2  # someone is followed for at least half the clip
    for r in recs:
        x1, y1, x2, y2 = r["box"]
        assert 0 <= x1 < x2 <= 768 and 0 <= y1 < y2 <= 576


def test_show_without_a_display_says_so(tiny_bundle, video, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    res = invoke("run", video[0], "--bundle", tiny_bundle, "--show")
    if res.exit_code == 0:  # pragma: no cover - a platform with a window system
        return
    assert res.exit_code == 2 and "--show needs a display" in res.stderr and "--out" in res.stderr


def test_model_with_shipped_weights_is_exported_once_and_run(video, tmp_path, monkeypatch):
    from edgepose.zoo.pretrained import list_pretrained

    if "dsta_mnv2" not in list_pretrained():
        pytest.skip("no shipped demo weights for dsta_mnv2 in this install (edgepose/assets/weights)")
    monkeypatch.setenv("EDGEPOSE_CACHE", str(tmp_path / "cache"))
    clip, boxes = video
    args = [
        "run",
        clip,
        "--model",
        "dsta_mnv2",
        "--weights",
        "pretrained",
        "--detector",
        f"boxes:{boxes}",
        "--json",
    ]
    first = invoke(*args)
    assert first.exit_code == 0, first.output
    s = json.loads(first.stdout)
    assert "shipped weights (trained on edgepose synthetic" in s["how"] and s["bundle"].startswith(
        str(tmp_path / "cache")
    )
    manifest = Path(s["bundle"]) / "manifest.json"
    stamp = manifest.stat().st_mtime_ns
    again = invoke(*args)
    assert again.exit_code == 0 and json.loads(again.stdout)["bundle"] == s["bundle"]
    assert manifest.stat().st_mtime_ns == stamp  # reused, not exported again


def test_load_runs_an_onnx_bundle_with_another_backend(tiny_bundle):
    """edgepose.load(..., backend=) picks the runtime (it raised a duplicate-keyword TypeError)."""
    from edgepose.runtimes.bundle import load

    b = load(tiny_bundle, backend="openvino", device="cpu")
    assert {s.backend for s in b.sessions.values()} == {"openvino"}
    with pytest.raises(ValueError, match="does not read .onnx"):
        load(tiny_bundle, backend="tflite", device="cpu")

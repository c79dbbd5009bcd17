"""``edgepose demo``: synthetic video -> shipped weights -> verified bundle -> temporal pipeline -> outputs.

The fast suite runs the 16-frame ``--quick`` path; the default demo (75 frames, the one-minute
budget) and the real-video variant are slow tests.
"""

from __future__ import annotations

import json
from collections import Counter

import cv2
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("torch")

from typer.testing import CliRunner

from edgepose.cli import app
from edgepose.core.assets import asset_path, missing_reason
from edgepose.sdk.sinks import read_jsonl
from edgepose.zoo.pretrained import list_pretrained

SHIPPED = "dsta_mnv2" in list_pretrained()
REAL = "dsta_mnv2_coco" in list_pretrained() and asset_path("vtest.avi") is not None


def run_demo(*args):
    res = CliRunner().invoke(app, ["demo", *[str(a) for a in args]])
    assert res.exit_code == 0, res.output
    return res


def check_outputs(out, frames: int, shape=(480, 640, 3)) -> dict:
    summary = json.loads((out / "summary.json").read_text())
    assert (out / "bundle" / "manifest.json").is_file() and summary["verified"] is True
    cap = cv2.VideoCapture(str(out / "poses.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == frames
    ok, img = cap.read()
    cap.release()
    assert ok and img.shape == shape
    recs = list(read_jsonl(out / "poses.jsonl"))
    assert recs and len(recs) == summary["poses"]
    assert len(Counter(r["frame"] for r in recs)) >= frames - 3
    assert summary["frames"] == frames and summary["mode"] == "offline"
    return summary


def test_demo_quick_end_to_end(tmp_path):
    out = tmp_path / "demo"
    res = run_demo("--quick", "--source", "synthetic", "--out", out)
    s = check_outputs(out, 16)
    assert s["detector"] == "ground-truth boxes" and s["frame_offsets"] == [-1, 0, 1]
    stages = {r["stage"] for r in s["stages"]}
    assert {"frame stage", "temporal stage", "decode", "total"} <= stages
    acc = s["accuracy"]
    assert acc["persons"] == s["poses"] and acc["joints"] > 0
    assert "Per-stage timing" in res.stdout and "PCK@0.2" in res.stdout
    if SHIPPED:
        assert "shipped weights" in s["weights"] and "synthetic" in s["weights"]
        assert acc["pck@0.2"] > 50  # trained weights find synthetic people; random ones score ~0
    else:
        assert "RANDOM weights" in res.stderr


def test_demo_json_and_backend_option(tmp_path):
    out = tmp_path / "ov"
    res = run_demo("--quick", "--source", "synthetic", "--out", out, "--backend", "openvino", "--json")
    s = json.loads(res.stdout)
    assert s["format"] == "openvino" and all(v.startswith("openvino/") for v in s["sessions"].values())
    check_outputs(out, 16)


def test_demo_bad_model_is_a_one_line_error(tmp_path):
    res = CliRunner().invoke(app, ["demo", "--model", "nope", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "unknown model" in res.stderr
    assert len([ln for ln in res.stderr.splitlines() if ln.strip()]) == 1


@pytest.mark.slow
def test_demo_default(tmp_path, monkeypatch):
    """No arguments: the held-out tail of vtest with the real weights where both are present (scored
    against the teachers' labels), else the synthetic clip. Its wall time is in the README, measured."""
    monkeypatch.chdir(tmp_path)
    res = run_demo()
    if REAL:
        s = check_outputs(tmp_path / "edgepose-demo", 75, shape=(576, 768, 3))
        assert s["model"] == "dsta_mnv2_coco" and s["detector"].startswith("auto")
        acc = s["real_accuracy"]
        assert acc["people"] > 50 and acc["model"] > acc["mean pose"] + 10, acc
        assert "MoveNet Lightning" in res.stdout
    else:
        s = check_outputs(tmp_path / "edgepose-demo", 75)
        if SHIPPED:
            assert s["accuracy"]["pck@0.2"] > 50


@pytest.mark.slow
def test_demo_on_the_real_street_video(tmp_path):
    path = asset_path("vtest.avi")
    if path is None:
        pytest.skip(missing_reason("vtest.avi"))
    out = tmp_path / "street"
    run_demo("--source", path, "--frames", 12, "--out", out)
    s = json.loads((out / "summary.json").read_text())
    assert s["detector"].startswith("auto") and s["accuracy"] is None and s["real_accuracy"] is None
    assert s["frames"] == 12 and s["poses"] > 0

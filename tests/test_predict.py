"""Stills and the first hour: ``edgepose predict`` on an image, a folder and a video (poses from frame
0), ``est(image)`` without boxes running the default detector, and ``Pose``/``Results`` that print,
name their joints, draw on a copy, save and serialise."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

pytest.importorskip("onnxruntime")
torch = pytest.importorskip("torch")

from typer.testing import CliRunner

from edgepose.bench.workload import make_clip
from edgepose.cli import app
from edgepose.core.assets import asset_path, missing_reason
from edgepose.sdk import Detections, Pose, PoseEstimator
from edgepose.sdk.results import Results, save_all
from edgepose.sdk.sinks import read_jsonl

BOXES = np.array([[40, 20, 120, 220], [180, 30, 260, 230]], np.float32)


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Two 'photos' and a boxes file naming the two people in frame 0 (what a detector would give)."""
    d = tmp_path_factory.mktemp("photos")
    clip = make_clip(2, 2, size=(240, 320))
    cv2.imwrite(str(d / "a.png"), clip.frames[0])
    cv2.imwrite(str(d / "b.jpg"), clip.frames[1])
    with open(d.parent / "boxes.jsonl", "w") as f:
        f.writelines(
            json.dumps({"frame": 0, "box": b.tolist(), "box_score": 0.9}) + "\n" for b in clip.boxes[0]
        )
    return d, d.parent / "boxes.jsonl", clip


def fixed_detector(image, frame_index=0):
    return Detections(BOXES, np.array([0.9, 0.6], np.float32))


def test_estimator_without_boxes_runs_its_detector_and_returns_results(tiny_bundle):
    img = np.full((240, 320, 3), 90, np.uint8)
    est = PoseEstimator(tiny_bundle, detector=fixed_detector)
    res = est(img)
    assert isinstance(res, Results) and isinstance(res, list) and len(res) == 2
    assert [p.box_score for p in res] == pytest.approx([0.9, 0.6])
    np.testing.assert_allclose(res[1].box, BOXES[1])
    # given boxes still win; the answer equals the detector's for the same boxes
    same = est(img, BOXES)
    np.testing.assert_allclose(same[0].keypoints, res[0].keypoints)
    assert est(img, np.zeros((0, 4))) == []
    with pytest.raises(ValueError, match="cv2.imread"):
        est(None)


def test_the_default_detector_is_made_lazily_from_the_table(tiny_bundle, monkeypatch):
    made = []
    import edgepose.sdk.detectors as D

    monkeypatch.setattr(D, "make_detector", lambda spec="auto", **kw: made.append(spec) or fixed_detector)
    est = PoseEstimator(tiny_bundle)
    est(np.zeros((100, 100, 3), np.uint8), BOXES)
    assert made == []  # boxes given: no detector loaded
    est(np.zeros((100, 100, 3), np.uint8))
    est(np.zeros((100, 100, 3), np.uint8))
    assert made == ["auto"]


def test_pose_names_repr_plot_and_dict(tiny_bundle):
    img = np.full((240, 320, 3), 60, np.uint8)
    pose = PoseEstimator(tiny_bundle, detector=fixed_detector)(img)[0]
    j = pose.names.index("left_wrist")
    assert pose["left_wrist"] == pytest.approx((*pose.keypoints[j].tolist(), float(pose.scores[j])))
    assert pose[j] == pose["left_wrist"]
    with pytest.raises(KeyError, match="left_wing"):
        pose["left_wing"]
    text = repr(pose)
    assert text.startswith("Pose(untracked, box [40, 20, 120, 220] score 0.90,") and "joints >= 0.3" in text
    pose.scores[:] = 1.0
    drawn = pose.plot(img)
    assert drawn is not img and (img == 60).all() and (drawn != 60).any()
    assert len(pose.to_dict()["keypoints"]) == len(pose.names)
    with pytest.raises(KeyError, match="no joint names"):
        Pose(BOXES[0], np.zeros((17, 2)), np.ones(17))["nose"]


def test_results_plot_save_and_save_all(tiny_bundle, tmp_path):
    img = np.full((240, 320, 3), 60, np.uint8)
    res = PoseEstimator(tiny_bundle, detector=fixed_detector)(img)
    for p in res:
        p.scores[:] = 1.0
    assert "2 people" in repr(res) and repr(res).count("Pose(") == 2
    drawn = res.plot()
    assert (img == 60).all()
    # untracked people in one photo get different colours
    colours = {tuple(drawn[int(p.box[1]), int(p.box[0]) + 5]) for p in res}
    assert len(colours) == 2
    out = res.save(tmp_path / "x" / "a.png")
    np.testing.assert_array_equal(cv2.imread(str(out)), drawn)
    rec = json.loads(res.save(tmp_path / "a.json").read_text())
    assert rec["width"] == 320 and len(rec["poses"]) == 2 and rec["keypoint_names"][0] == "nose"
    with pytest.raises(ValueError, match="use an image"):
        res.save(tmp_path / "a.txt")
    written = save_all([res, res], tmp_path / "all")
    assert [p.name for p in written] == ["image_0000.jpg", "image_0001.jpg", "predictions.json"]


def test_cli_predict_one_image_with_out_jpg(tiny_bundle, photos, tmp_path):
    folder, boxes, clip = photos
    args = ["predict", str(folder / "a.png"), "--bundle", str(tiny_bundle), "--detector", f"boxes:{boxes}"]
    res = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "x.jpg"), "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    (img,) = doc["images"]
    assert len(img["poses"]) == 2 and img["width"] == 320
    assert cv2.imread(str(tmp_path / "x.jpg")).shape == (240, 320, 3)
    assert json.loads((tmp_path / "x.json").read_text())["poses"] == img["poses"]
    assert doc["min_pose_score"] == 0.4  # a bundle without a measured person threshold: the default
    res = CliRunner().invoke(
        app, [*args, "--out", str(tmp_path / "y.jpg"), "--json", "--min-pose-score", "0.25"]
    )
    assert res.exit_code == 0 and json.loads(res.stdout)["min_pose_score"] == 0.25
    res = CliRunner().invoke(app, [*args, "--min-pose-score", "1.5"])
    assert res.exit_code != 0 and "min-pose-score" in res.output


def test_cli_predict_folder_and_bad_outputs(tiny_bundle, photos, tmp_path):
    folder, boxes, _ = photos
    args = ["predict", str(folder), "--bundle", str(tiny_bundle), "--detector", f"boxes:{boxes}"]
    res = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["a.png", "b.jpg", "predictions.json"]
    recs = json.loads((tmp_path / "o" / "predictions.json").read_text())
    assert [len(r["poses"]) for r in recs] == [2, 2]  # every still is frame 0 to a detector
    bad = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "x.jpg")])
    assert bad.exit_code == 2 and "need a folder" in bad.output
    missing = CliRunner().invoke(app, ["predict", str(tmp_path / "nope.jpg"), "--bundle", str(tiny_bundle)])
    assert missing.exit_code == 2 and "does not exist" in missing.output
    both = CliRunner().invoke(app, [*args, "--model", "dsta_mnv2"])
    assert both.exit_code == 2 and "not both" in both.output


def test_cli_predict_video_has_poses_from_the_first_frame(tiny_bundle, tmp_path):
    clip = make_clip(2, 6, size=(240, 320))
    w = cv2.VideoWriter(str(tmp_path / "c.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 25, (320, 240))
    for f in clip.frames:
        w.write(f)
    w.release()
    with open(tmp_path / "b.jsonl", "w") as f:
        for i, bs in enumerate(clip.boxes):
            f.writelines(json.dumps({"frame": i, "box": b.tolist()}) + "\n" for b in bs)
    args = [
        "predict",
        str(tmp_path / "c.mp4"),
        "--bundle",
        str(tiny_bundle),
        "--detector",
        f"boxes:{tmp_path / 'b.jsonl'}",
    ]
    res = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "o.mp4")])
    assert res.exit_code == 0, res.output
    frames = [r["frame"] for r in read_jsonl(tmp_path / "o.jsonl")]
    assert frames.count(0) == 2 and sorted(set(frames)) == list(range(6))


def test_real_photo_with_the_pretrained_detector(tiny_bundle):
    if asset_path("messi5.jpg") is None or asset_path("nanodet.onnx") is None:
        pytest.skip(missing_reason("messi5.jpg" if asset_path("messi5.jpg") is None else "nanodet.onnx"))
    est = PoseEstimator(tiny_bundle, detector="nanodet")
    (res,) = est.predict(asset_path("messi5.jpg"))
    assert res.path.endswith("messi5.jpg") and len(res) >= 1
    assert all(0.0 <= p.box_score <= 1.0 for p in res)

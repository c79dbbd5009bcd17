"""``edgepose label``: pseudo-labels as a dataset train/eval read unchanged, agreement, resume, refusal."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from edgepose.cli import app
from edgepose.core.assets import asset_path, missing_reason
from edgepose.data.coco import read_coco
from edgepose.data.posetrack import read_posetrack
from edgepose.data.pseudo_labels import LabelConfig, VideoJob, joint_oks, label_videos
from edgepose.external import check
from edgepose.training.datasets import load_split
from edgepose.zoo import get_spec


def clip(path, frames=9, size=(160, 120)):
    """A small video of a bright rectangle moving right: a fake person for a fake labeller."""
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, size)
    for t in range(frames):
        img = np.zeros((size[1], size[0], 3), np.uint8)
        img[20:100, 30 + 5 * t : 60 + 5 * t] = 255
        w.write(img)
    w.release()
    return path


class FakeLabeller:
    """One person per frame where the rectangle is; fails after ``die_after`` frames when asked."""

    def __init__(self, die_after=None):
        self.calls = 0
        self.die_after = die_after

    def persons(self, image):
        self.calls += 1
        if self.die_after is not None and self.calls > self.die_after:
            raise KeyboardInterrupt("killed")
        ys, xs = np.nonzero(image[..., 0] > 128)
        x1, y1, x2, y2 = xs.min(), ys.min(), xs.max(), ys.max()
        kp = [[float(x1 + (x2 - x1) * j / 16), float(y1 + (y2 - y1) * j / 16), 2] for j in range(17)]
        kp[3][2] = 0  # one joint the teachers disagreed on
        return [
            {
                "box": [float(x1), float(y1), float(x2), float(y2)],
                "score": 0.9,
                "keypoints": kp,
                "ignore": False,
            }
        ]


def test_labels_are_a_dataset_train_and_eval_read(tmp_path):
    video = clip(tmp_path / "walk.avi")
    out = tmp_path / "labels"
    stats = label_videos(
        [VideoJob(video, "walk", val_tail=1 / 3)], out, LabelConfig(every=2), labeller=FakeLabeller()
    )
    assert stats.frames == 9 and stats.labelled_frames == 5 and stats.persons == 5
    assert stats.per_video == {
        "walk": {"split": "train", "frames": 6, "persons": 3},
        "walk-tail": {"split": "val", "frames": 3, "persons": 2},
    }
    videos = read_posetrack(out / "annotations" / "train", layout="coco17")
    assert [len(v.frames) for v in videos] == [6]
    person = videos[0].frames[0].persons[0]
    assert person.labelled.sum() == 16  # 17 minus the one left unlabelled
    assert person.track_id == videos[0].frames[2].persons[0].track_id  # tracked across frames
    coco = read_coco(out / "annotations" / "coco_val.json", image_root=out)
    assert len(coco) == 2 and all(f.image_path.is_file() for f in coco)
    # the train CLI's own loader: a temporal model reads the videos, a COCO-17 one the COCO file
    assert load_split(out, "train", get_spec("dsta_mnv2_tiny")).format == "posetrack"
    assert load_split(out, "val", get_spec("distilpose_s_tiny")).format == "coco"
    meta = json.loads((out / "meta.json").read_text())
    assert meta["sources"]["walk"]["sha256"] and meta["config"]["every"] == 2


def test_a_killed_run_resumes_to_the_same_labels(tmp_path):
    video = clip(tmp_path / "walk.avi")
    jobs = [VideoJob(video, "walk")]
    label_videos(jobs, tmp_path / "whole", labeller=FakeLabeller())
    with pytest.raises(KeyboardInterrupt):
        label_videos(jobs, tmp_path / "resumed", labeller=FakeLabeller(die_after=4))
    assert not (tmp_path / "resumed" / "meta.json").exists()  # nothing claims to be complete
    again = FakeLabeller()
    label_videos(jobs, tmp_path / "resumed", labeller=again)
    assert again.calls == 5  # only the frames the killed run had not done
    for rel in ("annotations/train/walk.json", "annotations/coco_train.json"):
        assert (tmp_path / "whole" / rel).read_text() == (tmp_path / "resumed" / rel).read_text()


def test_other_settings_are_refused_without_overwrite(tmp_path):
    video = clip(tmp_path / "walk.avi", frames=3)
    label_videos([VideoJob(video, "walk")], tmp_path / "out", labeller=FakeLabeller())
    with pytest.raises(FileExistsError, match="other settings.*--overwrite"):
        label_videos(
            [VideoJob(video, "walk")], tmp_path / "out", LabelConfig(every=3), labeller=FakeLabeller()
        )
    label_videos(
        [VideoJob(video, "walk")],
        tmp_path / "out",
        LabelConfig(every=3),
        labeller=FakeLabeller(),
        overwrite=True,
    )


def test_joint_agreement_follows_coco_tolerances():
    sig = np.array([0.026, 0.107])  # a nose-like tight joint, a hip-like loose one
    a = np.zeros((2, 2))
    b = np.array([[5.0, 0.0], [5.0, 0.0]])
    oks = joint_oks(a, b, area=80 * 40, sigmas=sig)
    assert oks[0] < 0.5 < oks[1]  # the same 5 px: too far for a nose, fine for a hip


def test_cli_label_on_a_real_photo(tmp_path):
    for name in ("messi5.jpg", "nanodet.onnx", "movenet-thunder.onnx", "pose_landmark_full.tflite"):
        if asset_path(name) is None or not check.available(name):
            pytest.skip(missing_reason(name))
    out = tmp_path / "labels"
    r = CliRunner().invoke(app, ["label", str(asset_path("messi5.jpg")), "--out", str(out), "--json"])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout[r.stdout.index("{") :])
    assert summary["persons"] >= 2  # both players in front
    frames = read_coco(out / "annotations" / "coco_train.json", image_root=out)
    best = max(frames[0].persons, key=lambda p: p.labelled.sum())
    assert best.labelled.sum() >= 12


def test_cli_label_refuses_bad_input_in_one_line(tmp_path):
    runner = CliRunner()
    r = runner.invoke(app, ["label", str(tmp_path / "nope.mp4"), "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "does not exist" in r.output
    r = runner.invoke(app, ["label", "x.mp4", "--out", str(tmp_path / "o"), "--teacher", "openpose"])
    assert r.exit_code == 2 and "unknown --teacher 'openpose'" in r.output
    video = clip(tmp_path / "walk.avi", frames=2)
    r = runner.invoke(app, ["label", str(video), "--out", str(tmp_path / "o"), "--val", "run:0.3"])
    assert r.exit_code == 2 and "match no input" in r.output


def test_a_coco17_video_model_is_scored_by_coco_ap(tmp_path):
    """PoseTrack mAP needs head_top/head_bottom for its head size; a COCO-17 model on PoseTrack-form
    video (the real-footage labels) is scored by COCO AP instead of a meaningless 0 mAP."""
    from edgepose.training.validate import metric_format, primary_metric

    assert metric_format("posetrack", "coco17") == "coco" and primary_metric("posetrack", "coco17") == "AP"
    assert (
        metric_format("posetrack", "posetrack17") == "posetrack" and primary_metric("coco", "coco17") == "AP"
    )
    video = clip(tmp_path / "walk.avi")
    out = tmp_path / "labels"
    label_videos([VideoJob(video, "walk", val_tail=0.5)], out, labeller=FakeLabeller())
    from edgepose.zoo import create_model
    from edgepose.zoo.checkpoints import save_checkpoint

    ck = save_checkpoint(create_model("dsta_mnv2_coco_tiny"), tmp_path / "w.pt")
    r = CliRunner().invoke(
        app,
        ["eval", "dsta_mnv2_coco_tiny", "--weights", str(ck), "--data", str(out), "--split", "val", "--json"],
    )
    assert r.exit_code == 0, r.output
    result = json.loads(r.stdout[r.stdout.index("{") :])
    assert result["format"] == "posetrack" and "AP" in result["metrics"] and "mAP" not in result["metrics"]

"""The peers benchmark: AP of the people a system found against held-out labels (ignore regions
included), its rows from stand-in systems, and BlazePose's own detector pipeline."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from edgepose.bench.peers_loop import (
    COLUMNS,
    LABELLED_VIDEO,
    Run,
    System,
    held_out_ground_truth,
    labels_as_poses,
    measure,
    score_found,
)
from edgepose.core.keypoints import COCO17
from edgepose.core.transforms import transform_points
from edgepose.external.blazepose import SIZE, detector_anchors, roi_matrix

FIRST = 100  # the clip's first frame; frames 100-105, every second one labelled


def _person(x, y, h=120.0):
    """A standing COCO-17 person h pixels tall with its top-left at (x, y)."""
    rel = np.array(
        [
            [0.5, 0.08], [0.47, 0.06], [0.53, 0.06], [0.44, 0.07], [0.56, 0.07],
            [0.35, 0.2], [0.65, 0.2], [0.3, 0.35], [0.7, 0.35], [0.28, 0.5], [0.72, 0.5],
            [0.4, 0.52], [0.6, 0.52], [0.4, 0.75], [0.6, 0.75], [0.4, 0.97], [0.6, 0.97],
        ]
    )  # fmt: skip
    kp = np.concatenate([[x, y] + rel * [h * 0.4, h], np.full((17, 1), 2.0)], 1)
    return kp


@pytest.fixture
def labels(tmp_path):
    """A label directory as `edgepose label` writes it: frames 100-105, labels on 101, 103, 105
    (105 without people), one ignore region on 103."""
    people = {101: [(50, 40), (300, 60)], 103: [(60, 40), (310, 60), (500, 100)], 105: []}
    images, anns = [], []
    for n in range(FIRST, FIRST + 6):
        img = {
            "id": 10_000_000_000 + n,
            "file_name": f"images/vtest/{n:06d}.jpg",
            "vid_id": LABELLED_VIDEO,
            "frame_id": 10_000_000_000 + n,
            "is_labeled": n in people,
            "width": 768,
            "height": 576,
            "nframes": 6,
            "ignore_regions_x": [[600.0, 640.0, 640.0, 600.0]] if n == 103 else [],
            "ignore_regions_y": [[300.0, 300.0, 420.0, 420.0]] if n == 103 else [],
        }
        images.append(img)
        for x, y in people.get(n, []):
            kp = _person(x, y)
            x1, y1 = kp[:, :2].min(0)
            x2, y2 = kp[:, :2].max(0)
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": img["id"],
                    "track_id": len(anns),
                    "category_id": 1,
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "keypoints": kp.reshape(-1).tolist(),
                    "num_keypoints": 17,
                    "iscrowd": 0,
                    "area": (x2 - x1) * (y2 - y1),
                }
            )
    val = tmp_path / "annotations" / "val"
    val.mkdir(parents=True)
    cat = {"id": 1, "name": "person", "keypoints": list(COCO17.names)}
    (val / f"{LABELLED_VIDEO}.json").write_text(
        json.dumps({"images": images, "annotations": anns, "categories": [cat]})
    )
    return tmp_path


def test_ground_truth_keeps_labelled_frames_of_the_clip_and_ignore_regions_as_crowds(labels):
    gt, index = held_out_ground_truth(labels, FIRST, 4)  # frames 100-103: 105 is outside
    assert index == {1: 10_000_000_101, 3: 10_000_000_103}
    assert len(gt["images"]) == 2
    people = [a for a in gt["annotations"] if not a["iscrowd"]]
    crowds = [a for a in gt["annotations"] if a["iscrowd"]]
    assert len(people) == 5 and all(len(a["keypoints"]) == 13 * 3 for a in people)
    assert len(crowds) == 1 and crowds[0]["num_keypoints"] == 0
    assert crowds[0]["bbox"] == [600.0, 300.0, 40.0, 120.0]
    gt6, index6 = held_out_ground_truth(labels, FIRST, 6)
    assert 5 in index6 and len(gt6["images"]) == 3  # a labelled frame without people is still an image


def test_the_labels_score_100_and_errors_cost_ap(labels):
    gt, _ = held_out_ground_truth(labels, FIRST, 6)
    truth = labels_as_poses(gt)
    assert score_found(truth, gt)["AP"] == pytest.approx(1.0)
    shifted = {k: v + [8.0, 0.0, 0.0] for k, v in truth.items()}
    assert score_found(shifted, gt)["AP"] < 0.9
    missed = {k: v[:1] for k, v in truth.items()}  # one person found per frame
    assert score_found(missed, gt)["AR"] < 0.6
    # a person nobody labelled, more confident than the labelled ones, costs precision; the same
    # person in the ignore region costs nothing
    truth = {k: v * [1.0, 1.0, 0.8] for k, v in truth.items()}
    stray, ignored = dict(truth), dict(truth)
    stray[10_000_000_101] = np.concatenate([truth[10_000_000_101], _with_score(_person(450, 300), 1.0)])
    ignored[10_000_000_103] = np.concatenate([truth[10_000_000_103], _with_score(_person(600, 300), 1.0)])
    assert score_found(stray, gt)["AP"] < 0.99
    assert score_found(ignored, gt)["AP"] == pytest.approx(1.0)


def _with_score(kp, score):
    out = kp.copy()[None]
    out[..., 2] = score
    return out


def _stand_in(name, poses_of_frame, model_ms=None):
    def open_():
        def run(frames):
            out = Run(poses=[poses_of_frame(k) for k in range(len(frames))])
            if model_ms is not None:
                out.model_ms = model_ms * len(frames)
                out.model_people = sum(len(p) for p in out.poses)
            return out

        return run

    return System(name, "stand-in", open_)


def test_rows_from_stand_in_systems(labels):
    gt, index = held_out_ground_truth(labels, FIRST, 6)
    truth = labels_as_poses(gt)
    frames = [np.zeros((576, 768, 3), np.uint8)] * 6
    perfect = _stand_in("perfect", lambda k: truth[index[k]] if k in index else np.zeros((0, 17, 3)), 2.0)
    blind = _stand_in("blind", lambda k: np.zeros((0, 17, 3)))

    def missing():
        raise FileNotFoundError("model.onnx is not fetched")

    rows, skipped = measure(
        [perfect, blind, System("missing", "none", missing)],
        frames,
        gt,
        index,
        rounds=2,
        progress=lambda m: None,
    )
    assert skipped == {"missing": "model.onnx is not fetched"}
    assert [r[0] for r in rows] == ["perfect", "blind"] and all(len(r) == len(COLUMNS) for r in rows)
    col = {c: i for i, c in enumerate(COLUMNS)}
    assert rows[0][col["AP"]] == pytest.approx(100.0) and rows[1][col["AP"]] == 0.0
    assert rows[0][col["people/frame"]] == pytest.approx(5 / 6)  # 2 + 3 people in 6 frames
    assert rows[0][col["pose ms/person"]] == pytest.approx(2.0 * 6 / 5)
    assert rows[1][col["pose ms/person"]] is None
    assert rows[0][col["fps"]] > 0


def test_detector_anchor_grid_and_roi_crop():
    anchors = detector_anchors()
    assert anchors.shape == (2254, 2)  # 28x28x2 + 14x14x2 + 7x7x6
    assert np.allclose(anchors[0], [0.5 / 28, 0.5 / 28]) and np.allclose(anchors[-1], [6.5 / 7, 6.5 / 7])
    # upright: the ROI centre goes to the crop centre and the ROI's side fills the crop
    m = roi_matrix((300.0, 200.0, 128.0, 0.0))
    got = transform_points(np.array([[300.0, 200.0], [300.0, 136.0]]), m)
    assert np.allclose(got, [[SIZE / 2, SIZE / 2], [SIZE / 2, 0.0]])
    # turned a quarter clockwise: a point to the ROI's right (its hips -> head direction) is the crop's top
    m = roi_matrix((300.0, 200.0, 128.0, np.pi / 2))
    assert np.allclose(transform_points(np.array([[364.0, 200.0]]), m), [[SIZE / 2, 0.0]])


def test_blazepose_own_detector_finds_the_person_its_landmarks_describe():
    from edgepose.core.assets import asset_path, missing_reason
    from edgepose.external import check
    from edgepose.external.blazepose import BlazePoseDetector
    from edgepose.external.registry import load_teacher
    from edgepose.runtimes import open_session

    for n in ("pose_detection.tflite", "pose_landmark_full.tflite", "bus.jpg"):
        if asset_path(n) is None:
            pytest.skip(missing_reason(n))
        if not check.available(n):
            pytest.skip(f"{n} does not pass its check")
    img = cv2.imread(str(asset_path("bus.jpg")))
    det, rois = BlazePoseDetector(open_session(asset_path("pose_detection.tflite"), device="cpu")).detect(img)
    assert len(det) >= 1 and rois.shape == (len(det), 4)
    kp = load_teacher("blazepose_full").in_rois(img, rois[:1])[0]
    hips = kp[[COCO17.index("left_hip"), COCO17.index("right_hip")], :2].mean(0)
    # the detector's hip centre and the landmark model's hips (found in the crop it made) agree
    assert np.hypot(*(hips - rois[0, :2])) < 0.1 * rois[0, 2]
    assert kp[:, 2].mean() > 0.5

"""Evaluation: COCO AP against pycocotools run directly, PoseTrack mAP on hand-computed cases, PCK."""

from __future__ import annotations

import contextlib
import copy
import io
import json
import math

import numpy as np
import pytest

from edgepose.core.keypoints import COCO17, POSETRACK17
from edgepose.data.coco import read_coco
from edgepose.data.posetrack import read_posetrack
from edgepose.data.records import FrameRecord, PersonRecord
from edgepose.eval.coco_ap import COCO_STATS, coco_keypoint_ap
from edgepose.eval.pck import box_size, pck, pck_by_flags
from edgepose.eval.posetrack_map import head_size, posetrack_map, voc_ap
from edgepose.eval.predictions import Prediction
from edgepose.eval.table import print_joint_table

pytest.importorskip("pycocotools")

# ----------------------------------------------------------------- COCO AP


def _coco_set(names, seed=0):
    """A small COCO keypoints set (medium and large persons, some joints unlabelled) and noisy
    predictions with false positives and one on an image without persons."""
    rng = np.random.default_rng(seed)
    j = len(names)
    images, anns, preds = [], [], []
    for img_id in range(1, 6):
        images.append(
            {"id": img_id, "file_name": f"{img_id}.jpg", "width": 640, "height": 480, "is_labeled": True}
        )
        for _k in range(0 if img_id == 5 else 2):
            w, h = rng.uniform(40, 200), rng.uniform(80, 300)
            x, y = rng.uniform(0, 400), rng.uniform(0, 150)
            kp = np.stack(
                [
                    x + rng.uniform(0, w, j),
                    y + rng.uniform(0, h, j),
                    rng.choice([0, 1, 2], j, p=[0.2, 0.3, 0.5]),
                ],
                1,
            )
            kp[kp[:, 2] == 0, :2] = 0
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": img_id,
                    "category_id": 1,
                    "bbox": [x, y, w, h],
                    "area": float(w * h * 0.6),
                    "iscrowd": 0,
                    "num_keypoints": int((kp[:, 2] > 0).sum()),
                    "keypoints": kp.reshape(-1).tolist(),
                }
            )
            noisy = kp[:, :2] + rng.normal(0, rng.choice([1.0, 4.0, 12.0]), (j, 2))
            preds.append(
                {
                    "image_id": img_id,
                    "keypoints": np.c_[noisy, rng.uniform(0.2, 1, j)].reshape(-1).tolist(),
                    "score": float(rng.uniform(0.3, 1.0)),
                    "category_id": 1,
                }
            )
        fp = np.c_[rng.uniform(0, 640, j), rng.uniform(0, 480, j), np.full(j, 0.5)]
        preds.append(
            {
                "image_id": img_id,
                "keypoints": fp.reshape(-1).tolist(),
                "score": float(rng.uniform(0, 0.6)),
                "category_id": 1,
            }
        )
    gt = {
        "images": images,
        "annotations": anns,
        "categories": [{"id": 1, "name": "person", "keypoints": list(names), "skeleton": []}],
    }
    return gt, preds


def _direct_pycocotools(gt_path, preds, sigmas=None):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_path))
        dt = gt.loadRes(copy.deepcopy(preds))
        ev = COCOeval(gt, dt, "keypoints")
        if sigmas is not None:
            ev.params.kpt_oks_sigmas = np.asarray(sigmas)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return [float(v) for v in ev.stats]


def test_coco_ap_matches_pycocotools_exactly(tmp_path):
    gt, preds = _coco_set(COCO17.names)
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(gt))
    direct = _direct_pycocotools(path, preds)
    assert 0.05 < direct[0] < 0.95  # a non-trivial score
    ours_records = coco_keypoint_ap(preds, read_coco(path))
    ours_json = coco_keypoint_ap(preds, path)
    assert list(ours_records) == list(COCO_STATS)
    assert list(ours_records.values()) == direct
    assert list(ours_json.values()) == direct


def test_coco_ap_custom_sigmas_for_posetrack_layout(tmp_path):
    gt, preds = _coco_set(POSETRACK17.names, seed=1)
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(gt))
    direct = _direct_pycocotools(path, preds, sigmas=POSETRACK17.sigmas)
    assert list(coco_keypoint_ap(preds, read_posetrack(path)).values()) == direct  # layout from the records
    assert list(coco_keypoint_ap(preds, path).values()) == direct  # layout from the category's joint names
    assert direct != _direct_pycocotools(path, preds)  # the sigmas matter
    with pytest.raises(ValueError, match="sigmas"):
        coco_keypoint_ap(preds, path, sigmas=[0.05] * 15)


def test_coco_ap_perfect_predictions_and_unknown_images(tmp_path):
    gt, _ = _coco_set(COCO17.names, seed=2)
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(gt))
    frames = read_coco(path)
    perfect = [
        Prediction(f.image_id, p.keypoints[:, :2].copy(), np.ones(17), score=1.0)
        for f in frames
        for p in f.persons
    ]
    stats = coco_keypoint_ap(perfect, frames)
    assert stats["AP"] == 1.0 and stats["AP50"] == 1.0 and stats["AR"] == 1.0
    stray = perfect + [Prediction(999, perfect[0].keypoints, np.ones(17), score=1.0)]
    with pytest.raises(KeyError, match="not in the ground truth"):
        coco_keypoint_ap(stray, frames)
    assert coco_keypoint_ap(stray, frames, unknown_images="drop") == stats
    assert coco_keypoint_ap([], frames)["AP"] == 0.0


# ----------------------------------------------------------------- PoseTrack mAP

HEAD = [0.0, 0.0, 30.0, 40.0]  # head box: diagonal 50 -> head size 0.6 * 50 = 30, PCKh@0.5 -> 15 px


def _person(cx, cy, track, unlabelled=()):
    kp = np.zeros((17, 3), np.float32)
    for k, j in enumerate(np.flatnonzero(POSETRACK17.valid_mask)):
        kp[j] = (cx + 10 * (k % 3), cy + 12 * k, 1)
    for name in unlabelled:
        kp[POSETRACK17.index(name)] = 0
    return kp


def _pt_json(tmp_path, frames):
    """frames: list of (is_labeled, [keypoints (17, 3)], ignore polygon or None) -> PoseTrack18 JSON."""
    images, anns = [], []
    for i, (labeled, people, region) in enumerate(frames):
        img_id = int(f"1000001{i:04d}")
        img = {
            "id": img_id,
            "frame_id": img_id,
            "vid_id": "000001",
            "nframes": len(frames),
            "is_labeled": labeled,
            "file_name": f"images/val/000001_x/{i:06d}.jpg",
            "ignore_regions_x": [],
            "ignore_regions_y": [],
        }
        if region is not None:
            img["ignore_regions_x"], img["ignore_regions_y"] = (
                [region[:, 0].tolist()],
                [region[:, 1].tolist()],
            )
        images.append(img)
        for k, kp in enumerate(people):
            x0, y0 = kp[kp[:, 2] > 0, :2].min(0)
            anns.append(
                {
                    "id": img_id * 100 + k,
                    "image_id": img_id,
                    "track_id": k,
                    "category_id": 1,
                    "bbox_head": [float(x0), float(y0) - 40, 30.0, 40.0],
                    "bbox": [float(x0), float(y0), 50.0, 200.0],
                    "keypoints": kp.reshape(-1).tolist(),
                }
            )
    path = tmp_path / "000001_x.json"
    path.write_text(
        json.dumps(
            {
                "images": images,
                "annotations": anns,
                "categories": [{"id": 1, "name": "person", "keypoints": list(POSETRACK17.names)}],
            }
        )
    )
    return read_posetrack(path)


def _pred(image_id, kp, offset, score, far=None):
    xy = kp[:, :2].astype(np.float64) + offset
    if far:
        for name, d in far.items():
            xy[POSETRACK17.index(name)] += d
    return Prediction(image_id, xy, np.full(17, score))


def test_posetrack_map_hand_computed(tmp_path):
    a, b, c = _person(100, 100, 0), _person(400, 100, 1), _person(100, 100, 0)
    b_ankle = b[POSETRACK17.index("left_ankle"), :2]
    # a box around B's left ankle and P2's (6 px below); no other joint of B or P2 falls inside
    region = np.array([b_ankle + (-20, -3), b_ankle + (20, -3), b_ankle + (20, 9), b_ankle + (-20, 9)])
    videos = _pt_json(tmp_path, [(True, [a, b], region), (False, [], None), (True, [c], None)])
    f0, f1, f2 = (f.image_id for f in videos[0].frames)
    assert head_size(videos[0].frames[0].persons[0].head_box) == pytest.approx(30.0)

    preds = [
        _pred(f0, a, (6, 0), 0.9),  # P1: every joint 6 px off (0.2 head sizes): all match A
        _pred(f0, b, (0, 6), 0.8, far={"right_wrist": (20, 0)}),  # P2: matches B except the right wrist
        _pred(f0, a, (700, 300), 0.95),  # P3: a false positive far from everyone, ranked first
        _pred(f1, a, (0, 0), 0.99),  # on the unlabelled frame: ignored
    ]  # frame 2's person C is not predicted: its joints are misses
    res = posetrack_map(preds, videos)
    # Most joints: GT = A + B + C = 3. Ranked detections: P3 (FP), P1 (TP), P2 (TP):
    # precision 0, 1/2, 2/3 at recall 0, 1/3, 2/3 -> envelope 2/3 over two recall steps of 1/3: AP = 4/9.
    # right_wrist: P3 FP, P1 TP, P2 FP (20 px > 15 px): precision 0, 1/2, 1/3 at recall 0, 1/3, 1/3:
    # AP = 1/3 * 1/2 = 1/6.
    # left_ankle: B's joint and P2's lie in the ignore region and vanish, GT = A + C = 2;
    # P3 FP, P1 TP: precision 0, 1/2 at recall 0, 1/2: AP = 1/2 * 1/2 = 1/4.
    expect = {n: 400 / 9 for n in res.joints}
    expect["right_wrist"], expect["left_ankle"] = 100 / 6, 25.0
    assert res.joints == pytest.approx(expect)
    assert res.num_gt["left_ankle"] == 2 and res.num_gt["nose"] == 3 and res.num_frames == 2
    assert res.groups["wrist"] == pytest.approx((400 / 9 + 100 / 6) / 2)
    assert res.groups["ankle"] == pytest.approx((25 + 400 / 9) / 2)
    assert res.groups["head"] == pytest.approx(400 / 9)
    assert res.mean == pytest.approx(100 * (13 * 4 / 9 + 1 / 6 + 1 / 4) / 15)  # = 41.30
    assert res.precision["nose"] == pytest.approx(200 / 3) and res.recall["nose"] == pytest.approx(200 / 3)


def test_posetrack_map_assignment_and_unlabelled_joints():
    # One GT person A (left knee not annotated), head size 30. Pa sits 3 px off everywhere (PCKh 14/14);
    # Pb is scored higher but only 8 of its joints are near A (PCKh 8/14). A takes Pa, so Pb matches
    # nothing: all of Pb's joints are false positives. Pa's left knee has no GT joint: a false positive.
    kp = _person(100, 100, 0, unlabelled=("left_knee",))
    gt = [FrameRecord(1, "a.jpg", "a.jpg", [PersonRecord(kp, None, "posetrack17", head_box=np.array(HEAD))])]
    valid = np.flatnonzero(POSETRACK17.valid_mask)
    far = {POSETRACK17.names[j]: (25, 0) for j in valid[8:]}
    preds = [_pred(1, kp, (3, 0), 0.6), _pred(1, kp, (9, 0), 0.7, far=far)]
    res = posetrack_map(preds, gt)
    # every annotated joint: Pb (0.7, FP), Pa (0.6, TP), 1 GT -> precision 1/2 at recall 1: AP 50
    assert all(v == pytest.approx(50.0) for n, v in res.joints.items() if n != "left_knee")
    assert math.isnan(res.joints["left_knee"])  # detections but no GT: NaN, skipped by the mean
    assert res.mean == pytest.approx(50.0) and math.isnan(res.groups["knee"])
    # without the competing prediction every annotated joint is a perfect 100
    assert posetrack_map(preds[:1], gt).joints["nose"] == 100.0
    # no predictions at all: AP 0 (poseval leaves zeros), GT still counted
    empty = posetrack_map([], gt)
    assert empty.mean == 0.0 and empty.num_gt["nose"] == 1


def test_posetrack_map_threshold_and_head_fallback():
    kp = _person(100, 100, 0)
    head = np.array([0.0, 0.0, 30.0, 40.0])
    inside = PersonRecord(kp, None, "posetrack17", head_box=head)
    gt = [FrameRecord(1, "a.jpg", "a.jpg", [inside])]
    assert posetrack_map([_pred(1, kp, (14.9, 0), 1.0)], gt).mean == 100.0
    assert posetrack_map([_pred(1, kp, (15.1, 0), 1.0)], gt).mean == 0.0
    # no head box: head size 0.6 x |head_top - head_bottom| (here |(10, 12)| = 15.62 -> threshold 4.69 px)
    no_box = [FrameRecord(1, "a.jpg", "a.jpg", [PersonRecord(kp, None, "posetrack17")])]
    assert posetrack_map([_pred(1, kp, (4.6, 0), 1.0)], no_box).mean == 100.0
    assert posetrack_map([_pred(1, kp, (4.8, 0), 1.0)], no_box).mean == 0.0


def test_voc_ap_matches_hand_values():
    assert voc_ap(np.array([0.5, 1.0]), np.array([1.0, 0.5])) == pytest.approx(0.75)
    assert voc_ap(np.array([0.0, 0.5]), np.array([0.0, 0.5])) == pytest.approx(0.25)


# ----------------------------------------------------------------- PCK and tables


def test_pck_and_flag_breakdown():
    gt = np.zeros((2, 17, 2))
    pred = gt.copy()
    pred[0, :, 0] = 4.0  # person 0: 4 px off everywhere
    pred[1, :, 0] = 12.0  # person 1: 12 px off
    mask = np.tile(POSETRACK17.valid_mask, (2, 1))
    norm = [10.0, 10.0]  # threshold 0.5 -> 5 px: person 0 all right, person 1 all wrong
    res = pck(pred, gt, mask, norm, 0.5)
    assert res.mean == 50.0 and res.count == 30 and res.per_joint["nose"] == 50.0
    assert "left_ear" not in res.per_joint and res.groups["total"] == 50.0
    occluded = np.zeros((2, 17))
    occluded[1] = 1
    occluded[0, 0] = np.nan  # unknown: counted in neither split
    split = pck_by_flags(pred, gt, mask, norm, {"occluded": occluded}, 0.5)
    assert split["occluded"].mean == 0.0 and split["occluded"].count == 15
    assert split["not_occluded"].mean == 100.0 and split["not_occluded"].count == 14
    assert split["all"].mean == 50.0
    assert box_size([10, 20, 50, 120]) == 100.0
    with pytest.raises(ValueError, match="mask"):
        pck(pred, gt, mask[:, :15], norm)


def test_joint_table_prints_papers_columns(tmp_path):
    kp = _person(100, 100, 0)
    gt = [FrameRecord(1, "a.jpg", "a.jpg", [PersonRecord(kp, None, "posetrack17", head_box=np.array(HEAD))])]
    res = posetrack_map([_pred(1, kp, (3, 0), 1.0)], gt)
    from rich.console import Console

    text = print_joint_table({"ours": res.groups}, title="PoseTrack val", console=Console(file=io.StringIO()))
    header = [line for line in text.splitlines() if "Head" in line][0].split()
    assert [h for h in header if h.isalpha()] == [
        "Method",
        "Head",
        "Sho",
        "Elb",
        "Wri",
        "Hip",
        "Knee",
        "Ank",
        "Mean",
    ]
    assert "100.0" in text and "ours" in text

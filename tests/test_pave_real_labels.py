"""PAVE-Net on the teachers' pseudo-labels (``edgepose label --preset real``): PoseTrack-form videos in COCO-17
order without head joints, and ignore regions where the teachers disagree. People there are neither
targets nor, once the model finds them, false positives: not in the set loss's classification, not in
the evaluation."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

pytest.importorskip("scipy")

from edgepose.data.whole_frame import WholeFrameDataset, ignore_of, targets_of  # noqa: E402
from edgepose.training import datasets as D  # noqa: E402
from edgepose.training import validate_whole_frame as V  # noqa: E402
from edgepose.training.pave_task import SetPredictionTask  # noqa: E402
from edgepose.training.tasks import build_task  # noqa: E402
from edgepose.zoo import create_model, get_spec  # noqa: E402

NAME = "pave_mnv2_tiny"  # 64x96 input, posetrack15 layout
COCO17 = (
    "nose left_eye right_eye left_ear right_ear left_shoulder right_shoulder left_elbow right_elbow left_wrist "
    "right_wrist left_hip right_hip left_knee right_knee left_ankle right_ankle"
).split()
W, H = 128, 96  # frames; letterboxed into the 96x64 input
IGNORE = (90.0, 10.0, 120.0, 80.0)  # x1, y1, x2, y2: the person the teachers disagreed on


def _person(cx, top, height=60.0):
    """COCO-17 keypoints (17 x 3, flat) of a standing stick figure; v 2 for every joint."""
    s = height / 60.0
    rel = [(0, 4), (-2, 2), (2, 2), (-4, 3), (4, 3), (-8, 14), (8, 14), (-10, 26), (10, 26), (-11, 36),
           (11, 36), (-5, 34), (5, 34), (-5, 46), (5, 46), (-5, 58), (5, 58)]  # fmt: skip
    return [v for dx, dy in rel for v in (cx + dx * s, top + dy * s, 2)]


def _video(root, split, vid, frames, people):
    """One video as ``edgepose label`` writes it: images under images/<vid>, every frame labelled."""
    (root / "images" / vid).mkdir(parents=True, exist_ok=True)
    (root / "annotations" / split).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(len(vid))
    images, anns = [], []
    for t in range(frames):
        iid = 10_000_000 + 1000 * len(vid) + t
        cv2.imwrite(str(root / "images" / vid / f"{t:06d}.jpg"), rng.integers(0, 255, (H, W, 3), np.uint8))
        x1, y1, x2, y2 = IGNORE
        images.append(
            {
                "id": iid,
                "file_name": f"images/{vid}/{t:06d}.jpg",
                "vid_id": vid,
                "frame_id": iid,
                "is_labeled": True,
                "width": W,
                "height": H,
                "ignore_regions_x": [[x1, x2, x2, x1]],
                "ignore_regions_y": [[y1, y1, y2, y2]],
                "nframes": frames,
            }
        )
        for k, (cx, top) in enumerate(people):
            kp = _person(cx + t, top)
            xs, ys = kp[0::3], kp[1::3]
            anns.append(
                {
                    "id": iid * 100 + k,
                    "image_id": iid,
                    "track_id": k,
                    "category_id": 1,
                    "bbox": [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)],
                    "keypoints": kp,
                    "num_keypoints": 17,
                    "iscrowd": 0,
                }
            )
    cat = {"supercategory": "person", "id": 1, "name": "person", "keypoints": COCO17, "skeleton": []}
    data = {"images": images, "annotations": anns, "categories": [cat]}
    (root / "annotations" / split / f"{vid}.json").write_text(json.dumps(data))


@pytest.fixture(scope="module")
def labels(tmp_path_factory):
    root = tmp_path_factory.mktemp("real") / "labels"
    _video(root, "train", "cam", 6, [(30.0, 20.0), (60.0, 25.0)])
    _video(root, "val", "cam-tail", 3, [(30.0, 20.0)])
    return root


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_labels_read_without_head_joints_and_ignore_boxes_follow_augmentation(labels):
    spec = get_spec(NAME)
    part = D.load_split(labels, "train", spec)
    assert part.format == "posetrack" and spec.layout == "posetrack15"
    names = list(spec.layout and WholeFrameDataset.for_spec(spec, part.records).layout.names)
    person = part.records[0].frames[0].persons[0]
    assert person.keypoints[names.index("head_top"), 2] == 0 and person.keypoints[names.index("nose"), 2] > 0
    assert int((person.keypoints[:, 2] > 0).sum()) == 13

    plain = WholeFrameDataset.for_spec(spec, part.records, train=False)
    item = plain[0]
    assert int(item["num_ignore"]) == 1 and int(item["num_people"]) == 2
    m = item["matrix"].numpy()  # frame -> input, the people's map (checked in test_pave_train.py)
    x1, y1, x2, y2 = IGNORE
    (a, c), (b, d) = (m @ [x1, y1, 1], m @ [x2, y2, 1])
    expect = [a / 96, c / 64, b / 96, d / 64]
    assert m[0, 1] == m[1, 0] == 0 and m[0, 0] > 0 and m[1, 1] > 0  # a letterbox: scale and shift
    assert np.allclose(item["ignore"][0].numpy(), expect, atol=1e-5)
    assert not item["ignore"][1:].any()

    flipped = WholeFrameDataset.for_spec(
        spec, part.records, train=True, zoom=(1, 1), shift=0.0, flip_prob=1.0
    )
    flipped.set_epoch(0, seed=0)
    box = flipped[0]["ignore"][0].numpy()
    assert np.allclose(box[[0, 2]], [(95 - b) / 96, (95 - a) / 96], atol=1e-5)  # mirrored about the input
    assert np.allclose(box[[1, 3]], expect[1::2], atol=1e-5)
    batch = torch.utils.data.default_collate([plain[0], plain[1]])
    assert [len(t) for t in targets_of(batch)] == [2, 2] and [len(r) for r in ignore_of(batch)] == [1, 1]


def test_queries_in_ignore_regions_get_no_classification_gradient(labels):
    spec = get_spec(NAME)
    part = D.load_split(labels, "train", spec)
    ds = WholeFrameDataset.for_spec(spec, part.records, train=False)
    batch = torch.utils.data.default_collate([ds[0], ds[1]])
    grads = {}
    for case in ("regions", "none"):
        torch.manual_seed(0)
        model = create_model(NAME).train()
        task = build_task(spec, model)
        b = dict(batch)
        if case == "none":
            b["num_ignore"] = torch.zeros_like(b["num_ignore"])
        out = task.forward(model, b)
        out["enc_logits"].retain_grad()
        loss, parts = task.loss(out, b)
        loss.backward()
        matches = task.enc_criterion.match_level(
            {"logits": out["enc_logits"], "poses": out["enc_kpts"]}, [t.float() for t in targets_of(b)]
        )
        skip = SetPredictionTask.ignored_queries(out["enc_kpts"], matches, ignore_of(batch))
        grads[case] = (out["enc_logits"].grad.clone(), skip, float(parts["ignored_q"]))
    g, skip, counted = grads["regions"]
    g0, _, counted0 = grads["none"]
    assert skip.any() and counted > 0 and counted0 == 0
    assert (g[skip] == 0).all()  # left out: no push towards "no person"
    assert (g0[skip] != 0).all()  # without the regions the same queries are pushed
    assert torch.allclose(g[~skip], g0[~skip], atol=1e-6)  # everyone else as before


def test_predictions_in_ignore_regions_are_not_false_positives(labels):
    from edgepose.eval.predictions import Prediction

    spec = get_spec(NAME)
    part = D.load_split(labels, "val", spec)
    frames = [f for v in part.records for f in v.frames]
    exact = [Prediction(f.image_id, p.keypoints[:, :2], np.ones(15), 0.9) for f in frames for p in f.persons]
    x1, y1, x2, y2 = IGNORE
    inside = np.tile([(x1 + x2) / 2, (y1 + y2) / 2], (15, 1)) + np.linspace(-5, 5, 15)[:, None]
    extra = [Prediction(f.image_id, inside, np.ones(15), 1.0) for f in frames]
    outside = [Prediction(f.image_id, inside - [60, 0], np.ones(15), 1.0) for f in frames]
    assert len(V.drop_ignored(exact + extra, part.records)) == len(exact)
    alone = V.metrics(exact, part.records, spec.layout, part.format)
    with_ignored = V.metrics(exact + extra, part.records, spec.layout, part.format)
    with_fp = V.metrics(exact + outside, part.records, spec.layout, part.format)
    assert "mAP" not in alone and "head_top" in alone["no_mAP"]  # no head joints: COCO AP only
    assert alone["AP"] == pytest.approx(100.0) and with_ignored["AP"] == pytest.approx(100.0)
    assert with_fp["AP"] < 90.0  # the same predictions outside the region: false positives ranked first


def test_cli_trains_on_the_labels_and_validates_with_coco_ap(labels, tmp_path):
    from typer.testing import CliRunner

    from edgepose.cli import app

    out = tmp_path / "run"
    args = ["train", NAME, "--data", str(labels), "--out", str(out), "--epochs", "1", "--batch-size", "2"]
    res = CliRunner().invoke(app, [*args, "--no-progress", "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output[res.output.index("{") :])
    rec = summary["history"][-1]
    assert summary["steps"] == 3 and "train_ignored_q" in rec
    assert "val_AP" in rec and "val_mAP" not in rec and "head_top" in rec["val_no_mAP"]
    # the best checkpoint is chosen by the metric the labels allow (it was "mAP", never present: no best.pt)
    assert summary["val_metric"] == "AP" and (out / "best.pt").is_file()

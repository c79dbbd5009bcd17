"""People on stills (``edgepose.sdk.stills``): pooled detectors, people split in two merged by the pose
model's confidence, non-people and duplicates dropped; on the fetched photos, everyone clearly
visible is found once."""

from __future__ import annotations

import numpy as np
import pytest

from edgepose.bench.still_people import PHOTOS, Photo, describe, judge_boxes
from edgepose.core.assets import asset_path, missing_reason
from edgepose.sdk.results import Results
from edgepose.sdk.stills import (
    DetectorEnsemble,
    StillRefine,
    drop_weak_and_contained,
    merge_split_people,
    poses_on_still,
)
from edgepose.sdk.types import Detections, Pose

IMAGE = np.zeros((400, 600, 3), np.uint8)


class ScoredByBox:
    """A stand-in estimator whose pose confidence is a function of the box: ``rule(box) -> score``."""

    needs_detector = True

    def __init__(self, rule, detector=None):
        self.rule, self.detector, self.calls = rule, detector, 0

    def __call__(self, image, boxes, box_scores=None):
        self.calls += 1
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        bs = [1.0] * len(boxes) if box_scores is None else list(box_scores)
        return Results(
            [
                Pose(b, np.zeros((17, 2), np.float32), np.full(17, self.rule(b), np.float32), box_score=s)
                for b, s in zip(boxes, bs, strict=True)
            ],
            image,
        )


LEFT, RIGHT = np.array([100, 50, 300, 350]), np.array([220, 60, 420, 340])  # one person, split
UNION = np.array([100, 50, 420, 350])
APART = np.array([480, 40, 590, 380])  # someone else, not touching


def _near(a, b):
    return np.abs(np.asarray(a, float) - np.asarray(b, float)).max() < 1


def split_person(box):
    return 0.8 if _near(box, UNION) else 0.6 if _near(box, LEFT) else 0.5


def test_a_person_split_in_two_is_merged_when_the_union_is_more_confident():
    est = ScoredByBox(split_person)
    boxes, scores = merge_split_people(est, IMAGE, np.array([LEFT, RIGHT, APART]), np.array([0.9, 0.7, 0.8]))
    got = sorted(map(tuple, boxes.astype(int).tolist()))
    assert got == sorted([tuple(UNION), tuple(APART)])
    assert sorted(scores.tolist()) == pytest.approx([0.8, 0.9])  # the union keeps its better half's


def test_two_people_side_by_side_stay_two():
    est = ScoredByBox(lambda b: 0.5 if _near(b, UNION) else 0.7)  # the union is worse: two people
    boxes, _ = merge_split_people(est, IMAGE, np.array([LEFT, RIGHT]), np.array([0.9, 0.7]))
    assert len(boxes) == 2
    # a gain below merge_gain is not enough either
    est = ScoredByBox(lambda b: 0.72 if _near(b, UNION) else 0.7)
    assert len(merge_split_people(est, IMAGE, np.array([LEFT, RIGHT]), np.array([0.9, 0.7]))[0]) == 2


def test_boxes_that_do_not_overlap_are_never_tried_together():
    est = ScoredByBox(lambda b: 0.9 if (b[2] - b[0]) > 300 else 0.5)  # any wide box would 'win'
    boxes, _ = merge_split_people(est, IMAGE, np.array([LEFT, APART]), np.array([0.9, 0.8]))
    assert len(boxes) == 2 and est.calls == 0  # no pair to try: no pose work at all


def test_weak_poses_and_boxes_inside_a_person_are_dropped():
    inner = np.array([150, 100, 250, 300])  # a tie inside the person
    crowd = np.array([10, 10, 40, 60])
    scores = {tuple(LEFT): 0.7, tuple(inner): 0.55, tuple(crowd): 0.25, tuple(APART): 0.45}
    est = ScoredByBox(lambda b: scores[tuple(int(v) for v in b)])
    res = drop_weak_and_contained(est(IMAGE, np.array([crowd, inner, LEFT, APART])))
    assert [tuple(int(v) for v in p.box) for p in res] == [tuple(LEFT), tuple(APART)]  # by confidence
    # thresholds are the caller's
    loose = drop_weak_and_contained(
        est(IMAGE, np.array([crowd, inner, LEFT])), StillRefine(min_pose_score=0.2)
    )
    assert len(loose) == 2
    with pytest.raises(ValueError, match="min_pose_score"):
        StillRefine(min_pose_score=1.5)


def test_a_box_inside_a_person_goes_whatever_the_order_unless_clearly_more_confident():
    inner = np.array([150, 100, 250, 300])  # a tie, as confident as the man wearing it
    scores = {tuple(inner): 0.53, tuple(LEFT): 0.53}
    est = ScoredByBox(lambda b: scores[tuple(int(v) for v in b)])
    for order in ([inner, LEFT], [LEFT, inner]):  # equal confidence: the sort leaves them as given
        assert [
            tuple(int(v) for v in p.box) for p in drop_weak_and_contained(est(IMAGE, np.array(order)))
        ] == [tuple(LEFT)]
    scores[tuple(inner)] = 0.53 + StillRefine().merge_gain + 0.01  # clearly more confident: someone in front
    assert len(drop_weak_and_contained(est(IMAGE, np.array([LEFT, inner])))) == 2


def test_poses_on_still_given_boxes_are_kept_as_they_are():
    boxes = np.array([LEFT, RIGHT, [10, 10, 40, 60]], np.float32)
    est = ScoredByBox(
        lambda b: 0.2 if b[2] < 50 else split_person(b),
        detector=lambda img, i=0: Detections(boxes, np.full(3, 0.9, np.float32)),
    )
    assert len(poses_on_still(est, IMAGE, refine=False)) == 3
    assert len(poses_on_still(est, IMAGE)) == 1  # split person merged, the weak one dropped
    est.still_refine = StillRefine(
        min_pose_score=0.15
    )  # the estimator's own (its weights' measured) threshold
    assert len(poses_on_still(est, IMAGE)) == 2


def test_the_ensemble_pools_detectors_and_removes_duplicates():
    a = lambda img, i=0: Detections(np.array([LEFT], np.float32), np.array([0.6], np.float32))  # noqa: E731
    b = lambda img, i=0: Detections(  # noqa: E731
        np.array([LEFT + 3, APART], np.float32), np.array([0.8, 0.5], np.float32)
    )
    none = lambda img, i=0: Detections.empty()  # noqa: E731
    det = DetectorEnsemble([a, b, none], ["a", "b", "none"])
    got = det(IMAGE)
    assert len(got) == 2 and sorted(got.scores.tolist()) == pytest.approx([0.5, 0.8])  # LEFT once, the best
    assert len(DetectorEnsemble([none, none])(IMAGE)) == 0
    assert "a + b + none" in repr(det)
    with pytest.raises(ValueError, match="at least one"):
        DetectorEnsemble([])


def test_photo_ground_truth_wants_each_person_once_and_ignores_crowds():
    photo = Photo(((10, 10), (50, 10)), crowd=((0, 100, 200, 200),))
    a, b, in_crowd = [0, 0, 20, 20], [40, 0, 60, 20], [5, 120, 25, 160]
    judged = judge_boxes(photo, [a, b, in_crowd])
    assert judged == {"people": 2, "found": 2, "extra": 0, "crowd": 1, "right": True}
    assert describe(judged) == "2 of 2 + 1 in the crowd"
    both = judge_boxes(photo, [[0, 0, 60, 20]])  # one box over two people finds one
    assert (both["found"], both["extra"], both["right"]) == (1, 0, False)
    twice = judge_boxes(photo, [a, a, b])  # a duplicate is one too many
    assert (twice["found"], twice["extra"], twice["right"]) == (2, 1, False)
    assert describe(twice) == "2 of 2 + 1 extra"
    for stray in ([100, 0, 120, 40], [5, 80, 25, 120]):  # out of the crowd, or only half in it
        assert judge_boxes(photo, [a, b, stray])["extra"] == 1
    assert judge_boxes(Photo(((10, 10),)), [])["found"] == 0


@pytest.mark.slow  # exports the shipped weights once (about a minute on two cores)
@pytest.mark.parametrize("photo", sorted(PHOTOS))
def test_every_clearly_visible_person_on_the_fetched_photos_is_found_once(photo, shipped_estimator):
    for need in (photo, "nanodet.onnx", "centernet.onnx"):
        if asset_path(need) is None:
            pytest.skip(missing_reason(need))
    (res,) = shipped_estimator.predict(asset_path(photo))  # detector "auto": stills pool them
    judged = judge_boxes(PHOTOS[photo], [p.box for p in res])
    assert judged["right"], (judged, [p.box.round().tolist() for p in res])
    if photo == "messi5.jpg":  # one box over the whole kick, not a half
        (x, y) = PHOTOS[photo].people[0]
        (kick,) = [p.box for p in res if p.box[0] <= x <= p.box[2] and p.box[1] <= y <= p.box[3]]
        assert kick[2] - kick[0] > 300


@pytest.fixture(scope="module")
def shipped_estimator():
    pytest.importorskip("onnxruntime")
    pytest.importorskip("torch")
    from edgepose.cli.predict import default_model
    from edgepose.cli.run import open_estimator, resolve_bundle

    name = default_model()
    if name != "dsta_mnv2_coco":
        pytest.skip("the real-footage weights are not installed")
    path, _ = resolve_bundle(None, name, "pretrained", None, "onnx", lambda m: None)
    est = open_estimator(path, "onnx", "cpu", None)
    yield est
    est.close()


@pytest.mark.slow  # the shipped weights' fp32 bundle (cached by shipped_estimator)
def test_cli_predict_poses_a_photo_in_fp32_with_the_measured_threshold(shipped_estimator, tmp_path):
    import json

    from typer.testing import CliRunner

    from edgepose.cli import app
    from edgepose.zoo.pretrained import person_score, pretrained_info

    for need in ("messi5.jpg", "nanodet.onnx", "centernet.onnx"):
        if asset_path(need) is None:
            pytest.skip(missing_reason(need))
    res = CliRunner().invoke(
        app, ["predict", str(asset_path("messi5.jpg")), "--out", str(tmp_path / "m.jpg"), "--json"]
    )
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    # --precision auto is fp32 on photos: in int8 the kick's two half-boxes stay two people
    assert "onnx fp32 bundle" in doc["how"]
    judged = judge_boxes(PHOTOS["messi5.jpg"], [q["box"] for q in doc["images"][0]["poses"]])
    assert judged["right"], judged
    assert doc["min_pose_score"] == person_score(pretrained_info("dsta_mnv2_coco"))

"""Drawing: skeleton edges from the layout, empty slots and low scores skipped, ids, overlay, timing."""

from __future__ import annotations

import numpy as np
import pytest

from edgepose.core.keypoints import COCO17, POSETRACK17
from edgepose.sdk.drawing import color_for, draw_overlay, draw_poses, draw_skeleton, timing_lines
from edgepose.sdk.timing import FpsMeter, StageTimer
from edgepose.sdk.types import Pose


def _pose(layout, track_id=2, score=0.9):
    j = np.arange(len(layout))
    kp = np.stack([40 + 20 * (j % 6), 40 + 25 * (j // 6)], 1).astype(float)  # joints 20+ px apart
    return Pose(np.array([30, 30, 170, 210.0]), kp, np.full(len(layout), score), track_id=track_id)


def test_skeleton_drawn_in_track_colour_at_joints():
    img = np.zeros((240, 200, 3), np.uint8)
    p = _pose(COCO17)
    draw_poses(img, [p], "coco17")
    color = np.array(color_for(2))
    for x, y in p.keypoints:
        assert (img[round(y), round(x)] == color).all()
    a, b = COCO17.skeleton[0]
    mid = (p.keypoints[a] + p.keypoints[b]) / 2
    assert (img[round(mid[1]), round(mid[0])] == color).all()


def test_low_scores_and_empty_slots_are_not_drawn():
    img = np.zeros((240, 200, 3), np.uint8)
    draw_poses(img, [_pose(COCO17, score=0.1)], COCO17, boxes=False)
    assert img.sum() == 0
    p = _pose(POSETRACK17)
    ear = POSETRACK17.index("left_ear")
    p.keypoints[ear] = [5, 230]  # an empty slot: must not be drawn even with a score
    draw_skeleton(img, p.keypoints, p.scores, POSETRACK17)
    assert img[225:235, 0:10].sum() == 0 and img.sum() > 0
    with pytest.raises(ValueError, match="layout 'coco17'"):
        draw_skeleton(img, np.zeros((15, 2)), None, "coco17")


def test_overlay_and_timing():
    img = np.full((120, 200, 3), 255, np.uint8)
    t = StageTimer()
    t.add("frame stage", 10.0)
    t.add("frame stage", 20.0)
    assert t.ms["frame stage"] == pytest.approx(11.0) and t.last_ms["frame stage"] == 20.0
    with t("detect"):
        pass
    f = FpsMeter(smoothing=0.0)
    f.tick(0.0)
    assert f.tick(0.05) == pytest.approx(20.0)
    lines = timing_lines(f.fps, t.ms)
    assert lines[0].strip() == "20.0 FPS" and lines[1].startswith("frame stage")
    draw_overlay(img, lines)
    assert img[10:20, 10:60].mean() < 200  # darkened panel with text
    assert (img[100:, 150:] == 255).all()  # nothing outside it
    assert color_for(-1) == (200, 200, 200) and color_for(3) != color_for(4)

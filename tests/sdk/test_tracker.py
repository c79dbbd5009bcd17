"""Tracker: births after min_hits, deaths after max_age, stable ids when people cross, OKS, assignment."""

from __future__ import annotations

import numpy as np
import pytest

from edgepose.core.keypoints import COCO17
from edgepose.sdk.tracker import Tracker, assign, iou_matrix, oks_matrix


def box(cx, cy, w=60, h=150):
    return [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]


def crossing(n=31, hide=()):
    """Two people walking through each other: A left->right at y=200, B right->left at y=215.

    Returns per frame the boxes (in shuffled order) and their true identities; B is not
    detected in ``hide`` frames (occluded by A).
    """
    rng = np.random.default_rng(1)
    frames = []
    for t in range(n):
        people = [("A", box(20 + 10 * t, 200)), ("B", box(320 - 10 * t, 215))]
        people = [p for p in people if not (p[0] == "B" and t in hide)]
        rng.shuffle(people)
        frames.append(([p[0] for p in people], np.array([p[1] for p in people], np.float32)))
    return frames


def run(tracker, frames):
    """identity -> set of track ids it was given (over frames where it was reported)."""
    seen: dict[str, set] = {}
    for who, boxes in frames:
        for tr in tracker.update(boxes):
            seen.setdefault(who[tr.det_index], set()).add(tr.id)
    return seen


@pytest.mark.parametrize("method", ["hungarian", "greedy"])
def test_ids_stable_when_people_cross(method):
    seen = run(Tracker(min_hits=2, method=method), crossing())
    assert set(seen) == {"A", "B"}
    assert len(seen["A"]) == 1 and len(seen["B"]) == 1 and seen["A"] != seen["B"], seen


def test_ids_survive_occlusion_during_crossing():
    trk = Tracker(min_hits=2, max_age=10)
    seen = run(trk, crossing(hide=range(13, 19)))  # B hidden behind A for 6 frames
    assert len(seen["A"]) == 1 and len(seen["B"]) == 1 and seen["A"] != seen["B"], seen
    assert len(trk.tracks) == 2


def test_without_motion_prediction_ids_swap_at_the_crossing():
    """Shows what the constant-velocity prediction buys: plain IoU matching swaps the two ids."""
    seen = run(Tracker(min_hits=2, max_extrapolate=0), crossing(hide=range(13, 19)))
    assert len(seen["A"]) > 1 or len(seen["B"]) > 1 or seen["A"] == seen["B"], seen


def test_birth_needs_min_hits_and_death_after_max_age():
    trk = Tracker(min_hits=3, max_age=4)
    b = np.array([box(100, 100)], np.float32)
    assert trk.update(b) == [] and trk.update(b) == []  # tentative
    out = trk.update(b)
    assert [t.id for t in out] == [1] and out[0].confirmed
    # A one-frame false positive never becomes a track and dies at once.
    out = trk.update(np.array([box(100, 100), box(400, 100)], np.float32))
    assert [t.id for t in out] == [1]
    assert trk.update(b) and trk.dead == [2]
    for _k in range(4):  # missed 4 frames: still alive (max_age=4)
        assert trk.update(np.zeros((0, 4))) == []
        assert trk.dead == [] and len(trk.tracks) == 1
    trk.update(np.zeros((0, 4)))
    assert trk.dead == [1] and trk.tracks == []
    # A new person gets a new id, never a recycled one.
    for _ in range(3):
        out = trk.update(b)
    assert [t.id for t in out] == [3]


def test_frames_must_increase_and_shapes_are_checked():
    trk = Tracker()
    trk.update(np.array([box(50, 50)]), frame=5)
    with pytest.raises(ValueError, match="must increase"):
        trk.update(np.array([box(50, 50)]), frame=5)
    with pytest.raises(ValueError, match="keypoints"):
        trk.update(np.array([box(50, 50)]), keypoints=np.zeros((2, 17, 3)), frame=6)


def _skeleton(cx, cy, scale, rng):
    kp = np.zeros((17, 3))
    kp[:, 0] = cx + scale * rng.uniform(-0.3, 0.3, 17)
    kp[:, 1] = cy + scale * rng.uniform(-0.5, 0.5, 17)
    kp[:, 2] = 0.9
    return kp


def test_oks_separates_people_sharing_one_box():
    """Two people whose boxes coincide (one behind the other): only keypoints tell them apart."""
    rng = np.random.default_rng(3)
    p1, p2 = _skeleton(100, 100, 150, rng), _skeleton(100, 100, 150, rng)
    b = np.array([box(100, 100), box(100, 100)], np.float32)
    trk = Tracker(min_hits=1, sigmas=COCO17.sigmas)
    out = trk.update(b, keypoints=np.stack([p1, p2]))
    id_of = {t.det_index: t.id for t in out}
    for t in range(1, 6):  # detections arrive in swapped order each other frame, with jitter
        order = [1, 0] if t % 2 else [0, 1]
        kps = np.stack([p1, p2])[order] + np.concatenate(
            [rng.normal(0, 1.5, (2, 17, 2)), np.zeros((2, 17, 1))], -1
        )
        out = trk.update(b, keypoints=kps)
        got = {order[tr.det_index]: tr.id for tr in out}
        assert got == id_of, (t, got, id_of)


def test_set_keypoints_feeds_oks():
    trk = Tracker(min_hits=1, sigmas=COCO17.sigmas)
    trk.update(np.array([box(100, 100)]))
    rng = np.random.default_rng(0)
    kp = _skeleton(100, 100, 150, rng)
    trk.set_keypoints(1, kp)
    sim_same = trk.similarity(np.array([box(100, 100)], float), kp[None], 1)
    sim_other = trk.similarity(np.array([box(100, 100)], float), _skeleton(100, 100, 150, rng)[None], 1)
    assert sim_same[0, 0] > sim_other[0, 0]
    with pytest.raises(KeyError, match="no live track 7"):
        trk.set_keypoints(7, kp)


def test_iou_and_oks_matrices():
    a = np.array([[0, 0, 10, 10], [0, 0, 0, 0]], float)
    b = np.array([[5, 0, 15, 10], [0, 0, 10, 10]], float)
    np.testing.assert_allclose(iou_matrix(a, b), [[50 / 150, 1.0], [0.0, 0.0]])
    kp = np.random.default_rng(0).uniform(0, 100, (1, 17, 3))
    kp[..., 2] = 1.0
    assert oks_matrix(kp, kp, COCO17.sigmas, np.array([100.0 * 100]))[0, 0] == pytest.approx(1.0)
    far = kp.copy()
    far[..., :2] += 50
    assert oks_matrix(kp, far, COCO17.sigmas, np.array([100.0 * 100]))[0, 0] < 0.05
    invisible = kp.copy()
    invisible[..., 2] = 0
    assert oks_matrix(kp, invisible, COCO17.sigmas, np.array([1e4]))[0, 0] == 0.0


def test_hungarian_beats_greedy_where_greedy_is_myopic():
    sim = np.array([[0.9, 0.8], [0.8, 0.1]])
    assert sorted(assign(sim, 0.2, "hungarian")) == [(0, 1), (1, 0)]
    assert assign(sim, 0.2, "greedy") == [(0, 0)]
    assert assign(np.zeros((0, 3)), 0.2) == []
    # Pairs under the threshold are never returned, even when they complete an assignment.
    assert assign(np.array([[0.5, 0.0], [0.0, 0.1]]), 0.2, "hungarian") == [(0, 0)]
    with pytest.raises(ValueError, match="unknown assignment"):
        assign(sim, 0.2, "auction")

"""``PoseEstimator(workers=N)``: a frame's people split over N one-thread sessions must change nothing but
the speed (same poses as one session, in the same order), leave the small temporal stage alone, and leave
no thread behind after ``close()``."""

from __future__ import annotations

import threading

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from edgepose.runtimes.bundle import load
from edgepose.sdk.detectors import GivenBoxes
from edgepose.sdk.estimator import PoseEstimator
from edgepose.sdk.pipeline import VideoPipeline
from edgepose.sdk.sources import IterableSource
from edgepose.sdk.tracker import Tracker


def pose_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("edgepose-pose")]


def test_workers_split_people_and_give_the_same_poses(tiny_bundle):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (200, 260, 3), dtype=np.uint8)
    boxes = np.array([[10 + 20 * i, 5 + 7 * i, 70 + 20 * i, 150 + 5 * i] for i in range(7)], np.float32)
    one = PoseEstimator(load(tiny_bundle, device="cpu", threads=1))
    two = PoseEstimator(load(tiny_bundle, device="cpu", threads=1), workers=3)
    calls = []
    for replica in two._replicas:  # count the rows each extra session is handed
        run = replica.run_stage
        replica.run_stage = lambda stage, feeds, run=run: (
            calls.append((stage, len(next(iter(feeds.values()))))) or run(stage, feeds)
        )
    try:
        a, b = one(img, boxes), two(img, boxes)
        assert len(a) == len(b) == 7
        for pa, pb in zip(a, b):
            np.testing.assert_allclose(pa.keypoints, pb.keypoints, atol=1e-4)
            np.testing.assert_allclose(pa.scores, pb.scores, atol=1e-5)
        # the frame stage (images) is split 3 ways (7 rows -> 2 + 2 + 3); the temporal stage is not
        assert sorted(calls) == [("frame", 2), ("frame", 3)]
        assert len(pose_threads()) >= 1
        one_person = two(img, boxes[:1])  # a single row runs on the bundle's own session only
        assert len(one_person) == 1 and len(calls) == 2
    finally:
        one.close()
        two.close()
    assert not [t for t in pose_threads() if t.is_alive()]


def test_pipeline_with_workers_matches_one_session(tiny_bundle, blocks_clip):
    frames, boxes = blocks_clip(8)
    runs = []
    for workers in (1, 2):
        est = PoseEstimator(load(tiny_bundle, device="cpu", threads=1), workers=workers)
        pipe = VideoPipeline(
            est,
            detector=GivenBoxes(dict(enumerate(boxes))),
            tracker=Tracker(min_hits=1),
            concurrent_detection=True,
        )
        runs.append(
            [[(p.track_id, p.keypoints) for p in r.poses] for r in pipe.run(IterableSource(frames, fps=10))]
        )
        est.close()
    assert [len(f) for f in runs[0]] == [len(f) for f in runs[1]] and sum(map(len, runs[0])) > 0
    for fa, fb in zip(*runs):
        for (ia, ka), (ib, kb) in zip(fa, fb):
            assert ia == ib
            np.testing.assert_allclose(ka, kb, atol=1e-4)


def test_workers_must_be_positive(tiny_bundle):
    with pytest.raises(ValueError, match="workers must be >= 1"):
        PoseEstimator(load(tiny_bundle, device="cpu", threads=1), workers=0)

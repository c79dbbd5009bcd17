"""Detection on its own thread (``VideoPipeline(concurrent_detection=True)``) and the batched crops.

The thread must change nothing but the speed: the same poses in the same order as the serial loop, a
detector failure raised in the caller with the detector's own frame in its traceback, and no thread
left behind after a run ends, fails or is abandoned. The batched crops must equal the per-person
crops bit for bit.
"""

from __future__ import annotations

import json
import threading
import time
import traceback

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from edgepose.bench.pose_overhead import per_person_prepare
from edgepose.runtimes.bundle import load
from edgepose.sdk.detectors import GivenBoxes
from edgepose.sdk.estimator import PoseEstimator
from edgepose.sdk.pipeline import VideoPipeline
from edgepose.sdk.sources import IterableSource
from edgepose.sdk.types import Detections


def detect_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "edgepose-detect"]


class SlowBoxes(GivenBoxes):
    """Given boxes with a sleep, so the detector thread really runs beside the pose stages."""

    def __call__(self, image=None, frame_index=0):
        time.sleep(0.002)
        return super().__call__(image, frame_index)


@pytest.fixture(scope="module")
def est(tiny_bundle):
    e = PoseEstimator(load(tiny_bundle, device="cpu", threads=1))
    yield e
    e.close()


def run_poses(est, frames, detector, concurrent, **kw):
    pipe = VideoPipeline(est, detector=detector, mode="offline", concurrent_detection=concurrent)
    out = []
    for r in pipe.run(IterableSource(frames, fps=10.0), **kw):
        out.append((r.index, [(p.track_id, p.box, p.keypoints, p.scores) for p in r.poses]))
    return pipe, out


def test_concurrent_detection_gives_the_serial_poses(est, blocks_clip):
    frames, boxes = blocks_clip(12)
    _, serial = run_poses(est, frames, SlowBoxes(boxes), False)
    pipe, threaded = run_poses(est, frames, SlowBoxes(boxes), True)
    assert pipe.concurrent_detection
    assert [i for i, _ in threaded] == list(range(12)) == [i for i, _ in serial]
    assert sum(len(p) for _, p in serial) > 0
    for (_, a), (_, b) in zip(serial, threaded):
        assert len(a) == len(b)
        for pa, pb in zip(a, b):
            assert pa[0] == pb[0] and all(np.array_equal(x, y) for x, y in zip(pa[1:], pb[1:]))
    assert not detect_threads()


def test_max_frames_reads_no_further(est, blocks_clip):
    frames, boxes = blocks_clip(10)
    seen = []

    def det(image, index):
        seen.append(index)
        return GivenBoxes(boxes)(image, index)

    _, out = run_poses(est, frames, det, True, max_frames=4)
    assert [i for i, _ in out] == [0, 1, 2, 3] and seen == [0, 1, 2, 3]
    assert not detect_threads()


class Boom(RuntimeError):
    pass


def failing_detector(image, index):
    if index == 3:
        raise Boom(f"detector failed on frame {index}")
    return Detections.empty()


def test_detector_error_reaches_the_caller_with_its_traceback(est, blocks_clip):
    frames, _ = blocks_clip(8)
    pipe = VideoPipeline(est, detector=failing_detector, mode="offline", concurrent_detection=True)
    got = []
    with pytest.raises(Boom, match="frame 3") as info:
        for r in pipe.run(IterableSource(frames, fps=10.0)):
            got.append(r.index)
    names = [f.name for f in traceback.extract_tb(info.value.__traceback__)]
    assert "failing_detector" in names  # the frame where it was raised, on the detector's thread
    assert not detect_threads()


def test_abandoned_and_interrupted_runs_leave_no_thread(est, blocks_clip):
    frames, boxes = blocks_clip(12)
    pipe = VideoPipeline(est, detector=SlowBoxes(boxes), mode="online", concurrent_detection=True)
    results = pipe.run(IterableSource(frames, fps=10.0))
    next(results)
    assert detect_threads()  # running ahead
    results.close()  # what `edgepose run` does on Ctrl-C or q
    assert not detect_threads()

    results = pipe.run(IterableSource(frames, fps=10.0))
    next(results)
    with pytest.raises(KeyboardInterrupt):
        results.throw(KeyboardInterrupt())
    assert not detect_threads()


def test_concurrent_detection_refuses_detect_every(est, blocks_clip):
    frames, boxes = blocks_clip(2)
    with pytest.raises(ValueError, match="detect_every=1"):
        VideoPipeline(est, detector=GivenBoxes(boxes), detect_every=3, concurrent_detection=True)
    # by default it is simply off there: ReusePoses follows the poses of the frame before
    assert not VideoPipeline(est, detector=GivenBoxes(boxes), detect_every=3).concurrent_detection


@pytest.mark.parametrize("n", [0, 1, 3, 7])
def test_batched_crops_equal_per_person_crops(est, n):
    rng = np.random.default_rng(n)
    img = rng.integers(0, 256, (90, 130, 3), dtype=np.uint8)
    xy = rng.uniform(-20, 120, (n, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(5, 80, (n, 2))], 1)
    ref = per_person_prepare(est, img, boxes)
    for reuse in (False, True, True):  # the reused buffers, also on a second call
        got = est.prepare(img, boxes, reuse=reuse)
        assert got.images.shape == ref.images.shape and got.images.flags.c_contiguous
        assert np.array_equal(got.images, ref.images) and np.array_equal(got.matrices, ref.matrices)
    rgb = img[..., ::-1].copy()
    assert np.array_equal(est.prepare(rgb, boxes, colour_converted=True).images, ref.images)
    as_float = img.astype(np.float32)  # no table for float frames: the per-person arithmetic
    assert np.array_equal(
        est.prepare(as_float, boxes).images, per_person_prepare(est, as_float, boxes).images
    )


def test_prepare_without_reuse_returns_the_callers_own_array(est):
    img = np.full((60, 80, 3), 128, np.uint8)
    a = est.prepare(img, [[10, 10, 40, 50]]).images
    est.prepare(img + 1, [[10, 10, 40, 50]], reuse=True)
    b = est.prepare(img + 2, [[10, 10, 40, 50]])
    assert not np.shares_memory(a, b) and not np.array_equal(a, b)


def test_cli_run_same_poses_serial_and_concurrent(tiny_bundle, tmp_path, blocks_clip):
    """``edgepose run --concurrent-detection`` and ``--serial-detection`` write the same JSON lines, and
    the summary says which ran (with one intra-op thread per session when concurrent)."""
    import cv2
    from typer.testing import CliRunner

    from edgepose.cli import app

    frames, boxes = blocks_clip(10, size=(120, 160))
    video = tmp_path / "clip.avi"
    w = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (160, 120))
    for f in frames:
        w.write(f)
    w.release()
    with open(tmp_path / "boxes.jsonl", "w") as f:
        for i, bs in enumerate(boxes):
            f.writelines(f'{{"frame": {i}, "box": {b.tolist()}}}\n' for b in bs)
    runs = {}
    for flag in ("--serial-detection", "--concurrent-detection"):
        js = tmp_path / f"{flag}.jsonl"
        args = ["run", video, "--bundle", tiny_bundle, "--detector", f"boxes:{tmp_path / 'boxes.jsonl'}"]
        res = CliRunner().invoke(
            app, [str(a) for a in [*args, flag, "--threads", 1, "--json-out", js, "--json"]]
        )
        assert res.exit_code == 0, res.output
        runs[flag] = (json.loads(res.stdout), js.read_text())
    (serial, a), (concurrent, b) = runs.values()
    assert not serial["concurrent_detection"] and concurrent["concurrent_detection"]
    assert serial["detector_thread_ms_per_frame"] is None and concurrent["detector_thread_ms_per_frame"] >= 0
    assert concurrent["threads"] == serial["threads"] == 1
    assert a == b and a.count("\n") > 5
    assert not detect_threads()

"""Sources and sinks: round trips through real video files, corrupt files, missing files, dropping
cameras, GStreamer strings without GStreamer, and JSON lines."""

from __future__ import annotations

import itertools
import json
import logging

import cv2
import numpy as np
import pytest

from edgepose.core.assets import asset_path, missing_reason
from edgepose.sdk.sinks import JsonlSink, VideoSink, open_sink, read_jsonl
from edgepose.sdk.sources import (
    CaptureSource,
    ImageFolderSource,
    IterableSource,
    VideoFileSource,
    gstreamer_available,
    open_source,
)
from edgepose.sdk.types import Frame, Pose

W, H = 96, 64


def frame(i: int) -> np.ndarray:
    """A frame whose index is written as 6 black/white 16x16 blocks (survives lossy codecs)."""
    img = np.full((H, W, 3), 90, np.uint8)
    for bit in range(6):
        img[:16, 16 * bit : 16 * bit + 16] = 255 if (i >> bit) & 1 else 0
    cv2.circle(img, (10 + i % 70, 40), 6, (0, 0, 255), -1)
    return img


def write_video(path, n: int, fps: float = 10.0):
    with VideoSink(path, fps=fps) as sink:
        for i in range(n):
            sink.write(frame(i))
    return path


def index_of(img: np.ndarray) -> int:
    return sum(1 << bit for bit in range(6) if img[4:12, 16 * bit + 4 : 16 * bit + 12].mean() > 128)


@pytest.mark.parametrize("suffix", [".mp4", ".avi"])
def test_video_round_trip(tmp_path, suffix):
    path = write_video(tmp_path / f"clip{suffix}", 30)
    assert not list(tmp_path.glob(".*partial*"))  # the temporary file was renamed
    src = open_source(path)
    assert isinstance(src, VideoFileSource) and src.fps == pytest.approx(10.0) and src.size == (W, H)
    frames = list(src)
    assert [f.index for f in frames] == list(range(30))
    assert [index_of(f.image) for f in frames] == list(range(30))
    np.testing.assert_allclose([f.timestamp for f in frames], np.arange(30) / 10.0)
    assert src.skipped == 0
    assert len(list(src)) == 30  # a file source can be iterated again


def test_corrupted_middle_is_skipped_not_fatal(tmp_path, caplog):
    path = write_video(tmp_path / "clip.avi", 40)
    data = bytearray(path.read_bytes())
    a, b = int(len(data) * 0.45), int(len(data) * 0.55)
    data[a:b] = np.random.default_rng(0).integers(0, 256, b - a, dtype=np.uint8).tobytes()
    bad = tmp_path / "corrupt.avi"
    bad.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="edgepose.sdk.sources"):
        frames = list(open_source(bad))
    n = len(frames)
    assert 20 <= n < 40  # frames before and after the damage come through
    idx = [f.index for f in frames]
    assert idx == sorted(set(idx))
    assert index_of(frames[0].image) == 0 and index_of(frames[-1].image) >= 35  # decoding resumed after it
    assert any("undecodable" in r.message or "delivered" in r.message for r in caplog.records)


def test_undecodable_frames_are_skipped_and_keep_true_indices(tmp_path, caplog):
    """Blank five MJPEG frames inside an intact AVI: they are skipped, later frames keep their index."""
    path = write_video(tmp_path / "clip.avi", 40)
    data = bytearray(path.read_bytes())
    starts = [i for i in range(len(data) - 1) if data[i] == 0xFF and data[i + 1] == 0xD8]  # JPEG SOI
    ends = [i for i in range(len(data) - 1) if data[i] == 0xFF and data[i + 1] == 0xD9]  # JPEG EOI
    assert len(starts) == len(ends) == 40
    for k in range(15, 20):
        data[starts[k] : ends[k] + 2] = bytes(ends[k] + 2 - starts[k])
    bad = tmp_path / "blanked.avi"
    bad.write_bytes(bytes(data))
    src = open_source(bad)
    with caplog.at_level(logging.WARNING, logger="edgepose.sdk.sources"):
        frames = list(src)
    assert [f.index for f in frames] == [*range(15), *range(20, 40)]
    assert [index_of(f.image) for f in frames] == [f.index for f in frames]
    assert frames[15].timestamp == pytest.approx(2.0)
    assert src.skipped == 5
    assert any("skipped 5 undecodable" in r.message for r in caplog.records)


def test_missing_and_unreadable_files_give_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.mp4"):
        open_source(tmp_path / "nope.mp4")
    junk = tmp_path / "notes.mp4"
    junk.write_text("this is not a video\n" * 10)
    with pytest.raises(ValueError, match="cannot open"):
        open_source(junk)


class FakeCapture:
    """A camera that delivers ``plan`` (True: a frame, False: a failed read), then fails forever."""

    opened = 0

    def __init__(self, plan, open_ok=True):
        self.plan = list(plan)
        self.ok = open_ok
        FakeCapture.opened += 1

    def isOpened(self):
        return self.ok

    def read(self):
        good = self.plan.pop(0) if self.plan else False
        return (True, frame(1)) if good else (False, None)

    def get(self, prop):
        return 25.0 if prop == cv2.CAP_PROP_FPS else 0.0

    def set(self, prop, value):
        return True

    def release(self):
        self.ok = False


def test_camera_drop_is_retried_then_reconnected(caplog):
    plans = [[True] * 3 + [False] * 2 + [True] * 2 + [False] * 10, [True] * 4]
    FakeCapture.opened = 0

    def opener(target, api):
        return FakeCapture(plans.pop(0) if plans else [], open_ok=True)

    src = CaptureSource(0, reconnect_after=5, max_reconnects=2, backoff=0.001, open_capture=opener)
    assert src.live and src.fps == 25.0
    with caplog.at_level(logging.WARNING, logger="edgepose.sdk.sources"):
        frames = list(src)
    # 3 frames, 2 dropped reads (retried), 2 frames, a dead stretch, reconnect, 4 frames, then the
    # camera is gone: two more reconnections are tried and the stream ends without raising.
    assert len(frames) == 9
    assert [f.index for f in frames] == list(range(9))
    assert all(b.timestamp >= a.timestamp for a, b in itertools.pairwise(frames))
    assert src.reconnects >= 1 and src.error and "reconnection attempts failed" in src.error
    assert any("reconnecting" in r.message for r in caplog.records)


def test_camera_that_cannot_open_is_a_clear_error():
    with pytest.raises(ValueError, match="cannot open capture '3'"):
        CaptureSource(3, open_capture=lambda t, api: FakeCapture([], open_ok=False))


def test_gstreamer_pipeline_needs_gstreamer():
    pipeline = "v4l2src device=/dev/video0 ! videoconvert ! appsink"
    if gstreamer_available():
        pytest.skip("this OpenCV has GStreamer; the error path cannot be shown")
    with pytest.raises(RuntimeError, match="GStreamer"):
        open_source(pipeline)


def test_iterable_and_folder_sources_skip_bad_items(tmp_path, caplog):
    items = [frame(0), np.zeros((4, 4), np.uint8), None, frame(3), frame(4).astype(np.float32), frame(5)]
    with caplog.at_level(logging.WARNING, logger="edgepose.sdk.sources"):
        src = open_source(iter(items), fps=5)
        got = list(src)
    assert isinstance(src, IterableSource)
    assert [f.index for f in got] == [0, 3, 5] and src.skipped == 3
    assert got[1].timestamp == pytest.approx(0.6)
    assert [f.index for f in IterableSource([Frame(4, frame(0), 0.1), Frame(2, frame(0), 0.2)])] == [4]

    for i in range(4):
        cv2.imwrite(str(tmp_path / f"{i:06d}.jpg"), frame(i))
    (tmp_path / "000002.jpg").write_bytes(b"\xff\xd8 broken jpeg")
    folder = open_source(tmp_path)
    assert isinstance(folder, ImageFolderSource)
    assert [f.index for f in folder] == [0, 1, 3] and folder.skipped == 1
    with pytest.raises(ValueError, match="no images"):
        ImageFolderSource(tmp_path / "empty" if (tmp_path / "empty").mkdir() is None else tmp_path)


def test_real_street_video_reads_to_the_end():
    path = asset_path("vtest.avi")
    if path is None:
        pytest.skip(missing_reason("vtest.avi"))
    src = open_source(path)
    n = 0
    last = -1
    for f in src:
        assert f.index > last and f.image.shape == (576, 768, 3)
        last = f.index
        n += 1
    assert n == src.frame_count == 795 and src.skipped == 0


def test_video_sink_errors_and_resizing(tmp_path, caplog):
    with pytest.raises(ValueError, match=r"unknown suffix \.mkv.*\.mp4 \(mp4v\).*\.avi \(MJPG\)"):
        VideoSink(tmp_path / "out.mkv")
    with pytest.raises(ValueError, match="no sink"):
        open_sink(tmp_path / "out.gif")
    sink = VideoSink(tmp_path / "empty.mp4")
    sink.close()
    assert not (tmp_path / "empty.mp4").exists()
    with (
        caplog.at_level(logging.WARNING, logger="edgepose.sdk.sinks"),
        open_sink(tmp_path / "mixed.avi", fps=5) as sink,
    ):
        sink.write(frame(0))
        assert not (tmp_path / "mixed.avi").exists()  # appears only when complete
        sink.write(cv2.resize(frame(1), (2 * W, 2 * H)))  # resized, not silently dropped
        with pytest.raises(ValueError, match="uint8"):
            sink.write(frame(2).astype(np.float32))
    assert any("resizing" in r.message for r in caplog.records)
    got = list(open_source(tmp_path / "mixed.avi"))
    assert len(got) == 2 and got[1].image.shape == (H, W, 3)
    with pytest.raises(RuntimeError, match="closed"):
        sink.write(frame(3))


def test_jsonl_sink_writes_valid_lines_flushed_per_frame(tmp_path):
    path = tmp_path / "poses.jsonl"
    kp = np.arange(34, dtype=np.float32).reshape(17, 2)
    sink = JsonlSink(path)
    sink.write(0, [Pose(np.array([1, 2, 3, 4.0]), kp, np.full(17, 0.5), track_id=7, box_score=0.9)], time=0.0)
    # flushed: readable while the sink is still open
    first = list(read_jsonl(path))
    assert len(first) == 1
    sink.write(1, [])
    sink.write(2, [{"track_id": 3, "box": np.array([0, 0, 5, 5]), "keypoints": [[1, 2, 0.3]]}], time=0.0667)
    sink.close()
    sink.close()  # idempotent
    recs = list(read_jsonl(path))
    assert [r["frame"] for r in recs] == [0, 2]
    r = recs[0]
    assert r["track_id"] == 7 and r["box"] == [1, 2, 3, 4] and r["box_score"] == 0.9
    assert len(r["keypoints"]) == 17 and r["keypoints"][3] == [6.0, 7.0, 0.5]
    assert recs[1]["box"] == [0, 0, 5, 5] and recs[1]["time"] == 0.0667
    for line in path.read_text().splitlines():
        json.loads(line)
    with pytest.raises(TypeError, match="Pose objects or dicts"):
        JsonlSink(tmp_path / "x.jsonl").write(0, [42])
    (tmp_path / "broken.jsonl").write_text('{"frame": 1}\n{"frame": \n')
    with pytest.raises(ValueError, match="broken.jsonl:2"):
        list(read_jsonl(tmp_path / "broken.jsonl"))

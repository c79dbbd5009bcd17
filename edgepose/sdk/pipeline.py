"""VideoPipeline: source -> detector -> tracker -> crops -> frame stage -> ring buffers -> temporal stage
-> decode -> smoothing -> sinks (DESIGN.md §1).

For temporal models the frame stage (the backbone) runs once per person per
frame and its outputs wait in each track's ring buffer; the temporal stage
reads the window from there. ``offline`` mode (files) looks ahead, so a frame's
poses come out ``max(offsets)`` frames after it went in, and the last frames
come out at ``flush()``; ``online`` mode (cameras) is causal and emits each
frame as it arrives. Models without a temporal stage run per frame in either
mode.

Whole-frame models (the manifest's ``input_kind == "frame"``, e.g. PAVE-Net) skip the detector and
the crops: source -> letterbox -> frame stage (once per frame) -> the stream's ring buffer ->
temporal stage -> people above the score threshold, mapped back to the frame -> tracker ->
smoothing -> sinks. No person detector is made for them, whatever ``detector`` says.

Push style: ``process(frame)`` returns the results that became ready (zero
or one frame), ``flush()`` the rest. Pull style: ``run(source, ...)`` yields
results and writes the sinks.

Concurrent detection (``concurrent_detection``, pull style only): a thread reads the source and runs
the detector up to ``detect_ahead`` frames ahead of the pose stages, through a bounded queue, so on two
cores the detector's time hides behind the pose stages'. ONNX Runtime, OpenVINO and OpenCV release the
GIL while they compute, so a thread is enough. Frames stay in order, the poses are the same as serial
(the detector sees the same frames; nothing it reads depends on the poses), a failure in the thread is
raised in the caller with its own traceback, and the thread is joined when the run ends, fails or is
interrupted. ``detect_every > 1`` cannot run ahead (between detections the boxes follow the poses of
the frame before), so it stays serial.

Between detections (``detect_every > 1``) every live track is followed: a track with a pose by the box
around its confident joints, moved on by its velocity to the frame being served; a track without one yet
(tentative: a person first seen at the last detection) by its own predicted box. Following only the
poses lost everyone who appeared after the first frames: a tentative track dies at its first miss, so
a newcomer seen every N-th frame was never confirmed (vtest: 4.0 people per frame instead of 6.8).
"""

from __future__ import annotations

import itertools
import os
import queue
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

from .detectors import clip_boxes, make_detector
from .drawing import draw_overlay, draw_poses, timing_lines
from .estimator import FrameInput, PoseEstimator, _peek_input_kind
from .ring_buffer import StreamBuffer, TrackBuffers, delay_for
from .sinks import JsonlSink, VideoSink
from .smoothing import PoseSmoother
from .sources import Source, open_source
from .timing import FpsMeter, StageTimer
from .tracker import Tracker
from .types import Detections, Frame, Pose


@dataclass
class FrameResult:
    """The poses of one frame (``index``), with the frame image and the loop's timings (ms, smoothed)."""

    index: int
    timestamp: float
    image: np.ndarray
    poses: list[Pose]
    timings: dict[str, float] = field(default_factory=dict)
    fps: float = 0.0


@dataclass
class _Pending:
    frame: Frame
    people: dict[
        int, tuple[np.ndarray, np.ndarray, float]
    ]  # track id -> (box, frame->crop matrix, box score)
    letterbox: np.ndarray | None = None  # whole-frame models: the frame -> model-input affine


# intra-op threads per runtime session while detection runs beside the pose stages: on two shared cores
# one each ran the loop 2.4-3.1x faster than the runtimes' default pools of one thread per core, serial
# or concurrent (benchmarks/results/concurrent_loop.md)
CONCURRENT_SESSION_THREADS = 1


def default_concurrent_detection(detect_every: int = 1) -> bool:
    """Whether ``VideoPipeline`` detects on a thread of its own by default: where the detector can run
    ahead (every frame) and there are two or more CPUs for the two stages. On this project's shared
    two-core machine, with no core left free by other work, concurrent and serial ran within 3% of each
    other (benchmarks/results/concurrent_loop.md); with a free core the loop's period becomes the
    slower stage's instead of their sum."""
    return detect_every == 1 and (os.cpu_count() or 1) >= 2


# detect_every > 1: joints at or above this score place a followed box
FOLLOW_MIN_SCORE = 0.3

_END = object()  # the detector thread's last item


@dataclass
class _Failed:
    error: BaseException


class _DetectAhead:
    """Reads ``frames`` and runs ``detect`` on a thread of its own, at most ``depth`` frames ahead.

    Iterating yields ``(frame, detections, detect_ms)`` in source order; an exception of the thread is
    raised here, with the traceback it had there. ``close()`` stops the thread and joins it, so no
    thread outlives the run that made it. On a live source the frames in the queue are the latency this
    adds: at most ``depth`` frames, plus the one being detected.
    """

    def __init__(self, frames: Iterable[Frame], detect: Callable[[Frame], Detections], depth: int = 2):
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, int(depth)))
        self._stop = threading.Event()
        self.thread = threading.Thread(
            target=self._work, args=(frames, detect), name="edgepose-detect", daemon=True
        )
        self.thread.start()

    def _put(self, item) -> bool:
        while not self._stop.is_set():  # a bounded wait, so close() is never stuck behind a full queue
            try:
                self._queue.put(item, timeout=0.05)
                return True
            except queue.Full:
                pass
        return False

    def _work(self, frames: Iterable[Frame], detect: Callable[[Frame], Detections]) -> None:
        try:
            for frame in frames:
                if self._stop.is_set():
                    return
                t0 = time.perf_counter()
                det = detect(frame)
                if not self._put((frame, det, (time.perf_counter() - t0) * 1e3)):
                    return
        except BaseException as e:  # noqa: BLE001 - handed to the caller's thread, raised there
            self._put(_Failed(e))
        finally:
            self._put(_END)

    def __iter__(self) -> Iterator[tuple[Frame, Detections, float]]:
        while True:
            item = self._queue.get()
            if item is _END:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item

    def close(self, timeout: float = 10.0) -> None:
        """Stop the thread and wait for it (the detector call in progress finishes first)."""
        self._stop.set()
        while True:  # free a put the thread may be waiting in
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self.thread.join(timeout)
        if self.thread.is_alive():  # a source stuck in a read (a stalled stream): it ends with that read
            warnings.warn(f"the detector thread did not stop within {timeout:g} s", stacklevel=2)


class VideoPipeline:
    """Tracks people through a video and estimates their poses with a bundle.

    ``detector``: ``KIND[:ARG]`` of ``edgepose.sdk.DETECTORS`` (default ``auto``: the
    pretrained NanoDet where fetched, else HOG with a warning), a path to an ONNX
    detector, or any callable ``(image, frame_index) -> Detections``. A whole-frame bundle
    finds the people itself: no detector is made (``self.detector`` is None) and ``detector=None``
    is its natural value; a top-down bundle with ``detector=None`` is refused.
    ``detect_every``: run the detector every N frames and follow the previous
    poses in between. ``mode``: ``offline``, ``online`` or ``auto`` (online for
    live sources). ``smoothing``: True (default One-Euro), False, or a
    ``PoseSmoother``. ``concurrent_detection``: in ``run()``, detect on a thread of its own up to
    ``detect_ahead`` frames ahead of the pose stages (module docstring; ``timer``'s ``detect`` is then
    the time the loop waited for detections, ``detector_timer``'s the detector's own); default on when
    there is a detector to run ahead (top-down, ``detect_every == 1``) and the machine has two or more CPUs
    (benchmarks/results/concurrent_loop.md measured it). With it on, the sessions this pipeline opens
    (an estimator or detector given by name or path) get one intra-op thread each: two stages with a
    pool of one thread per core each fight over the cores (measured there too); sessions passed in
    open keep their own settings.
    """

    def __init__(
        self,
        estimator: PoseEstimator | str | os.PathLike,
        detector="auto",
        tracker: Tracker | None = None,
        mode: str = "auto",
        detect_every: int = 1,
        smoothing: bool | PoseSmoother = True,
        min_box_score: float = 0.0,
        device: str = "auto",
        concurrent_detection: bool | None = None,
        detect_ahead: int = 2,
    ):
        if concurrent_detection is None:
            concurrent_detection = default_concurrent_detection(detect_every)
        elif concurrent_detection and detect_every > 1:
            raise ValueError(
                "concurrent_detection needs detect_every=1: with detect_every > 1 the detector follows "
                "the poses of the frame before, so it cannot run ahead of them"
            )
        # sessions this pipeline opens get one intra-op thread when two stages share the cores
        lean = {"threads": CONCURRENT_SESSION_THREADS} if concurrent_detection else {}
        if not isinstance(estimator, PoseEstimator):
            top_down = _peek_input_kind(estimator) != "frame"
            estimator = PoseEstimator(estimator, device, **(lean if top_down else {}))
        self.estimator = estimator
        self.whole_frame = bool(getattr(self.estimator, "is_whole_frame", False))
        self.detector: Callable[..., Detections] | None = None
        if not self.whole_frame:
            if detector is None:
                raise ValueError(
                    f"{self.estimator.name} is a top-down model (it takes person crops): it needs a person "
                    "detector; pass detector='auto' (or a KIND of edgepose.sdk.DETECTORS, or a callable)"
                )
            self.detector = make_detector(detector, **lean)
        if detect_every < 1:
            raise ValueError(f"detect_every must be >= 1, got {detect_every}")
        self.detect_every = int(detect_every)
        self.tracker = tracker or Tracker(sigmas=self.estimator.layout.sigmas)
        if mode not in ("auto", "online", "offline"):
            raise ValueError(f"mode must be 'auto', 'online' or 'offline', got {mode!r}")
        self.requested_mode = mode
        self.smoother = (PoseSmoother() if smoothing else None) if isinstance(smoothing, bool) else smoothing
        self.min_box_score = float(min_box_score)
        self.timer = StageTimer()
        self.detector_timer = StageTimer()  # concurrent detection: the detector thread's own time
        self.fps = FpsMeter()
        can_run_ahead = self.detector is not None and self.detect_every == 1
        self.concurrent_detection = bool(concurrent_detection and can_run_ahead)
        self.detect_ahead = int(detect_ahead)
        if self.detect_ahead < 1:
            raise ValueError(f"detect_ahead must be >= 1, got {detect_ahead}")
        self.reset("offline" if mode == "auto" else mode)

    # -- state -----------------------------------------------------------------------------------
    def reset(self, mode: str | None = None) -> None:
        """Forget every track and pending frame (e.g. before a new video)."""
        self.mode = mode or self.mode
        offsets = self.estimator.offsets
        self.delay = delay_for(offsets, self.mode) if self.estimator.is_temporal else 0
        if self.whole_frame:  # one ring for the stream: a memory per frame, not per person
            self.buffers = StreamBuffer(offsets, self.mode)
        else:
            self.buffers = TrackBuffers(offsets, self.mode) if self.estimator.is_temporal else None
        self.tracker.reset()
        if self.smoother is not None:
            self.smoother.retain(())
        self._pending: deque[_Pending] = deque()
        self._last_seen: dict[int, int] = {}  # track id -> last frame it was detected in
        self._dead: set[int] = set()  # ended tracks whose buffers wait for their last frames to be emitted
        self._confirmed: set[int] = set()  # tracks confirmed at some point (live or ended)
        self._follow: Detections | None = None  # detect_every > 1: the boxes served between detections
        self._since = 0  # frames since the detector last ran
        self.ran_detector = False  # whether the last frame's boxes came from the detector

    # -- the loop --------------------------------------------------------------------------------
    def process(self, frame: Frame) -> list[FrameResult]:
        """Take one frame; return the frame results now complete (offline: the frame ``delay`` back)."""
        if self.whole_frame:
            return self._process_whole_frame(frame)
        with self.timer("detect"):
            det = self._detect(frame)
        return self._process_detected(frame, det)

    def _detect(self, frame: Frame) -> Detections:
        """The detector on one frame (or, between detections, the followed tracks' boxes), boxes under
        ``min_box_score`` dropped (may run on its own thread)."""
        due = self._since % self.detect_every == 0
        if not due and self._follow is not None and len(self._follow):
            self._since += 1
            self.ran_detector = False
            h, w = frame.image.shape[:2]
            f = self._follow
            det = Detections(clip_boxes(f.boxes, w, h), f.scores, f.keypoints)
        else:
            self._since = 1
            self.ran_detector = True
            det = self.detector(frame.image, frame.index)
        if self.min_box_score > 0 and len(det):
            keep = det.scores >= self.min_box_score
            det = Detections(
                det.boxes[keep], det.scores[keep], None if det.keypoints is None else det.keypoints[keep]
            )
        return det

    def _process_detected(self, frame: Frame, det: Detections) -> list[FrameResult]:
        """``process`` after the detector: track, crop, run the stages, emit what is complete."""
        t_total = self.timer
        img = frame.image
        with t_total("track"):
            self.tracker.update(det.boxes, det.scores, det.keypoints, frame=frame.index)
            matched = [t for t in self.tracker.tracks if t.det_index >= 0]
            self._dead.update(self.tracker.dead)
            self._confirmed.update(t.id for t in self.tracker.tracks if t.confirmed)
        people: dict[int, tuple[np.ndarray, np.ndarray, float]] = {}
        if self.estimator.is_temporal:
            if matched:
                with t_total("crops"):
                    boxes = np.stack([det.boxes[t.det_index] for t in matched])
                    crops = self.estimator.prepare(img, boxes, reuse=True)
                with t_total("frame stage"):
                    feats = self.estimator.run_frame(crops)
                for i, t in enumerate(matched):
                    self.buffers.push(t.id, frame.index, {k: v[i] for k, v in feats.items()})
                    people[t.id] = (boxes[i], crops.matrices[i], float(det.scores[t.det_index]))
                    self._last_seen[t.id] = frame.index
            self._pending.append(_Pending(frame, people))
            out = []
            while self._pending and self._pending[0].frame.index <= frame.index - self.delay:
                out.append(self._emit(self._pending.popleft()))
            return out
        # single-image models: estimate the matched tracks now
        for t in matched:
            people[t.id] = (det.boxes[t.det_index], None, float(det.scores[t.det_index]))
            self._last_seen[t.id] = frame.index
        return [self._emit(_Pending(frame, people))]

    def _process_whole_frame(self, frame: Frame) -> list[FrameResult]:
        """A whole-frame model: the frame stage once on the letterboxed frame, its memory into the
        stream's ring; frames whose window is complete are emitted."""
        est = self.estimator
        with self.timer("frame stage"):
            inp: FrameInput = est.prepare_frame(frame.image)
            memory = est.run_frame(inp)
        self.buffers.push(frame.index, {k: v[0] for k, v in memory.items()})
        self._pending.append(_Pending(frame, {}, inp.matrix))
        out = []
        while self._pending and self._pending[0].frame.index <= frame.index - self.delay:
            out.append(self._emit_whole_frame(self._pending.popleft()))
        return out

    def _emit_whole_frame(self, pending: _Pending) -> FrameResult:
        frame, est = pending.frame, self.estimator
        with self.timer("temporal stage"):
            outputs = est.run_temporal(self.buffers.window_batch([frame.index]))
        with self.timer("decode"):
            found = est.decode_people(outputs, pending.letterbox)
        with self.timer("track"):
            kps = np.concatenate([found.keypoints, found.scores[..., None]], -1)
            self.tracker.update(found.boxes, found.person_scores, kps, frame=frame.index)
            ids = [-1] * len(found)
            for t in self.tracker.tracks:
                if t.det_index >= 0:
                    ids[t.det_index] = t.id
            if self.smoother is not None:
                for tid in self.tracker.dead:
                    self.smoother.drop(tid)
        poses = est.poses(found, ids)
        if self.smoother is not None:
            for p in poses:
                if p.track_id >= 0:
                    p.keypoints = self.smoother(
                        p.track_id, p.keypoints, frame.timestamp, scores=p.scores, box=p.box
                    )
        return FrameResult(
            frame.index, frame.timestamp, frame.image, poses, dict(self.timer.ms), self.fps.tick()
        )

    def flush(self) -> list[FrameResult]:
        """Emit the frames still waiting for look-ahead (end of a file); windows clamp at the clip end."""
        emit = self._emit_whole_frame if self.whole_frame else self._emit
        out = [emit(self._pending.popleft()) for _ in range(len(self._pending))]
        if self.buffers is not None:
            self.buffers.clear()
        return out

    def _emit(self, pending: _Pending) -> FrameResult:
        frame = pending.frame
        # offline, a track confirmed after this frame still gets its earlier (delayed) frames
        ids = [tid for tid in pending.people if tid in self._confirmed]
        poses: list[Pose] = []
        if ids:
            est = self.estimator
            boxes = np.stack([pending.people[i][0] for i in ids]).astype(np.float32)
            if est.is_temporal:
                with self.timer("temporal stage"):
                    windows = self.buffers.window_batch([(tid, frame.index) for tid in ids])
                    outputs = est.run_temporal(windows)
                mats = np.stack([pending.people[i][1] for i in ids])
            else:
                with self.timer("crops"):
                    crops = est.prepare(frame.image, boxes, reuse=True)
                with self.timer("model"):
                    outputs = est.run_crops(crops)
                mats = crops.matrices
            with self.timer("decode"):
                kp, sc = est.decode(outputs, mats)
            for i, tid in enumerate(ids):
                k = kp[i]
                if self.smoother is not None:
                    k = self.smoother(tid, k, frame.timestamp, scores=sc[i], box=boxes[i])
                poses.append(Pose(boxes[i], k, sc[i], tid, pending.people[tid][2], layout=est.layout))
            live = {t.id for t in self.tracker.tracks}
            for p in poses:  # keypoints for OKS matching in the next update
                if p.track_id in live:
                    kps = np.concatenate([p.keypoints, p.scores[:, None]], 1)
                    self.tracker.set_keypoints(p.track_id, kps, frame=frame.index)
        if self.detect_every > 1:
            self._observe(poses, frame.index)
        self._release(frame.index)
        return FrameResult(
            frame.index, frame.timestamp, frame.image, poses, dict(self.timer.ms), self.fps.tick()
        )

    def _observe(self, poses: list[Pose], index: int) -> None:
        """The boxes to serve until the next detection: every track matched on the newest frame, at its
        box moved on by its velocity (the detector's kind of box, so the next detection matches it),
        carrying its pose of frame ``index`` moved on the same way for OKS matching (joints scored 0
        where it has none yet: tentative tracks match by IoU)."""
        nxt = self.tracker.frame + 1  # the frame served next
        joints = len(self.estimator.layout)
        pose_of = {p.track_id: p for p in poses}
        boxes, scores, kps = [], [], []
        for t in self.tracker.tracks:
            if t.det_index < 0:
                continue
            box = t.predicted_box(nxt)
            kp = np.zeros((joints, 3))
            p = pose_of.get(t.id)
            if p is not None:
                v = t.velocity
                kp[:, :2] = p.keypoints + np.array([(v[0] + v[2]) / 2, (v[1] + v[3]) / 2]) * (nxt - index)
                kp[:, 2] = p.scores
                ok = kp[:, 2] >= FOLLOW_MIN_SCORE
                if ok.sum() >= 3:  # the box goes where the pose went, at the size the detector gave it
                    centre = (kp[ok, :2].min(0) + kp[ok, :2].max(0)) / 2
                    half = (box[2:] - box[:2]) / 2
                    box = np.concatenate([centre - half, centre + half])
            boxes.append(box)
            scores.append(t.score)
            kps.append(kp)
        self._follow = (
            Detections(
                np.asarray(boxes, np.float32), np.asarray(scores, np.float32), np.asarray(kps, np.float32)
            )
            if boxes
            else Detections.empty()
        )

    def _release(self, emitted: int) -> None:
        """Free the buffers and smoother state of dead tracks whose last frame has been emitted."""
        for tid in [t for t in self._dead if self._last_seen.get(t, -1) <= emitted]:
            self._dead.discard(tid)
            self._confirmed.discard(tid)
            self._last_seen.pop(tid, None)
            if self.buffers is not None:
                self.buffers.drop(tid)
            if self.smoother is not None:
                self.smoother.drop(tid)

    # -- convenience -----------------------------------------------------------------------------
    def run(
        self,
        source,
        video_out: str | os.PathLike | None = None,
        jsonl_out: str | os.PathLike | None = None,
        draw: bool = True,
        overlay: bool | None = None,
        max_frames: int | None = None,
        **source_kw,
    ) -> Iterator[FrameResult]:
        """Run over ``source`` (anything ``open_source`` takes), write the sinks, yield the results.

        ``overlay``: the FPS/timing panel on drawn frames. Default: on for a live source (someone is
        watching the speed), off when writing a file's video (the panel covered a person in 480x360
        footage, and a recording is for the poses)."""
        src = source if isinstance(source, Source) else open_source(source, **source_kw)
        mode = self.requested_mode if self.requested_mode != "auto" else ("online" if src.live else "offline")
        self.reset(mode)
        if overlay is None:
            overlay = bool(src.live)
        video = VideoSink(video_out, fps=src.fps) if video_out else None
        jsonl = JsonlSink(jsonl_out) if jsonl_out else None
        frames = src if max_frames is None else itertools.islice(src, max_frames)
        ahead = _DetectAhead(frames, self._detect, self.detect_ahead) if self.concurrent_detection else None
        try:
            if ahead is None:
                for frame in frames:
                    for res in self.process(frame):
                        yield self._sink(res, video, jsonl, draw, overlay)
            else:
                items = iter(ahead)
                while True:
                    t0 = time.perf_counter()
                    item = next(items, None)
                    if item is None:
                        break
                    frame, det, ms = item
                    # the loop's "detect" is what it waited for; the detector's own time, spent beside the
                    # pose stages, is detector_timer's
                    self.timer.add("detect", (time.perf_counter() - t0) * 1e3)
                    self.detector_timer.add("detect", ms)
                    for res in self._process_detected(frame, det):
                        yield self._sink(res, video, jsonl, draw, overlay)
            for res in self.flush():
                yield self._sink(res, video, jsonl, draw, overlay)
        finally:
            if ahead is not None:
                ahead.close()  # before the source closes: the thread may be reading it
            src.close()
            if video is not None:
                video.close()
            if jsonl is not None:
                jsonl.close()

    def _sink(self, res: FrameResult, video, jsonl, draw: bool, overlay: bool) -> FrameResult:
        if jsonl is not None:
            jsonl.write(res.index, res.poses, time=res.timestamp)
        if video is not None or draw:
            canvas = res.image.copy()
            draw_poses(canvas, res.poses, self.estimator.layout)
            if overlay:
                draw_overlay(canvas, timing_lines(res.fps, res.timings))
            res.image = canvas
        if video is not None:
            video.write(res.image)
        return res

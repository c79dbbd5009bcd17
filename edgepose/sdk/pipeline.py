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
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from .detectors import ReusePoses, make_detector
from .drawing import draw_overlay, draw_poses, timing_lines
from .estimator import FrameInput, PoseEstimator
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
    ``PoseSmoother``.
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
    ):
        self.estimator = (
            estimator if isinstance(estimator, PoseEstimator) else PoseEstimator(estimator, device)
        )
        self.whole_frame = bool(getattr(self.estimator, "is_whole_frame", False))
        self.detector: Callable[..., Detections] | None = None
        if not self.whole_frame:
            if detector is None:
                raise ValueError(
                    f"{self.estimator.name} is a top-down model (it takes person crops): it needs a person "
                    "detector; pass detector='auto' (or a KIND of edgepose.sdk.DETECTORS, or a callable)"
                )
            det = make_detector(detector)
            self.detector = ReusePoses(det, detect_every) if detect_every > 1 else det
        self.tracker = tracker or Tracker(sigmas=self.estimator.layout.sigmas)
        if mode not in ("auto", "online", "offline"):
            raise ValueError(f"mode must be 'auto', 'online' or 'offline', got {mode!r}")
        self.requested_mode = mode
        self.smoother = (PoseSmoother() if smoothing else None) if isinstance(smoothing, bool) else smoothing
        self.min_box_score = float(min_box_score)
        self.timer = StageTimer()
        self.fps = FpsMeter()
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

    # -- the loop --------------------------------------------------------------------------------
    def process(self, frame: Frame) -> list[FrameResult]:
        """Take one frame; return the frame results now complete (offline: the frame ``delay`` back)."""
        if self.whole_frame:
            return self._process_whole_frame(frame)
        t_total = self.timer
        img = frame.image
        with t_total("detect"):
            det = self.detector(img, frame.index)
            if self.min_box_score > 0 and len(det):
                keep = det.scores >= self.min_box_score
                det = Detections(
                    det.boxes[keep], det.scores[keep], None if det.keypoints is None else det.keypoints[keep]
                )
        with t_total("track"):
            self.tracker.update(det.boxes, det.scores, det.keypoints, frame=frame.index)
            matched = [t for t in self.tracker.tracks if t.det_index >= 0]
            self._dead.update(self.tracker.dead)
            self._confirmed.update(t.id for t in self.tracker.tracks if t.confirmed)
        people: dict[int, tuple[np.ndarray, np.ndarray, float]] = {}
        if self.estimator.is_temporal:
            if matched:
                with t_total("frame stage"):
                    boxes = np.stack([det.boxes[t.det_index] for t in matched])
                    crops = self.estimator.prepare(img, boxes)
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
                with self.timer("model"):
                    crops = est.prepare(frame.image, boxes)
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
            if isinstance(self.detector, ReusePoses):
                self._observe(poses, frame.index)
        elif isinstance(self.detector, ReusePoses):
            self.detector.observe(np.zeros((0, len(self.estimator.layout), 3), np.float32))
        self._release(frame.index)
        return FrameResult(
            frame.index, frame.timestamp, frame.image, poses, dict(self.timer.ms), self.fps.tick()
        )

    def _observe(self, poses: list[Pose], index: int) -> None:
        """Feed ``ReusePoses`` with these poses moved on by each track's velocity to the newest frame."""
        if not poses:
            self.detector.observe(np.zeros((0, len(self.estimator.layout), 3), np.float32))
            return
        vel = {t.id: t.velocity for t in self.tracker.tracks}
        lag = self.tracker.frame - index + 1  # the frame ReusePoses will serve next
        kps = []
        for p in poses:
            v = vel.get(p.track_id, np.zeros(4))
            shift = np.array([(v[0] + v[2]) / 2, (v[1] + v[3]) / 2]) * lag
            kps.append(np.concatenate([p.keypoints + shift, p.scores[:, None]], 1))
        self.detector.observe(np.stack(kps).astype(np.float32))

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
        try:
            for count, frame in enumerate(src, 1):
                for res in self.process(frame):
                    yield self._sink(res, video, jsonl, draw, overlay)
                if max_frames is not None and count >= max_frames:
                    break
            for res in self.flush():
                yield self._sink(res, video, jsonl, draw, overlay)
        finally:
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

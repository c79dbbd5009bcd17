"""The on-device SDK: detectors, tracker, per-track and per-stream ring buffers, smoothing, sources, sinks,
drawing; top-down (person crops) and whole-frame estimators behind ``PoseEstimator``.

Pure numpy + OpenCV (no torch): see DESIGN.md §1 for how the parts form the loop
video -> detector -> tracker -> crop -> frame stage -> ring buffer -> temporal stage -> smooth.
"""

from .detectors import (
    DETECTORS,
    GivenBoxes,
    HogDetector,
    OnnxDetector,
    ReusePoses,
    boxes_from_poses,
    letterbox,
    make_detector,
    nms,
)
from .drawing import color_for, draw_detections, draw_overlay, draw_poses, draw_skeleton, timing_lines
from .estimator import (
    STAGE_PLANS,
    Crops,
    FrameInput,
    FramePoses,
    PoseEstimator,
    TopDownEstimator,
    WholeFrameEstimator,
    letterbox_matrix,
)
from .pipeline import FrameResult, VideoPipeline
from .results import Results, save_all
from .ring_buffer import RingBuffer, StreamBuffer, TrackBuffers, capacity_for, delay_for
from .sinks import JsonlSink, VideoSink, open_sink, read_jsonl
from .smoothing import OneEuroFilter, PoseSmoother
from .sources import (
    CaptureSource,
    ImageFolderSource,
    IterableSource,
    Source,
    VideoFileSource,
    gstreamer_available,
    open_source,
)
from .timing import FpsMeter, StageTimer
from .tracker import Track, Tracker, iou_matrix, oks_matrix
from .types import Detections, Frame, Pose

__all__ = [
    "DETECTORS",
    "STAGE_PLANS",
    "CaptureSource",
    "Crops",
    "Detections",
    "FpsMeter",
    "Frame",
    "FrameInput",
    "FramePoses",
    "FrameResult",
    "GivenBoxes",
    "HogDetector",
    "ImageFolderSource",
    "IterableSource",
    "JsonlSink",
    "OneEuroFilter",
    "OnnxDetector",
    "Pose",
    "PoseEstimator",
    "PoseSmoother",
    "Results",
    "ReusePoses",
    "RingBuffer",
    "Source",
    "StageTimer",
    "StreamBuffer",
    "TopDownEstimator",
    "Track",
    "TrackBuffers",
    "Tracker",
    "VideoFileSource",
    "VideoPipeline",
    "VideoSink",
    "WholeFrameEstimator",
    "boxes_from_poses",
    "capacity_for",
    "color_for",
    "delay_for",
    "draw_detections",
    "draw_overlay",
    "draw_poses",
    "draw_skeleton",
    "gstreamer_available",
    "iou_matrix",
    "letterbox",
    "letterbox_matrix",
    "make_detector",
    "nms",
    "oks_matrix",
    "open_sink",
    "open_source",
    "read_jsonl",
    "save_all",
    "timing_lines",
]

"""Clip windows: the frames a temporal model sees around the current one.

Offsets follow the papers: (-1, 0, 1) for DSTA and TAR-ViTPose with two
auxiliary frames, (-2, -1, 0, 1, 2) with four, (-2, -1, 0) for our causal
online mode. Near the ends of a video the index is clamped into the video's
frame range, so the first frame stands in for its missing predecessors and the
last for its successors: DCPose/DSTA's loader does the same
(``max(idx - 1, first)``, ``min(idx + 1, last)``), and the SDK's ring buffer
repeats the edge frame the same way.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .records import FrameRecord, VideoRecord

PAPER_OFFSETS = {
    "single": (0,),
    "aux2": (-1, 0, 1),
    "aux4": (-2, -1, 0, 1, 2),
    "online": (-2, -1, 0),
}


def check_offsets(offsets: Sequence[int]) -> tuple[int, ...]:
    offs = tuple(int(o) for o in offsets)
    if 0 not in offs:
        raise ValueError(f"frame offsets {offs} must contain 0 (the current frame)")
    if list(offs) != sorted(set(offs)):
        raise ValueError(f"frame offsets {offs} must be strictly ascending (time order)")
    return offs


def clip_indices(index: int, num_frames: int, offsets: Sequence[int]) -> np.ndarray:
    """Frame indices for a window around ``index``, clamped into [0, num_frames - 1]."""
    if num_frames <= 0:
        raise ValueError("a clip needs a video with at least one frame")
    if not 0 <= index < num_frames:
        raise IndexError(f"frame index {index} is outside the video's {num_frames} frames")
    return np.clip(index + np.asarray(check_offsets(offsets)), 0, num_frames - 1)


def sample_clip(video: VideoRecord, index: int, offsets: Sequence[int]) -> list[FrameRecord]:
    """The frame records of the window around ``video.frames[index]``, in offset order."""
    return [video.frames[i] for i in clip_indices(index, len(video.frames), offsets)]


def iter_clips(videos: Sequence[VideoRecord], offsets: Sequence[int], labeled_only: bool = True):
    """Yield (video, index, clip) for every (labelled) frame of every video."""
    for video in videos:
        for frame in video.frames:
            if frame.is_labeled or not labeled_only:
                yield video, frame.frame_index, sample_clip(video, frame.frame_index, offsets)

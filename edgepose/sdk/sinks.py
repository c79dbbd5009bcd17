"""Output sinks: annotated video and JSON lines, both safe to interrupt.

``VideoSink`` writes to a hidden temporary file beside the target and renames
it on ``close``, so a reader never sees a half-written video under the final
name. The codec follows the suffix (``VIDEO_CODECS``); these are the pairs that
OpenCV's pip wheels write reliably. Frames of a different size than the first
are resized (OpenCV's writer would otherwise drop them silently).

``JsonlSink`` writes one JSON object per person per frame and flushes after
every frame, so an interrupted run keeps every completed frame and each line
parses on its own::

    {"frame": 12, "time": 0.4, "track_id": 3, "box": [x1, y1, x2, y2], "box_score": 0.9,
     "keypoints": [[x, y, score], ...]}
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import cv2
import numpy as np

from .types import Pose

log = logging.getLogger("edgepose.sdk.sinks")

VIDEO_CODECS: dict[str, str] = {".mp4": "mp4v", ".avi": "MJPG"}


class VideoSink:
    """Annotated frames to ``.mp4`` (MPEG-4 Part 2, ``mp4v``) or ``.avi`` (Motion-JPEG)."""

    def __init__(self, path: str | os.PathLike, fps: float = 30.0, size: tuple[int, int] | None = None):
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if suffix not in VIDEO_CODECS:
            raise ValueError(
                f"cannot write video {str(self.path)!r}: unknown suffix {suffix or '(none)'}; "
                "use one of " + ", ".join(f"{k} ({v})" for k, v in VIDEO_CODECS.items())
            )
        if not fps or fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.codec = VIDEO_CODECS[suffix]
        self.fps = float(fps)
        self.size = tuple(size) if size else None  # (W, H)
        self.frames = 0
        self._tmp = self.path.with_name(f".{self.path.stem}.partial{suffix}")
        self._writer = None
        self._warned_resize = False
        self.closed = False
        if self.size:
            self._open()

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        w = cv2.VideoWriter(str(self._tmp), cv2.VideoWriter_fourcc(*self.codec), self.fps, self.size)
        if not w.isOpened():
            w.release()
            with contextlib.suppress(FileNotFoundError):
                self._tmp.unlink()
            raise RuntimeError(
                f"OpenCV cannot open a {self.codec} writer for {str(self.path)!r} at {self.size} "
                f"(check the folder is writable; this OpenCV build may lack the codec)"
            )
        self._writer = w

    def write(self, image: np.ndarray) -> None:
        if self.closed:
            raise RuntimeError(f"video sink {str(self.path)!r} is closed")
        if not (
            isinstance(image, np.ndarray)
            and image.dtype == np.uint8
            and image.ndim == 3
            and image.shape[2] == 3
        ):
            raise ValueError(
                f"VideoSink.write expects an (H, W, 3) uint8 BGR image, got {getattr(image, 'shape', image)}"
            )
        if self._writer is None:
            self.size = (image.shape[1], image.shape[0])
            self._open()
        if (image.shape[1], image.shape[0]) != self.size:
            if not self._warned_resize:
                log.warning(
                    "%s: frame size %dx%d differs from %dx%d; resizing",
                    self.path,
                    image.shape[1],
                    image.shape[0],
                    *self.size,
                )
                self._warned_resize = True
            image = cv2.resize(image, self.size, interpolation=cv2.INTER_AREA)
        self._writer.write(np.ascontiguousarray(image))
        self.frames += 1

    def close(self) -> None:
        """Finish the file and move it to its name; with no frames written, no file is left."""
        if self.closed:
            return
        self.closed = True
        if self._writer is None:
            log.warning("%s: no frames were written; no video created", self.path)
            return
        self._writer.release()
        self._writer = None
        if self.frames == 0:
            with contextlib.suppress(FileNotFoundError):
                self._tmp.unlink()
            log.warning("%s: no frames were written; no video created", self.path)
            return
        os.replace(self._tmp, self.path)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):  # a sink dropped without close() still finalises its file
        with contextlib.suppress(Exception):
            self.close()


def _finite(v):
    """NaN/Inf -> None (JSON null) through lists and dicts, so every line stays valid JSON."""
    if isinstance(v, float) or isinstance(v, np.floating):
        return float(v) if np.isfinite(v) else None
    if isinstance(v, (list, tuple)):
        return [_finite(x) for x in v]
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    return v


def _record(p, frame: int, time: float | None) -> dict:
    if isinstance(p, Pose):
        return p.to_dict(frame, time)
    if isinstance(p, Mapping):
        rec = {"frame": int(frame)}
        if time is not None:
            rec["time"] = round(float(time), 4)
        for k, v in p.items():
            rec[k] = _finite(v.tolist() if isinstance(v, np.ndarray) else v)
        return rec
    raise TypeError(f"JsonlSink writes Pose objects or dicts, got {type(p).__name__}")


class JsonlSink:
    """One JSON line per person per frame (see the module docstring for the fields)."""

    def __init__(self, path: str | os.PathLike, append: bool = False):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # A long-lived handle, closed by close()/__exit__/__del__.
        self._f = open(self.path, "a" if append else "w", encoding="utf-8")  # noqa: SIM115
        self.lines = 0
        self.closed = False

    def write(self, frame: int, poses: Iterable, time: float | None = None) -> None:
        """Write every pose of ``frame``; the frame's lines go out in one write, then flush."""
        if self.closed:
            raise RuntimeError(f"JSON lines sink {str(self.path)!r} is closed")
        lines = [json.dumps(_record(p, frame, time), separators=(",", ":"), allow_nan=False) for p in poses]
        if lines:
            self._f.write("\n".join(lines) + "\n")
            self._f.flush()
            self.lines += len(lines)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            self._f.flush()
            os.fsync(self._f.fileno())
        finally:
            self._f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        with contextlib.suppress(Exception):
            self.close()


def read_jsonl(path: str | os.PathLike) -> Iterator[dict]:
    """Records of a JSON-lines file; a malformed line raises naming its line number."""
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as e:
                    raise ValueError(f"{path}:{n}: invalid JSON ({e.msg})") from None


SINKS: dict[str, type] = {**{s: VideoSink for s in VIDEO_CODECS}, ".jsonl": JsonlSink}


def open_sink(path: str | os.PathLike, **kw):
    """A sink chosen by suffix: ``.mp4``/``.avi`` video, ``.jsonl`` JSON lines."""
    suffix = Path(path).suffix.lower()
    cls = SINKS.get(suffix)
    if cls is None:
        raise ValueError(
            f"no sink for {str(path)!r}: suffix {suffix or '(none)'}; use one of {sorted(SINKS)}"
        )
    return cls(path, **kw)

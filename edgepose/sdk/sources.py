"""Frame sources: video files, cameras, network/GStreamer streams, image folders, Python iterables.

Each source is an iterable of ``Frame(index, image, timestamp)`` with BGR uint8
images. A long-running pipeline must not die because one frame is bad, so:

* an undecodable frame is logged and skipped; the next frame keeps its true
  ``index`` when the container says where it is, so the gap is visible to the
  temporal window (which clamps over it);
* a camera or stream that stops delivering is retried, then reopened with
  backoff a bounded number of times; when that fails the stream ends with an
  error in the log (``source.error``), not an exception in the loop;
* the end of a file ends the iteration cleanly.

``open_source`` picks the kind from what it is given, by the table
``SOURCE_KINDS`` (first match wins). RTSP/HTTP URLs open with OpenCV's FFmpeg
backend, which pip wheels include; GStreamer pipeline strings (``... ! appsink``)
need an OpenCV built with GStreamer (JetPack's is; pip wheels are not).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import cv2
import numpy as np

from .types import Frame

log = logging.getLogger("edgepose.sdk.sources")

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
STREAM_PREFIXES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://")


def gstreamer_available() -> bool:
    """Whether this OpenCV build has the GStreamer video I/O backend."""
    for line in cv2.getBuildInformation().splitlines():
        if line.strip().startswith("GStreamer:"):
            return "YES" in line.split(":", 1)[1]
    return False


def _valid_image(img) -> bool:
    return (
        isinstance(img, np.ndarray)
        and img.dtype == np.uint8
        and img.ndim == 3
        and img.shape[2] == 3
        and img.shape[0] > 0
        and img.shape[1] > 0
    )


class Source:
    """Common behaviour: iteration, ``close``, context manager, skip counting."""

    name: str = ""
    fps: float = 30.0
    live: bool = False

    def __init__(self):
        self.skipped = 0  # frames lost: undecodable, skipped, or missing from a file (see VideoFileSource)
        self.gaps: list[tuple[int, int]] = []  # (first lost index, how many) where the container placed them
        self.error: str | None = None  # why a live stream ended early, if it did

    def __iter__(self) -> Iterator[Frame]:  # pragma: no cover - abstract
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} fps={self.fps:g}{' live' if self.live else ''}>"


class VideoFileSource(Source):
    """A video file decoded by OpenCV (FFmpeg). Corrupt frames are skipped; the end ends cleanly.

    ``max_failures`` consecutive failed reads end the file: a damaged tail and
    the true end look the same to OpenCV, and the frame count in the header may
    be wrong, so the end is decided by reads, not by the count.
    """

    def __init__(
        self, path: str | os.PathLike, max_failures: int = 25, open_capture: Callable = cv2.VideoCapture
    ):
        super().__init__()
        p = Path(path)
        if not p.exists():
            raise FileNotFoundError(f"video file {str(p)!r} does not exist")
        if not p.is_file():
            raise ValueError(f"{str(p)!r} is not a file (for a folder of images use ImageFolderSource)")
        self.path = p
        self.name = str(p)
        self.max_failures = int(max_failures)
        self._open_capture = open_capture
        cap = self._open()
        self.fps = float(cap.get(cv2.CAP_PROP_FPS)) or 30.0
        if not np.isfinite(self.fps) or self.fps <= 0 or self.fps > 1000:
            self.fps = 30.0
        count = cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0
        # a damaged header gives nonsense (negative, or more frames than 24 h at this rate): unknown
        self.frame_count = int(count) if np.isfinite(count) and 0 < count <= self.fps * 86400 else 0
        if not self.frame_count:
            log.warning(
                "%s: the header gives no usable frame count (%s): frames lost at the start or the end "
                "cannot be counted",
                self.name,
                f"{count:g}" if np.isfinite(count) else count,
            )
        self.size = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        cap.release()

    def _open(self):
        cap = self._open_capture(str(self.path))
        if not cap.isOpened():
            raise ValueError(
                f"OpenCV cannot open {self.name!r} as a video (unknown container/codec or not a video); "
                "check it plays with ffprobe, or convert it to .mp4 (H.264/MPEG-4) or MJPEG .avi"
            )
        return cap

    def __iter__(self) -> Iterator[Frame]:
        cap = self._open()
        self._cap = cap
        last = -1
        delivered = 0
        fails = 0
        try:
            while True:
                ok, img = cap.read()
                if ok and _valid_image(img):
                    if fails:  # a bad run followed by a good frame: those frames were undecodable
                        self.skipped += fails
                        log.warning(
                            "%s: skipped %d undecodable frame(s) after frame %d", self.name, fails, last
                        )
                        fails = 0
                    msec = cap.get(cv2.CAP_PROP_POS_MSEC)
                    # The container's timestamp (pts) places a frame that follows a lost stretch; else count.
                    idx = round(msec * self.fps / 1000.0) if msec and msec > 0 else last + 1
                    idx = max(idx, last + 1)
                    if idx > last + 1:  # frames the container says are missing
                        self.gaps.append((last + 1, idx - last - 1))
                        log.warning(
                            "%s: frames %d-%d lost (undecodable); the next frame keeps its true index %d",
                            self.name,
                            last + 1,
                            idx - 1,
                            idx,
                        )
                    last = idx
                    delivered += 1
                    stamp = msec / 1000.0 if msec and msec > 0 else idx / self.fps
                    yield Frame(idx, img, stamp)
                    continue
                fails += 1
                if fails > self.max_failures:
                    break
        finally:
            cap.release()
            self._cap = None
        placed = sum(n for _, n in self.gaps)
        self.skipped = max(self.skipped, placed)
        if self.frame_count and delivered + self.skipped < self.frame_count and last + 1 < self.frame_count:
            # the container gave no timestamp across the loss (AVI): the count is known, the place is not
            unplaced = self.frame_count - max(delivered + self.skipped, last + 1)
            if unplaced > 0:
                self.skipped += unplaced
                log.warning(
                    "%s: %d of the %d frames its header announces were lost without timestamps to place them "
                    "(this container has none, or the header count is wrong): indices after the first damage "
                    "may be up to %d too low; re-mux to .mp4 for exact indices",
                    self.name,
                    unplaced,
                    self.frame_count,
                    unplaced,
                )
        if self.skipped:
            log.warning(
                "%s: %d frame(s) lost in all (%d delivered of %d announced)",
                self.name,
                self.skipped,
                delivered,
                self.frame_count or delivered + self.skipped,
            )

    def close(self) -> None:
        cap = getattr(self, "_cap", None)
        if cap is not None:
            cap.release()


class CaptureSource(Source):
    """A camera (index or device path), an RTSP/HTTP URL, or a GStreamer pipeline: a live stream.

    A failed read is retried; after ``reconnect_after`` consecutive failures the
    capture is reopened, waiting ``backoff`` seconds (doubling, at most 8 s)
    between attempts. After ``max_reconnects`` reopenings in a row that fail or
    deliver no frame, the stream ends and ``error`` says why. Timestamps are wall-clock seconds since the
    first frame; indices count delivered frames.
    """

    def __init__(
        self,
        target: int | str,
        api: int = cv2.CAP_ANY,
        size: tuple[int, int] | None = None,
        fps: float | None = None,
        reconnect_after: int = 10,
        max_reconnects: int = 5,
        backoff: float = 0.5,
        open_capture: Callable = cv2.VideoCapture,
    ):
        super().__init__()
        self.target = target
        self.api = api
        self.name = str(target)
        self.live = True
        self.request_size = size
        self.request_fps = fps
        self.reconnect_after = int(reconnect_after)
        self.max_reconnects = int(max_reconnects)
        self.backoff = float(backoff)
        self._open_capture = open_capture
        self._cap = self._open()
        if self._cap is None:
            raise ValueError(self._cannot_open())
        got = float(self._cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = got if np.isfinite(got) and 0 < got <= 1000 else float(fps or 30.0)
        self.reconnects = 0
        self._fruitless = 0  # reopenings since the last delivered frame

    def _cannot_open(self) -> str:
        hint = (
            "check the camera index (ls /dev/video*), that no other program holds it, and permissions"
            if isinstance(self.target, int)
            else "check the URL/pipeline and that the stream is up"
        )
        return f"cannot open capture {self.name!r}: {hint}"

    def _open(self):
        cap = self._open_capture(self.target, self.api)
        if not cap.isOpened():
            cap.release()
            return None
        if self.request_size:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.request_size[0])
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.request_size[1])
        if self.request_fps:
            cap.set(cv2.CAP_PROP_FPS, self.request_fps)
        return cap

    def _reconnect(self) -> bool:
        wait = self.backoff * 2 ** min(self._fruitless, 4)
        for attempt in range(self._fruitless + 1, self.max_reconnects + 1):
            if self._cap is not None:
                self._cap.release()
                self._cap = None
            log.warning(
                "%s: no frames; reconnecting (attempt %d/%d)", self.name, attempt, self.max_reconnects
            )
            time.sleep(wait)
            wait = min(wait * 2, 8.0)
            self._cap = self._open()
            self._fruitless = attempt  # until a frame arrives, this reopening counts as failed
            if self._cap is not None:
                self.reconnects += 1
                return True
        self.error = f"{self.name}: stream lost; {self.max_reconnects} reconnection attempts failed"
        log.error(self.error)
        return False

    def __iter__(self) -> Iterator[Frame]:
        if self._cap is None and not self._reconnect():
            return
        idx = 0
        t0 = None
        fails = 0
        try:
            while True:
                ok, img = self._cap.read() if self._cap is not None else (False, None)
                if ok and _valid_image(img):
                    fails = 0
                    self._fruitless = 0
                    now = time.monotonic()
                    t0 = now if t0 is None else t0
                    yield Frame(idx, img, now - t0)
                    idx += 1
                    continue
                fails += 1
                self.skipped += 1
                if fails == 1:
                    log.warning("%s: frame read failed; retrying", self.name)
                if fails >= self.reconnect_after:
                    if not self._reconnect():
                        return
                    fails = 0
        finally:
            self.close()

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class ImageFolderSource(Source):
    """Sorted image files of a folder (e.g. PoseTrack's frame folders); unreadable images are skipped."""

    def __init__(self, folder: str | os.PathLike, fps: float = 30.0):
        super().__init__()
        self.folder = Path(folder)
        self.files = sorted(p for p in self.folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.files:
            raise ValueError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in folder {str(self.folder)!r}")
        self.name = str(self.folder)
        self.fps = float(fps)

    def __iter__(self) -> Iterator[Frame]:
        for i, p in enumerate(self.files):
            img = cv2.imread(str(p), cv2.IMREAD_COLOR)
            if not _valid_image(img):
                self.skipped += 1
                log.warning("%s: cannot decode %s; skipped", self.name, p.name)
                continue
            yield Frame(i, img, i / self.fps)


class IterableSource(Source):
    """Frames from any Python iterable/generator of BGR uint8 arrays (or ``Frame`` objects).

    Items that are not (H, W, 3) uint8 images are logged and skipped.
    """

    def __init__(self, frames: Iterable, fps: float = 30.0, name: str = "<frames>"):
        super().__init__()
        self.frames = frames
        self.fps = float(fps)
        self.name = name

    def __iter__(self) -> Iterator[Frame]:
        last = -1
        for i, item in enumerate(self.frames):
            if isinstance(item, Frame):
                if not _valid_image(item.image) or item.index <= last:
                    self.skipped += 1
                    log.warning(
                        "%s: item %d is not a valid frame (index must increase); skipped", self.name, i
                    )
                    continue
                last = item.index
                yield item
                continue
            if not _valid_image(item):
                self.skipped += 1
                desc = f"{item.dtype}{item.shape}" if isinstance(item, np.ndarray) else type(item).__name__
                log.warning("%s: item %d is %s, not an (H, W, 3) uint8 image; skipped", self.name, i, desc)
                continue
            last = i
            yield Frame(i, item, i / self.fps)


def _is_gstreamer(src) -> bool:
    return isinstance(src, str) and "!" in src and "appsink" in src


def _open_gstreamer(src: str, **kw) -> Source:
    if not gstreamer_available():
        raise RuntimeError(
            "this OpenCV build has no GStreamer support (pip wheels never do), so it cannot open the "
            f"pipeline {src!r}: use the system OpenCV with GStreamer (e.g. JetPack's python3-opencv, "
            "or build OpenCV with -DWITH_GSTREAMER=ON), or open the camera by index (V4L2) or a file"
        )
    return CaptureSource(src, api=cv2.CAP_GSTREAMER, **kw)


def _is_camera(src) -> bool:
    return (
        (isinstance(src, int) and not isinstance(src, bool))
        or (isinstance(src, str) and src.isdigit())
        or (isinstance(src, str) and src.startswith("/dev/video"))
    )


def _open_camera(src, **kw) -> Source:
    target = int(src) if isinstance(src, str) and src.isdigit() else src
    return CaptureSource(target, **kw)


def _is_stream(src) -> bool:
    return isinstance(src, str) and src.lower().startswith(STREAM_PREFIXES)


def _open_stream(src: str, **kw) -> Source:
    return CaptureSource(src, api=cv2.CAP_FFMPEG, **kw)


def _is_folder(src) -> bool:
    return isinstance(src, (str, os.PathLike)) and Path(src).is_dir()


def _is_path(src) -> bool:
    return isinstance(src, (str, os.PathLike))


def _is_iterable(src) -> bool:
    return isinstance(src, Iterable) and not isinstance(src, (str, bytes, os.PathLike))


# (name, predicate, opener): the first predicate that matches opens the source.
SOURCE_KINDS: list[tuple[str, Callable, Callable]] = [
    ("source", lambda s: isinstance(s, Source), lambda s, **kw: s),
    ("gstreamer", _is_gstreamer, _open_gstreamer),
    ("camera", _is_camera, _open_camera),
    ("stream", _is_stream, _open_stream),
    ("folder", _is_folder, lambda s, **kw: ImageFolderSource(s, **kw)),
    ("file", _is_path, lambda s, **kw: VideoFileSource(s, **kw)),
    ("frames", _is_iterable, lambda s, **kw: IterableSource(s, **kw)),
]


def open_source(src, **kw) -> Source:
    """Open ``src``: a camera index (``0``, ``"0"``, ``/dev/video0``), an RTSP/HTTP URL, a GStreamer
    pipeline ending in ``appsink``, an image folder, a video file, or an iterable of frames.
    Keyword arguments go to that kind's class."""
    for _, matches, opener in SOURCE_KINDS:
        if matches(src):
            return opener(src, **kw)
    raise TypeError(
        f"cannot open {type(src).__name__} {src!r} as a video source; "
        f"kinds: {[k for k, _, _ in SOURCE_KINDS]}"
    )

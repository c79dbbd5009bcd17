"""Person detectors for the top-down pipeline.

Every detector is a callable ``detector(image, frame_index) -> Detections`` on a
BGR uint8 frame, returning xyxy boxes in frame pixels. The table ``DETECTORS``
(read by the Python API, the CLI's ``--detector`` and the examples) names the kinds:

* ``auto`` (the default): the fastest NanoDet configuration that keeps fp32-416's recall
  (``AUTO_DETECTOR``) where its checked file is present, else plain ``nanodet``, else ``hog``.
* ``nanodet``, ``centernet``, ``movenet_multipose``: pretrained models fetched at set-up
  (``edgepose.external``), verified against their own runtime. ``nanodet:int8``,
  ``nanodet:320``, ``nanodet:int8,320``: its int8 PTQ and/or another input size (multiple of 32),
  from files derived locally on first use (``edgepose.external.derived``).
* ``boxes``: boxes the caller already has (``GivenBoxes``: a file of detections, another model).
* ``onnx``: the user's own ONNX detector, in one of two documented output formats
  (see ``OnnxDetector``), with letterboxing handled here.
* ``hog``: OpenCV's HOG people detector, the offline fallback. Slow (hundreds of
  ms per VGA frame) and blind to people under ~100 px, so small frames are
  upscaled. It needs ``cv2.HOGDescriptor``, which OpenCV 5 wheels dropped:
  edgepose pins ``opencv-python-headless<5``.

``ReusePoses`` runs a detector every N frames and, in between, uses boxes made
from the previous frame's poses (``boxes_from_poses``): the detector is usually
the slowest part of the loop, and the poses already say where people are.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import cv2
import numpy as np

from .tracker import iou_matrix
from .types import Detections


@runtime_checkable
class Detector(Protocol):
    def __call__(self, image: np.ndarray, frame_index: int = 0) -> Detections: ...


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Indices kept by greedy non-maximum suppression, highest score first."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        if order.size == 1:
            break
        ious = iou_matrix(boxes[i : i + 1], boxes[order[1:]])[0]
        order = order[1:][ious <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def clip_boxes(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    b = np.asarray(boxes, dtype=np.float32).reshape(-1, 4).copy()
    b[:, [0, 2]] = b[:, [0, 2]].clip(0, width)
    b[:, [1, 3]] = b[:, [1, 3]].clip(0, height)
    return b


# -- caller-supplied boxes -------------------------------------------------------------------------
def _as_detections(rows) -> Detections:
    a = np.asarray(rows, dtype=np.float32)
    if a.size == 0:
        return Detections.empty()
    a = a.reshape(-1, a.shape[-1]) if a.ndim > 1 else a.reshape(1, -1)
    if a.shape[1] not in (4, 5):
        raise ValueError(f"given boxes must be (N, 4) xyxy or (N, 5) xyxy+score, got shape {a.shape}")
    scores = a[:, 4] if a.shape[1] == 5 else np.ones(len(a), np.float32)
    return Detections(a[:, :4], scores)


class GivenBoxes:
    """Boxes supplied by the caller: ``{frame_index: (N, 4|5)}``, a per-frame sequence, or a function.

    A frame with no entry has no detections.
    """

    def __init__(
        self,
        boxes: Mapping[int, np.ndarray] | Sequence[np.ndarray] | Callable[[int], np.ndarray],
        score_threshold: float = 0.0,
    ):
        self.boxes = boxes
        self.score_threshold = float(score_threshold)

    def _rows(self, frame_index: int):
        src = self.boxes
        if callable(src):
            return src(frame_index)
        if isinstance(src, Mapping):
            return src.get(frame_index, ())
        return src[frame_index] if 0 <= frame_index < len(src) else ()

    def __call__(self, image: np.ndarray | None = None, frame_index: int = 0) -> Detections:
        det = _as_detections(self._rows(int(frame_index)))
        keep = det.scores >= self.score_threshold
        return Detections(det.boxes[keep], det.scores[keep])

    @classmethod
    def from_jsonl(cls, path: str | os.PathLike, **kw) -> GivenBoxes:
        """Boxes from a JSON-lines file with ``frame``, ``box`` and optional ``box_score`` per line
        (the format ``JsonlSink`` writes)."""
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"detections file {str(p)!r} does not exist")
        per_frame: dict[int, list] = {}
        with open(p, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                    row = [*map(float, rec["box"]), float(rec.get("box_score", 1.0))]
                    per_frame.setdefault(int(rec["frame"]), []).append(row)
                except (ValueError, KeyError, TypeError) as e:
                    raise ValueError(
                        f"{p}:{n}: not a detection record with 'frame' and 'box' ({e})"
                    ) from None
        return cls({k: np.asarray(v, np.float32) for k, v in per_frame.items()}, **kw)


# -- user ONNX detector ----------------------------------------------------------------------------
def letterbox(image: np.ndarray, size: tuple[int, int], pad_value: int = 114):
    """Resize keeping aspect ratio and pad (centred) to ``size`` = (H, W).

    Returns ``(canvas, scale, (pad_x, pad_y))``; a point maps back as ``(p - pad) / scale``.
    """
    h, w = image.shape[:2]
    H, W = size
    scale = min(W / w, H / h)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    resized = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR if scale > 1 else cv2.INTER_AREA)
    px, py = (W - nw) // 2, (H - nh) // 2
    canvas = np.full((H, W, image.shape[2]), pad_value, dtype=image.dtype)
    canvas[py : py + nh, px : px + nw] = resized
    return canvas, scale, (px, py)


def _decode_boxes(out: np.ndarray, score_threshold: float, person_class: int | None):
    """``(N, 6)`` / ``(1, N, 6)`` rows ``[x1, y1, x2, y2, score, class]`` (or ``(N, 5)`` without class)."""
    a = np.asarray(out, dtype=np.float32)
    if a.ndim == 3 and a.shape[0] == 1:
        a = a[0]
    if a.ndim != 2 or a.shape[1] not in (5, 6):
        raise ValueError(f"'boxes' format expects (N, 6) or (N, 5) rows, got shape {np.shape(out)}")
    keep = a[:, 4] >= score_threshold
    if a.shape[1] == 6 and person_class is not None:
        keep &= np.rint(a[:, 5]) == person_class
    return a[keep, :4], a[keep, 4]


def _decode_yolo(out: np.ndarray, score_threshold: float, person_class: int | None):
    """YOLOv8-style ``(1, 4 + C, A)`` (or ``(1, A, 4 + C)``): cx, cy, w, h then C class scores, no NMS.

    The shorter axis is taken as the channel axis (real heads have far more anchors than classes).
    """
    a = np.asarray(out, dtype=np.float32)
    if a.ndim != 3 or a.shape[0] != 1 or min(a.shape[1:]) < 5:
        raise ValueError(f"'yolo' format expects (1, 4 + classes, anchors), got shape {a.shape}")
    a = a[0]
    if a.shape[0] > a.shape[1]:  # anchors first (the longer axis): transpose to (4 + C, A)
        a = a.T
    cls_scores = a[4:]
    if person_class is None:
        score = cls_scores.max(0)
        keep = score >= score_threshold
    else:
        if person_class >= len(cls_scores):
            raise ValueError(f"person_class {person_class} but the output has {len(cls_scores)} classes")
        score = cls_scores[person_class]
        keep = score >= score_threshold
    cx, cy, w, h = a[:4, keep]
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    return boxes, score[keep]


# name -> (decoder, apply NMS by default)
OUTPUT_FORMATS: dict[str, tuple[Callable, bool]] = {
    "boxes": (_decode_boxes, False),
    "yolo": (_decode_yolo, True),
}


def _guess_format(shape) -> str:
    if shape is not None and len(shape) in (2, 3) and shape[-1] in (5, 6):
        return "boxes"
    if shape is not None and len(shape) == 3:
        return "yolo"
    raise ValueError(
        f"cannot tell the detector's output format from shape {shape}; pass output_format= one of "
        f"{list(OUTPUT_FORMATS)}"
    )


class OnnxDetector:
    """A user-provided ONNX person detector.

    Input: one tensor ``(1, 3, H, W)`` float32 RGB in [0, 1], the frame
    letterboxed to H x W (aspect kept, centred, padded with grey 114).
    ``H, W`` come from the graph, or ``input_size`` when the graph's are dynamic.

    Output (the first output), ``output_format``:

    * ``boxes``: ``(N, 6)`` or ``(1, N, 6)`` rows ``[x1, y1, x2, y2, score, class]`` in
      letterboxed input pixels, after NMS (``(N, 5)`` without class: all persons).
    * ``yolo``: the raw YOLOv8/YOLO11 head ``(1, 4 + C, A)``: ``cx, cy, w, h`` in input pixels
      then C class scores (no objectness; YOLOv5's layout is not supported). ``(1, A, 4 + C)``
      is accepted too: the shorter axis is the channel axis. NMS is applied here.
    * ``auto`` (default): ``boxes`` when the last axis is 5 or 6, else ``yolo``.

    Only ``person_class`` (COCO: 0) is kept; ``None`` keeps every class.
    The session comes from ``edgepose.runtimes.open_session`` (any backend/device it
    supports, ``threads`` intra-op threads) unless one is passed.
    """

    def __init__(
        self,
        path: str | os.PathLike | None = None,
        output_format: str = "auto",
        input_size: tuple[int, int] | None = None,
        score_threshold: float = 0.3,
        nms_threshold: float | None = None,
        person_class: int | None = 0,
        device: str = "auto",
        session=None,
        pad_value: int = 114,
        threads: int | None = None,
    ):
        if session is None:
            if path is None:
                raise ValueError("OnnxDetector needs a model path or an open session")
            from ..runtimes import open_session

            session = open_session(path, device=device, **({"threads": threads} if threads else {}))
        self.session = session
        if len(session.inputs) != 1:
            raise ValueError(
                f"detector must have one image input, {getattr(session, 'path', path)} has "
                f"{[t.name for t in session.inputs]}"
            )
        info = session.inputs[0]
        self.input_name = info.name
        shape = info.shape
        if shape is None or len(shape) != 4 or (shape[1] != 3 and not isinstance(shape[1], str)):
            raise ValueError(f"detector input {info.name!r} must be (1, 3, H, W), got {shape}")
        static = [d for d in shape[2:] if isinstance(d, int)]
        if len(static) == 2:
            self.input_size = (int(shape[2]), int(shape[3]))
            if input_size is not None and tuple(input_size) != self.input_size:
                raise ValueError(
                    f"input_size {tuple(input_size)} but the graph is fixed at {self.input_size}"
                )
        elif input_size is not None:
            self.input_size = (int(input_size[0]), int(input_size[1]))
        else:
            raise ValueError(f"detector input {info.name!r} has dynamic size {shape}: pass input_size=(H, W)")
        if output_format != "auto" and output_format not in OUTPUT_FORMATS:
            raise ValueError(
                f"unknown output_format {output_format!r}; use 'auto' or one of {list(OUTPUT_FORMATS)}"
            )
        self.output_format = output_format
        self.score_threshold = float(score_threshold)
        self.nms_threshold = nms_threshold
        self.person_class = person_class
        self.pad_value = int(pad_value)

    def preprocess(self, image: np.ndarray):
        canvas, scale, pad = letterbox(image, self.input_size, self.pad_value)
        rgb = cv2.cvtColor(canvas, cv2.COLOR_BGR2RGB)
        x = np.ascontiguousarray(rgb.transpose(2, 0, 1)[None], dtype=np.float32) / np.float32(255.0)
        return x, scale, pad

    def __call__(self, image: np.ndarray, frame_index: int = 0) -> Detections:
        x, scale, (px, py) = self.preprocess(image)
        outputs = self.session.run({self.input_name: x})
        out = next(iter(outputs.values()))
        fmt = self.output_format if self.output_format != "auto" else _guess_format(np.shape(out))
        decode, nms_default = OUTPUT_FORMATS[fmt]
        boxes, scores = decode(out, self.score_threshold, self.person_class)
        thr = self.nms_threshold if self.nms_threshold is not None else (0.45 if nms_default else None)
        if thr is not None and len(boxes):
            keep = nms(boxes, scores, thr)
            boxes, scores = boxes[keep], scores[keep]
        boxes = (boxes - np.array([px, py, px, py], np.float32)) / np.float32(scale)
        h, w = image.shape[:2]
        return Detections(clip_boxes(boxes, w, h), scores)


# -- OpenCV HOG fallback ---------------------------------------------------------------------------
class HogDetector:
    """OpenCV's HOG + linear SVM people detector (Dalal-Triggs), the detector that needs no model file.

    Frames shorter than ``min_height`` are upscaled first (the 64x128 window
    misses people under ~100 px). HOG boxes include a margin around the
    person; ``tighten`` (fraction of width, of height, per side) removes it.
    ``score_threshold`` applies to the SVM margin m; the reported score is m / (1 + m), in [0, 1)
    like every other detector's and the keypoints' (a margin of 1.89 was printed beside scores in
    [0, 1]); it keeps the margins' order, so NMS and thresholds on it rank boxes the same way.
    """

    def __init__(
        self,
        min_height: int = 480,
        win_stride: int = 8,
        padding: int = 8,
        scale: float = 1.05,
        hit_threshold: float = 0.0,
        score_threshold: float = 0.3,
        nms_threshold: float = 0.45,
        tighten: tuple[float, float] = (0.1, 0.07),
    ):
        if not hasattr(cv2, "HOGDescriptor"):
            raise RuntimeError(
                f"OpenCV {cv2.__version__} has no cv2.HOGDescriptor (OpenCV 5 wheels removed it): "
                "install 'opencv-python-headless<5', or use an OnnxDetector or GivenBoxes"
            )
        self.hog = cv2.HOGDescriptor()
        self.hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
        self.min_height = int(min_height)
        self.win_stride = (win_stride, win_stride)
        self.padding = (padding, padding)
        self.scale = float(scale)
        self.hit_threshold = float(hit_threshold)
        self.score_threshold = float(score_threshold)
        self.nms_threshold = float(nms_threshold)
        self.tighten = tighten

    def __call__(self, image: np.ndarray, frame_index: int = 0) -> Detections:
        h, w = image.shape[:2]
        up = max(1.0, self.min_height / h)
        img = (
            image
            if up == 1.0
            else cv2.resize(image, (round(w * up), round(h * up)), interpolation=cv2.INTER_LINEAR)
        )
        rects, weights = self.hog.detectMultiScale(
            img,
            hitThreshold=self.hit_threshold,
            winStride=self.win_stride,
            padding=self.padding,
            scale=self.scale,
        )
        if len(rects) == 0:
            return Detections.empty()
        rects = np.asarray(rects, dtype=np.float32).reshape(-1, 4) / np.float32(up)
        scores = np.asarray(weights, dtype=np.float32).reshape(-1)
        keep = scores >= self.score_threshold
        rects, scores = rects[keep], scores[keep]
        tx, ty = self.tighten
        boxes = np.stack(
            [
                rects[:, 0] + tx * rects[:, 2],
                rects[:, 1] + ty * rects[:, 3],
                rects[:, 0] + (1 - tx) * rects[:, 2],
                rects[:, 1] + (1 - ty) * rects[:, 3],
            ],
            axis=1,
        )
        keep = nms(boxes, scores, self.nms_threshold)
        margins = np.maximum(scores[keep], 0.0)
        return Detections(clip_boxes(boxes[keep], w, h), margins / (1.0 + margins))


# -- boxes from the previous poses -----------------------------------------------------------------
def boxes_from_poses(
    keypoints: np.ndarray,
    scores: np.ndarray | None = None,
    min_score: float = 0.3,
    min_joints: int = 3,
    pad: float = 0.1,
    image_size: tuple[int, int] | None = None,
) -> Detections:
    """Person boxes around confident keypoints: (N, J, 2) + scores (N, J), or (N, J, 3).

    Each box is the keypoints' extent grown by ``pad`` of its size on every
    side; poses with fewer than ``min_joints`` joints at ``min_score`` give no
    box. ``image_size`` = (W, H) clips. The box score is the mean confident-joint
    score; the keypoints travel with the detections for OKS matching.
    """
    kp = np.asarray(keypoints, dtype=np.float32)
    if kp.size == 0:
        return Detections.empty()
    if kp.ndim == 2:
        kp = kp[None]
    if scores is None:
        if kp.shape[-1] < 3:
            raise ValueError("pass scores or keypoints with a score column (N, J, 3)")
        sc = kp[..., 2]
    else:
        sc = np.asarray(scores, dtype=np.float32).reshape(kp.shape[:2])
    xy = kp[..., :2]
    boxes, out_scores, out_kp = [], [], []
    for p in range(len(kp)):
        ok = sc[p] >= min_score
        if ok.sum() < min_joints:
            continue
        x1, y1 = xy[p, ok].min(0)
        x2, y2 = xy[p, ok].max(0)
        dw, dh = pad * (x2 - x1), pad * (y2 - y1)
        boxes.append([x1 - dw, y1 - dh, x2 + dw, y2 + dh])
        out_scores.append(float(sc[p, ok].mean()))
        out_kp.append(np.concatenate([xy[p], sc[p][:, None]], axis=1))
    if not boxes:
        return Detections.empty()
    b = np.asarray(boxes, np.float32)
    if image_size is not None:
        b = clip_boxes(b, *image_size)
    return Detections(b, np.asarray(out_scores, np.float32), np.stack(out_kp))


class ReusePoses:
    """Run ``detector`` every ``every`` frames; in between, use boxes from the last observed poses.

    Call ``observe(keypoints, scores)`` with each frame's poses. The detector
    also runs when the previous frame left no usable pose (nobody to follow).
    """

    def __init__(self, detector: Callable[..., Detections], every: int = 5, **box_kw):
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        self.detector = detector
        self.every = int(every)
        self.box_kw = box_kw
        self._last: Detections | None = None
        self._since = 0
        self.ran_detector = False  # whether the last call ran the detector (for timing overlays)

    def observe(self, keypoints: np.ndarray, scores: np.ndarray | None = None) -> None:
        self._last = boxes_from_poses(keypoints, scores, **self.box_kw)

    def __call__(self, image: np.ndarray, frame_index: int = 0) -> Detections:
        due = self._since % self.every == 0
        if due or self._last is None or len(self._last) == 0:
            self._since = 1
            self.ran_detector = True
            return self.detector(image, frame_index)
        self._since += 1
        self.ran_detector = False
        if image is not None:
            h, w = image.shape[:2]
            self._last.boxes = clip_boxes(self._last.boxes, w, h)
        return self._last


# -- the one table of detectors: the Python API, the CLI and the examples all read it ----------------
@dataclass(frozen=True)
class DetectorKind:
    """How to make one kind of detector from ``--detector KIND[:ARG]`` or ``make_detector``."""

    make: Callable[..., Callable[..., Detections]]  # (arg, **options) -> detector
    about: str
    arg: str | None = None  # what KIND:ARG needs after the colon ("[:...]": an optional ARG), or None


def _need(kind: str, arg: str | None, what: str) -> str:
    if not arg:
        raise ValueError(f"detector {kind!r} needs {what}: use '{kind}:{what.split()[-1].upper()}'")
    return arg


def _external(name: str) -> Callable[..., Callable[..., Detections]]:
    def make(arg: str | None = None, **kw):
        from ..external.registry import load_detector, variant_options  # lazy: ONNX Runtime is optional

        return load_detector(name, **{**variant_options(name, arg), **kw})

    return make


def _auto(arg: str | None = None, **kw):
    """``AUTO_DETECTOR``, else plain NanoDet (warning why), else HOG (warning how to get NanoDet)."""
    from ..external.check import ExternalModelError

    errors = []
    for spec in (AUTO_DETECTOR, DEFAULT_DETECTOR):
        kind, _, sarg = spec.partition(":")
        try:
            det = _external(kind)(sarg or None, **kw)
        except (ExternalModelError, ImportError, OSError) as e:
            errors.append(e)
            continue
        if errors:
            warnings.warn(f"running {spec}: {AUTO_DETECTOR} is not available ({errors[0]})", stacklevel=3)
        return det
    warnings.warn(
        f"falling back to the HOG person detector (slow, misses small people): {errors[-1]}", stacklevel=3
    )
    kw.pop("threads", None)  # OpenCV's own pool runs HOG
    return HogDetector(**kw)


def _external_kinds() -> dict[str, DetectorKind]:
    from ..external.registry import DETECTORS as EXTERNAL  # a table of names; loads no runtime

    return {
        n: DetectorKind(_external(n), e.about, None if e.variants is None else "[:fp32|int8,SIZE]")
        for n, e in EXTERNAL.items()
    }


DEFAULT_DETECTOR = "nanodet"  # the model (stills pool it with centernet); video's auto runs AUTO_DETECTOR
# AUTO_DETECTOR: the fastest NanoDet configuration whose recall on the 40 held-out vtest frames is within
# 0.01 of fp32-416's (benchmarks/results/detectors.md, every size x precision interleaved in one run,
# 1 thread): int8-416 found 230 of 256 reference people vs fp32-416's 232 (0.898 vs 0.906) in 0.70x its
# time (42.7 vs 60.7 ms, load 2.7); int8-352 and int8-320 (0.50x, 0.42x) lost 3 and 5 people, fp32-384
# (231) took 0.88x.
AUTO_DETECTOR = "nanodet:int8,416"
DETECTORS: dict[str, DetectorKind] = {
    "auto": DetectorKind(_auto, f"{AUTO_DETECTOR} where fetched, else {DEFAULT_DETECTOR}, else hog (warned)"),
    **_external_kinds(),
    "hog": DetectorKind(
        lambda arg=None, **kw: HogDetector(**kw), "OpenCV HOG people detector (no model file)"
    ),
    "onnx": DetectorKind(
        lambda arg=None, **kw: OnnxDetector(_need("onnx", arg, "your ONNX detector's path"), **kw),
        "your own ONNX detector ('boxes' or YOLO output)",
        "PATH",
    ),
    "boxes": DetectorKind(
        lambda arg=None, **kw: GivenBoxes.from_jsonl(_need("boxes", arg, "a JSON-lines file of boxes"), **kw),
        "boxes from a JSON-lines file ('frame', 'box' per line)",
        "JSONL",
    ),
}


def detector_help() -> str:
    """One line for --help: every kind, with its argument."""
    return " | ".join(
        k + (v.arg if v.arg.startswith("[") else f":{v.arg}") if v.arg else k for k, v in DETECTORS.items()
    )


# kinds that run a runtime session, whose intra-op threads ``make_detector(threads=)`` sets
_SESSION_KINDS = frozenset(k for k in DETECTORS if k not in ("hog", "boxes"))


def make_detector(spec="auto", threads: int | None = None, **kw) -> Callable[..., Detections]:
    """A detector from ``KIND[:ARG]`` of ``DETECTORS``, a path to an ``.onnx`` file, or a ready callable.

    ``threads``: intra-op threads of the detector's runtime session (None: the runtime's default); the
    kinds without one (``hog``, ``boxes``) and ready callables ignore it. ``auto`` falling back to HOG
    ignores it too."""
    if callable(spec) and not isinstance(spec, (str, os.PathLike)):
        return spec
    s = str(spec)
    kind, _, arg = s.partition(":")
    if kind not in DETECTORS and s.lower().endswith(".onnx"):
        kind, arg = "onnx", s
    if kind not in DETECTORS:
        raise ValueError(f"unknown detector {s!r}: use {detector_help()}")
    if threads and kind in _SESSION_KINDS:
        kw["threads"] = int(threads)
    return DETECTORS[kind].make(arg or None, **kw)

"""NanoDet (COCO-80, 416x416) as a person detector, from its ONNX conversion.

The graph ends before decoding: per stride (8, 16, 32) a sigmoid class map ``(1, N, 80)`` and a box
map ``(1, N, 44)``, four distances of 11 bins each (GFL's general distribution: the distance is the
softmax-weighted mean bin, times the stride) from a grid point. Grid points sit at cell centres
(``(x + 0.5) * stride``), as the TF.js model's own decoder (vladmandic/human) places them. Measured
against MoveNet MultiPose's boxes on 10 vtest frames: mean IoU 0.876 with centres, 0.670 with
corners (boxes 4-6 px up-left), so ``center_offset`` stays 0.5.

Frames far from square lose small people in one squashed 416x416 pass, so wide frames are cut into
overlapping square tiles (``tiling.square_tiles``), each detected on its own and merged by NMS.

The network is fully convolutional: ``size`` (a multiple of 32) runs it at another square input
through the free-input copy of the graph, and ``precision="int8"`` through its int8 PTQ copy, both
derived locally (``derived``); the decoder's grids follow ``size``. ``model_file`` picks the file.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..sdk.types import Detections
from . import derived
from .tiling import detect_tiled

MEAN = np.array([103.53, 116.28, 123.675], np.float32)  # BGR
STD = np.array([57.375, 57.12, 58.395], np.float32)
STRIDES = (8, 16, 32)
BINS = 11
PERSON = 0
SIZE = 416  # the converted graph's fixed input
FREE = "nanodet.free.onnx"  # the same graph with a free input size
INT8 = "nanodet.int8.onnx"  # its int8 PTQ (calibrated at SIZE; one file serves every size)
PRECISIONS = ("fp32", "int8")


def check_size(size: int) -> int:
    """``size`` if the three strides tile it exactly (a multiple of 32, at least 64)."""
    size = int(size)
    if size < 64 or size % max(STRIDES):
        raise ValueError(f"NanoDet input size must be a multiple of {max(STRIDES)} >= 64, got {size}")
    return size


def _calibration_feeds(frame: np.ndarray) -> dict:
    return {"input_1:0": NanoDet.blob(cv2.resize(frame, (SIZE, SIZE), interpolation=cv2.INTER_LINEAR))}


def model_file(path, precision: str = "fp32", size: int = SIZE):
    """The graph to open for ``precision`` and ``size``: the checked file itself at fp32-416 (bit for
    bit the converted model), else its derived free-size or int8 copy (built on first use)."""
    if precision not in PRECISIONS:
        raise ValueError(f"NanoDet precision must be one of {PRECISIONS}, got {precision!r}")
    check_size(size)
    if precision == "fp32" and size == SIZE:
        return path
    if precision == "fp32":
        return derived.derived_path(FREE, path, derived.free_input)
    return derived.derived_path(INT8, path, _int8)


def _int8(src, dest) -> dict:
    """PTQ of the fixed graph (where ORT's shape inference follows it), then its input made free."""
    fixed = dest.with_name(f"fixed-{dest.name}")
    facts = derived.int8(src, fixed, _calibration_feeds, f"{SIZE}x{SIZE} squashed")
    facts["recipe"] = f"int8 PTQ at {SIZE}x{SIZE}, then " + derived.free_input(fixed, dest)["recipe"]
    fixed.unlink()
    return facts


class NanoDet:
    """Person boxes from the converted NanoDet; ``session`` is any edgepose runtime session."""

    def __init__(
        self,
        session,
        score_threshold: float = 0.3,
        nms_threshold: float = 0.5,
        tiles: int = 3,
        classes: tuple[int, ...] = (PERSON,),
        center_offset: float = 0.5,
        size: int = SIZE,
        precision: str = "fp32",
    ):
        self.session = session
        self.size = check_size(size)
        self.precision = precision  # what the session runs (model_file chose its graph); for tables
        self.score_threshold = float(score_threshold)
        self.nms_threshold = float(nms_threshold)
        self.tiles = int(tiles)
        self.classes = classes
        self.center_offset = float(center_offset)  # grid point at (x + offset) * stride
        self.input_name = session.inputs[0].name
        names = [o.name for o in session.outputs]
        # with a free input the graph's output shapes are symbolic: read them off one blank pass
        blank = np.zeros((1, 3, self.size, self.size), np.float32)
        shapes = {k: tuple(v.shape) for k, v in session.run({self.input_name: blank}).items()}
        self.levels = []
        for stride in STRIDES:
            n = (self.size // stride) ** 2
            cls = [m for m in names if shapes[m][1] == n and shapes[m][2] == 80]
            reg = [m for m in names if shapes[m][1] == n and shapes[m][2] == 4 * BINS]
            if len(cls) != 1 or len(reg) != 1:
                raise ValueError(f"not a NanoDet graph: no unique class/box maps of {n} cells in {shapes}")
            self.levels.append((stride, cls[0], reg[0]))

    @staticmethod
    def blob(bgr: np.ndarray) -> np.ndarray:
        """(1, 3, H, W) float32 normalised input from a BGR image already at the input size."""
        x = (bgr.astype(np.float32) - MEAN) / STD
        return np.ascontiguousarray(x.transpose(2, 0, 1)[None])

    def decode(self, outputs: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Boxes (N, 4) xyxy in input pixels and scores (N,) of ``classes`` above the threshold."""
        boxes, scores = [], []
        proj = np.arange(BINS, dtype=np.float32)
        for stride, cls_name, reg_name in self.levels:
            cls = outputs[cls_name][0][:, list(self.classes)].max(1)
            keep = np.nonzero(cls >= self.score_threshold)[0]
            if keep.size == 0:
                continue
            g = self.size // stride
            cx = ((keep % g).astype(np.float32) + self.center_offset) * stride
            cy = ((keep // g).astype(np.float32) + self.center_offset) * stride
            logits = outputs[reg_name][0][keep].reshape(-1, 4, BINS)
            e = np.exp(logits - logits.max(-1, keepdims=True))
            dist = (e / e.sum(-1, keepdims=True)) @ proj * stride  # (K, 4): left, top, right, bottom
            boxes.append(np.stack([cx - dist[:, 0], cy - dist[:, 1], cx + dist[:, 2], cy + dist[:, 3]], 1))
            scores.append(cls[keep])
        if not boxes:
            return np.zeros((0, 4), np.float32), np.zeros((0,), np.float32)
        return np.concatenate(boxes).astype(np.float32), np.concatenate(scores).astype(np.float32)

    def _detect(self, patch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h, w = patch.shape[:2]
        img = cv2.resize(patch, (self.size, self.size), interpolation=cv2.INTER_LINEAR)
        boxes, scores = self.decode(self.session.run({self.input_name: self.blob(img)}))
        return boxes * np.array([w, h, w, h], np.float32) / self.size, scores

    def __call__(self, image: np.ndarray, frame_index: int = 0) -> Detections:
        return detect_tiled(self._detect, image, self.tiles, self.score_threshold, self.nms_threshold)

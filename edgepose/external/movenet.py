"""MoveNet (Google, Apache-2.0) from its ONNX conversion: single-person on crops, MultiPose on frames.

SinglePose Lightning (192) and Thunder (256) take one square int32 RGB crop ``(1, S, S, 3)`` in
0-255 and give ``(1, 1, 17, 3)``: y, x, score in [0, 1] of the crop, COCO-17 order. A teacher
places a square crop around each person box (grown by ``padding``, zeros outside the frame) and
maps the keypoints back. MultiPose takes a whole frame (sides divisible by 32) and gives
``(1, 6, 56)``: 17 x (y, x, score), then the box (ymin, xmin, ymax, xmax) and its score.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..core.transforms import crop_matrix, invert_affine, transform_points, warp
from ..sdk.types import Detections

COCO17 = 17


def square_crop_matrix(box_xyxy, size: int, padding: float) -> np.ndarray:
    """Frame -> crop affine of a square crop of side ``padding * max(w, h)`` centred on the box."""
    x1, y1, x2, y2 = [float(v) for v in box_xyxy]
    side = max(x2 - x1, y2 - y1, 1.0) * padding
    return crop_matrix(((x1 + x2) / 2, (y1 + y2) / 2), (side, side), (size, size))


class MoveNetSingle:
    """COCO-17 keypoints (N, 17, 3) x, y, score in frame pixels for each given box."""

    def __init__(self, session, padding: float = 1.25):
        self.session = session
        self.input_name = session.inputs[0].name
        self.size = int(session.inputs[0].shape[1])
        self.padding = float(padding)

    def __call__(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        out = np.zeros((len(boxes), COCO17, 3), np.float32)
        rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        for i, b in enumerate(boxes):
            m = square_crop_matrix(b, self.size, self.padding)
            crop = warp(rgb, m, (self.size, self.size))
            res = next(iter(self.session.run({self.input_name: crop[None].astype(np.int32)}).values()))
            yx = res.reshape(COCO17, 3)
            xy_crop = yx[:, [1, 0]] * self.size
            out[i, :, :2] = transform_points(xy_crop, invert_affine(m))
            out[i, :, 2] = yx[:, 2]
        return out


class MoveNetMulti:
    """Every person of a frame: ``detect(image)`` -> Detections with COCO-17 keypoints attached.

    The frame is letterboxed to ``input_size`` (H, W), both divisible by 32; 384x512 finds the
    small people of a 768x576 street frame that 256 misses.
    """

    def __init__(self, session, input_size: tuple[int, int] = (384, 512), score_threshold: float = 0.2):
        h, w = (int(v) for v in input_size)
        if h % 32 or w % 32:
            raise ValueError(f"MoveNet MultiPose input sides must be divisible by 32, got {input_size}")
        self.session = session
        self.input_name = session.inputs[0].name
        self.input_size = (h, w)
        self.score_threshold = float(score_threshold)

    def detect(self, image: np.ndarray) -> Detections:
        H, W = self.input_size
        h, w = image.shape[:2]
        scale = min(W / w, H / h)
        nw, nh = round(w * scale), round(h * scale)
        canvas = np.zeros((H, W, 3), np.uint8)
        canvas[:nh, :nw] = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA)
        rgb = cv2.cvtColor(canvas, cv2.COLOR_BGR2RGB)[None].astype(np.int32)
        res = next(iter(self.session.run({self.input_name: rgb}).values()))[0]  # (6, 56)
        res = res[res[:, 55] >= self.score_threshold]
        if len(res) == 0:
            return Detections.empty()
        kp = res[:, :51].reshape(-1, COCO17, 3)
        xy = kp[..., [1, 0]] * np.array([W, H], np.float32) / scale
        boxes = res[:, [52, 51, 54, 53]] * np.array([W, H, W, H], np.float32) / scale
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, w)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, h)
        keypoints = np.concatenate([xy, kp[..., 2:3]], -1)
        return Detections(boxes, res[:, 55], keypoints)

    def __call__(self, image: np.ndarray, frame_index: int = 0) -> Detections:
        return self.detect(image)

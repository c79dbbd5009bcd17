"""MediaPipe BlazePose GHUM landmark models (lite / full / heavy, Apache-2.0) as COCO-17 teachers.

Each runs in LiteRT as shipped: input ``(1, 256, 256, 3)`` float RGB in [0, 1]; output ``Identity``
``(1, 195)`` = 39 landmarks x (x, y, z, visibility, presence) in crop pixels, visibility and
presence as logits; ``Identity_1`` the pose-present logit. MediaPipe's own
pipeline crops around its detector's hip-centred, rotated ROI; given only a box, the crop is a
square around the box grown by ``padding``, which the model tolerates for upright people.

``BlazePoseDetector`` is that detector (``pose_detection.tflite`` from the mediapipe wheel), so
BlazePose can also run as MediaPipe deploys it: detector boxes -> rotated ROIs -> ``BlazePose.in_rois``.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..core.transforms import invert_affine, transform_points, warp
from ..sdk.types import Detections
from .movenet import square_crop_matrix

# BlazePose's 33 body landmarks -> COCO-17 (nose, eyes, ears, shoulders, elbows, wrists, hips,
# knees, ankles); BlazePose's eyes are 2 and 5 (1/3 and 4/6 are the inner and outer corners).
TO_COCO17 = np.array([0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28])
SIZE = 256


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -30, 30)))


class BlazePose:
    """COCO-17 keypoints (N, 17, 3) x, y, score in frame pixels for each given box."""

    def __init__(self, session, padding: float = 1.25):
        self.session = session
        self.input_name = session.inputs[0].name
        names = [o.name for o in session.outputs]
        shapes = {o.name: tuple(o.shape) for o in session.outputs}
        land = [n for n in names if shapes[n][-1] == 195]
        flag = [n for n in names if shapes[n] == (1, 1)]
        if len(land) != 1 or len(flag) != 1:
            raise ValueError(f"not a BlazePose landmark model: outputs {shapes}")
        self.landmarks, self.present = land[0], flag[0]
        self.padding = float(padding)

    def __call__(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        return self._run(image, [square_crop_matrix(b, SIZE, self.padding) for b in boxes])

    def in_rois(self, image: np.ndarray, rois: np.ndarray) -> np.ndarray:
        """Keypoints (N, 17, 3) for ``BlazePoseDetector`` ROIs (N, 4): centre x, y, side, angle."""
        return self._run(image, [roi_matrix(r) for r in np.asarray(rois, np.float64).reshape(-1, 4)])

    def _run(self, image: np.ndarray, matrices: list[np.ndarray]) -> np.ndarray:
        out = np.zeros((len(matrices), len(TO_COCO17), 3), np.float32)
        rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        for i, m in enumerate(matrices):
            crop = warp(rgb, m, (SIZE, SIZE)).astype(np.float32)[None] / np.float32(255.0)
            res = self.session.run({self.input_name: crop})
            lm = res[self.landmarks].reshape(39, 5)[TO_COCO17]
            present = float(_sigmoid(np.asarray(res[self.present], np.float64)).reshape(-1)[0])
            out[i, :, :2] = transform_points(lm[:, :2], invert_affine(m))
            out[i, :, 2] = _sigmoid(lm[:, 3]) * present
        return out


def roi_matrix(roi) -> np.ndarray:
    """Frame -> crop affine of a square ROI (centre x, y, side, angle in radians, clockwise in
    image coordinates): the crop's up axis follows the detector's hip -> head direction."""
    cx, cy, side, angle = (float(v) for v in roi)
    c, s, k = np.cos(angle), np.sin(angle), side / SIZE
    # crop -> frame: the crop's x axis is (c, s) and its y axis (-s, c) in the frame, k pixels per crop pixel
    to_frame = np.array([[c * k, -s * k, 0.0], [s * k, c * k, 0.0]])
    to_frame[:, 2] = [cx, cy] - to_frame[:, :2] @ [SIZE / 2, SIZE / 2]
    return invert_affine(to_frame)


DETECTOR_SIZE = 224
# the detector's SSD grid: (stride, anchors per cell); its three 7x7 layers share one grid, 2 anchors each
_GRID = ((8, 2), (16, 2), (32, 6))


def detector_anchors() -> np.ndarray:
    """(2254, 2) anchor centres in [0, 1], in the order of the detector's outputs (row by row)."""
    out = []
    for stride, per_cell in _GRID:
        n = DETECTOR_SIZE // stride
        ys, xs = np.meshgrid((np.arange(n) + 0.5) / n, (np.arange(n) + 0.5) / n, indexing="ij")
        out.append(np.repeat(np.stack([xs.ravel(), ys.ravel()], 1), per_cell, axis=0))
    return np.concatenate(out).astype(np.float32)


class BlazePoseDetector:
    """MediaPipe's BlazePose person detector: ``detect(image)`` -> (Detections, ROIs (N, 4)).

    Input: the frame letterboxed (centred) to 224x224, RGB in [-1, 1]. Output per anchor: a box
    (centre offset, size) and four points (hip centre, a point on the body's circle, shoulder
    centre, a point on the upper body's circle) in 224-pixel units around the anchor, and a score
    logit. Detections are merged score-weighted on their own boxes (around the head; MediaPipe's
    weighted NMS). The ROI the landmark model crops is centred on the hips, 1.25 x the body circle's
    diameter, and turned so the hip -> circle point direction is up; the returned boxes are the ROIs'
    upright extents. ``max_people`` keeps the best (MediaPipe's num_poses). Trained for one near
    person, it scores the most prominent person high and most others below 0.5 (four photos here).
    """

    def __init__(
        self, session, score_threshold: float = 0.5, iou_threshold: float = 0.3, max_people: int = 10
    ):
        self.session = session
        self.input_name = session.inputs[0].name
        shapes = {o.name: tuple(o.shape) for o in session.outputs}
        self.raw = next((n for n, s in shapes.items() if s[-1] == 12), None)
        self.logit = next((n for n, s in shapes.items() if s[-1] == 1), None)
        if self.raw is None or self.logit is None:
            raise ValueError(f"not the BlazePose person detector: outputs {shapes}")
        self.anchors = detector_anchors()
        self.score_threshold, self.iou_threshold = float(score_threshold), float(iou_threshold)
        self.max_people = int(max_people)

    def detect(self, image: np.ndarray) -> tuple[Detections, np.ndarray]:
        h, w = image.shape[:2]
        scale = DETECTOR_SIZE / max(h, w)
        nw, nh = round(w * scale), round(h * scale)
        px, py = (DETECTOR_SIZE - nw) // 2, (DETECTOR_SIZE - nh) // 2
        canvas = np.zeros((DETECTOR_SIZE, DETECTOR_SIZE, 3), np.uint8)
        canvas[py : py + nh, px : px + nw] = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA)
        x = cv2.cvtColor(canvas, cv2.COLOR_BGR2RGB).astype(np.float32)[None] / np.float32(127.5) - 1
        res = self.session.run({self.input_name: x})
        raw = np.asarray(res[self.raw], np.float64).reshape(-1, 12)
        score = _sigmoid(np.asarray(res[self.logit], np.float64).reshape(-1))
        keep = score >= self.score_threshold
        if not keep.any():
            return Detections.empty(), np.zeros((0, 4))
        raw, score, anchors = raw[keep], score[keep], self.anchors[keep]
        # (x, y) pairs: box centre, box size, then the four points; to frame pixels
        pts = raw.reshape(-1, 6, 2) / DETECTOR_SIZE
        pts[:, [0, 2, 3, 4, 5]] += anchors[:, None]
        pts *= DETECTOR_SIZE
        pts[:, [0, 2, 3, 4, 5]] -= [px, py]
        pts /= scale
        boxes = np.concatenate([pts[:, 0] - pts[:, 1] / 2, pts[:, 0] + pts[:, 1] / 2], 1)
        boxes, points, score = _weighted_nms(boxes, pts[:, 2:], score, self.iou_threshold)
        boxes, points, score = boxes[: self.max_people], points[: self.max_people], score[: self.max_people]
        up = points[:, 1] - points[:, 0]
        side = 2.5 * np.hypot(up[:, 0], up[:, 1])  # 1.25 x the circle's diameter
        angle = np.arctan2(up[:, 0], -up[:, 1])  # 0 when the circle point is straight above the hips
        rois = np.stack([points[:, 0, 0], points[:, 0, 1], side, angle], 1)
        boxes = np.concatenate([rois[:, :2] - side[:, None] / 2, rois[:, :2] + side[:, None] / 2], 1)
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, w)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, h)
        return Detections(boxes, score), rois


def _weighted_nms(boxes, points, scores, iou_threshold):
    """Best first; every detection overlapping the best by more than ``iou_threshold`` is merged
    into it (boxes and points averaged by score, the best's score kept)."""
    order = np.argsort(-scores)
    boxes, points, scores = boxes[order], points[order], scores[order]
    out_b, out_p, out_s = [], [], []
    alive = np.ones(len(boxes), bool)
    area = (boxes[:, 2] - boxes[:, 0]).clip(0) * (boxes[:, 3] - boxes[:, 1]).clip(0)
    for i in range(len(boxes)):
        if not alive[i]:
            continue
        lt = np.maximum(boxes[i, :2], boxes[:, :2])
        rb = np.minimum(boxes[i, 2:], boxes[:, 2:])
        inter = (rb - lt).clip(0).prod(1)
        group = alive & (inter / np.maximum(area[i] + area - inter, 1e-9) > iou_threshold)
        group[i] = True
        wgt = scores[group] / scores[group].sum()
        out_b.append(wgt @ boxes[group])
        out_p.append(np.tensordot(wgt, points[group], 1))
        out_s.append(scores[i])
        alive &= ~group
    return np.array(out_b).reshape(-1, 4), np.array(out_p).reshape(-1, 4, 2), np.array(out_s)

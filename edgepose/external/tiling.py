"""Overlapping square tiles for fixed-input detectors on wide frames, merged by NMS.

A 416x416 detector squashing a 16:9 frame shrinks people by up to 4.6x along the long side; square
tiles of the short side keep the aspect and the resolution (on 1768x994 video they found ~3x more
people than one squashed pass). Boxes cut by a tile edge lose to the whole box of the overlapping
tile in NMS.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from ..sdk.types import Detections


def square_tiles(width: int, height: int, max_tiles: int = 3) -> list[tuple[int, int, int, int]]:
    """(x, y, w, h) of overlapping tiles covering the frame along its long side.

    A frame within 1.25:1 of square is one tile (squashed to the input); otherwise squares of the
    short side, evenly spread, overlapping; past ``max_tiles`` the tiles stretch to cover.
    """
    short, long_ = min(width, height), max(width, height)
    if long_ <= 1.25 * short or max_tiles <= 1:
        return [(0, 0, width, height)]
    n = min(max_tiles, int(np.ceil(long_ / short)))
    span = max(short, int(np.ceil(long_ / n)))
    starts = np.linspace(0, long_ - span, n).round().astype(int)
    if width >= height:
        return [(int(s), 0, span, height) for s in starts]
    return [(0, int(s), width, span) for s in starts]


def detect_tiled(
    detect: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
    image: np.ndarray,
    max_tiles: int,
    score_threshold: float,
    nms_threshold: float,
) -> Detections:
    """Run ``detect(patch) -> (boxes in patch pixels, scores)`` per tile; frame boxes after NMS."""
    h, w = image.shape[:2]
    all_boxes, all_scores = [], []
    for x, y, tw, th in square_tiles(w, h, max_tiles):
        b, s = detect(image[y : y + th, x : x + tw])
        all_boxes.append(np.asarray(b, np.float32).reshape(-1, 4) + np.array([x, y, x, y], np.float32))
        all_scores.append(np.asarray(s, np.float32).reshape(-1))
    boxes = np.concatenate(all_boxes)
    scores = np.concatenate(all_scores)
    if len(boxes) == 0:
        return Detections.empty()
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, w)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, h)
    xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], 1)
    keep = cv2.dnn.NMSBoxes(xywh.tolist(), scores.tolist(), score_threshold, nms_threshold)
    keep = np.asarray(keep, np.int64).reshape(-1)
    return Detections(boxes[keep], scores[keep])

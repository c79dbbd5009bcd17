"""Overlapping square tiles for fixed-input detectors on wide frames, merged by NMS.

A 416x416 detector squashing a 16:9 frame distorts people 1.8:1 and shrinks them along the long
side; square tiles of the short side keep the aspect and the resolution (on 1768x994 video they
found ~3x more people than one squashed pass). A whole-frame pass beside the tiles catches people
taller than a tile (on a portrait Pose2Sim frame the tiles alone cut a standing person at the
knees), and boxes cut by an inner tile edge give way to whole boxes.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from ..sdk.tracker import inside_matrix
from ..sdk.types import Detections


def square_tiles(width: int, height: int, max_tiles: int = 3) -> list[tuple[int, int, int, int]]:
    """(x, y, w, h) of overlapping tiles covering the frame along its long side.

    A frame within 1.5:1 of square is one tile (squashed to the input): on vtest's 4:3 frames two
    tiles plus the whole-frame pass cost 2.8x one pass for recall 0.91 vs 0.90
    (benchmarks/results/detectors.md). Otherwise squares of the
    short side, evenly spread, overlapping; past ``max_tiles`` the tiles stretch to cover.
    """
    short, long_ = min(width, height), max(width, height)
    if long_ <= 1.5 * short or max_tiles <= 1:
        return [(0, 0, width, height)]
    n = min(max_tiles, int(np.ceil(long_ / short)))
    span = max(short, int(np.ceil(long_ / n)))
    starts = np.linspace(0, long_ - span, n).round().astype(int)
    if width >= height:
        return [(int(s), 0, span, height) for s in starts]
    return [(0, int(s), width, span) for s in starts]


def _touches_inner_edge(boxes: np.ndarray, tile: tuple[int, int, int, int], width: int, height: int):
    """Whether each box (frame pixels) reaches a tile edge that is not a frame edge: it may be cut."""
    x, y, tw, th = tile
    m = 0.03 * min(tw, th)  # detectors rarely end a cut box exactly on the edge
    cut = np.zeros(len(boxes), bool)
    if x > 0:
        cut |= boxes[:, 0] <= x + m
    if y > 0:
        cut |= boxes[:, 1] <= y + m
    if x + tw < width:
        cut |= boxes[:, 2] >= x + tw - m
    if y + th < height:
        cut |= boxes[:, 3] >= y + th - m
    return cut


def _nms(boxes: np.ndarray, rank: np.ndarray, iou: float) -> np.ndarray:
    if len(boxes) == 0:
        return np.zeros(0, np.int64)
    xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], 1)
    keep = cv2.dnn.NMSBoxes(xywh.tolist(), rank.tolist(), 0.0, iou)
    return np.asarray(keep, np.int64).reshape(-1)


def detect_tiled(
    detect: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
    image: np.ndarray,
    max_tiles: int,
    score_threshold: float,
    nms_threshold: float,
) -> Detections:
    """Run ``detect(patch) -> (boxes in patch pixels, scores)`` on the whole frame and on each tile.

    The tiles see small people at full resolution and true aspect; the squashed whole-frame pass
    sees people taller than a tile. Two rules merge them: a whole-frame box that holds two or more
    separate tall tile boxes is two people merged into one and is dropped; a tile box reaching an
    inner tile edge may be a cut-off part of a person, ranks at half its score and is dropped when
    mostly inside a kept whole box.
    """
    h, w = image.shape[:2]
    tiles = square_tiles(w, h, max_tiles)
    passes = tiles if len(tiles) == 1 else [(0, 0, w, h), *tiles]
    per_pass = []
    for tile in passes:
        x, y, tw, th = tile
        b, s = detect(image[y : y + th, x : x + tw])
        b = np.asarray(b, np.float32).reshape(-1, 4) + np.array([x, y, x, y], np.float32)
        s = np.asarray(s, np.float32).reshape(-1)
        keep = _nms(b, s, nms_threshold)
        per_pass.append((b[keep], s[keep], _touches_inner_edge(b[keep], tile, w, h)))
    if len(passes) > 1:
        (fb, fs, fc), tile_boxes = per_pass[0], np.concatenate([p[0] for p in per_pass[1:]])
        if len(fb) and len(tile_boxes):
            within = inside_matrix(tile_boxes, fb) >= 0.8  # (tile boxes, frame boxes)
            tall = (tile_boxes[:, 3] - tile_boxes[:, 1])[:, None] >= 0.5 * (fb[:, 3] - fb[:, 1])[None]
            merged = np.zeros(len(fb), bool)
            for j in range(len(fb)):
                members = tile_boxes[within[:, j] & tall[:, j]]
                people = members[_nms(members, np.ones(len(members)), 0.5)] if len(members) else members
                merged[j] = len(people) >= 2
            per_pass[0] = (fb[~merged], fs[~merged], fc[~merged])
    boxes = np.concatenate([p[0] for p in per_pass])
    scores = np.concatenate([p[1] for p in per_pass])
    cut = np.concatenate([p[2] for p in per_pass])
    if len(boxes) == 0:
        return Detections.empty()
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, w)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, h)
    keep = _nms(boxes, np.where(cut, 0.5 * scores, scores), nms_threshold)
    whole = keep[~cut[keep]]
    if len(whole):
        part = keep[cut[keep]]
        inside = inside_matrix(boxes[part], boxes[whole]).max(1) > 0.6 if len(part) else np.zeros(0, bool)
        keep = np.concatenate([whole, part[~inside]])
    keep = keep[np.argsort(-scores[keep], kind="stable")]
    return Detections(boxes[keep], scores[keep])

"""Drawing on BGR frames: skeletons (from the keypoint layout), boxes, track ids, a timing overlay.

Everything draws in place and returns the image, so calls chain. Colours are
fixed per track id (a person keeps their colour across frames).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import cv2
import numpy as np

from ..core.keypoints import KeypointLayout, get_layout
from .types import Detections, Pose

# Distinct, saturated BGR colours; track ids cycle through them.
PALETTE: tuple[tuple[int, int, int], ...] = (
    (56, 56, 255), (151, 157, 255), (31, 112, 255), (29, 178, 255), (49, 210, 207), (10, 249, 72),
    (23, 204, 146), (134, 219, 61), (52, 147, 26), (187, 212, 0), (168, 153, 44), (255, 194, 0),
    (147, 69, 52), (255, 115, 100), (236, 24, 0), (255, 56, 132), (133, 0, 82), (255, 56, 203),
)  # fmt: skip


def color_for(track_id: int) -> tuple[int, int, int]:
    """The colour of a track (grey for untracked, id < 0)."""
    if track_id < 0:
        return (200, 200, 200)
    return PALETTE[track_id % len(PALETTE)]


def _layout(layout: KeypointLayout | str) -> KeypointLayout:
    return get_layout(layout) if isinstance(layout, str) else layout


def _pt(p) -> tuple[int, int]:
    return round(float(p[0])), round(float(p[1]))


def draw_box(
    image: np.ndarray, box, color=(0, 255, 255), label: str | None = None, thickness: int = 2
) -> np.ndarray:
    x1, y1, x2, y2 = (round(float(v)) for v in np.asarray(box).reshape(4))
    cv2.rectangle(image, (x1, y1), (x2, y2), color, thickness, cv2.LINE_AA)
    if label:
        scale = 0.5
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        ty = max(y1, th + base + 2)
        cv2.rectangle(image, (x1, ty - th - base - 2), (x1 + tw + 4, ty), color, -1)
        cv2.putText(
            image, label, (x1 + 2, ty - base), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA
        )
    return image


def draw_skeleton(
    image: np.ndarray,
    keypoints: np.ndarray,
    scores: np.ndarray | None,
    layout: KeypointLayout | str,
    color=(0, 255, 0),
    min_score: float = 0.3,
    thickness: int = 2,
    radius: int = 3,
) -> np.ndarray:
    """Limbs whose two joints score at least ``min_score``, then the joints; empty slots skipped."""
    lay = _layout(layout)
    kp = np.asarray(keypoints, dtype=np.float64).reshape(-1, np.shape(keypoints)[-1])
    if len(kp) != len(lay):
        raise ValueError(f"{len(kp)} keypoints for layout {lay.name!r} of {len(lay)} joints")
    sc = np.ones(len(kp)) if scores is None else np.asarray(scores, dtype=np.float64).reshape(-1)
    ok = (sc >= min_score) & lay.valid_mask & np.isfinite(kp[:, :2]).all(1)
    for a, b in lay.skeleton:
        if ok[a] and ok[b]:
            cv2.line(image, _pt(kp[a]), _pt(kp[b]), color, thickness, cv2.LINE_AA)
    for j in np.flatnonzero(ok):
        cv2.circle(image, _pt(kp[j]), radius, color, -1, cv2.LINE_AA)
        cv2.circle(image, _pt(kp[j]), radius, (255, 255, 255), 1, cv2.LINE_AA)
    return image


def draw_poses(
    image: np.ndarray,
    poses: Iterable[Pose],
    layout: KeypointLayout | str,
    min_score: float = 0.3,
    boxes: bool = True,
    ids: bool = True,
    by_order: bool = False,
) -> np.ndarray:
    """Each pose's skeleton, and optionally its box labelled with the track id, in the track's colour.

    ``by_order``: untracked poses (a still image) take a palette colour by their position instead of
    all being grey, so the people in one photo can be told apart.
    """
    for i, p in enumerate(poses):
        color = color_for(i if by_order and p.track_id < 0 else p.track_id)
        if boxes:
            label = f"#{p.track_id}" if ids and p.track_id >= 0 else None
            draw_box(image, p.box, color, label, thickness=1)
        draw_skeleton(image, p.keypoints, p.scores, layout, color, min_score)
    return image


def draw_detections(image: np.ndarray, detections: Detections, color=(0, 255, 255)) -> np.ndarray:
    for box, score in zip(detections.boxes, detections.scores):
        draw_box(image, box, color, f"{score:.2f}", thickness=1)
    return image


def timing_lines(fps: float | None = None, timings_ms: Mapping[str, float] | None = None) -> list[str]:
    lines = [f"{fps:5.1f} FPS"] if fps else []
    for name, ms in (timings_ms or {}).items():
        lines.append(f"{name}: {ms:6.1f} ms")
    return lines


def draw_overlay(
    image: np.ndarray,
    lines: Sequence[str],
    origin: tuple[int, int] = (8, 8),
    scale: float = 0.5,
    color=(255, 255, 255),
    background=(0, 0, 0),
    alpha: float = 0.6,
) -> np.ndarray:
    """A block of text lines on a translucent panel (e.g. ``timing_lines(fps, timer.ms)``)."""
    if not lines:
        return image
    sizes = [cv2.getTextSize(s, cv2.FONT_HERSHEY_SIMPLEX, scale, 1) for s in lines]
    line_h = max(h + b for (_, h), b in sizes) + 4
    w = max(tw for (tw, _), _ in sizes) + 10
    h = line_h * len(lines) + 6
    x0, y0 = origin
    H, W = image.shape[:2]
    x1, y1 = min(x0 + w, W), min(y0 + h, H)
    if x1 > x0 and y1 > y0:
        roi = image[y0:y1, x0:x1]
        panel = np.empty_like(roi)
        panel[:] = background
        cv2.addWeighted(panel, alpha, roi, 1 - alpha, 0, dst=roi)
    for i, s in enumerate(lines):
        y = y0 + 3 + line_h * (i + 1) - 4
        cv2.putText(image, s, (x0 + 5, y), cv2.FONT_HERSHEY_SIMPLEX, scale, color, 1, cv2.LINE_AA)
    return image

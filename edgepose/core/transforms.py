"""Top-down crops: person box -> fixed-size model input, and keypoints back.

The same affine maths serves training (with rotation and scale jitter), the
export checks and the device-side pipeline, so a keypoint decoded in crop
coordinates maps back to the frame exactly as it was mapped in.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

BOX_PADDING = 1.25  # the papers' top-down box enlargement


def box_to_center_size(
    box_xyxy, input_size: tuple[int, int], padding: float = BOX_PADDING
) -> tuple[np.ndarray, np.ndarray]:
    """Centre and (w, h) of the crop region: the box grown by ``padding`` and
    widened or heightened to the model's aspect ratio (input_size is (H, W))."""
    x1, y1, x2, y2 = [float(v) for v in box_xyxy]
    center = np.array([(x1 + x2) / 2, (y1 + y2) / 2], dtype=np.float64)
    w, h = max(x2 - x1, 1.0), max(y2 - y1, 1.0)
    aspect = input_size[1] / input_size[0]
    if w > aspect * h:
        h = w / aspect
    else:
        w = h * aspect
    return center, np.array([w * padding, h * padding], dtype=np.float64)


def crop_matrix(
    center, size_wh, input_size: tuple[int, int], rotation_deg: float = 0.0, flip: bool = False
) -> np.ndarray:
    """2x3 affine matrix mapping frame pixels to crop pixels (input_size is (H, W)).

    Rotation is about the box centre, counter-clockwise in image coordinates as
    the papers' pipelines apply it; ``flip`` mirrors the crop horizontally.
    """
    out_h, out_w = input_size
    sx = out_w / float(size_wh[0])
    sy = out_h / float(size_wh[1])
    a = math.radians(rotation_deg)
    cos, sin = math.cos(a), math.sin(a)
    # frame -> centred -> rotate -> scale -> crop centre
    r = np.array([[cos, sin], [-sin, cos]])
    s = np.diag([sx, sy])
    lin = s @ r
    if flip:
        lin = np.diag([-1.0, 1.0]) @ lin
    t = np.array([out_w / 2.0, out_h / 2.0]) - lin @ np.asarray(center, dtype=np.float64)
    return np.hstack([lin, t[:, None]])


def invert_affine(m: np.ndarray) -> np.ndarray:
    return cv2.invertAffineTransform(np.asarray(m, dtype=np.float64))


def warp(image: np.ndarray, matrix: np.ndarray, input_size: tuple[int, int]) -> np.ndarray:
    return cv2.warpAffine(
        image,
        np.asarray(matrix, dtype=np.float64),
        (int(input_size[1]), int(input_size[0])),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a 2x3 affine to (..., 2) points."""
    pts = np.asarray(points, dtype=np.float64)
    m = np.asarray(matrix, dtype=np.float64)
    return pts @ m[:, :2].T + m[:, 2]


def normalize(crop_rgb_uint8: np.ndarray, mean, std) -> np.ndarray:
    """HWC uint8 RGB -> CHW float32, scaled to [0, 1] then standardised."""
    x = crop_rgb_uint8.astype(np.float32) / 255.0
    x = (x - np.asarray(mean, dtype=np.float32)) / np.asarray(std, dtype=np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def crop_person(
    frame_rgb: np.ndarray, box_xyxy, input_size: tuple[int, int], mean, std, padding: float = BOX_PADDING
) -> tuple[np.ndarray, np.ndarray]:
    """One normalised CHW crop and its frame->crop matrix."""
    center, size = box_to_center_size(box_xyxy, input_size, padding)
    m = crop_matrix(center, size, input_size)
    return normalize(warp(frame_rgb, m, input_size), mean, std), m


def letterbox_matrix(
    image_hw: tuple[int, int], input_size: tuple[int, int]
) -> tuple[np.ndarray, tuple[int, int]]:
    """The frame -> model-input affine (2, 3) of a centred letterbox, and the resized (w, h).

    The frame is scaled by one factor per axis (the aspect ratio kept up to rounding to whole pixels)
    with OpenCV's resize convention (pixel centres: ``x' = (x + 0.5) * s - 0.5``) and padded evenly
    around; ``transform_points(p, invert_affine(m))`` maps model-input pixels back to the frame."""
    h, w = int(image_hw[0]), int(image_hw[1])
    H, W = int(input_size[0]), int(input_size[1])
    scale = min(W / w, H / h)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    sx, sy = nw / w, nh / h
    px, py = (W - nw) // 2, (H - nh) // 2
    m = np.array([[sx, 0.0, 0.5 * sx - 0.5 + px], [0.0, sy, 0.5 * sy - 0.5 + py]], np.float64)
    return m, (nw, nh)

"""Capture effects for the synthetic videos: motion and defocus blur kernels, blurring one moving
figure, tone curves and JPEG round trips."""

from __future__ import annotations

import math

import cv2
import numpy as np

from .synth_render import _ONE, SHIFT


def line_kernel(length: float, angle: float) -> np.ndarray:
    """Directional (motion) blur kernel of ``length`` pixels at ``angle`` radians."""
    k = int(math.ceil(length)) | 1
    k = max(k, 3)
    ker = np.zeros((k, k), np.float32)
    c = (k - 1) / 2
    dx, dy = math.cos(angle) * (length - 1) / 2, math.sin(angle) * (length - 1) / 2
    cv2.line(
        ker,
        (int(round((c - dx) * _ONE)), int(round((c - dy) * _ONE))),
        (int(round((c + dx) * _ONE)), int(round((c + dy) * _ONE))),
        1.0,
        1,
        cv2.LINE_AA,
        SHIFT,
    )
    return ker / max(ker.sum(), 1e-6)


def disk_kernel(radius: float) -> np.ndarray:
    """Defocus kernel: a uniform disc."""
    k = int(math.ceil(radius)) * 2 + 1
    ker = np.zeros((k, k), np.float32)
    c = (k - 1) / 2
    cv2.circle(
        ker,
        (int(round(c * _ONE)), int(round(c * _ONE))),
        int(round(radius * _ONE)),
        1.0,
        -1,
        cv2.LINE_AA,
        SHIFT,
    )
    return ker / max(ker.sum(), 1e-6)


def blur_region(img: np.ndarray, mask: np.ndarray, box, kernel: np.ndarray) -> None:
    """Motion-blur the pixels under ``mask`` (bool, full frame) within ``box`` (x0, y0, x1, y1):
    the figure is smeared and composited over the frame with its smeared coverage."""
    h, w = img.shape[:2]
    m = kernel.shape[0]
    x0, y0 = max(int(box[0]) - m, 0), max(int(box[1]) - m, 0)
    x1, y1 = min(int(box[2]) + m + 1, w), min(int(box[3]) + m + 1, h)
    if x1 <= x0 or y1 <= y0:
        return
    roi = img[y0:y1, x0:x1].astype(np.float32)
    a = mask[y0:y1, x0:x1].astype(np.float32)
    smeared = cv2.filter2D(roi * a[..., None], -1, kernel, borderType=cv2.BORDER_REPLICATE)
    cover = cv2.filter2D(a, -1, kernel, borderType=cv2.BORDER_REPLICATE)[..., None]
    img[y0:y1, x0:x1] = np.clip(roi * (1 - cover) + smeared, 0, 255).astype(np.uint8)


def tone_lut(gamma: float, contrast: float, gains, brightness: float) -> np.ndarray:
    x = np.arange(256, dtype=np.float32) / 255.0
    y = np.clip((x**gamma - 0.5) * contrast + 0.5 + brightness, 0, 1)
    lut = np.stack([np.clip(y * g, 0, 1) for g in gains], 1) * 255.0
    return lut.astype(np.uint8).reshape(256, 1, 3)


def jpeg_roundtrip(img_rgb: np.ndarray, quality: int) -> tuple[np.ndarray, bytes]:
    ok, buf = cv2.imencode(
        ".jpg", cv2.cvtColor(img_rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
    )
    if not ok:
        raise RuntimeError("OpenCV could not encode a JPEG; check the opencv-python-headless install")
    data = buf.tobytes()
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB), data


__all__ = ["blur_region", "disk_kernel", "jpeg_roundtrip", "line_kernel", "tone_lut"]

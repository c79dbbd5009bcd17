"""Output codecs: model outputs <-> keypoints in crop pixels, in numpy.

Decoding lives outside the exported graphs so every backend shares it and
quantisation never touches it. Two codecs cover the zoo:

* ``regression`` (DSTA, DistilPose): ``coords`` (B, J, 2) as (x/W, y/H) of the
  crop, ``scores`` (B, J); ``sigma`` (B, J, 2) travels along for RLE users.
* ``heatmap`` (TAR-ViTPose, SHaRPose): ``heatmaps`` (B, J, h, w). Heatmap pixel
  (i, j) sits at crop pixel (j * W / w, i * H / h); the training targets are
  encoded with the same convention (``encode_heatmaps``).
"""

from __future__ import annotations

import cv2
import numpy as np

CODEC_OUTPUTS = {"regression": ("coords", "scores"), "heatmap": ("heatmaps",)}


def encode_heatmaps(
    keypoints: np.ndarray,
    visible: np.ndarray,
    heatmap_size: tuple[int, int],
    input_size: tuple[int, int],
    sigma: float = 2.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian targets (J, h, w) for keypoints (J, 2) in crop pixels, plus per-joint weights.

    The Gaussian is centred on the sub-pixel location, so decoding with DARK
    recovers it without the rounding bias of integer-centred targets.
    """
    h, w = heatmap_size
    sx, sy = w / input_size[1], h / input_size[0]
    xs = np.arange(w, dtype=np.float32)[None, :]
    ys = np.arange(h, dtype=np.float32)[:, None]
    kp = np.asarray(keypoints, dtype=np.float32)
    vis = np.asarray(visible).astype(bool)
    target = np.zeros((len(kp), h, w), dtype=np.float32)
    weight = np.zeros(len(kp), dtype=np.float32)
    for j, (x, y) in enumerate(kp):
        mx, my = x * sx, y * sy
        if not vis[j] or not (-3 * sigma <= mx < w + 3 * sigma and -3 * sigma <= my < h + 3 * sigma):
            continue
        target[j] = np.exp(-((xs - mx) ** 2 + (ys - my) ** 2) / (2 * sigma**2))
        weight[j] = 1.0
    return target, weight


def _dark_refine(hm: np.ndarray, coords: np.ndarray, kernel: int = 11) -> np.ndarray:
    """Distribution-aware refinement: one Newton step on the log of a smoothed heatmap."""
    b, j, h, w = hm.shape
    out = coords.copy()
    for bi in range(b):
        for ji in range(j):
            m = hm[bi, ji]
            origin_max = m.max()
            sm = cv2.GaussianBlur(m, (kernel, kernel), 0, borderType=cv2.BORDER_CONSTANT)
            if sm.max() > 0:
                sm = sm * (origin_max / sm.max())
            lg = np.pad(np.log(np.maximum(sm, 1e-10)), 2, mode="edge")
            px, py = int(coords[bi, ji, 0]) + 2, int(coords[bi, ji, 1]) + 2
            dx = 0.5 * (lg[py, px + 1] - lg[py, px - 1])
            dy = 0.5 * (lg[py + 1, px] - lg[py - 1, px])
            dxx = 0.25 * (lg[py, px + 2] - 2 * lg[py, px] + lg[py, px - 2])
            dxy = 0.25 * (lg[py + 1, px + 1] - lg[py - 1, px + 1] - lg[py + 1, px - 1] + lg[py - 1, px - 1])
            dyy = 0.25 * (lg[py + 2, px] - 2 * lg[py, px] + lg[py - 2, px])
            det = dxx * dyy - dxy**2
            if det > 0 and dxx < 0:  # a proper maximum
                hess_inv = np.array([[dyy, -dxy], [-dxy, dxx]]) / det
                step = -hess_inv @ np.array([dx, dy])
                if np.all(np.abs(step) < 1.5):
                    out[bi, ji] += step
    return out


def decode_heatmaps(
    heatmaps: np.ndarray, input_size: tuple[int, int], refine: str = "dark"
) -> tuple[np.ndarray, np.ndarray]:
    """(B, J, h, w) -> keypoints (B, J, 2) in crop pixels and scores (B, J) = peak value.

    ``refine``: ``dark`` (Taylor step on the smoothed log-heatmap), ``shift``
    (the classic quarter-pixel step towards the higher neighbour) or ``none``.
    """
    hm = np.asarray(heatmaps, dtype=np.float32)
    if hm.ndim != 4:
        raise ValueError(f"heatmaps must be (B, J, h, w), got shape {hm.shape}")
    b, j, h, w = hm.shape
    flat = hm.reshape(b, j, -1)
    idx = flat.argmax(-1)
    scores = flat.max(-1)
    coords = np.stack([idx % w, idx // w], axis=-1).astype(np.float64)
    if refine == "dark":
        coords = _dark_refine(hm, coords)
    elif refine == "shift":
        for bi in range(b):
            for ji in range(j):
                px, py = int(coords[bi, ji, 0]), int(coords[bi, ji, 1])
                m = hm[bi, ji]
                if 0 < px < w - 1:
                    coords[bi, ji, 0] += 0.25 * np.sign(m[py, px + 1] - m[py, px - 1])
                if 0 < py < h - 1:
                    coords[bi, ji, 1] += 0.25 * np.sign(m[py + 1, px] - m[py - 1, px])
    elif refine != "none":
        raise ValueError(f"refine must be 'dark', 'shift' or 'none', got {refine!r}")
    scale = np.array([input_size[1] / w, input_size[0] / h])
    return (coords * scale).astype(np.float32), scores.astype(np.float32)


def decode_regression(
    coords: np.ndarray, scores: np.ndarray, input_size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    c = np.asarray(coords, dtype=np.float32)
    if c.ndim != 3 or c.shape[-1] != 2:
        raise ValueError(f"coords must be (B, J, 2), got shape {c.shape}")
    return c * np.array([input_size[1], input_size[0]], dtype=np.float32), np.asarray(
        scores, dtype=np.float32
    )


def decode(outputs: dict, codec: str, input_size: tuple[int, int], refine: str = "dark"):
    """Decode a final stage's outputs by codec name: keypoints (B, J, 2) crop px, scores (B, J)."""
    if codec not in CODEC_OUTPUTS:
        raise ValueError(f"unknown codec {codec!r}; known: {sorted(CODEC_OUTPUTS)}")
    missing = [k for k in CODEC_OUTPUTS[codec] if k not in outputs]
    if missing:
        raise KeyError(f"codec {codec!r} needs outputs {list(CODEC_OUTPUTS[codec])}; missing {missing}")
    return _DECODERS[codec](outputs, input_size, refine)


_DECODERS = {
    "heatmap": lambda o, size, refine: decode_heatmaps(o["heatmaps"], size, refine),
    "regression": lambda o, size, refine: decode_regression(o["coords"], o["scores"], size),
}

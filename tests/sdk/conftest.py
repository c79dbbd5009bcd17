"""Fixtures shared by the SDK tests."""

from __future__ import annotations

import numpy as np
import pytest


def _moving_blocks(n: int, size=(120, 160)):
    """Two moving blocks on noise, with their boxes per frame."""
    rng = np.random.default_rng(1)
    bg = rng.integers(0, 255, (*size, 3), dtype=np.uint8)
    frames, boxes = [], []
    for t in range(n):
        img = bg.copy()
        b1, b2 = [20 + 3 * t, 20, 60 + 3 * t, 100], [110 - 2 * t, 15, 150 - 2 * t, 105]
        for (x1, y1, x2, y2), c in ((b1, (40, 200, 90)), (b2, (200, 60, 60))):
            img[y1:y2, x1:x2] = c
        frames.append(img)
        boxes.append(np.array([b1, b2], np.float32))
    return frames, boxes


@pytest.fixture
def blocks_clip():
    """``blocks_clip(n, size=(120, 160))`` -> (frames, boxes): ``n`` BGR frames of two moving blocks on
    noise and the (2, 4) xyxy boxes of each frame."""
    return _moving_blocks

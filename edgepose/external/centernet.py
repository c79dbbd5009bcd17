"""MobileNetV3-CenterNet (COCO-80, 512x512) as a person detector, from its ONNX conversion.

Input ``(1, 512, 512, 3)`` float RGB in 0-255; the graph decodes itself (heatmap peaks by 3x3 max
pooling, top 100): ``tower_0/detections`` ``(1, 100, 6)`` = x1, y1, x2, y2 in input pixels, score,
COCO class (person = 0). Wide frames go through the same square tiles as NanoDet.
"""

from __future__ import annotations

import cv2
import numpy as np

from .tiling import detect_tiled

SIZE = 512
PERSON = 0


class CenterNet:
    def __init__(self, session, score_threshold: float = 0.3, nms_threshold: float = 0.5, tiles: int = 3):
        self.session = session
        self.input_name = session.inputs[0].name
        names = [o.name for o in session.outputs]
        det = [n for n in names if n.endswith("detections")]
        if not det:
            raise ValueError(f"not the CenterNet graph: no 'detections' output in {names}")
        self.output = det[0]
        self.score_threshold = float(score_threshold)
        self.nms_threshold = float(nms_threshold)
        self.tiles = int(tiles)

    def _detect(self, patch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h, w = patch.shape[:2]
        x = cv2.cvtColor(cv2.resize(patch, (SIZE, SIZE)), cv2.COLOR_BGR2RGB)[None].astype(np.float32)
        d = self.session.run({self.input_name: x})[self.output][0]
        d = d[(np.rint(d[:, 5]) == PERSON) & (d[:, 4] >= self.score_threshold)]
        return d[:, :4] * np.array([w, h, w, h], np.float32) / SIZE, d[:, 4]

    def __call__(self, image: np.ndarray, frame_index: int = 0):
        return detect_tiled(self._detect, image, self.tiles, self.score_threshold, self.nms_threshold)

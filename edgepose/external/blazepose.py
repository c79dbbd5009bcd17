"""MediaPipe BlazePose GHUM landmark models (lite / full / heavy, Apache-2.0) as COCO-17 teachers.

Each runs in LiteRT as shipped: input ``(1, 256, 256, 3)`` float RGB in [0, 1]; output ``Identity``
``(1, 195)`` = 39 landmarks x (x, y, z, visibility, presence) in crop pixels, visibility and
presence as logits; ``Identity_1`` the pose-present logit. MediaPipe's own
pipeline crops around its detector's hip-centred, rotated ROI; given only a box, the crop is a
square around the box grown by ``padding``, which the model tolerates for upright people.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..core.transforms import invert_affine, transform_points, warp
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
        out = np.zeros((len(boxes), len(TO_COCO17), 3), np.float32)
        rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        for i, b in enumerate(boxes):
            m = square_crop_matrix(b, SIZE, self.padding)
            crop = warp(rgb, m, (SIZE, SIZE)).astype(np.float32)[None] / np.float32(255.0)
            res = self.session.run({self.input_name: crop})
            lm = res[self.landmarks].reshape(39, 5)[TO_COCO17]
            present = float(_sigmoid(np.asarray(res[self.present], np.float64)).reshape(-1)[0])
            out[i, :, :2] = transform_points(lm[:, :2], invert_affine(m))
            out[i, :, 2] = _sigmoid(lm[:, 3]) * present
        return out

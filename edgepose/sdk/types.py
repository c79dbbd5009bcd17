"""Small value types the SDK's parts pass between them (torch-free).

Frames are OpenCV's convention everywhere in the SDK: ``(H, W, 3)`` uint8 BGR.
Boxes are ``[x1, y1, x2, y2]`` in frame pixels. Keeping one convention lets a
detector, the tracker, drawing and the sinks be combined in any order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..core.keypoints import KeypointLayout


@dataclass
class Frame:
    """One decoded frame: ``index`` is its position in the stream (gaps mark skipped frames)."""

    index: int
    image: np.ndarray
    timestamp: float  # seconds since the start of the stream


@dataclass
class Detections:
    """Person boxes of one frame: ``boxes`` (N, 4) float32 xyxy in frame pixels, ``scores`` (N,)."""

    boxes: np.ndarray
    scores: np.ndarray
    keypoints: np.ndarray | None = None  # (N, J, 3) x, y, score when the boxes came from poses

    def __post_init__(self):
        self.boxes = np.asarray(self.boxes, dtype=np.float32).reshape(-1, 4)
        self.scores = np.asarray(self.scores, dtype=np.float32).reshape(-1)
        if len(self.scores) != len(self.boxes):
            raise ValueError(f"{len(self.boxes)} boxes but {len(self.scores)} scores")
        if self.keypoints is not None:
            self.keypoints = np.asarray(self.keypoints, dtype=np.float32)
            if self.keypoints.ndim != 3 or len(self.keypoints) != len(self.boxes):
                raise ValueError(
                    f"keypoints must be (N, J, 3) with N={len(self.boxes)}, got {self.keypoints.shape}"
                )

    def __len__(self) -> int:
        return len(self.boxes)

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32))


@dataclass(repr=False)
class Pose:
    """One person in one frame, in frame pixels.

    ``keypoints`` (J, 2) x, y; ``scores`` (J,) in [0, 1]; ``track_id`` -1 when untracked.
    ``layout`` names the joints (the estimator sets it): ``pose["left_wrist"]`` is (x, y, score).
    """

    box: np.ndarray
    keypoints: np.ndarray
    scores: np.ndarray
    track_id: int = -1
    box_score: float = 1.0
    extra: dict = field(default_factory=dict)
    layout: KeypointLayout | None = field(default=None, compare=False)

    @property
    def names(self) -> tuple[str, ...]:
        """The joints' names in order (empty when the pose was made without a layout)."""
        return tuple(self.layout.names) if self.layout is not None else ()

    def __getitem__(self, joint: str | int) -> tuple[float, float, float]:
        """``(x, y, score)`` of a joint by name (``"left_wrist"``) or index."""
        if isinstance(joint, str):
            if self.layout is None:
                raise KeyError(
                    f"this pose has no joint names (made without a layout); index it by number "
                    f"0..{len(self.scores) - 1}"
                )
            joint = self.layout.index(joint)
        x, y = np.asarray(self.keypoints, dtype=np.float64).reshape(-1, 2)[joint]
        return float(x), float(y), float(np.asarray(self.scores).reshape(-1)[joint])

    def __repr__(self) -> str:
        sc = np.asarray(self.scores, dtype=np.float64).reshape(-1)
        box = ", ".join(f"{v:.0f}" for v in np.asarray(self.box, dtype=np.float64).reshape(4))
        seen = int((sc >= 0.3).sum())
        mean = float(sc[sc >= 0.3].mean()) if seen else 0.0
        who = f"track {self.track_id}" if self.track_id >= 0 else "untracked"
        bad = f", non-finite joints {self.nonfinite_joints}" if self.nonfinite_joints else ""
        return (
            f"Pose({who}, box [{box}] score {float(self.box_score):.2f}, {seen}/{len(sc)} joints >= 0.3 "
            f"(mean {mean:.2f}){bad})"
        )

    def plot(self, image: np.ndarray, min_score: float = 0.3, box: bool = True) -> np.ndarray:
        """A copy of the BGR ``image`` with this pose drawn (skeleton and box); ``image`` is untouched."""
        from .drawing import draw_poses

        if self.layout is None:
            raise ValueError("this pose has no keypoint layout to draw its skeleton with")
        return draw_poses(np.array(image, copy=True), [self], self.layout, min_score=min_score, boxes=box)

    @property
    def nonfinite_joints(self) -> list[int]:
        """Joints whose x, y or score is NaN/Inf (a damaged or overflowing model); empty when all finite."""
        kp = np.asarray(self.keypoints, dtype=np.float64).reshape(-1, 2)
        sc = np.asarray(self.scores, dtype=np.float64).reshape(-1)
        bad = ~np.isfinite(kp).all(axis=1)
        if len(sc) == len(bad):
            bad |= ~np.isfinite(sc)
        return [int(i) for i in np.flatnonzero(bad)]

    def to_dict(self, frame: int | None = None, time: float | None = None) -> dict:
        """JSON-ready record: plain lists of floats, 2 decimals for pixels, 4 for scores.

        Never NaN/Inf (which JSON cannot hold): a non-finite value is written as null and the pose
        gets ``"nonfinite": [joint indices]`` (``"box_nonfinite": true`` for its box).
        """
        rec: dict = {}
        if frame is not None:
            rec["frame"] = int(frame)
        if time is not None:
            rec["time"] = _num(time, 4)
        rec["track_id"] = int(self.track_id)
        box = [_num(v, 2) for v in np.asarray(self.box, dtype=np.float64).reshape(4).tolist()]
        rec["box"] = box
        rec["box_score"] = _num(self.box_score, 4)
        kp = np.asarray(self.keypoints, dtype=np.float64).reshape(-1, 2)
        sc = np.asarray(self.scores, dtype=np.float64).reshape(-1)
        rec["keypoints"] = [
            [_num(x, 2), _num(y, 2), _num(s, 4)] for (x, y), s in zip(kp.tolist(), sc.tolist())
        ]
        bad = self.nonfinite_joints
        if bad:
            rec["nonfinite"] = bad
        if None in box or rec["box_score"] is None:
            rec["box_nonfinite"] = True
        return rec


def _num(v, digits: int) -> float | None:
    """A rounded float, or None for NaN/Inf (JSON null)."""
    v = float(v)
    return round(v, digits) if np.isfinite(v) else None

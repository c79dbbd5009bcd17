"""Predicted poses in frame pixels, the one input shape every evaluator takes."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class Prediction:
    """One predicted person: joints (J, 2) in frame pixels (NaN = not predicted) and scores (J,)."""

    image_id: int
    keypoints: np.ndarray
    scores: np.ndarray
    score: float | None = None  # instance score for COCO AP; default: mean joint score
    track_id: int | None = None

    @property
    def instance_score(self) -> float:
        if self.score is not None:
            return float(self.score)
        s = self.scores[np.isfinite(self.scores)]
        return float(s.mean()) if len(s) else 0.0


def as_prediction(item: Prediction | Mapping[str, Any]) -> Prediction:
    """Accept a ``Prediction`` or a dict with ``image_id``, ``keypoints`` ((J, 2), (J, 3) with the
    joint score third, or COCO's flat 3J list), optional ``scores`` (J,), ``score``, ``track_id``."""
    if isinstance(item, Prediction):
        return item
    try:
        kp = np.asarray(item["keypoints"], dtype=np.float64)
        image_id = int(item["image_id"])
    except KeyError as e:
        raise KeyError(f"a prediction needs 'image_id' and 'keypoints'; got keys {sorted(item)}") from e
    if kp.ndim == 1:
        if kp.size % 3:
            raise ValueError(f"flat keypoints must hold x, y, score triples; got {kp.size} values")
        kp = kp.reshape(-1, 3)
    if kp.ndim != 2 or kp.shape[1] not in (2, 3):
        raise ValueError(f"keypoints must be (J, 2) or (J, 3); got shape {kp.shape}")
    if item.get("scores") is not None and len(item["scores"]):
        scores = np.asarray(item["scores"], dtype=np.float64)
    elif kp.shape[1] == 3:
        scores = kp[:, 2].copy()
    else:
        scores = np.ones(len(kp))
    if len(scores) != len(kp):
        raise ValueError(f"{len(scores)} joint scores for {len(kp)} joints")
    score = item.get("score")
    return Prediction(
        image_id, kp[:, :2].copy(), scores, None if score is None else float(score), item.get("track_id")
    )


def as_predictions(items: Iterable) -> list[Prediction]:
    return [as_prediction(p) for p in items]

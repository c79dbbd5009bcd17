"""The stills path's person threshold, measured for one weights file on labelled held-out footage.

On a photo, a box counts as a person when its pose's mean keypoint confidence reaches
``min_pose_score`` (``edgepose.sdk.stills``). Confidence is each weights file's own scale: a longer
run of the same model is more sure of easy people and less of hard ones, so a threshold set on one
file miscounts people with the next. Here it is measured, not set, as a false-positive rate: on the
held-out frames of ``edgepose label --preset real`` (vtest's last 30%, Pose2Sim's camera 4), each
labelled person's box is moved to places where no labelled person or ignore region is, and the
threshold is the confidence that only ``BACKGROUND_KEPT`` of these person-sized background boxes
reach. The labelled people themselves (posed in their label boxes) show what it keeps of people.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

#: the share of person-sized background boxes the threshold lets through as people
BACKGROUND_KEPT = 0.05
#: background boxes per labelled person (more: a steadier quantile)
PER_PERSON = 3


@dataclass
class JudgeMeasurement:
    people: np.ndarray  # mean keypoint confidence of each labelled held-out person
    background: np.ndarray  # ... of each person-sized background box
    background_kept: float  # the share of background boxes the threshold lets through
    source: str

    @property
    def threshold(self) -> float:
        return float(np.quantile(self.background, 1.0 - self.background_kept))

    def kept(self, scores: np.ndarray, threshold: float | None = None) -> float:
        t = self.threshold if threshold is None else threshold
        return float((scores >= t).mean()) if len(scores) else 0.0

    def record(self, how: str = "") -> dict:
        """What the weights index keeps (``edgepose.zoo.pretrained.record_person_score``)."""
        t = self.threshold
        return {
            "min_pose_score": round(t, 3),
            "background_kept": self.background_kept,
            "background_boxes": len(self.background),
            "people": len(self.people),
            "people_kept": round(self.kept(self.people, t), 4),
            "people_median": round(float(np.median(self.people)), 3),
            "how": how
            or (
                f"the mean keypoint confidence that {self.background_kept:.0%} of {len(self.background)} "
                f"person-sized background boxes reach, on the held-out frames of {self.source} "
                "(edgepose.bench.person_judge)"
            ),
        }


def _free_box(box, taken: np.ndarray, width: int, height: int, rng, tries: int = 50):
    """``box`` moved to a random place in the frame that overlaps none of ``taken``; None if none found."""
    w, h = box[2] - box[0], box[3] - box[1]
    if w >= width or h >= height:
        return None
    for _ in range(tries):
        x, y = rng.uniform(0, width - w), rng.uniform(0, height - h)
        cand = np.array([x, y, x + w, y + h])
        if not len(taken):
            return cand
        ix = np.minimum(cand[2], taken[:, 2]) - np.maximum(cand[0], taken[:, 0])
        iy = np.minimum(cand[3], taken[:, 3]) - np.maximum(cand[1], taken[:, 1])
        if not ((ix > 0) & (iy > 0)).any():
            return cand
    return None


def measure(
    bundle: str | Path,
    labels: str | Path,
    background_kept: float = BACKGROUND_KEPT,
    per_person: int = PER_PERSON,
    max_frames: int | None = None,
    seed: int = 0,
    threads: int | None = None,
) -> JudgeMeasurement:
    """Pose every labelled held-out person and ``per_person`` background boxes per person with
    ``bundle``; see the module docstring."""
    from ..runtimes.bundle import load
    from ..sdk.estimator import PoseEstimator
    from ..sdk.stills import pose_confidence
    from .real_world import load_held_out

    if not 0.0 < background_kept < 0.5:
        raise ValueError(f"background_kept must be in (0, 0.5), got {background_kept}")
    held = load_held_out(labels, max_frames)
    est = PoseEstimator(load(bundle, device="cpu", **({"threads": threads} if threads else {})))
    rng = np.random.default_rng(seed)
    people, background = [], []
    root = Path(held.source)
    for f in held.frames:
        image = cv2.imread(str(root / f.file_name))
        boxes = np.array([p.box() for p in f.persons], np.float32).reshape(-1, 4)
        ignored = [np.r_[r.min(0), r.max(0)] for r in f.ignore_regions if len(r)]
        taken = np.concatenate([boxes, np.array(ignored, np.float32).reshape(-1, 4)])
        free = [
            _free_box(b, taken, image.shape[1], image.shape[0], rng) for b in boxes for _ in range(per_person)
        ]
        free = np.array([b for b in free if b is not None], np.float32).reshape(-1, 4)
        for group, out in ((boxes, people), (free, background)):
            if len(group):
                out += pose_confidence(np.stack([p.scores for p in est(image, group)])).tolist()
    if not people or not background:
        raise ValueError(f"{labels} has no labelled held-out people (or no room beside them) to measure on")
    return JudgeMeasurement(np.array(people), np.array(background), background_kept, str(labels))

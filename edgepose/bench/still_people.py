"""Does a pose bundle's keypoint confidence still tell people from background on the fetched photos?

The stills path (``edgepose.sdk.stills``) keeps a box as a person when its pose's mean keypoint
confidence reaches the bundle's person threshold (``min_pose_score``: measured per shipped weights
file by ``edgepose.bench.person_judge``, else ``StillRefine``'s); weights whose confidences drift (a
continuation whose RLE flow restarted at random did) keep background boxes as people.
``photo_people`` poses every box the stills detectors find on the four photos and judges what
``poses_on_still`` keeps against :data:`PHOTOS` (also the ground truth of tests/sdk/test_stills.py).

The ground truth follows COCO's: each clearly visible person must be found exactly once, and a crowd
of real people too small or blurred to label one by one (the stands behind ``messi5.jpg``'s kick) is
an ignore region, where a box found is neither a hit nor a false positive. Everywhere else a box that
holds no clearly visible person is one too many.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Photo:
    """What is on one fetched photo, in its pixels."""

    people: tuple[tuple[int, int], ...]  # a point (x, y) inside each clearly visible person
    crowd: tuple[tuple[int, int, int, int], ...] = ()  # ignore regions (x1, y1, x2, y2) of crowds


PHOTOS = {
    "bus.jpg": Photo(((140, 600), (280, 600), (750, 600), (40, 700))),
    "zidane.jpg": Photo(((400, 500), (900, 400))),
    "messi5.jpg": Photo(((280, 200),), crowd=((0, 0, 548, 265),)),  # the stands, above the boards' foot
    "basketball1.png": Photo(((90, 300), (560, 300))),
}
#: a box at least this much inside a crowd region (and holding no clearly visible person) is in it
IN_CROWD = 0.8


def _matched(holds: np.ndarray) -> int:
    """The most people that can each get a box of their own (``holds[box, person]``; augmenting
    paths): one box over two people finds one of them."""
    owner = [-1] * holds.shape[1]

    def claim(box: int, seen: set[int]) -> bool:
        for person in np.flatnonzero(holds[box]):
            if person not in seen:
                seen.add(person)
                if owner[person] < 0 or claim(owner[person], seen):
                    owner[person] = box
                    return True
        return False

    return sum(claim(b, set()) for b in range(holds.shape[0]))


def judge_boxes(photo: Photo, boxes) -> dict:
    """How a photo's kept boxes fare against its ground truth: ``people`` clearly visible, ``found`` of
    them (each held by a box of its own), ``extra`` boxes out of the crowd regions beyond those
    (duplicates, halves, non-people), ``crowd`` boxes in one; ``right`` when every person is found and
    nothing is extra."""
    from ..sdk.tracker import inside_matrix

    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    holds = np.array(
        [[b[0] <= x <= b[2] and b[1] <= y <= b[3] for x, y in photo.people] for b in boxes], bool
    ).reshape(len(boxes), len(photo.people))
    crowd = inside_matrix(boxes, np.array(photo.crowd, np.float64)).max(1, initial=0.0) >= IN_CROWD
    in_crowd = crowd & ~holds.any(axis=1)
    found = _matched(holds)  # people each held by a box of their own
    counted = len(boxes) - int(in_crowd.sum())  # one per clearly visible person, no more
    extra = counted - found
    return {
        "people": len(photo.people),
        "found": found,
        "extra": extra,
        "crowd": int(in_crowd.sum()),
        "right": found == len(photo.people) and extra == 0,
    }


def describe(judged: dict) -> str:
    """``4 of 4``, ``1 of 1 + 1 in the crowd``, ``3 of 4``, ``1 of 1 + 2 extra``."""
    text = f"{judged['found']} of {judged['people']}"
    if judged["extra"]:
        text += f" + {judged['extra']} extra"
    if judged["crowd"]:
        text += f" + {judged['crowd']} in the crowd"
    return text


def photo_people(bundle: str | Path, min_pose_score: float | None = None) -> list[dict]:
    """One row per photo: the boxes' confidences (highest first), the threshold, how many reach it,
    and how the people ``poses_on_still`` keeps fare against :data:`PHOTOS` (:func:`judge_boxes`'s keys,
    ``kept`` boxes, ``shown``: :func:`describe`). ``min_pose_score``: the threshold to judge with
    (default: the bundle's own, see the module docstring)."""
    import cv2

    from ..core.assets import asset_path, missing_reason
    from ..runtimes.bundle import load
    from ..sdk.estimator import PoseEstimator
    from ..sdk.stills import pose_confidence, poses_on_still, still_detector

    for name in PHOTOS:
        if asset_path(name) is None:
            raise FileNotFoundError(missing_reason(name))
    est, detector = PoseEstimator(load(bundle), min_pose_score=min_pose_score), still_detector("auto")
    threshold = est.still_refine.min_pose_score
    rows = []
    for name, photo in PHOTOS.items():
        image = cv2.imread(str(asset_path(name)))
        found = poses_on_still(est, image, detector, refine=False)
        conf = sorted(pose_confidence(np.stack([q.scores for q in found])).tolist(), reverse=True)
        kept = poses_on_still(est, image, detector)  # at est.still_refine's threshold
        judged = judge_boxes(photo, [p.box for p in kept])
        rows.append(
            {
                "photo": name,
                "confidences": conf,
                "threshold": threshold,
                "passing": sum(c >= threshold for c in conf),
                "kept": len(kept),
                **judged,
                "shown": describe(judged),
            }
        )
    return rows

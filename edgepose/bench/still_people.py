"""Does a pose bundle's keypoint confidence still tell people from background on the fetched photos?

The stills path (``edgepose.sdk.stills``) keeps a box as a person when its pose's mean keypoint
confidence reaches the bundle's person threshold (``min_pose_score``: measured per shipped weights
file by ``edgepose.bench.person_judge``, else ``StillRefine``'s); weights whose confidences drift (a
continuation whose RLE flow restarted at random did) keep background boxes as people.
``photo_people`` poses every box the stills detectors find on the four photos and counts what
``poses_on_still`` keeps against the people clearly visible there (the counts of
tests/sdk/test_stills.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

PEOPLE = {"bus.jpg": 4, "zidane.jpg": 2, "messi5.jpg": 1, "basketball1.png": 2}  # clearly visible


def photo_people(bundle: str | Path, min_pose_score: float | None = None) -> list[dict]:
    """One row per photo: the boxes' confidences (highest first), the threshold, how many reach it, how
    many people ``poses_on_still`` keeps, and how many there are. ``min_pose_score``: the threshold to
    judge with (default: the bundle's own, see the module docstring)."""
    import cv2

    from ..core.assets import asset_path, missing_reason
    from ..runtimes.bundle import load
    from ..sdk.estimator import PoseEstimator
    from ..sdk.stills import pose_confidence, poses_on_still, still_detector

    for name in PEOPLE:
        if asset_path(name) is None:
            raise FileNotFoundError(missing_reason(name))
    est, detector = PoseEstimator(load(bundle), min_pose_score=min_pose_score), still_detector("auto")
    threshold = est.still_refine.min_pose_score
    rows = []
    for name, people in PEOPLE.items():
        image = cv2.imread(str(asset_path(name)))
        found = poses_on_still(est, image, detector, refine=False)
        conf = sorted(pose_confidence(np.stack([q.scores for q in found])).tolist(), reverse=True)
        rows.append(
            {
                "photo": name,
                "confidences": conf,
                "threshold": threshold,
                "passing": sum(c >= threshold for c in conf),
                "kept": len(poses_on_still(est, image, detector)),  # at est.still_refine's threshold
                "people": people,
            }
        )
    return rows

#!/usr/bin/env python
"""Are a checkpoint's keypoint confidences still a person/non-person judge on photos?

    python benchmarks/still_confidence.py                                  # the shipped weights
    python benchmarks/still_confidence.py --weights runs/dsta-real-mixed/last.pt --weights pretrained

The stills path (``edgepose.sdk.stills``) drops boxes whose pose has a mean keypoint confidence under
``StillRefine.min_pose_score`` (0.4), measured on the shipped weights. Weights whose confidences drift
(e.g. a continuation whose RLE flow restarted at random) keep background boxes as people. For each
weights: every detector box of the four fetched photos posed as found (no refinement), its
confidence, how many boxes pass the threshold, and how many people ``poses_on_still`` keeps against
the clearly visible people (tests/sdk/test_stills.py's counts). Writes
benchmarks/results/still_confidence.{md,json}.
"""

import argparse
import sys

import cv2
import numpy as np
from rich.console import Console

from edgepose.bench.report import Table
from edgepose.bench.tables import RESULTS_DIR

PEOPLE = {"bus.jpg": 4, "zidane.jpg": 2, "messi5.jpg": 1, "basketball1.png": 2}  # clearly visible
MODEL = "dsta_mnv2_coco"


def main(argv=None) -> int:
    from edgepose.bench.bundles import cached_bundle
    from edgepose.core.assets import asset_path, missing_reason
    from edgepose.runtimes.bundle import load
    from edgepose.sdk.estimator import PoseEstimator
    from edgepose.sdk.stills import StillRefine, pose_confidence, poses_on_still, still_detector
    from edgepose.zoo.pretrained import load_pretrained

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--weights", action="append", help="a checkpoint of dsta_mnv2_coco or 'pretrained'; repeatable"
    )
    p.add_argument("--out", default=str(RESULTS_DIR))
    args = p.parse_args(argv)
    console = Console(width=None if sys.stdout.isatty() else 160)
    for name in PEOPLE:
        if asset_path(name) is None:
            p.error(missing_reason(name))
    threshold = StillRefine().min_pose_score
    table = Table(
        "still_confidence",
        f"Keypoint confidence as the stills judge of people (threshold {threshold}): boxes of the four photos",
        [
            "weights",
            "photo",
            "box confidences (as found, highest first)",
            "boxes >= threshold",
            "kept",
            "people",
        ],
    )
    table.extra["text_columns"] = ["weights", "photo", "box confidences (as found, highest first)"]
    for weights in args.weights or ["pretrained"]:
        model = load_pretrained(MODEL) if weights == "pretrained" else MODEL
        bundle = cached_bundle(model, weights=None if weights == "pretrained" else weights)
        est, detector = PoseEstimator(load(bundle)), still_detector("auto")
        for name, people in PEOPLE.items():
            image = cv2.imread(str(asset_path(name)))
            found = poses_on_still(est, image, detector, refine=False)
            conf = sorted(pose_confidence(np.stack([q.scores for q in found])).tolist(), reverse=True)
            kept = len(poses_on_still(est, image, detector))
            shown = " ".join(f"{c:.2f}" for c in conf)
            table.add(weights, name, shown, sum(c >= threshold for c in conf), kept, people)
    table.notes.append(
        "boxes: the stills detector ensemble (NanoDet + CenterNet pooled); kept: poses_on_still with its "
        "defaults (split people merged, weak and contained boxes dropped); people: clearly visible ones"
    )
    table.publish(console, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

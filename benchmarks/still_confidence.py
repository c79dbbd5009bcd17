#!/usr/bin/env python
"""Are a checkpoint's keypoint confidences still a person/non-person judge on photos?

    python benchmarks/still_confidence.py                                  # the shipped weights
    python benchmarks/still_confidence.py --weights runs/dsta-real-mixed/last.pt --weights pretrained

The stills path (``edgepose.sdk.stills``) drops boxes whose pose has a mean keypoint confidence under
the bundle's person threshold (measured per shipped weights file, ``benchmarks/person_judge.py``;
``StillRefine``'s 0.4 for a checkpoint without one). Weights whose confidences drift
(e.g. a continuation whose RLE flow restarted at random) keep background boxes as people. For each
weights: every detector box of the four fetched photos posed as found (no refinement), its
confidence, how many boxes pass the threshold, and how many people ``poses_on_still`` keeps against
the clearly visible people (``edgepose.bench.still_people``; ``benchmarks/ship_real.py`` refuses to
ship weights that miscount). Writes
benchmarks/results/still_confidence.{md,json}.
"""

import argparse
import sys

from rich.console import Console

from edgepose.bench.report import Table
from edgepose.bench.still_people import photo_people
from edgepose.bench.tables import RESULTS_DIR

MODEL = "dsta_mnv2_coco"


def main(argv=None) -> int:
    from edgepose.bench.bundles import cached_bundle

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--weights", action="append", help="a checkpoint of dsta_mnv2_coco or 'pretrained'; repeatable"
    )
    p.add_argument("--out", default=str(RESULTS_DIR))
    args = p.parse_args(argv)
    console = Console(width=None if sys.stdout.isatty() else 160)
    table = Table(
        "still_confidence",
        "Keypoint confidence as the stills judge of people (each bundle's threshold): boxes of the four photos",
        [
            "weights",
            "photo",
            "box confidences (as found, highest first)",
            "threshold",
            "boxes >= threshold",
            "kept",
            "people found (of those clearly visible)",
        ],
    )
    table.extra["text_columns"] = [*table.columns[:3], table.columns[-1]]
    for weights in args.weights or ["pretrained"]:
        bundle = cached_bundle(MODEL, weights=weights)  # "pretrained": the shipped weights
        try:
            rows = photo_people(bundle)
        except FileNotFoundError as e:
            p.error(str(e))
        for r in rows:
            shown = " ".join(f"{c:.2f}" for c in r["confidences"])
            table.add(weights, r["photo"], shown, r["threshold"], r["passing"], r["kept"], r["shown"])
    table.notes.append(
        "boxes: the stills detector ensemble (NanoDet + CenterNet pooled); kept: poses_on_still with its "
        "defaults (split people merged, weak and contained boxes dropped); people found: each clearly "
        "visible person held by a box of its own, boxes beyond those extra, except in a crowd's ignore region "
        "(edgepose.bench.still_people.PHOTOS)"
    )
    table.publish(console, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

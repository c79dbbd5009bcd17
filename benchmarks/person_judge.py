#!/usr/bin/env python
"""Measure the stills path's person threshold for weights files, and check it on the four photos.

    python benchmarks/person_judge.py                          # the shipped weights
    python benchmarks/person_judge.py --weights runs/x/last.pt --weights pretrained
    python benchmarks/person_judge.py --record                 # write it into the shipped index

For each weights: the threshold ``edgepose.bench.person_judge`` measures on the held-out frames of
``--labels`` (the confidence that ``--background-kept`` of person-sized background boxes reach),
what it keeps of the labelled people there and of the background boxes, and how many people the stills path then keeps on each photo
against those clearly visible (``edgepose.bench.still_people``), beside the fixed default of
``StillRefine``. ``--record`` stores the shipped weights' threshold in the weights index
(``record_person_score``), which their bundles then carry. Writes
benchmarks/results/person_judge.{md,json}.
"""

import argparse
import sys

import numpy as np
from rich.console import Console

from edgepose.bench.person_judge import BACKGROUND_KEPT, PER_PERSON, measure
from edgepose.bench.report import Table
from edgepose.bench.still_people import photo_people
from edgepose.bench.tables import RESULTS_DIR

MODEL = "dsta_mnv2_coco"


def main(argv=None) -> int:
    from edgepose.bench.bundles import cached_bundle
    from edgepose.sdk.stills import StillRefine
    from edgepose.zoo.pretrained import record_person_score

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--weights", action="append", help="a dsta_mnv2_coco checkpoint or 'pretrained'; repeatable"
    )
    p.add_argument("--labels", default="runs/real-labels", help="edgepose label --preset real's directory")
    p.add_argument("--background-kept", type=float, default=BACKGROUND_KEPT)
    p.add_argument("--record", action="store_true", help="record the shipped weights' threshold in the index")
    p.add_argument("--out", default=str(RESULTS_DIR))
    args = p.parse_args(argv)
    console = Console(width=None if sys.stdout.isatty() else 160)
    default = StillRefine().min_pose_score
    table = Table(
        "person_judge",
        f"The stills person threshold measured per weights (what {args.background_kept:.0%} of background "
        f"boxes reach on held-out frames) against the fixed {default}",
        [
            "weights",
            "threshold",
            "people median",
            "people kept %",
            "background kept %",
            "bus.jpg (4)",
            "zidane.jpg (2)",
            "messi5.jpg (1)",
            "basketball1.png (2)",
        ],
    )
    table.extra["text_columns"] = ["weights", "threshold", *table.columns[5:]]
    for weights in args.weights or ["pretrained"]:
        bundle = cached_bundle(MODEL, weights=weights)  # "pretrained": the shipped weights
        try:
            m = measure(bundle, args.labels, args.background_kept)
            rows = {t: photo_people(bundle, t) for t in (m.threshold, default)}
        except FileNotFoundError as e:
            p.error(str(e))
        for t, photos in rows.items():
            table.add(
                weights,
                f"{t:.3f}" + (" (measured)" if t == m.threshold else " (fixed default)"),
                round(float(np.median(m.people)), 3),
                round(100 * m.kept(m.people, t), 1),
                round(100 * m.kept(m.background, t), 1),
                *(r["shown"] for r in photos),
            )
        if args.record and weights == "pretrained":
            rec = record_person_score(MODEL, m.record())
            console.print(f"recorded {MODEL}'s person threshold {rec['person_score']['min_pose_score']}")
    table.notes.append(
        f"people: the held-out labelled people of {args.labels} posed in their label boxes; background: "
        f"{PER_PERSON} boxes per person, same size, moved to where no labelled person or ignore region is; photos: people "
        "the stills path finds (detector ensemble, split people merged, weak and contained boxes dropped) "
        "of those clearly visible (in the column name), each in a box of its own; boxes beyond those are extra, "
        "except in a crowd's ignore region (edgepose.bench.still_people.PHOTOS)"
    )
    table.publish(console, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

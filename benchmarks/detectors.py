#!/usr/bin/env python
"""Person detectors and pose teachers on held-out real frames (the last 30% of vtest.avi).

    python benchmarks/detectors.py                 # -> benchmarks/results/detectors.{md,json,png}, teachers.{md,json}
    python benchmarks/detectors.py --step 8 --threads 2
    python benchmarks/detectors.py --threads 1 --sizes 416 320 --precisions int8

Recall of reference people (pooled detector boxes that two independent teachers agree on), boxes
and ms per frame for each detector in one run (NanoDet at every input size x precision, fp32 and
its int8 PTQ built locally on first use), detection every 1/3/5 frames with pose-propagated
boxes between, and the teachers' agreement and ms per person. The measuring code and its rules are
edgepose/bench/detectors.py.
"""

import argparse
import sys

from rich.console import Console

from edgepose.bench.detectors import Settings, run
from edgepose.bench.tables import RESULTS_DIR


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--step", type=int, default=4, help="score every N-th held-out frame")
    p.add_argument("--threads", type=int, default=None, help="runtime threads (default: all CPUs)")
    p.add_argument("--max-frames", type=int, default=None, help="use only the first N held-out frames")
    p.add_argument("--sizes", type=int, nargs="+", default=list(Settings.sizes), help="NanoDet input sizes")
    p.add_argument("--precisions", nargs="+", default=list(Settings.precisions), choices=["fp32", "int8"])
    p.add_argument("--out", default=str(RESULTS_DIR))
    args = p.parse_args(argv)
    console = Console(width=None if sys.stdout.isatty() else 160)
    settings = Settings(
        step=args.step,
        threads=args.threads,
        max_frames=args.max_frames,
        sizes=tuple(args.sizes),
        precisions=tuple(dict.fromkeys(["fp32", *args.precisions])),  # fp32 416 is the reference
    )
    for table in run(settings, progress=lambda m: console.print(f"[dim]{m}[/]")):
        table.publish(console, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python
"""Per-person overhead outside the model at 1, 5 and 20 people per frame, before and after batched crops.

    OMP_NUM_THREADS=1 nice python benchmarks/pose_overhead.py            # the shipped dsta_mnv2_coco
    python benchmarks/pose_overhead.py --bundle DIR --persons 1,5,20 --rounds 3

Writes benchmarks/results/pose_overhead.{md,json,png}. The measuring code and what each column holds:
edgepose/bench/pose_overhead.py.
"""

import argparse
import sys

from rich.console import Console

from edgepose.bench.pose_overhead import PERSONS, overhead
from edgepose.bench.tables import RESULTS_DIR


def shipped_bundle(say):
    from edgepose.bench.bundles import cached_bundle
    from edgepose.zoo.pretrained import load_pretrained

    return cached_bundle(load_pretrained("dsta_mnv2_coco"), progress=say)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bundle", help="bundle directory (default: the shipped dsta_mnv2_coco, exported once)")
    p.add_argument("--persons", default=",".join(map(str, PERSONS)))
    p.add_argument("--frames", type=int, default=24, help="frames per clip")
    p.add_argument("--rounds", type=int, default=3, help="interleaved passes per variant")
    p.add_argument("--threads", type=int, default=1, help="intra-op threads of the pose sessions")
    p.add_argument("--out", default=str(RESULTS_DIR))
    args = p.parse_args(argv)
    console = Console(width=None if sys.stdout.isatty() else 160)
    say = lambda m: console.print(f"[dim]{m}[/]")
    bundle = args.bundle or shipped_bundle(say)
    persons = tuple(int(v) for v in args.persons.split(","))
    table = overhead(bundle, persons, args.frames, args.rounds, args.threads, progress=say)
    table.publish(console, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

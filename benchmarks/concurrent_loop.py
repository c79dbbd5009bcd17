#!/usr/bin/env python
"""The whole loop on vtest's held-out tail with detection serial and on its own thread, by thread counts.

    nice python benchmarks/concurrent_loop.py                    # shipped dsta_mnv2_coco, NanoDet, all held-out frames
    python benchmarks/concurrent_loop.py --detector centernet --frames 120 --rounds 2

Writes benchmarks/results/concurrent_loop.{md,json}. The measuring code is
edgepose/bench/real_loop.py (``concurrency_fps``); it chose ``VideoPipeline``'s default.
"""

import argparse
import sys

from rich.console import Console

from edgepose.bench.real_loop import concurrency_fps
from edgepose.bench.tables import RESULTS_DIR


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bundle", help="bundle directory (default: the shipped dsta_mnv2_coco, exported once)")
    p.add_argument("--detector", default="nanodet")
    p.add_argument("--frames", type=int, default=None, help="held-out frames (default: all of them)")
    p.add_argument("--rounds", type=int, default=2, help="interleaved passes per configuration")
    p.add_argument("--out", default=str(RESULTS_DIR))
    args = p.parse_args(argv)
    console = Console(width=None if sys.stdout.isatty() else 160)
    say = lambda m: console.print(f"[dim]{m}[/]")
    bundle = args.bundle
    if bundle is None:
        from edgepose.bench.bundles import cached_bundle
        from edgepose.zoo.pretrained import load_pretrained

        bundle = cached_bundle(load_pretrained("dsta_mnv2_coco"), progress=say)
    table = concurrency_fps(bundle, args.detector, args.frames, args.rounds, progress=say)
    table.publish(console, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

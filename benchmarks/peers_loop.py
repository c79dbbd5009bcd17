#!/usr/bin/env python
"""Ours against the real peers, whole systems in one run on held-out street frames: fps vs COCO AP.

    python benchmarks/peers_loop.py                                     # shipped default model
    python benchmarks/peers_loop.py --bundle "dsta_mnv2_coco int8 (onnx)=runs/int8-real/onnx"

Needs a label directory from `edgepose label --preset real --out runs/real-labels` and the peers'
files in the assets directory (scripts/fetch_assets.sh). Writes benchmarks/results/peers_loop.
{md,json,png}. The systems and the scoring are edgepose/bench/peers_loop.py.
"""

import argparse
import sys
from pathlib import Path

from rich.console import Console

from edgepose.bench.peers_loop import run
from edgepose.bench.tables import RESULTS_DIR


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--labels", default="runs/real-labels", help="label directory (edgepose label --preset real)"
    )
    p.add_argument(
        "--bundle",
        action="append",
        default=[],
        help="LABEL=DIR: also run our loop with this exported bundle (e.g. an int8 one); repeatable",
    )
    p.add_argument(
        "--frames", type=int, default=60, help="held-out frames from vtest's tail (every 2nd is labelled)"
    )
    p.add_argument("--rounds", type=int, default=2, help="rounds, systems interleaved in each")
    p.add_argument("--out", default=str(RESULTS_DIR))
    args = p.parse_args(argv)
    console = Console(width=None if sys.stdout.isatty() else 200)
    say = lambda m: console.print(f"[dim]{m}[/]")
    from edgepose.bench.bundles import cached_bundle
    from edgepose.cli.predict import default_model
    from edgepose.zoo.pretrained import load_pretrained

    name = default_model()
    bundles = {f"{name} (shipped)": cached_bundle(load_pretrained(name), progress=say)}
    for spec in args.bundle:
        label, sep, path = spec.partition("=")
        if not sep or not Path(path, "manifest.json").is_file():
            p.error(f"--bundle {spec!r}: give LABEL=DIR with DIR an exported bundle (manifest.json inside)")
        bundles[label] = Path(path)
    table = run(args.labels, bundles, frames=args.frames, rounds=args.rounds, progress=say)
    table.publish(console, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

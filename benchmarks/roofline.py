#!/usr/bin/env python
"""Roofline on this CPU: GFLOP/s ceilings of ONNX Runtime and OpenVINO, and every stage against them.

    python benchmarks/roofline.py            # full: ceilings fp32/int8 at 1 and 2 threads, every zoo
                                             # model's stages and the .assets detectors (~10 min)
    python benchmarks/roofline.py --quick    # a minute or two: small ceilings, dsta_mnv2, NanoDet

Writes benchmarks/results/roofline.{md,json,png}. The measuring code and its rules are
edgepose/bench/roofline.py.
"""

import argparse
import sys

from rich.console import Console

from edgepose.bench import roofline
from edgepose.bench.tables import RESULTS_DIR


def _list(text: str | None, cast=str):
    return None if text is None else tuple(cast(v.strip()) for v in text.split(",") if v.strip())


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small ceilings, dsta_mnv2 and NanoDet, 2 rounds")
    p.add_argument(
        "--models", help=f"comma list of zoo models ('' for none; default {','.join(roofline.ZOO_MODELS)})"
    )
    p.add_argument("--detectors", help="comma list of .assets detectors ('' for none)")
    p.add_argument("--threads", help="comma list of thread counts (default 1,2)")
    p.add_argument("--runtimes", help="comma list of ort,ov")
    p.add_argument("--rounds", type=int, help="interleaved rounds")
    p.add_argument("--reps", type=int, help="calls per session per round")
    p.add_argument("--budget", type=float, help="seconds of timing after which no round is added (>= 2 run)")
    p.add_argument("--out", default=str(RESULTS_DIR), help="where to write roofline.md/.json/.png")
    args = p.parse_args(argv)
    console = Console(width=None if sys.stdout.isatty() else 220)
    kw: dict = {"progress": lambda m: console.print(f"[dim]{m}[/]")}
    for key, val in (
        ("models", _list(args.models)),
        ("detectors", _list(args.detectors)),
        ("threads", _list(args.threads, int)),
        ("runtimes", _list(args.runtimes)),
        ("rounds", args.rounds),
        ("reps", args.reps),
        ("budget_s", args.budget),
    ):
        if val is not None:
            kw[key] = val
    settings = roofline.quick(**kw) if args.quick else roofline.Settings(**kw)
    table = roofline.run(settings)
    table.publish(console, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

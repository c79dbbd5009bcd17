#!/usr/bin/env python
"""Pose models on held-out real footage: AP on 13 joints against the teachers' labels, ms per person.

    python benchmarks/real_world.py                                   # shipped weights of every zoo model
    python benchmarks/real_world.py --model dsta_mnv2_coco=runs/dsta-real/last.pt --labels runs/real-labels
    python benchmarks/real_world.py --bundle "dsta_mnv2_coco int8 (onnx)=runs/int8-real/onnx"

Needs a label directory from `edgepose label --preset real --out runs/real-labels` (its val split is
the held-out footage). Writes benchmarks/results/real_world.{md,json,png}. The measuring code and its
rules are edgepose/bench/real_world.py.
"""

import argparse
import sys
from pathlib import Path

from rich.console import Console

from edgepose.bench.real_loop import loop_fps
from edgepose.bench.real_world import run
from edgepose.bench.tables import RESULTS_DIR


def bundles(specs, say):
    from edgepose.bench.bundles import cached_bundle
    from edgepose.zoo.pretrained import list_pretrained, load_pretrained

    out = {}
    for spec in specs or [f"{n}=pretrained" for n in list_pretrained()]:
        name, _, weights = spec.partition("=")
        if weights in ("", "pretrained"):
            out[f"{name} (shipped)"] = cached_bundle(load_pretrained(name), progress=say)
        else:
            out[f"{name} ({weights})"] = cached_bundle(name, weights=weights, progress=say)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--labels", default="runs/real-labels", help="label directory (edgepose label --preset real)"
    )
    p.add_argument("--model", action="append", help="NAME=WEIGHTS (a checkpoint or 'pretrained'); repeatable")
    p.add_argument(
        "--bundle",
        action="append",
        default=[],
        help="LABEL=DIR: an exported bundle scored as it is (e.g. an int8 one from edgepose quantize); repeatable",
    )
    p.add_argument("--threads", type=int, default=None)
    p.add_argument(
        "--max-frames", type=int, default=None, help="score at most N held-out frames (spread evenly)"
    )
    p.add_argument("--out", default=str(RESULTS_DIR))
    p.add_argument(
        "--loop-frames",
        type=int,
        default=60,
        help="also run the whole loop on vtest's held-out tail with each detector (0: skip)",
    )
    args = p.parse_args(argv)
    console = Console(width=None if sys.stdout.isatty() else 160)
    say = lambda m: console.print(f"[dim]{m}[/]")
    models = bundles(args.model, say)
    for spec in args.bundle:
        label, sep, path = spec.partition("=")
        if not sep or not Path(path, "manifest.json").is_file():
            p.error(f"--bundle {spec!r}: give LABEL=DIR with DIR an exported bundle (manifest.json inside)")
        models[label] = Path(path)
    tables = [run(args.labels, models, threads=args.threads, max_frames=args.max_frames, progress=say)]
    if args.loop_frames:
        from edgepose.bench.bundles import cached_bundle
        from edgepose.cli.predict import default_model
        from edgepose.cli.run import default_precision
        from edgepose.zoo.pretrained import load_pretrained, pretrained_info

        # the loop runs what run/predict run by default: the default model at its default precision on
        # the CPU (int8 where measured within 1 AP; the first row only when the default model is absent)
        name = default_model()
        shipped = models.get(f"{name} (shipped)", next(iter(models.values())))
        if (
            f"{name} (shipped)" in models
            and default_precision(pretrained_info(name), "onnx", "cpu") == "int8"
        ):
            shipped = cached_bundle(load_pretrained(name), precision="int8", progress=say)
        tables.append(
            loop_fps(shipped, frames=args.loop_frames, threads=args.threads, progress=say, labels=args.labels)
        )
    for table in tables:
        table.publish(console, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

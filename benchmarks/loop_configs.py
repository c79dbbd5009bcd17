#!/usr/bin/env python
"""The whole loop on vtest's held-out tail under each way of spending two cores, in one run.

    nice python benchmarks/loop_configs.py --bundle int8=runs/int8-real/onnx
    python benchmarks/loop_configs.py --bundle int8=DIR --detector nanodet --frames 80 --rounds 2

Rows: detection on its own thread (the default) or serial every N frames with pose-propagated boxes
between; the pose stage on one session, one session with two intra-op threads, or two one-thread
sessions splitting each frame's people (``PoseEstimator(workers=2)``); fp32 (the shipped weights,
exported once) and the bundles given with ``--bundle``. Writes benchmarks/results/loop_configs.{md,json};
the measuring code is ``edgepose.bench.real_loop.concurrency_fps``, which also chose the pipeline's
default (benchmarks/concurrent_loop.py).
"""

import argparse
import sys

from rich.console import Console

from edgepose.bench.real_loop import LoopConfig, concurrency_fps
from edgepose.bench.tables import RESULTS_DIR


def configs(precisions: list[str], detectors: list[str | None]) -> list[LoopConfig]:
    out = []
    for b in precisions:
        for d in detectors:
            tag = f"{b}" + (f", {d}" if d else "")
            out += [
                LoopConfig(f"{tag}: concurrent, 1 thread each", True, 1, 1, bundle=b, detector=d),
                LoopConfig(
                    f"{tag}: concurrent, 2 pose workers", True, 1, 1, pose_workers=2, bundle=b, detector=d
                ),
                LoopConfig(f"{tag}: every 3rd, 1 thread", False, 1, 1, detect_every=3, bundle=b, detector=d),
                LoopConfig(
                    f"{tag}: every 3rd, 2 threads each", False, 2, 2, detect_every=3, bundle=b, detector=d
                ),
                LoopConfig(
                    f"{tag}: every 3rd, 2 pose workers, detector 2 threads",
                    False,
                    2,
                    1,
                    detect_every=3,
                    pose_workers=2,
                    bundle=b,
                    detector=d,
                ),
            ]
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bundle", action="append", default=[], help="LABEL=DIR: another bundle (e.g. int8)")
    p.add_argument("--detector", default="nanodet", help="the run's detector")
    p.add_argument("--also-detector", action="append", default=[], help="more detectors, each with every row")
    p.add_argument("--frames", type=int, default=80, help="held-out frames")
    p.add_argument("--rounds", type=int, default=2, help="interleaved passes per configuration")
    p.add_argument(
        "--labels", default="runs/real-labels", help="labelled held-out frames for AP ('' for none)"
    )
    p.add_argument("--out", default=str(RESULTS_DIR))
    args = p.parse_args(argv)
    console = Console(width=None if sys.stdout.isatty() else 200)
    say = lambda m: console.print(f"[dim]{m}[/]")
    from edgepose.bench.bundles import cached_bundle
    from edgepose.zoo.pretrained import load_pretrained

    bundles = {"fp32": cached_bundle(load_pretrained("dsta_mnv2_coco"), progress=say)}
    for item in args.bundle:
        label, sep, path = item.partition("=")
        if not sep:
            p.error(f"--bundle takes LABEL=DIR, got {item!r}")
        bundles[label] = path
    rows = configs(list(bundles), [None, *args.also_detector])
    table = concurrency_fps(
        bundles,
        args.detector,
        args.frames,
        args.rounds,
        rows,
        progress=say,
        name="loop_configs",
        title="ways to spend two cores",
        labels=args.labels or None,
    )
    table.publish(console, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

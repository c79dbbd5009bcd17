#!/usr/bin/env python
"""DSTA's window against its separately trained collapsed twin on held-out real video.

    python benchmarks/window_real.py --work runs                # WORK/dsta-real vs WORK/dsta-real-collapsed
    python benchmarks/window_real.py --work runs --train-twin   # train the twin first if it is missing

The window model is ``benchmarks/distil_real.py``'s first training (before the fine-tune); the twin is
the same command with ``--collapse-window`` added (``distil_real.py --twin``).
Rows: the window model, the same weights with the current frame in every slot, the twin. Per
group of joints (fast / slow movers) the mean per-joint OKS. Writes
benchmarks/results/window_real.{md,json}; the measuring code is edgepose/bench/window_real.py.
"""

import argparse
import subprocess
import sys
from pathlib import Path

from rich.console import Console

from edgepose.bench.heldout import Entry
from edgepose.bench.tables import RESULTS_DIR
from edgepose.bench.window_real import run

MODEL = "dsta_mnv2_coco"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", default="runs", help="distil_real.py's work directory")
    p.add_argument(
        "--train-twin",
        action="store_true",
        help="train the twin first when it is missing (distil_real.py --twin: about an hour on 2 CPUs)",
    )
    p.add_argument("--out", default=str(RESULTS_DIR))
    args = p.parse_args(argv)
    console = Console(width=None if sys.stdout.isatty() else 160)
    work = Path(args.work)
    labels, window, twin = (
        work / "real-labels",
        work / "dsta-real" / "last.pt",
        work / "dsta-real-collapsed" / "last.pt",
    )
    if not window.is_file():
        p.error(f"{window} does not exist: run benchmarks/distil_real.py --work {work} first")
    if not twin.is_file():
        if not args.train_twin:
            p.error(f"{twin} does not exist; pass --train-twin to train it (about an hour on 2 CPUs)")
        cmd = [sys.executable, "benchmarks/distil_real.py", "--work", str(work), "--twin"]
        console.print("$ " + " ".join(cmd))
        subprocess.run(cmd, check=True)
    entries = [
        Entry("window model (3 frames)", MODEL, str(window), collapse=False),
        Entry("same weights, current frame in every slot", MODEL, str(window), collapse=True),
        Entry("collapsed twin (trained on the current frame only)", MODEL, str(twin), collapse=True),
    ]
    table = run(labels, entries, progress=lambda m: console.print(f"[dim]{m}[/]"))
    table.settings.update({"window": str(window), "twin": str(twin)})
    table.publish(console, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

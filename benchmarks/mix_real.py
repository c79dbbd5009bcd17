#!/usr/bin/env python
"""Synthetic people mixed into the real footage: does their pose variety help or cost on real people?

    python benchmarks/mix_real.py --work runs                  # train both arms, score, write results
    python benchmarks/mix_real.py --work runs --videos 16      # synthetic videos in the mixed arm

Two continuations of the shipped ``dsta_mnv2_coco`` run (``WORK/dsta-real2/last.pt``, from
``benchmarks/distil_real.py``) with the same command, seed and schedule (the MoveNet trunk frozen as in
distil_real's first training, ``--lr 3e-4 --epochs 5 --stop-after-epoch 1``: one warm-up epoch):

* control: the real pseudo-labels alone;
* mixed: the same plus ``--mix-synthetic N`` (the generator's jacks, squats, swings and waves at
  512x384, crops at 256x192).

Both, and the starting weights, are scored on the held-out real footage (COCO AP, 17 joints, label
boxes, per source video) and on the four photos (``edgepose label`` on messi5, zidane, bus and
basketball1 into ``WORK/photo-labels``: the teachers' agreed joints of the people NanoDet boxes,
including the kick in messi5 cut into two half-boxes). Writes benchmarks/results/mix_real.{md,json}.
Resumable: a finished arm is not trained again.
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console

from edgepose.bench.heldout import Entry, score
from edgepose.bench.report import Table
from edgepose.bench.tables import RESULTS_DIR

MODEL = "dsta_mnv2_coco"
PHOTOS = ("messi5.jpg", "zidane.jpg", "bus.jpg", "basketball1.png")
FROZEN = "trunk.conv1,trunk.layer"  # distil_real.py's first training: MoveNet's stem and blocks as loaded


def sh(*args: str) -> None:
    print("$", " ".join(args), flush=True)
    subprocess.run(args, check=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", default="runs", help="distil_real.py's work directory")
    p.add_argument("--videos", type=int, default=16, help="synthetic videos in the mixed arm")
    p.add_argument("--frames", type=int, default=24, help="frames per synthetic video")
    p.add_argument("--assets", default=".assets", help="where scripts/fetch_assets.sh put the photos")
    p.add_argument("--out", default=str(RESULTS_DIR))
    args = p.parse_args(argv)
    console = Console(width=None if sys.stdout.isatty() else 160)
    work = Path(args.work)
    labels, start = work / "real-labels", work / "dsta-real2" / "last.pt"
    if not start.is_file():
        p.error(f"{start} does not exist: run benchmarks/distil_real.py --work {work} first")
    exe = [sys.executable, "-m", "edgepose.cli"]
    photos = work / "photo-labels"
    if not (photos / "meta.json").is_file():
        paths = [str(Path(args.assets) / n) for n in PHOTOS]
        vals = [a for n in PHOTOS for a in ("--val", Path(n).stem)]
        sh(*exe, "label", *paths, *vals, "--out", str(photos), "--json")
    t0 = time.perf_counter()
    arms = {
        "control": [],
        "mixed": ["--mix-synthetic", str(args.videos), "--synthetic-frames", str(args.frames)],
    }
    for arm, extra in arms.items():
        out = work / f"dsta-real-{arm}"
        if (out / "last.pt").is_file() and (out / "history.json").is_file():
            continue
        sh(
            *exe, "train", MODEL, "--weights", str(start), "--freeze", FROZEN, "--data", str(labels),
            "--out", str(out), "--recipe", "dsta_synthetic", "--lr", "3e-4", "--epochs", "5",
            "--stop-after-epoch", "1", "--batch-size", "16", "--val-every", "0", "--no-progress", *extra,
        )  # fmt: skip
    say = lambda m: console.print(f"[dim]{m}[/]")
    rows = []
    for label, weights in (
        ("shipped weights (start)", start),
        ("+1 epoch, real only (control)", work / "dsta-real-control" / "last.pt"),
        (f"+1 epoch, real + {args.videos} synthetic videos", work / "dsta-real-mixed" / "last.pt"),
    ):
        real = score(Entry(label, MODEL, str(weights), collapse=False), labels, progress=say)
        photo = score(Entry(label, MODEL, str(weights), collapse=False), photos, progress=say)
        rows.append((label, real, photo))
    sources = list(rows[0][1]["by_source"])
    table = Table(
        "mix_real",
        "Synthetic pose variety mixed into real footage: COCO AP (17 joints, label boxes) on the held-out "
        "real videos and on four photos",
        ["weights", "held-out AP", *(f"AP {s}" for s in sources), "photos AP", "messi5 AP"],
        settings={"work": str(work), "synthetic videos": args.videos, "frames": args.frames},
    )
    table.extra["text_columns"] = ["weights"]
    for label, real, photo in rows:
        table.add(
            label,
            real["AP"],
            *(real["by_source"][s] for s in sources),
            photo["AP"],
            photo["by_source"]["messi5"],
        )
    run = (work / "dsta-real-mixed" / "run.json").read_text()
    mixed_note = next((n for n in json.loads(run)["notes"] if n.startswith("mixed in")), "")
    table.notes += [
        "both arms: the shipped run continued one warm-up epoch (lr 0 -> 3e-4) with the MoveNet trunk "
        f"frozen, seed 0, batch 16; mixed arm: {mixed_note}",
        "photos: 6 people (the kick in messi5 is two NanoDet half-boxes), 72 joints the two teachers agree "
        "on; a small set: one person's change moves its AP by several points",
    ]
    table.seconds = time.perf_counter() - t0
    table.publish(console, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

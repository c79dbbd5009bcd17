#!/usr/bin/env python
"""Synthetic people mixed into the real footage: does their pose variety help or cost on real people?

    python benchmarks/mix_real.py --work runs                  # train both arms, score, write results
    python benchmarks/mix_real.py --work runs --videos 16      # synthetic videos in the mixed arm
    python benchmarks/mix_real.py --work runs --seeds 0,1      # both arms once per seed, and their mean
    python benchmarks/mix_real.py --work runs --tag flow       # arms in their own directories (-flow)

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
Resumable: a finished arm is not trained again, and a scored checkpoint is not scored again (its AP is
kept beside it, keyed by the checkpoint's sha256 and the labels).
"""

import argparse
import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
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


def arm_dir(work: Path, arm: str, seed: int, tag: str = "") -> Path:
    name = f"dsta-real-{arm}" + (f"-{tag}" if tag else "")
    return work / (name if seed == 0 else f"{name}-s{seed}")


def cached_score(entry: Entry, labels: Path, progress) -> dict:
    """AP overall and per source; kept in ``<weights>.scores.json`` so a re-run does not predict again."""
    weights = Path(entry.weights)
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    cache = weights.with_name(weights.stem + ".scores.json")
    known = json.loads(cache.read_text()) if cache.is_file() else {}
    key = f"{digest}:{labels.resolve()}"
    if key not in known:
        got = score(entry, labels, progress=progress)
        known[key] = {"AP": got["AP"], "by_source": got["by_source"]}
        tmp = cache.with_suffix(".tmp")
        tmp.write_text(json.dumps(known, indent=1))
        tmp.replace(cache)
    return known[key]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", default="runs", help="distil_real.py's work directory")
    p.add_argument("--videos", type=int, default=16, help="synthetic videos in the mixed arm")
    p.add_argument("--frames", type=int, default=24, help="frames per synthetic video")
    p.add_argument("--seeds", default="0", help="comma-separated seeds: both arms trained once per seed")
    p.add_argument(
        "--tag",
        default="",
        help="train the arms into WORK/dsta-real-ARM-TAG (e.g. after a training change, beside the old arms)",
    )
    p.add_argument("--assets", default=".assets", help="where scripts/fetch_assets.sh put the photos")
    p.add_argument("--out", default=str(RESULTS_DIR))
    args = p.parse_args(argv)
    try:
        seeds = [int(x) for x in args.seeds.split(",") if x.strip()]
    except ValueError:
        p.error(f"--seeds {args.seeds!r}: give whole numbers separated by commas, e.g. 0,1")
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
    for seed in seeds:
        for arm, extra in arms.items():
            out = arm_dir(work, arm, seed, args.tag)
            if (out / "last.pt").is_file() and (out / "history.json").is_file():
                continue
            sh(
                *exe, "train", MODEL, "--weights", str(start), "--freeze", FROZEN, "--data", str(labels),
                "--out", str(out), "--recipe", "dsta_synthetic", "--lr", "3e-4", "--epochs", "5",
                "--stop-after-epoch", "1", "--batch-size", "16", "--val-every", "0", "--no-progress",
                "--seed", str(seed), *extra,
            )  # fmt: skip
    say = lambda m: console.print(f"[dim]{m}[/]")
    names = {"control": "real only (control)", "mixed": f"real + {args.videos} synthetic videos"}
    runs = [("shipped weights (start)", start)]
    runs += [
        (f"+1 epoch, {names[a]}, seed {s}", arm_dir(work, a, s, args.tag) / "last.pt")
        for a in arms
        for s in seeds
    ]
    rows = []
    for label, weights in runs:
        real = cached_score(Entry(label, MODEL, str(weights), collapse=False), labels, progress=say)
        photo = cached_score(Entry(label, MODEL, str(weights), collapse=False), photos, progress=say)
        rows.append((label, real, photo))
    if len(seeds) > 1:  # each arm's mean over its seeds
        for a in arms:
            mine = [r for r in rows if names[a] in r[0]]
            mean = lambda get: float(np.mean([get(r) for r in mine]))
            real = {"AP": mean(lambda r: r[1]["AP"])}
            real["by_source"] = {
                k: mean(lambda r, k=k: r[1]["by_source"][k]) for k in mine[0][1]["by_source"]
            }
            photo = {
                "AP": mean(lambda r: r[2]["AP"]),
                "by_source": {"messi5": mean(lambda r: r[2]["by_source"]["messi5"])},
            }
            rows.append((f"+1 epoch, {names[a]}, mean of {len(seeds)} seeds", real, photo))
    sources = list(rows[0][1]["by_source"])
    table = Table(
        "mix_real" + (f"_{args.tag}" if args.tag else ""),
        "Synthetic pose variety mixed into real footage: COCO AP (17 joints, label boxes) on the held-out "
        "real videos and on four photos",
        ["weights", "held-out AP", *(f"AP {s}" for s in sources), "photos AP", "messi5 AP"],
        settings={
            "work": str(work),
            "synthetic videos": args.videos,
            "frames": args.frames,
            "seeds": seeds,
            "tag": args.tag,
        },
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
    run = (arm_dir(work, "mixed", seeds[0], args.tag) / "run.json").read_text()
    mixed_note = next((n for n in json.loads(run)["notes"] if n.startswith("mixed in")), "")
    table.notes += [
        "both arms: the shipped run continued one warm-up epoch (lr 0 -> 3e-4) with the MoveNet trunk "
        f"frozen, batch 16, seeds {args.seeds} (init of the new parts, data order, augmentation, the "
        f"synthetic videos); mixed arm: {mixed_note}",
        "photos: 6 people (the kick in messi5 is two NanoDet half-boxes), 72 joints the two teachers agree "
        "on; a small set: one person's change moves its AP by several points",
    ]
    table.seconds = time.perf_counter() - t0
    table.publish(console, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

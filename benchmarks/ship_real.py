#!/usr/bin/env python
"""Ship a checkpoint trained on real footage as the zoo's pretrained weights, measured as shipped.

    python benchmarks/ship_real.py --weights runs/dsta-real-mixed/last.pt \\
        --trained-on "{shipped}; then one warm-up epoch with synthetic people mixed in (...)"

The weights are measured as they will ship, not as trained: the checkpoint is written in fp16 to a
staging directory and loaded back (``load_pretrained``), and that model's fp32 ONNX bundle and its
default int8 build (``cached_bundle(precision="int8")``: what ``edgepose run --precision auto``
runs, calibrated on vtest's training part) are scored with the currently shipped weights' bundles
on the held-out real frames (COCO AP, 13 joints, label boxes; ``edgepose.bench.real_world``). Then
``--out`` gets the fp16 checkpoint with that AP in its metadata and the index the int8 record
(``record_int8``), so ``auto`` picks int8 only if it is within 1 AP of these weights' fp32.
The stills path's person threshold is measured for the candidate on the held-out frames
(``edgepose.bench.person_judge``: what 5% of person-sized background boxes reach) and recorded with
it; weights with which the stills path, at that threshold, miscounts the people on the fetched photos
(``edgepose.bench.still_people``) are refused.
``--dry-run`` scores and writes benchmarks/results/ship_real.{md,json} but ships nothing.
``{shipped}`` in ``--trained-on`` stands for the current index entry's own ``trained_on``: for a
continuation of the shipped run.
"""

import argparse
import datetime
import json
import sys
import tempfile
from pathlib import Path

from rich.console import Console

from edgepose.bench import person_judge
from edgepose.bench.bundles import cached_bundle
from edgepose.bench.real_world import run
from edgepose.bench.still_people import photo_people
from edgepose.bench.tables import RESULTS_DIR

NOTE = (
    "AP: COCO AP on 13 joints of the held-out real frames against the teachers' labels; derives from "
    "MoveNet Lightning (Apache-2.0) weights and MoveNet/BlazePose (Apache-2.0) labels"
)


def int8_how(name: str, labels: str) -> str:
    """How the int8 record was measured: the build's settings spelled out beside their digest."""
    import onnxruntime

    from edgepose.quantization.scopes import choice_for
    from edgepose.zoo import get_spec

    choice = choice_for(get_spec(name).family)
    return (
        "the cached int8 bundle run/predict build (edgepose.bench.bundles.cached_bundle precision='int8'): "
        f"ONNX Runtime PTQ with the family's int8 defaults ({json.dumps(choice.options)}; float: "
        f"{', '.join(choice.chosen)}), calibrated on people NanoDet finds in vtest.avi's training part; COCO "
        f"AP on 13 joints of the held-out real frames of {labels} (benchmarks/ship_real.py), "
        f"onnxruntime {onnxruntime.__version__}, {datetime.date.today()}"
    )


def main(argv=None) -> int:
    from edgepose.cli.evaluate import build_for_weights
    from edgepose.zoo.checkpoints import read_checkpoint
    from edgepose.zoo.pretrained import (
        WEIGHTS_DIR,
        load_pretrained,
        pretrained_info,
        record_int8,
        record_person_score,
        write_pretrained,
    )

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", required=True, help="the checkpoint to ship (edgepose train's last.pt)")
    p.add_argument("--model", default="dsta_mnv2_coco")
    p.add_argument(
        "--trained-on", required=True, help="what it was trained on; {shipped}: the current entry's"
    )
    p.add_argument("--labels", default="runs/real-labels", help="edgepose label --preset real's directory")
    p.add_argument("--out", default=str(WEIGHTS_DIR), help="the weights directory to ship into")
    p.add_argument("--results", default=str(RESULTS_DIR))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--dry-run", action="store_true", help="score only; ship nothing")
    args = p.parse_args(argv)
    console = Console(width=None if sys.stdout.isatty() else 160)
    say = lambda m: console.print(f"[dim]{m}[/]")
    weights, name = Path(args.weights), args.model
    if not weights.is_file():
        p.error(f"--weights {weights}: no such checkpoint")
    if not Path(args.labels, "meta.json").is_file():
        p.error(f"--labels {args.labels}: run edgepose label --preset real --out {args.labels} first")
    shipped = pretrained_info(name, args.out)
    trained_on = args.trained_on.replace("{shipped}", shipped["trained_on"])

    # RLE's flow goes with the weights: a later continuation from the shipped file carries it
    task_state = (read_checkpoint(weights).get("train") or {}).get("task") or None
    with tempfile.TemporaryDirectory(prefix="ship-") as staging:
        write_pretrained(
            build_for_weights(name, str(weights))[0].eval(),
            staging,
            trained_on=trained_on,
            note=NOTE,
            task_state=task_state,
        )
        model = load_pretrained(name, staging)  # fp16 round trip: the weights as users get them
        current = load_pretrained(name, args.out)
        bundles = {
            f"{name} (shipped now)": cached_bundle(current, progress=say),
            f"{name} (shipped now) int8 default build": cached_bundle(
                current, precision="int8", progress=say
            ),
            f"{name} ({weights}, fp16)": cached_bundle(model, progress=say),
            f"{name} ({weights}, fp16) int8 default build": cached_bundle(
                model, precision="int8", progress=say
            ),
        }
        table = run(args.labels, bundles, threads=args.threads, progress=say)
        # the keypoint confidence is the stills path's person judge, on each weights' own scale: the
        # threshold is measured for them; weights whose confidences no longer separate people from
        # background (a restarted RLE flow did it) miscount the photos' people at any measured threshold
        candidate = bundles[f"{name} ({weights}, fp16)"]
        j = person_judge.measure(candidate, args.labels, threads=args.threads).record()
        miscounted = [
            f"{r['photo']} {r['shown']}"
            for r in photo_people(candidate, j["min_pose_score"])
            if not r["right"]
        ]
        table.name = "ship_real"
        table.title = f"Shipping {weights} as {name}: " + table.title
        ap = {r[0]: r[1] for r in table.rows}
        fp32, int8 = ap[f"{name} ({weights}, fp16)"], ap[f"{name} ({weights}, fp16) int8 default build"]
        table.notes.append(f"candidate trained on: {trained_on}")
        table.notes.append(
            f"the candidate's stills person threshold: {j['min_pose_score']} (lets {j['background_kept']:.0%} of "
            f"{j['background_boxes']} background boxes through, keeps {j['people_kept']:.1%} of {j['people']} "
            "labelled held-out people; edgepose.bench.person_judge)"
        )
        if miscounted:
            table.notes.append(
                "the photos' people miscounted (benchmarks/still_confidence.py): " + ", ".join(miscounted)
            )
        table.settings["shipped"] = not (args.dry_run or miscounted)
        table.publish(console, args.results)
        if miscounted and not args.dry_run:
            console.print(
                f"not shipped: with these weights the stills path miscounts the people on the fetched photos "
                f"({', '.join(miscounted)}): their keypoint confidences no longer tell people from "
                "background (benchmarks/still_confidence.py)"
            )
            return 1
        if args.dry_run:
            return 0
        metrics = {"AP": round(fp32, 1), "mean pose AP": round(ap["mean pose"], 1)}
        metrics["MoveNet Lightning AP"] = round(ap["movenet_lightning"], 1)
        path = write_pretrained(
            model, args.out, trained_on=trained_on, metrics=metrics, note=NOTE, task_state=task_state
        )
    record_int8(name, "onnx", int8, fp32, int8_how(name, args.labels), args.out)
    record_person_score(name, j, args.out)
    console.print(
        f"shipped {path}: AP {fp32:.1f} fp32, {int8:.1f} int8 (default build), person threshold "
        f"{j['min_pose_score']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

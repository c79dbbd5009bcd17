#!/usr/bin/env python
"""PAVE-Net's edge build on real footage: MoveNet-started trunk, teachers' pseudo-labels, predicted people.

    python benchmarks/pave_train_real.py --minutes 30                       # CPU -> benchmarks/results/pave_train_real.*
    python benchmarks/pave_train_real.py --data runs/real-labels --shrink runs/real-labels-384   # to carry
    python benchmarks/pave_train_real.py --device cuda --minutes 60 --batch-size 16 --workers 8 \
        --data runs/real-labels-384 --work runs/pave_real_gpu --name pave_train_real_gpu

What it does (issue #17 item 5 on real footage):

1. reads ``--data`` (default ``runs/real-labels``, made by ``edgepose label --preset real --every 2``):
   PoseTrack-form videos in COCO-17 order read into the model's ``posetrack15`` layout (13 joints
   labelled: no head_top/head_bottom), ignore regions where the teachers disagree;
2. builds ``pave_mnv2`` at ``--input`` (reduced from its 384x640) with TF padding, loads MoveNet
   Lightning's stem and blocks into its MobileNet-V2 trunk (the rest at init), and by default keeps the
   trunk as loaded (``--freeze-trunk``: no gradient, BN in eval mode, so it computes MoveNet's own
   features); the transformer and heads train from scratch with the ``pave_synthetic`` recipe (PETR's
   from-scratch lr 2e-4, AdamW, clip 0.1) through the Trainer and ``SetPredictionTask``, which leaves
   queries in ignore regions out of the classification;
3. stops after ``--minutes`` of training wall time (the schedule is laid out for ``--epochs``); a rerun
   resumes from ``WORK/run/last.pt`` (checkpoints every ``--checkpoint-every`` steps) with a fresh budget,
   and the report sums the training time of all runs;
4. scores the held-out tail of vtest (``--eval-video``) with predicted people, COCO AP on the labelled
   joints (PoseTrack mAP needs the head joints the labels lack): the window, its collapsed twin (same
   weights, the current frame in every slot), and the training split's mean pose placed in every *true*
   box (the floor, handed the boxes the model must find). An oracle row (GT picks one query per person)
   separates pose quality from person scoring.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent
REPO = ROOT.parent
COLUMNS = ("AP", "AP50", "AP75", "APm", "APl", "AR", "people_per_frame")


def _load_losses(path: Path) -> dict[int, dict]:
    """Per step the logged loss parts of earlier runs (a resumed run replays steps since its checkpoint)."""
    out: dict[int, dict] = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                out[int(row["step"])] = row
    return out


def _summary(losses: list[dict], first: int, last: int) -> dict:
    """Mean of each logged part over steps [first, last)."""
    rows = [r for r in losses if first <= r["step"] < last]
    keys = [k for k in rows[0] if k not in ("step", "s")] if rows else []
    return {k: round(float(np.mean([r[k] for r in rows if k in r])), 3) for k in keys} | {"steps": len(rows)}


def oks_nms(preds: list, joints: np.ndarray, sigmas: np.ndarray, threshold: float = 0.45) -> list:
    """Greedy OKS-NMS per frame (the official post-processing PAVE-Net's paper says it needs none): a person
    is dropped when its OKS to a better-scored kept one, over ``joints`` (the labelled ones), exceeds
    ``threshold``; the kept person's joint extent is the area."""
    from edgepose.training.set_loss import oks

    by_image: dict[int, list] = {}
    for p in preds:
        by_image.setdefault(int(p.image_id), []).append(p)
    sig = torch.as_tensor(sigmas[joints], dtype=torch.float64)
    out = []
    for group in by_image.values():
        group = sorted(group, key=lambda p: -p.score)
        xy = torch.as_tensor(
            np.stack([np.nan_to_num(p.keypoints[joints, :2]) for p in group]), dtype=torch.float64
        )
        ref = torch.cat([xy, torch.ones_like(xy[..., :1])], -1)
        sim = oks(xy, ref, sig).numpy()  # (pred, kept-as-reference)
        alive = np.ones(len(group), bool)
        for i in range(len(group)):
            if alive[i]:
                alive[i + 1 :] &= sim[i + 1 :, i] <= threshold
        out += [p for p, a in zip(group, alive) if a]
    return out


def shrink(src: Path, dst: Path, max_side: int, quality: int = 88) -> None:
    """A copy of a PoseTrack-form label set (``edgepose label``'s layout) with every image scaled down to at
    most ``max_side`` and its annotations (keypoints, boxes, areas, ignore regions, sizes) scaled with it:
    the 218 MB of runs/real-labels does not travel to a device machine (64 MiB), ~50 MB at 384 does."""
    import cv2

    for part in sorted((src / "annotations").glob("*/*.json")):
        data = json.loads(part.read_text())
        scale = {}
        for img in data["images"]:
            im = cv2.imread(str(src / img["file_name"]), cv2.IMREAD_COLOR)
            if im is None:
                raise SystemExit(f"cannot read {src / img['file_name']}")
            h, w = im.shape[:2]
            s = min(1.0, max_side / max(h, w))
            nw, nh = max(1, round(w * s)), max(1, round(h * s))
            sx, sy = nw / w, nh / h
            out = dst / img["file_name"]
            out.parent.mkdir(parents=True, exist_ok=True)
            small = cv2.resize(im, (nw, nh), interpolation=cv2.INTER_AREA) if s < 1 else im
            cv2.imwrite(str(out), small, [cv2.IMWRITE_JPEG_QUALITY, quality])
            scale[img["id"]] = (sx, sy)
            img["width"], img["height"] = nw, nh
            img["ignore_regions_x"] = [[x * sx for x in xs] for xs in img.get("ignore_regions_x") or []]
            img["ignore_regions_y"] = [[y * sy for y in ys] for ys in img.get("ignore_regions_y") or []]
        for ann in data["annotations"]:
            sx, sy = scale[ann["image_id"]]
            kp = ann["keypoints"]
            ann["keypoints"] = [v * (sx if i % 3 == 0 else sy if i % 3 == 1 else 1) for i, v in enumerate(kp)]
            x, y, bw, bh = ann["bbox"]
            ann["bbox"] = [x * sx, y * sy, bw * sx, bh * sy]
            if "area" in ann:
                ann["area"] = ann["area"] * sx * sy
        target = dst / part.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(data))
    if (src / "meta.json").is_file():
        meta = json.loads((src / "meta.json").read_text())
        meta["shrunk"] = {"from": str(src), "max_side": max_side, "jpeg_quality": quality}
        (dst / "meta.json").write_text(json.dumps(meta, indent=1))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--model", default="pave_mnv2")
    ap.add_argument("--data", default=str(REPO / "runs" / "real-labels"))
    ap.add_argument("--input", default="192x256", help="model input HxW (pave_mnv2's own is 384x640)")
    ap.add_argument("--minutes", type=float, default=30.0, help="training wall-time budget of this run")
    ap.add_argument("--epochs", type=int, default=40, help="the schedule's length (stops early on --minutes)")
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--lr", type=float, default=None, help="default: the recipe's")
    ap.add_argument("--recipe", default="pave_synthetic")
    ap.add_argument(
        "--freeze-trunk",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="keep the MoveNet trunk as loaded (default) or train it too",
    )
    ap.add_argument("--weights", default="movenet", choices=("movenet", "none"))
    ap.add_argument("--device", default="cpu", help="cpu | cuda")
    ap.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--checkpoint-every", type=int, default=20)
    ap.add_argument("--eval-video", default="vtest-tail", help="val video scored ('all': every val video)")
    ap.add_argument("--eval-batch", type=int, default=4)
    ap.add_argument(
        "--train-frames", type=int, default=60, help="also score this many training frames of vtest (0: none)"
    )
    ap.add_argument("--work", default=str(REPO / "runs" / "pave_real"))
    ap.add_argument("--out", default=str(ROOT / "results"))
    ap.add_argument("--name", default="pave_train_real")
    ap.add_argument("--eval-only", action="store_true", help="score WORK/run/last.pt without training")
    ap.add_argument(
        "--shrink",
        metavar="DIR",
        help="write a copy of --data scaled to --max-side into DIR (to carry to a device machine) and exit",
    )
    ap.add_argument("--max-side", type=int, default=384)
    args = ap.parse_args(argv)
    if args.shrink:
        shrink(Path(args.data), Path(args.shrink), args.max_side)
        return 0

    from edgepose.bench import pave_train as P
    from edgepose.training import datasets as D
    from edgepose.training import validate_whole_frame as V
    from edgepose.training.recipes import get_recipe
    from edgepose.training.tasks import build_task
    from edgepose.training.trainer import seed_everything
    from edgepose.zoo import create_model, get_spec

    torch.set_num_threads(args.threads)
    h, w = P.input_size(args.input)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    spec = dataclasses.replace(get_spec(args.model), input_size=(h, w))
    seed_everything(args.seed)
    build = {"input_size": (h, w)}
    if args.weights == "movenet":
        build["pad"] = "tf"  # MoveNet's trunk is a Keras one
    model = create_model(args.model, **build)
    notes = []
    last = work / "run" / "last.pt"
    if args.weights == "movenet":
        from edgepose.zoo.movenet_trunk import init_from_movenet

        notes.append(init_from_movenet(model))  # a resumed run overwrites it with last.pt's weights
    recipe = get_recipe(args.recipe)
    task = build_task(spec, model, **recipe.task_options)
    data = Path(args.data)
    train_split, val_split = D.load_split(data, "train", spec), D.load_split(data, "val", spec)
    if args.eval_video != "all":
        kept = [v for v in val_split.records if v.video_id == args.eval_video]
        if not kept:
            raise SystemExit(
                f"no val video {args.eval_video!r} in {data} (has {[v.video_id for v in val_split.records]})"
            )
        val_split = dataclasses.replace(val_split, records=kept)
    train_set = V.whole_frame_dataset(spec, train_split, train=True, seed=args.seed)
    if args.weights == "movenet" and not args.freeze_trunk:
        from edgepose.zoo.movenet_trunk import calibrate_batchnorm

        picks = [train_set[round(i * (len(train_set) - 1) / 15)]["frames"] for i in range(16)]
        calibrate_batchnorm(model.trunk, torch.cat(picks))
        notes.append("BN statistics of the MoveNet trunk from 16 training windows (48 frames)")
    trainer, config, steps_per_epoch = P.make_trainer(
        model,
        task,
        train_set,
        recipe,
        work / "run",
        args,
        device=args.device,
        checkpoint_every=args.checkpoint_every,
        num_workers=args.workers,
        freeze=("backbone.",) if args.freeze_trunk else (),
    )
    loss_file = work / "losses.jsonl"
    state_file = work / "state.json"
    state = json.loads(state_file.read_text()) if state_file.is_file() and last.is_file() else {}
    if not last.is_file():
        loss_file.unlink(missing_ok=True)
    before_s = float(state.get("train_seconds", 0.0))

    def log(row):
        with loss_file.open("a") as f:
            f.write(json.dumps(row) + "\n")

    trainer.on_step = budget = P.Budget(args.minutes * 60, log, every=10, before_s=before_s)
    stopped = "schedule done"
    if args.eval_only:
        P.load_last(model, trainer, last)
        stopped = f"scored from last.pt (step {trainer.state.step}) of a run that {state.get('stopped', '?')}"
        train_s = before_s
    else:
        if P.fit(trainer):
            stopped = f"stopped at the {args.minutes:g}-minute budget of its last run"
            trainer._checkpoint(["last.pt"])  # the budget's last steps are kept for the next run
        train_s = before_s + budget.elapsed()
        state = {"train_seconds": round(train_s, 1), "stopped": stopped, "step": trainer.state.step}
        state_file.write_text(json.dumps(state))
    steps = trainer.state.step
    device = torch.device(args.device)
    model.eval()

    t_eval = time.perf_counter()
    rows = {}
    window = V.whole_frame_dataset(spec, val_split)
    collapsed = V.whole_frame_dataset(spec, val_split, collapse_window=True)
    thr = V.DEFAULT_SCORE_THRESHOLD
    from edgepose.core.keypoints import get_layout

    lay = get_layout(spec.layout)
    sigmas = np.asarray(lay.sigmas, np.float64)
    labelled = np.flatnonzero(
        np.any([p.keypoints[:, 2] > 0 for v in train_split.records for f in v.frames for p in f.persons], 0)
    )
    for label, ds in (("PAVE-Net window", window), ("collapsed twin", collapsed)):
        found, everyone = P.people_rows(
            model, ds, val_split, spec, label, drop_ignored=True, batch_size=args.eval_batch, device=device
        )
        rows.update(found)
        kept = oks_nms(V.drop_ignored(everyone, val_split.records), labelled, sigmas)
        rows[f"{label} (OKS-NMS 0.45, post-processing)"] = P.scored(
            kept, val_split.records, spec, val_split.format, len(ds)
        )
        scores = np.array([p.score for p in everyone])
        rows[f"{label} (score >= {thr:g})"]["score_quantiles"] = [
            round(float(q), 3) for q in np.quantile(scores, [0.5, 0.9, 0.99, 1.0])
        ]
    if args.train_frames:  # the same scoring on frames it trained on: fit against generalisation
        vt = next((v for v in train_split.records if v.video_id == "vtest"), train_split.records[0])
        picked = [f for f in vt.frames if f.is_labeled][: args.train_frames]
        seen = dataclasses.replace(train_split, records=[dataclasses.replace(vt)])
        keep_ids = {int(f.image_id) for f in picked}
        seen_set = V.whole_frame_dataset(spec, seen)
        seen_set.samples = [s for s in seen_set.samples if int(s.clip[s.current].image_id) in keep_ids]
        subset = [
            dataclasses.replace(
                vt, frames=[dataclasses.replace(f, is_labeled=int(f.image_id) in keep_ids) for f in vt.frames]
            )
        ]
        everyone = V.predict(model, seen_set, batch_size=args.eval_batch, device=device, score_threshold=0.0)
        everyone = V.drop_ignored(everyone, subset)
        for name, preds in (
            (f"training frames ({len(seen_set)} of {vt.video_id}), window", everyone),
            (
                f"training frames ({len(seen_set)} of {vt.video_id}), oracle",
                V.oracle_assignment(everyone, subset, spec.layout),
            ),
        ):
            rows[name] = P.scored(preds, subset, spec, val_split.format, len(seen_set))
    rows["mean pose at the true boxes"] = P.mean_pose_row(train_split, val_split, spec, len(window))
    eval_s = time.perf_counter() - t_eval

    losses = sorted(_load_losses(loss_file).values(), key=lambda r: r["step"])
    gt_people = P.labelled_people(val_split)
    ignore_regions = sum(len(f.ignore_regions) for v in val_split.records for f in v.frames if f.is_labeled)
    n = len(losses)
    stages = {}
    if n:
        cuts = sorted({0, min(20, n), n // 2, max(n - 20, 0), n})
        stages = {f"steps {a + 1}-{b}": _summary(losses, losses[a]["step"], losses[b - 1]["step"] + 1)
                  for a, b in zip(cuts, cuts[1:]) if b > a}  # fmt: skip
    result = {
        "model": args.model,
        "input_size": [h, w],
        "device": str(device) + (f" ({torch.cuda.get_device_name()})" if device.type == "cuda" else ""),
        "weights": args.weights,
        "freeze_trunk": args.freeze_trunk,
        **P.schedule_fields(recipe, config, args, steps, steps_per_epoch, train_set),
        "eval_video": args.eval_video,
        "val_frames": len(window),
        "val_people_per_frame": round(gt_people / max(len(window), 1), 2),
        "val_ignore_regions_per_frame": round(ignore_regions / max(len(window), 1), 2),
        "stopped": stopped,
        "train_seconds": round(train_s, 1),
        "eval_seconds": round(eval_s, 1),
        "threads": args.threads,
        "notes": notes,
        "rows": rows,
        "loss_stages": stages,
        "losses": losses,
    }
    md = [
        f"# {args.model} on real footage: {steps} steps on {result['device']} ({train_s / 60:.1f} min, {stopped})",
        "",
        f"Input {h}x{w} (pave_mnv2's own is 384x640), trunk {'from MoveNet Lightning' if args.weights == 'movenet' else 'at random init'}"
        f"{' (frozen)' if args.freeze_trunk and args.weights == 'movenet' else ''}, recipe {recipe.name} (lr {config.lr:g}, "
        f"batch {args.batch_size}), {len(train_set)} training windows from {data.name} (teachers' pseudo-labels), "
        f"scored on {args.eval_video}: {len(window)} labelled frames, {result['val_people_per_frame']} people and "
        f"{result['val_ignore_regions_per_frame']} ignore regions per frame. COCO AP on the labelled joints (13; the "
        "labels have no head joints, so no PoseTrack mAP); predictions whose mean joint lies in an ignore region "
        "are dropped. Model rows use predicted people (no GT boxes); the mean-pose row is handed the true boxes.",
        "",
        "| method | COCO AP | AP50 | AP75 | APm | APl | AR | people/frame |",
        "|---|---|---|---|---|---|---|---|",
        *P.table_lines(rows, COLUMNS),
    ]
    if stages:
        keys = [k for k in next(iter(stages.values())) if k != "steps"]
        md += ["", "Training (means over step ranges):", "", "| steps | " + " | ".join(keys) + " |"]
        md.append("|---" * (len(keys) + 1) + "|")
        for name, s in stages.items():
            md.append(f"| {name} | " + " | ".join(f"{s.get(k, float('nan')):.3f}" for k in keys) + " |")
    P.write_result(Path(args.out), args.name, result, md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

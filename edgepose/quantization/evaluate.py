"""Accuracy of a model or a bundle on the evaluation split, every backend through the same code.

Crops come once from the split (ground-truth boxes, the inference preprocessing) and are
kept in memory; every candidate (PyTorch fp32, a simulated quantisation, an int8 bundle in
its runtime) is run on the same arrays through ``pipeline.run_pipeline``, decoded with
``edgepose.core.codecs.decode`` and scored with ``edgepose.eval``: the split format's own
metric (PoseTrack mAP for the PoseTrack-layout models, COCO AP for the COCO ones, as
``edgepose.training.validate.metrics_of``), PCKh@0.5 (PoseTrack's head-size rule) and
PCK@0.2 of the box. A ``limit`` keeps whole videos (spread over the split), so the
metric's ground truth is exactly the persons evaluated.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..core.codecs import decode
from ..core.transforms import transform_points
from ..eval.pck import box_size, pck
from ..eval.posetrack_map import person_head_size
from ..eval.predictions import Prediction
from ..export.stages import quiet
from ..runtimes.bundle import load
from ..training import datasets as D
from ..training.validate import metrics_of, primary_metric
from .calibration import spread
from .pipeline import StagePlan, run_pipeline, session_stage_runner, torch_stage_runner


@dataclass
class EvalSet:
    x: np.ndarray  # (N, [T,] 3, H, W) float16 crops
    inverse: np.ndarray  # (N, 2, 3) crop -> frame
    image_ids: np.ndarray
    gt: np.ndarray  # (N, J, 2) frame pixels
    mask: np.ndarray  # (N, J) joints that count
    head: np.ndarray  # (N,) PoseTrack head sizes (NaN: none)
    box: np.ndarray  # (N,) box longer sides
    split: Any  # DataSplit restricted to the evaluated videos
    spec: Any
    videos: int

    def __len__(self) -> int:
        return len(self.x)

    def describe(self) -> str:
        return f"{len(self)} persons in {self.videos} videos of {self.split.path}"


def _video_of(rec) -> str | None:
    return getattr(rec, "video_id", None)


def restrict(split, limit: int | None):
    """The split limited to whole videos (spread evenly) holding about ``limit`` persons; (split, videos)."""
    records = list(split.records)
    if split.format == "posetrack":
        videos = {v.video_id: v for v in records}
        persons = {k: sum(len(f.persons) for f in v.frames if f.is_labeled) for k, v in videos.items()}
    else:
        videos = {}
        for f in records:
            videos.setdefault(_video_of(f) or f"image{f.image_id}", []).append(f)
        persons = {k: sum(len(f.persons) for f in fs) for k, fs in videos.items()}
    names = list(videos)
    if limit is None or sum(persons.values()) <= limit:
        return split, len(names)
    mean = max(1.0, sum(persons.values()) / len(names))
    for count in range(max(1, int(limit / mean)), len(names) + 1):
        chosen = [names[i] for i in spread(len(names), count)]
        if sum(persons[n] for n in chosen) >= limit:
            break
    keep = set(chosen)
    if split.format == "posetrack":
        kept = [v for v in records if v.video_id in keep]
    else:
        kept = [f for f in records if (_video_of(f) or f"image{f.image_id}") in keep]
    return dataclasses.replace(split, records=kept), len(chosen)


def build(data, limit: int | None = None) -> EvalSet:
    """Load the evaluation crops of ``data`` (a ``calibration.DataSource``) into memory."""
    split, videos = restrict(data.split("val"), limit)
    ds = D.topdown_dataset(data.spec, split, train=False, image_loader=data._loader)
    xs, inv, ids = [], [], []
    for i in range(len(ds)):
        item = ds[i]
        xs.append((item["frames"] if "frames" in item else item["image"]).numpy().astype(np.float16))
        inv.append(item["inverse"].numpy())
        ids.append(int(item["image_id"]))
    layout = ds.layout
    gt, mask, head, box = [], [], [], []
    for s in ds.samples:
        p, frame = s.person, s.clip[s.current]
        gt.append(p.keypoints[:, :2])
        mask.append(p.visible & layout.valid_mask & ~frame.in_ignore_region(p.keypoints[:, :2]))
        head.append(person_head_size(p, layout))
        box.append(box_size(p.box()))
    return EvalSet(
        np.stack(xs),
        np.stack(inv),
        np.asarray(ids),
        np.stack(gt),
        np.stack(mask),
        np.asarray(head, np.float64),
        np.asarray(box, np.float64),
        split,
        data.spec,
        videos,
    )


def predict(
    plan: StagePlan,
    run_stage: Callable,
    evalset: EvalSet,
    batch: int = 32,
    to_input=None,
    progress: Callable[[str], None] | None = None,
    label: str = "evaluation",
):
    """Keypoints (N, J, 2) in crop pixels and scores (N, J) of every evaluation crop.

    ``to_input`` turns a float32 numpy batch into what ``run_stage`` takes (torch for models).
    """
    spec = evalset.spec
    kps, scores = [], []
    for start in range(0, len(evalset), batch):
        x = evalset.x[start : start + batch].astype(np.float32)
        _, outs = run_pipeline(plan, run_stage, to_input(x) if to_input else x)
        final = outs[plan.names[-1]]
        arrays = {
            k: (v.detach().float().cpu().numpy() if hasattr(v, "detach") else np.asarray(v, np.float32))
            for k, v in final.items()
        }
        k, s = decode(arrays, spec.codec, tuple(spec.input_size))
        kps.append(k)
        scores.append(s)
        if progress is not None:
            progress(f"{label}: {min(start + batch, len(evalset))}/{len(evalset)} crops")
    return np.concatenate(kps), np.concatenate(scores)


def _num(v) -> float | None:
    v = float(v)
    return None if math.isnan(v) else round(v, 3)


def score(evalset: EvalSet, keypoints: np.ndarray, scores: np.ndarray) -> dict:
    """The format metric, PCKh@0.5 and PCK@0.2 (box) of crop-pixel predictions, in percent."""
    frame_kp = np.stack([transform_points(k, m) for k, m in zip(keypoints, evalset.inverse)])
    preds = [
        Prediction(int(i), frame_kp[n], scores[n].astype(np.float64)) for n, i in enumerate(evalset.image_ids)
    ]
    fmt, layout = evalset.split.format, evalset.spec.layout
    metrics = metrics_of(fmt, preds, evalset.split.records, layout)
    primary = primary_metric(fmt, layout, evalset.split.records)
    return {
        "metric_name": "PoseTrack mAP" if primary == "mAP" else "COCO AP",
        "metric": _num(metrics[primary]),
        "pckh@0.5": _num(pck(frame_kp, evalset.gt, evalset.mask, evalset.head, 0.5, layout).mean),
        "pck@0.2": _num(pck(frame_kp, evalset.gt, evalset.mask, evalset.box, 0.2, layout).mean),
    }


def evaluate_model(
    model, evalset: EvalSet, batch: int = 32, progress: Callable[[str], None] | None = None
) -> dict:
    """A PyTorch PoseModel (fp32, or a simulated quantisation) through its stages."""
    model.eval()
    with torch.no_grad():
        kp, sc = predict(
            StagePlan.from_model(model),
            torch_stage_runner(model),
            evalset,
            batch,
            to_input=torch.from_numpy,
            progress=progress,
            label="evaluation (PyTorch)",
        )
    return {**score(evalset, kp, sc), "keypoints": kp}


def evaluate_bundle(
    path,
    evalset: EvalSet,
    batch: int = 32,
    threads: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """An exported bundle in its own runtime (CPU)."""
    opts = {"threads": threads} if threads else {}
    with quiet(), load(path, device="cpu", **opts) as bundle:
        plan = StagePlan.from_manifest(bundle.manifest)
        kp, sc = predict(
            plan,
            session_stage_runner(bundle.sessions, bundle.manifest.layout),
            evalset,
            batch,
            progress=progress,
            label=f"evaluation ({bundle.format} {bundle.manifest.precision})",
        )
    return {**score(evalset, kp, sc), "keypoints": kp}


def keypoint_deviation(a: np.ndarray, b: np.ndarray) -> dict:
    """How far two sets of crop-pixel keypoints lie apart: mean, 90th percentile, max."""
    d = np.linalg.norm(np.asarray(a, np.float64) - np.asarray(b, np.float64), axis=-1).reshape(-1)
    return {
        "mean_px": round(float(d.mean()), 3),
        "p90_px": round(float(np.percentile(d, 90)), 3),
        "max_px": round(float(d.max()), 3),
    }

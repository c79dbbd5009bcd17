"""COCO keypoint AP (OKS) through pycocotools' own COCOeval.

We only build the COCO objects in memory and call COCOeval; the metric is
pycocotools'. Layouts other than COCO-17 set ``params.kpt_oks_sigmas`` from
``layout.sigmas`` (for ``posetrack17``: COCO's sigmas for the shared joints,
``keypoints._SIGMAS`` for head_bottom/head_top; the empty ear slots are never
labelled, so their sigma does not matter). Stats are pycocotools' values in
[0, 1] (-1 where no ground truth qualifies).
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from edgepose.core.keypoints import LAYOUTS, KeypointLayout, get_layout
from edgepose.data.records import FrameRecord, VideoRecord

from .predictions import as_predictions

COCO_STATS = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")


def _pycocotools():
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError:
        raise ImportError("COCO AP needs pycocotools: pip install 'edgepose[eval]'") from None
    return COCO, COCOeval


def records_to_coco(frames: Sequence[FrameRecord] | Sequence[VideoRecord]) -> dict:
    """Our records -> a COCO keypoints ground-truth dict (labelled frames only).

    ``area`` is the file's (COCO: segmentation area) or else the box area (the
    visible joints' extent where there is no box), as PoseTrack-on-COCO-AP tools use.
    """
    items = list(frames)
    if items and isinstance(items[0], VideoRecord):
        items = [f for v in items for f in v.frames]
    images, anns = [], []
    for f in items:
        if not f.is_labeled:
            continue
        images.append({"id": int(f.image_id), "file_name": f.file_name, "width": f.width, "height": f.height})
        for p in f.persons:
            box = p.box()
            x, y, w, h = (0.0, 0.0, 0.0, 0.0) if box is None else (*box[:2], *(box[2:] - box[:2]))
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": int(f.image_id),
                    "category_id": 1,
                    "keypoints": p.keypoints.astype(np.float64).reshape(-1).tolist(),
                    "num_keypoints": p.num_keypoints,
                    "bbox": [float(x), float(y), float(w), float(h)],
                    "area": float(p.area) if p.area is not None else float(w * h),
                    "iscrowd": int(p.iscrowd),
                }
            )
    return {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "person"}]}


def _ground_truth(ground_truth) -> tuple[dict, KeypointLayout | None]:
    if isinstance(ground_truth, (str, Path)):
        with open(ground_truth) as f:
            ground_truth = json.load(f)
    if isinstance(ground_truth, dict):
        layout = None
        for cat in ground_truth.get("categories", []):
            names = tuple(cat.get("keypoints") or ())
            layout = next((lay for lay in LAYOUTS.values() if lay.names == names), None) or layout
        return ground_truth, layout
    items = list(ground_truth)
    frames = [f for v in items for f in v.frames] if items and isinstance(items[0], VideoRecord) else items
    layouts = {p.layout for f in frames for p in f.persons}
    if len(layouts) > 1:
        raise ValueError(f"ground truth mixes keypoint layouts {sorted(layouts)}; read it with one layout")
    return records_to_coco(frames), (get_layout(layouts.pop()) if layouts else None)


def coco_keypoint_ap(
    predictions: Iterable,
    ground_truth,
    layout: str | KeypointLayout | None = None,
    sigmas: Sequence[float] | None = None,
    unknown_images: str = "error",
    verbose: bool = False,
) -> dict[str, float]:
    """COCO keypoint AP/AR of ``predictions`` against ``ground_truth``.

    predictions: ``Prediction``s or dicts (see ``as_prediction``); keypoints in
    the ground truth's joint order. ground_truth: our records (``read_coco`` /
    ``read_posetrack``), a COCO JSON path, or its dict. ``layout`` picks the OKS
    sigmas (default: the records' layout, or the JSON category's joint names;
    COCO's when unknown); ``sigmas`` overrides them. ``unknown_images``:
    ``error`` (default) or ``drop`` predictions for images that are not in the
    ground truth (e.g. PoseTrack's unlabelled frames). Returns the ten COCO
    stats by name (AP, AP50, AP75, APm, APl, AR, AR50, AR75, ARm, ARl).
    """
    COCO, COCOeval = _pycocotools()
    gt_dict, gt_layout = _ground_truth(ground_truth)
    layout = (get_layout(layout) if isinstance(layout, str) else layout) or gt_layout
    quiet = contextlib.nullcontext() if verbose else contextlib.redirect_stdout(io.StringIO())

    known = {int(im["id"]) for im in gt_dict["images"]}
    dets = []
    for p in as_predictions(predictions):
        if p.image_id not in known:
            if unknown_images == "drop":
                continue
            raise KeyError(
                f"prediction for image {p.image_id}, which is not in the ground truth; "
                "pass unknown_images='drop' to skip such predictions"
            )
        kp = np.nan_to_num(np.concatenate([p.keypoints, np.nan_to_num(p.scores)[:, None]], axis=1))
        dets.append(
            {
                "image_id": p.image_id,
                "category_id": 1,
                "keypoints": kp.reshape(-1).tolist(),
                "score": p.instance_score,
            }
        )
    if not dets:
        return {k: 0.0 for k in COCO_STATS}

    with quiet:
        coco_gt = COCO()
        coco_gt.dataset = copy.deepcopy(gt_dict)
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(dets)
        ev = COCOeval(coco_gt, coco_dt, "keypoints")
        n_joints = len(dets[0]["keypoints"]) // 3
        if sigmas is not None:
            ev.params.kpt_oks_sigmas = np.asarray(sigmas, dtype=np.float64)
        elif layout is not None:
            ev.params.kpt_oks_sigmas = layout.sigmas
        if len(ev.params.kpt_oks_sigmas) != n_joints:
            raise ValueError(
                f"predictions have {n_joints} joints but there are {len(ev.params.kpt_oks_sigmas)} OKS sigmas; "
                "pass layout= or sigmas= matching the keypoint order"
            )
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {k: float(v) for k, v in zip(COCO_STATS, ev.stats)}

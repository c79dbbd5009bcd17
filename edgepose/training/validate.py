"""Top-down evaluation with ground-truth boxes: crops -> model -> decode -> frame pixels -> metric.

Flip test (optional, as the papers evaluate): the crop is mirrored as a tensor (column c <->
W-1-c), the mirrored pass is decoded to crop pixels, mapped back with x -> W-1-x and its joints
re-paired with the layout's flip index, and keypoints and scores of the two passes are averaged.
Averaging decoded coordinates rather than heatmaps keeps the mirror exact under the codec's
pixel convention (heatmap-space flipping would need the sub-pixel shift the official
pipelines approximate with ``shift_heatmap``).

Metrics: PoseTrack data -> per-joint-group mAP (poseval's protocol, ``edgepose.eval.posetrack_map``);
COCO data -> OKS AP/AR (pycocotools, ``edgepose.eval.coco_ap``), reported in percent.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..core.codecs import decode
from ..core.keypoints import get_layout
from ..core.transforms import transform_points
from ..eval.predictions import Prediction

POSETRACK_COLUMNS = (
    ("head", "Head"),
    ("shoulder", "Sho"),
    ("elbow", "Elb"),
    ("wrist", "Wri"),
    ("hip", "Hip"),
    ("knee", "Knee"),
    ("ankle", "Ank"),
    ("total", "Mean"),
)
COCO_COLUMNS = ("AP", "AP50", "AP75", "APm", "APl", "AR")
PRIMARY_METRIC = {"posetrack": "mAP", "coco": "AP"}


def has_head_joints(records, layout: str) -> bool:
    """Whether any labelled person of ``records`` has head_top and head_bottom (PoseTrack's head size)."""
    from ..core.keypoints import get_layout

    names = get_layout(layout).names
    if "head_top" not in names or "head_bottom" not in names:
        return False
    top, bottom = names.index("head_top"), names.index("head_bottom")
    frames = [f for v in records for f in v.frames] if records and hasattr(records[0], "frames") else records
    return any(
        p.keypoints[top, 2] > 0 and p.keypoints[bottom, 2] > 0
        for f in frames
        if f.is_labeled
        for p in f.persons
    )


def metric_format(fmt: str, layout: str, records=None) -> str:
    """The metric a split is scored by: PoseTrack mAP needs head_top/head_bottom for its head size, so a
    layout without them (a COCO-17 model on PoseTrack-form video), or labels without them (COCO-17
    pseudo-labels read into a PoseTrack-layout model), are scored by COCO AP."""
    from ..core.keypoints import get_layout

    names = get_layout(layout).names
    if fmt == "posetrack" and not ("head_top" in names and "head_bottom" in names):
        return "coco"
    if fmt == "posetrack" and records is not None and not has_head_joints(list(records), layout):
        return "coco"
    return fmt


def primary_metric(fmt: str, layout: str, records=None) -> str:
    return PRIMARY_METRIC[metric_format(fmt, layout, records)]


def _inputs(batch: dict) -> torch.Tensor:
    return batch["frames"] if "frames" in batch else batch["image"]


def _decode(model, x: torch.Tensor, codec: str, input_size) -> tuple[np.ndarray, np.ndarray]:
    out = model(x)
    return decode(
        {k: v.float().cpu().numpy() for k, v in out.items() if torch.is_tensor(v)}, codec, input_size
    )


@torch.no_grad()
def predict(
    model, spec, dataset, batch_size: int = 32, device: str | torch.device = "cpu", flip: bool = False
) -> list[Prediction]:
    """One Prediction per dataset item (GT-box crop), keypoints in frame pixels."""
    device = torch.device(device)
    was_training = model.training
    model.eval().to(device)
    flip_index = np.asarray(get_layout(spec.layout).flip_index)
    w = spec.input_size[1]
    preds = []
    for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        x = _inputs(batch).to(device)
        kp, sc = _decode(model, x, spec.codec, spec.input_size)
        if flip:
            kf, sf = _decode(model, x.flip(-1), spec.codec, spec.input_size)
            kf = kf[:, flip_index].copy()
            kf[..., 0] = (w - 1) - kf[..., 0]
            kp, sc = (kp + kf) / 2, (sc + sf[:, flip_index]) / 2
        inverse = batch["inverse"].numpy()
        for i in range(len(kp)):
            frame_kp = transform_points(kp[i], inverse[i])
            preds.append(Prediction(int(batch["image_id"][i]), frame_kp, sc[i].astype(np.float64)))
    model.train(was_training)
    return preds


def metrics_of(fmt: str, predictions: list[Prediction], ground_truth, layout: str) -> dict[str, Any]:
    """The format's metric table as a flat dict; the primary metric under ``primary_metric(fmt, layout,
    ground_truth)``."""
    fmt = metric_format(fmt, layout, ground_truth)
    if fmt == "posetrack":
        from ..eval.posetrack_map import posetrack_map

        result = posetrack_map(predictions, ground_truth, layout=layout)
        out = {"mAP": result.groups["total"]}
        out.update({title: result.groups[key] for key, title in POSETRACK_COLUMNS if key != "total"})
        return out
    from ..eval.coco_ap import coco_keypoint_ap

    try:
        stats = coco_keypoint_ap(predictions, ground_truth, layout=layout, unknown_images="drop")
    except ImportError as e:  # pycocotools is an optional extra
        raise RuntimeError(str(e)) from None
    # pycocotools reports -1 where no ground truth qualifies (e.g. no large persons): not a number
    return {k: 100.0 * stats[k] if stats[k] >= 0 else math.nan for k in COCO_COLUMNS}


def evaluate(model, spec, split, dataset, batch_size: int = 32, device="cpu", flip: bool = False) -> dict:
    """Predict ``dataset`` (a TopDownDataset of ``split``) and score it against ``split``'s records."""
    preds = predict(model, spec, dataset, batch_size, device, flip)
    return metrics_of(split.format, preds, split.records, spec.layout)

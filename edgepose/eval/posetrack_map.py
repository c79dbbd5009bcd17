"""PoseTrack mAP per joint and joint group, following PoseTrack's evaluation (poseval).

Our reading of poseval (``evaluateAP.py``, ``eval_helpers.py``, ``convert.py``),
reimplemented here as facts, not code:

* Frames. Only ground-truth frames with at least one annotated person are
  evaluated (poseval drops GT frames with an empty person list and the
  matching prediction frames). Unlabelled frames carry no persons in
  PoseTrack18, so they drop out; we skip frames with ``is_labeled`` false
  explicitly (PoseTrack21 also lists box-only persons there). Predictions on
  frames that are not evaluated are ignored.
* Joints. A GT joint is annotated unless x == y == v == 0 (poseval's
  converter drops exactly those); its visibility flag is not used. A predicted
  joint exists if it has coordinates (ours: finite x, y). Only the layout's
  labelable joints count (PoseTrack's 15; the ear slots are empty).
* Ignore regions. GT and predicted joints strictly inside any ignore polygon
  of the frame are removed; in such frames persons left without joints are
  removed too. A frame whose GT persons all vanish this way still counts:
  every prediction there becomes a false positive.
* Head size. 0.6 x the diagonal of the GT person's head box (``bbox_head``;
  PoseTrack17's x1, y1, x2, y2). A joint matches when its distance divided by
  the GT head size is <= 0.5 (PCKh@0.5). When a record has no head box we fall
  back to 0.6 x |head_top - head_bottom| (our assumption, not poseval's, which
  needs the box); a person with neither matches nothing.
* Multi-person assignment, per frame. For every (prediction, GT) pair, PCKh =
  matched joints / joints annotated on that GT person. Each prediction keeps
  only its best GT (first on ties); each GT then takes the prediction with
  the highest remaining PCKh (first on ties); a GT whose best value is 0 stays
  unmatched. So each prediction matches at most one GT.
* Scoring. Every predicted joint becomes one detection for its joint type,
  scored by the joint's own score: a true positive if its prediction is
  matched and the joint is within threshold of that GT's joint (a predicted
  joint that the GT lacks is a false positive), a false positive otherwise.
  Predictions in a frame without GT persons are all false positives.
* AP per joint. Detections of all frames, concatenated in frame order, are
  ranked by score (descending, by reversing numpy's default argsort as poseval
  does, so score ties resolve the same way); precision and recall
  (over all annotated GT joints of that type) give the VOC all-points AP
  (precision envelope, summed over recall steps), in percent. A joint with no
  detections gets AP 0; one with detections but no GT gets NaN. The total is
  the mean over joints skipping NaN; each group (head = nose, head_bottom,
  head_top; shoulder, ... ankle: both sides) is the mean of its joints.
"""

from __future__ import annotations

import math
import warnings
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from edgepose.core.keypoints import KeypointLayout, get_layout
from edgepose.data.records import FrameRecord, PersonRecord, VideoRecord, points_in_polygons

from .predictions import Prediction, as_predictions
from .table import group_values

PCKH_THRESHOLD = 0.5
HEAD_SIZE_FACTOR = 0.6  # poseval: head size = 0.6 x head-box diagonal


def head_size(head_box) -> float:
    """PoseTrack's head size from an (x1, y1, x2, y2) head box."""
    x1, y1, x2, y2 = (float(v) for v in head_box)
    return HEAD_SIZE_FACTOR * math.hypot(x2 - x1, y2 - y1)


def person_head_size(person: PersonRecord, layout: KeypointLayout) -> float:
    """Head size of a GT person: from its head box, else from head_top/head_bottom, else NaN."""
    if person.head_box is not None:
        return head_size(person.head_box)
    if "head_top" in layout.names and "head_bottom" in layout.names:
        top, bottom = (
            person.keypoints[layout.index("head_top")],
            person.keypoints[layout.index("head_bottom")],
        )
        if np.any(top != 0) and np.any(bottom != 0):
            return HEAD_SIZE_FACTOR * float(np.hypot(*(top[:2] - bottom[:2])))
    return math.nan


@dataclass
class PoseTrackAP:
    """AP in percent per joint name and per group (head ... ankle, total)."""

    joints: dict[str, float]
    groups: dict[str, float]
    precision: dict[str, float]  # at the last detection, percent, as poseval reports
    recall: dict[str, float]
    num_gt: dict[str, int]
    num_frames: int

    @property
    def mean(self) -> float:
        return self.groups["total"]


def voc_ap(recall: np.ndarray, precision: np.ndarray) -> float:
    """All-points interpolated AP: area under the precision envelope over recall steps."""
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[0.0], precision, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    steps = np.flatnonzero(mrec[1:] != mrec[:-1]) + 1
    return float(np.sum((mrec[steps] - mrec[steps - 1]) * mpre[steps]))


def _frames(ground_truth) -> list[FrameRecord]:
    items = list(ground_truth)
    if items and isinstance(items[0], VideoRecord):
        items = [f for v in items for f in v.frames]
    return items


def _assign_frame(gt_xy, gt_has, heads, pr_xy, pr_has, threshold) -> np.ndarray:
    """Per-joint TP labels (P, J) for the predictions of one frame (poseval's assignment)."""
    n_pr, n_gt = len(pr_xy), len(gt_xy)
    labels = np.zeros(pr_has.shape, dtype=bool)
    if n_pr == 0 or n_gt == 0:
        return labels
    with np.errstate(invalid="ignore", divide="ignore"):
        dist = np.linalg.norm(pr_xy[:, None] - gt_xy[None], axis=-1) / heads[None, :, None]
    match = (pr_has[:, None] & gt_has[None]) & (dist <= threshold)  # (P, G, J)
    pck = match.sum(-1) / gt_has.sum(-1)[None, :]
    best_gt = pck.argmax(axis=1)
    kept = np.zeros_like(pck)
    kept[np.arange(n_pr), best_gt] = pck[np.arange(n_pr), best_gt]
    pr_for_gt = kept.argmax(axis=0)
    for g in np.flatnonzero(kept.max(axis=0) > 0):
        p = pr_for_gt[g]
        labels[p] = match[p, g]
    return labels


def posetrack_map(
    predictions: Iterable[Prediction | dict],
    ground_truth: Sequence[FrameRecord] | Sequence[VideoRecord],
    layout: str | KeypointLayout | None = None,
    threshold: float = PCKH_THRESHOLD,
) -> PoseTrackAP:
    """PoseTrack mAP of ``predictions`` (frame pixels, the GT's joint order) on GT records."""
    frames = [f for f in _frames(ground_truth) if f.is_labeled and f.persons]
    if not frames:
        raise ValueError("no labelled ground-truth frames with persons to evaluate")
    if layout is None:
        layouts = {p.layout for f in frames for p in f.persons}
        if len(layouts) != 1:
            raise ValueError(f"ground truth has layouts {sorted(layouts)}; pass layout=")
        layout = layouts.pop()
    layout = get_layout(layout) if isinstance(layout, str) else layout
    joints = np.flatnonzero(layout.valid_mask)
    names = [layout.names[j] for j in joints]

    by_image: dict[int, list[Prediction]] = defaultdict(list)
    for p in as_predictions(predictions):
        by_image[p.image_id].append(p)

    scores = [[] for _ in joints]
    labels = [[] for _ in joints]
    n_gt = np.zeros(len(joints), dtype=np.int64)
    no_head = 0
    for frame in frames:
        gt_xy = np.stack([p.keypoints[joints, :2] for p in frame.persons]).astype(np.float64)
        gt_has = np.stack([p.labelled[joints] for p in frame.persons])
        heads = np.array([person_head_size(p, layout) for p in frame.persons])
        preds = by_image.get(frame.image_id, [])
        for p in preds:
            if len(p.keypoints) != len(layout):
                raise ValueError(
                    f"prediction for image {frame.image_id} has {len(p.keypoints)} joints; "
                    f"layout {layout.name!r} has {len(layout)}"
                )
        pr_xy = np.array([p.keypoints[joints] for p in preds], dtype=np.float64).reshape(-1, len(joints), 2)
        pr_sc = np.array([p.scores[joints] for p in preds], dtype=np.float64).reshape(-1, len(joints))
        pr_has = np.all(np.isfinite(pr_xy), axis=-1)
        if frame.ignore_regions:
            gt_has &= ~points_in_polygons(gt_xy, frame.ignore_regions)
            pr_has &= ~points_in_polygons(pr_xy, frame.ignore_regions)
        keep_gt, keep_pr = gt_has.any(1), pr_has.any(1)
        gt_xy, gt_has, heads = gt_xy[keep_gt], gt_has[keep_gt], heads[keep_gt]
        pr_xy, pr_has, pr_sc = pr_xy[keep_pr], pr_has[keep_pr], pr_sc[keep_pr]
        no_head += int(np.isnan(heads).sum())

        tp = _assign_frame(gt_xy, gt_has, heads, pr_xy, pr_has, threshold)
        for k in range(len(joints)):
            scores[k].append(pr_sc[pr_has[:, k], k])
            labels[k].append(tp[pr_has[:, k], k])
        n_gt += gt_has.sum(0)
    if no_head:
        warnings.warn(
            f"{no_head} GT persons have no head box and no head joints: they match nothing", stacklevel=2
        )

    ap, prec, rec = {}, {}, {}
    for k, name in enumerate(names):
        s, lab = np.concatenate(scores[k]), np.concatenate(labels[k])
        if len(s) == 0:
            ap[name] = prec[name] = rec[name] = 0.0
            continue
        order = np.argsort(s)[::-1]  # numpy's default sort, as poseval: same order on score ties
        tp = np.cumsum(lab[order])
        precision = tp / np.arange(1, len(tp) + 1)
        if n_gt[k] == 0:
            ap[name], prec[name], rec[name] = math.nan, 100.0 * precision[-1], math.nan
            continue
        recall = tp / n_gt[k]
        ap[name] = 100.0 * voc_ap(recall, precision)
        prec[name], rec[name] = 100.0 * precision[-1], 100.0 * recall[-1]
    return PoseTrackAP(
        joints=ap,
        groups=group_values(ap),
        precision=prec,
        recall=rec,
        num_gt={n: int(c) for n, c in zip(names, n_gt)},
        num_frames=len(frames),
    )

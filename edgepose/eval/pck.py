"""PCK / PCKh: the share of joints within ``threshold`` x a per-person size of the truth.

For matched pairs (prediction i <-> ground-truth person i), e.g. top-down
predictions on ground-truth boxes or on the synthetic set's known tracks.
The size is the box's longer side (``box_size``: PCK@0.2 style) or
PoseTrack's head size (``head_size``: PCKh@0.5). ``pck_by_flags`` splits the
result by per-joint annotation flags (e.g. occluded vs not), the breakdown a
video model should win on. Values are percentages.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from edgepose.core.keypoints import KeypointLayout, get_layout

from .posetrack_map import head_size
from .table import group_values

__all__ = ["PCKResult", "pck", "pck_by_flags", "box_size", "head_size"]


def box_size(bbox_xyxy) -> float:
    """The longer side of an (x1, y1, x2, y2) box."""
    x1, y1, x2, y2 = (float(v) for v in bbox_xyxy)
    return max(x2 - x1, y2 - y1)


@dataclass
class PCKResult:
    per_joint: dict[str, float]  # percent; NaN where no joint of that type counts
    mean: float  # over all counted joints (not a mean of joint means)
    count: int  # joints counted

    @property
    def groups(self) -> dict[str, float]:
        """Head ... ankle means plus ``total`` (= ``mean``, the pooled rate), for ``print_joint_table``."""
        return {**group_values(self.per_joint), "total": self.mean}


def _correct(pred, gt, norm, threshold) -> np.ndarray:
    pred, gt = np.asarray(pred, np.float64), np.asarray(gt, np.float64)
    if pred.shape != gt.shape or pred.ndim != 3 or pred.shape[-1] != 2:
        raise ValueError(f"pred and gt must both be (N, J, 2); got {pred.shape} and {gt.shape}")
    norm = np.asarray(norm, np.float64).reshape(-1)
    if len(norm) != len(gt):
        raise ValueError(f"{len(norm)} normalisers for {len(gt)} persons")
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.linalg.norm(pred - gt, axis=-1) / norm[:, None] <= threshold


def _result(correct: np.ndarray, mask: np.ndarray, layout: KeypointLayout) -> PCKResult:
    counted = mask.sum(0)
    hits = (correct & mask).sum(0)
    per_joint = {
        n: (100.0 * hits[j] / counted[j] if counted[j] else math.nan)
        for j, n in enumerate(layout.names)
        if n not in layout.empty
    }
    total = int(mask.sum())
    return PCKResult(per_joint, 100.0 * float(hits.sum()) / total if total else math.nan, total)


def pck(
    pred, gt, mask, norm, threshold: float = 0.5, layout: str | KeypointLayout = "posetrack17"
) -> PCKResult:
    """PCK over (N, J, 2) predictions and truth; ``mask`` (N, J) picks the joints that count
    (labelled, outside ignore regions); ``norm`` (N,) is each person's size (``head_size``,
    ``box_size``). A person with a non-finite or zero size counts its joints as misses."""
    layout = get_layout(layout) if isinstance(layout, str) else layout
    mask = np.asarray(mask, bool)
    if mask.shape != np.shape(gt)[:2] or mask.shape[1] != len(layout):
        raise ValueError(f"mask {mask.shape} must be (N, J) with J = {len(layout)} joints of {layout.name!r}")
    return _result(_correct(pred, gt, norm, threshold), mask, layout)


def pck_by_flags(
    pred,
    gt,
    mask,
    norm,
    flags: Mapping[str, np.ndarray],
    threshold: float = 0.5,
    layout: str | KeypointLayout = "posetrack17",
) -> dict[str, PCKResult]:
    """PCK split by per-joint flags: for each flag ``f`` (N, J) two entries, ``f`` (joints
    with the flag set) and ``not_f`` (joints without). NaN flags (unknown) count in neither."""
    layout = get_layout(layout) if isinstance(layout, str) else layout
    mask = np.asarray(mask, bool)
    correct = _correct(pred, gt, norm, threshold)
    out = {"all": _result(correct, mask, layout)}
    for name, flag in flags.items():
        flag = np.asarray(flag, np.float64)
        if flag.shape != mask.shape:
            raise ValueError(f"flag {name!r} has shape {flag.shape}; expected {mask.shape}")
        known = np.isfinite(flag)
        out[name] = _result(correct, mask & known & (flag > 0), layout)
        out[f"not_{name}"] = _result(correct, mask & known & (flag <= 0), layout)
    return out

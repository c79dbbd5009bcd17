"""Plain records the dataset readers produce and the crops and evaluators consume.

Keypoints are stored in one of our layouts (``edgepose.core.keypoints``) as
(J, 3) arrays of x, y, v in frame pixels, so a reader's file order never leaks
further. ``v`` is kept as written by the dataset (COCO: 0 unlabelled,
1 labelled but occluded, 2 visible; PoseTrack: 0 or 1). Two masks follow from
it because the datasets' own tools read it two ways:

* ``visible`` (v > 0): what the papers' training pipelines use as the target
  weight (HRNet/DCPose/DSTA clip v to 1).
* ``labelled`` (not x == y == v == 0): what PoseTrack's evaluation (poseval)
  counts as an annotated joint when it converts to its internal format.

Torch-free, so the device side could read datasets too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class PersonRecord:
    """One annotated person in one frame."""

    keypoints: np.ndarray  # (J, 3) float32: x, y, v in the layout's joint order
    bbox: np.ndarray | None  # (4,) float64 x1, y1, x2, y2 in frame pixels; None if the file had none
    layout: str
    id: int | None = None  # the annotation id
    track_id: int | None = None
    iscrowd: bool = False
    area: float | None = None  # COCO's segmentation area; None where the file has none
    head_box: np.ndarray | None = None  # (4,) x1, y1, x2, y2 (PoseTrack's bbox_head)
    score: float = 1.0
    # Per-joint arrays (J,) already in layout order (e.g. ``occluded``, ``blurred``)
    # and, under their own names, any other field the file carried.
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def visible(self) -> np.ndarray:
        return self.keypoints[:, 2] > 0

    @property
    def labelled(self) -> np.ndarray:
        return np.any(self.keypoints != 0, axis=1)

    @property
    def num_keypoints(self) -> int:
        return int(self.visible.sum())

    def box(self) -> np.ndarray | None:
        """The person's box (x1, y1, x2, y2), or the extent of its visible joints where the
        file gave no usable box; None when neither exists."""
        if self.bbox is not None and self.bbox[2] > self.bbox[0] and self.bbox[3] > self.bbox[1]:
            return self.bbox
        pts = self.keypoints[self.visible, :2].astype(np.float64)
        if len(pts) < 2:
            return None
        box = np.concatenate([pts.min(0), pts.max(0)])
        return box if box[2] > box[0] and box[3] > box[1] else None

    @property
    def joint_flags(self) -> dict[str, np.ndarray]:
        """The per-joint extras (arrays of length J), e.g. ``occluded`` and ``blurred``."""
        j = len(self.keypoints)
        return {
            k: v for k, v in self.extra.items() if isinstance(v, np.ndarray) and v.ndim == 1 and len(v) == j
        }


@dataclass
class FrameRecord:
    """One image: a COCO image or one frame of a PoseTrack video."""

    image_id: int
    file_name: str  # as written in the JSON
    image_path: Path  # file_name resolved against the image root
    persons: list[PersonRecord] = field(default_factory=list)
    width: int | None = None
    height: int | None = None
    video_id: str | None = None
    frame_index: int = 0  # position in its video, 0-based (0 for still images)
    nframes: int | None = None  # the file's own frame count for the video, if given
    is_labeled: bool = True
    ignore_regions: list[np.ndarray] = field(default_factory=list)  # polygons, each (K, 2) x, y
    extra: dict[str, Any] = field(default_factory=dict)

    def in_ignore_region(self, points: np.ndarray) -> np.ndarray:
        """Boolean mask over (..., 2) points: True where a point lies inside any ignore region."""
        return points_in_polygons(points, self.ignore_regions)


@dataclass
class VideoRecord:
    """Every frame of one video in time order: ``frames[i].frame_index == i``."""

    video_id: str
    frames: list[FrameRecord]

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def labeled_frames(self) -> list[FrameRecord]:
        return [f for f in self.frames if f.is_labeled]


def points_in_polygons(points: np.ndarray, polygons: list[np.ndarray]) -> np.ndarray:
    """Even-odd (ray casting) point-in-polygon test, vectorised over points.

    Polygons with fewer than three vertices enclose nothing. Points exactly on
    an edge may fall either way (PoseTrack's tool uses shapely's strict
    ``contains``); with real-valued coordinates that case has measure zero.
    """
    pts = np.asarray(points, dtype=np.float64)
    inside = np.zeros(pts.shape[:-1], dtype=bool)
    if not polygons:
        return inside
    x, y = pts[..., 0][..., None], pts[..., 1][..., None]
    for poly in polygons:
        poly = np.asarray(poly, dtype=np.float64)
        if len(poly) < 3:
            continue
        x1, y1 = poly[:, 0], poly[:, 1]
        x2, y2 = np.roll(x1, -1), np.roll(y1, -1)
        crosses = (y1 > y) != (y2 > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            x_at = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
        hits = crosses & (x < x_at)
        inside |= (hits.sum(axis=-1) % 2) == 1
    return inside


def reorder_joint_array(values, file_names: tuple[str, ...], layout) -> np.ndarray:
    """Re-order a per-joint array (J_file,) or (J_file, D) from a file's joint names into ``layout``.

    Uses ``edgepose.core.keypoints.convert`` through an ad-hoc layout built from
    the file's names, so empty slots and missing joints come out as zeros.
    """
    from edgepose.core.keypoints import KeypointLayout, convert

    src = KeypointLayout(name="file", names=tuple(file_names), edges=())
    arr = np.asarray(values)
    if arr.ndim == 1:
        return convert(arr[:, None], src, layout)[:, 0]
    return convert(arr, src, layout)

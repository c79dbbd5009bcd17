"""Read a COCO keypoints JSON (``person_keypoints_*.json``) into ``FrameRecord``s.

Only the person category is read. Keypoints are mapped from the file's joint
names (the category's ``keypoints`` list; COCO-17 when absent) onto the
requested layout with ``edgepose.core.keypoints.convert``, so a COCO file can
feed a PoseTrack-layout model (head_bottom/head_top come out unlabelled).
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from edgepose.core.keypoints import COCO17, KeypointLayout, get_layout

from .records import FrameRecord, PersonRecord, reorder_joint_array

_ANNOTATION_KEYS = {
    "keypoints", "bbox", "id", "image_id", "category_id", "iscrowd", "area", "num_keypoints",
    "segmentation", "score", "track_id", "bbox_head",
}  # fmt: skip


def load_json(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"annotation file {path} does not exist")
    with open(path) as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path} is not valid JSON: {e}") from None


def person_category(data: dict, source: str = "<json>") -> tuple[int, tuple[str, ...]]:
    """The person category's id and joint names (COCO-17 names when the file lists none)."""
    cats = data.get("categories") or [{"id": 1, "name": "person"}]
    for cat in cats:
        if cat.get("name") == "person":
            names = tuple(cat.get("keypoints") or COCO17.names)
            return int(cat["id"]), names
    raise ValueError(f"{source}: no 'person' category among {[c.get('name') for c in cats]}")


def xywh_to_xyxy(box) -> np.ndarray | None:
    if box is None or len(box) != 4:
        return None
    x, y, w, h = (float(v) for v in box)
    return np.array([x, y, x + w, y + h], dtype=np.float64)


def keypoints_from_flat(flat, file_names: tuple[str, ...], layout: KeypointLayout, source: str) -> np.ndarray:
    kp = np.asarray(flat, dtype=np.float32)
    if kp.size != 3 * len(file_names):
        raise ValueError(
            f"{source}: keypoints has {kp.size} values; expected 3 x {len(file_names)} joints "
            f"({', '.join(file_names[:3])}, ...)"
        )
    return reorder_joint_array(kp.reshape(-1, 3), file_names, layout).astype(np.float32)


def person_from_annotation(
    ann: dict, file_names: tuple[str, ...], layout: KeypointLayout, source: str
) -> PersonRecord:
    """One COCO-style annotation dict -> PersonRecord (shared with the PoseTrack reader).

    Per-joint lists the length of the file's joint list (e.g. the synthetic
    set's ``occluded``/``blurred``) are re-ordered into the layout; other
    unknown fields are kept verbatim in ``extra``.
    """
    kp = keypoints_from_flat(ann.get("keypoints") or [0] * 3 * len(file_names), file_names, layout, source)
    extra = {}
    for k, v in ann.items():
        if k in _ANNOTATION_KEYS:
            continue
        if (
            isinstance(v, list)
            and len(v) == len(file_names)
            and all(isinstance(e, (int, float, bool)) for e in v)
        ):
            extra[k] = reorder_joint_array(np.asarray(v), file_names, layout)
        else:
            extra[k] = v
    return PersonRecord(
        keypoints=kp,
        bbox=xywh_to_xyxy(ann.get("bbox")),
        layout=layout.name,
        id=ann.get("id"),
        track_id=ann.get("track_id"),
        iscrowd=bool(ann.get("iscrowd", 0)),
        area=float(ann["area"]) if ann.get("area") is not None else None,
        head_box=xywh_to_xyxy(ann.get("bbox_head")),
        score=float(ann.get("score", 1.0)),
        extra=extra,
    )


def read_coco(
    path: str | Path,
    layout: str | KeypointLayout = "coco17",
    image_root: str | Path | None = None,
) -> list[FrameRecord]:
    """COCO keypoints JSON -> one FrameRecord per image (sorted by image id).

    ``image_root``: where ``file_name`` paths are resolved (default: the JSON's directory).
    Images without person annotations are kept (with no persons): evaluation needs them.
    """
    path = Path(path)
    data = load_json(path)
    layout = get_layout(layout) if isinstance(layout, str) else layout
    root = Path(image_root) if image_root is not None else path.parent
    if "images" not in data or "annotations" not in data:
        raise ValueError(f"{path}: not a COCO annotation file (needs 'images' and 'annotations')")
    cat_id, names = person_category(data, str(path))
    by_image: dict[int, list[PersonRecord]] = defaultdict(list)
    for ann in data["annotations"]:
        if ann.get("category_id", cat_id) != cat_id:
            continue
        by_image[ann["image_id"]].append(
            person_from_annotation(ann, names, layout, f"{path} annotation {ann.get('id')}")
        )
    frames = []
    for img in sorted(data["images"], key=lambda im: im["id"]):
        frames.append(
            FrameRecord(
                image_id=int(img["id"]),
                file_name=img["file_name"],
                image_path=root / img["file_name"],
                persons=by_image.get(img["id"], []),
                width=img.get("width"),
                height=img.get("height"),
            )
        )
    return frames

"""Read PoseTrack 2018 / 2021 annotation JSON into ``VideoRecord``s.

Both releases use one COCO-style JSON per video (``posetrack_data/{train,val}/
<vid>_<source>_<split>.json``); this reader takes such a directory, one such
file, or one file holding many videos (DCPose-style merged files). Fields read
(from the public releases and poseval's converter):

images
    ``id`` (PoseTrack18/21: ``1`` + 6-digit video id + 4-digit frame number,
    e.g. 10003420000), ``frame_id`` (equal to ``id`` in both releases),
    ``vid_id`` (the 6-digit video id as a string), ``file_name``
    (``images/<split>/<video>/<frame>.jpg``, relative to the dataset root),
    ``nframes``, ``is_labeled`` (frame has keypoint annotations),
    ``ignore_regions_x`` / ``ignore_regions_y`` (lists of polygons' x and y
    lists). 2021 adds ``has_labeled_person`` (boxes without keypoints), kept in
    ``FrameRecord.extra``.
annotations
    ``image_id``, ``id``, ``track_id``, ``bbox`` and ``bbox_head`` (x, y, w, h),
    ``keypoints`` (17 x 3 in the category's order: nose, head_bottom, head_top,
    two ear placeholders, then the 12 COCO body joints: our ``posetrack17``),
    ``category_id``; 2021 adds ``person_id`` (re-id). Any further field (e.g.
    our synthetic set's per-joint ``occluded``/``blurred``) is kept on the
    record, per-joint lists re-ordered into the layout.

Assumptions, where a field is absent: ``vid_id`` falls back to the prefix of
the image's directory name before the first ``_`` (as poseval does), frames
are ordered by ``frame_id`` (else ``id``) and numbered 0..n-1 in that order,
and ``is_labeled`` falls back to "has an annotation with a labelled joint".
Both releases list every frame of a video, labelled or not; a gap in the
numeric file names is reported with a warning because clip neighbours across
it would not be the true neighbours.
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from pathlib import Path, PurePosixPath

import numpy as np

from edgepose.core.keypoints import KeypointLayout, get_layout

from .coco import load_json, person_category, person_from_annotation
from .records import FrameRecord, VideoRecord

_IMAGE_KEYS = {
    "id", "file_name", "frame_id", "vid_id", "nframes", "is_labeled", "ignore_regions_x",
    "ignore_regions_y", "width", "height",
}  # fmt: skip


def _json_files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(path.glob("*.json"))
        if not files:
            raise FileNotFoundError(
                f"{path} holds no .json files; expected PoseTrack per-video annotation files"
            )
        return files
    if not path.is_file():
        raise FileNotFoundError(
            f"PoseTrack annotations {path} do not exist (give a directory of JSONs or one file)"
        )
    return [path]


def _video_id(img: dict) -> str:
    if img.get("vid_id") is not None:
        return str(img["vid_id"])
    parent = PurePosixPath(img.get("file_name", "")).parent.name
    if parent:
        return parent.split("_")[0]
    return str(int(img["id"]) // 10000)


def _ignore_regions(img: dict) -> list[np.ndarray]:
    xs, ys = img.get("ignore_regions_x") or [], img.get("ignore_regions_y") or []
    if len(xs) != len(ys):
        raise ValueError(f"image {img.get('id')}: {len(xs)} ignore_regions_x but {len(ys)} ignore_regions_y")
    return [np.stack([np.asarray(x, float), np.asarray(y, float)], axis=1) for x, y in zip(xs, ys) if len(x)]


def _find_image_root(json_dir: Path, images: dict[int, dict]) -> Path:
    """The nearest ancestor of the JSON directory that holds the first image's ``file_name``.

    PoseTrack18 keeps JSONs in ``posetrack_data/annotations/<split>`` and images
    under ``posetrack_data/images``; PoseTrack21 keeps JSONs in
    ``posetrack_data/<split>`` and images beside ``posetrack_data``. Without
    images on disk (evaluation only) the JSON directory is used.
    """
    if images:
        name = next(iter(images.values())).get("file_name", "")
        for cand in (json_dir, *json_dir.parents):
            if (cand / name).is_file():
                return cand
    return json_dir


def _frame_number(file_name: str) -> int | None:
    stem = PurePosixPath(file_name).stem
    return int(stem) if stem.isdigit() else None


def read_posetrack(
    path: str | Path,
    layout: str | KeypointLayout = "posetrack17",
    image_root: str | Path | None = None,
) -> list[VideoRecord]:
    """PoseTrack 2018/2021 JSON (directory or file) -> videos sorted by id, frames in time order.

    ``image_root``: the dataset root that ``file_name`` is relative to. Default:
    the nearest ancestor of the JSON directory where the images are found.
    """
    path = Path(path)
    layout = get_layout(layout) if isinstance(layout, str) else layout
    files = _json_files(path)
    images: dict[int, dict] = {}
    persons = defaultdict(list)
    for file in files:
        data = load_json(file)
        if "images" not in data:
            raise ValueError(
                f"{file}: not a PoseTrack 2018/2021 file (no 'images'); PoseTrack 2017 'annolist' files "
                "must be converted first (poseval's convert tool)"
            )
        cat_id, names = person_category(data, str(file))
        for img in data["images"]:
            images[int(img["id"])] = img
        for ann in data.get("annotations", []):
            if ann.get("category_id", cat_id) != cat_id:
                continue
            persons[int(ann["image_id"])].append(
                person_from_annotation(ann, names, layout, f"{file} annotation {ann.get('id')}")
            )

    root = Path(image_root) if image_root is not None else _find_image_root(files[0].parent, images)
    by_video: dict[str, list[dict]] = defaultdict(list)
    for img in images.values():
        by_video[_video_id(img)].append(img)

    videos = []
    for vid in sorted(by_video):
        imgs = sorted(by_video[vid], key=lambda im: int(im.get("frame_id", im["id"])))
        frames = []
        for index, img in enumerate(imgs):
            people = persons.get(int(img["id"]), [])
            labeled = img.get("is_labeled")
            if labeled is None:
                labeled = any(p.labelled.any() for p in people)
            frames.append(
                FrameRecord(
                    image_id=int(img["id"]),
                    file_name=img["file_name"],
                    image_path=root / img["file_name"],
                    persons=people,
                    width=img.get("width"),
                    height=img.get("height"),
                    video_id=vid,
                    frame_index=index,
                    nframes=int(img["nframes"]) if img.get("nframes") is not None else None,
                    is_labeled=bool(labeled),
                    ignore_regions=_ignore_regions(img),
                    extra={k: v for k, v in img.items() if k not in _IMAGE_KEYS},
                )
            )
        _check_complete(vid, frames)
        videos.append(VideoRecord(video_id=vid, frames=frames))
    return videos


def _check_complete(vid: str, frames: list[FrameRecord]) -> None:
    numbers = [_frame_number(f.file_name) for f in frames]
    gaps = None not in numbers and numbers != list(range(numbers[0], numbers[0] + len(numbers)))
    nframes = frames[0].nframes
    if gaps or (nframes is not None and nframes != len(frames)):
        warnings.warn(
            f"PoseTrack video {vid}: the JSON lists {len(frames)} frames (nframes={nframes}, file numbers "
            f"{numbers[0]}..{numbers[-1]}); clip windows use the listed frames as consecutive",
            stacklevel=3,
        )


def labeled_frames(videos: list[VideoRecord]) -> list[FrameRecord]:
    """All labelled frames of all videos, the ground truth an evaluation runs on."""
    return [f for v in videos for f in v.labeled_frames]

"""Write synthetic videos as a dataset in PoseTrack 2018 form (and COCO keypoints form).

Layout of a dataset directory::

    DIR/meta.json                          generator version, seed, config, splits, statistics
    DIR/images/<video>/<frame:06d>.jpg     every frame
    DIR/annotations/{train,val}/<video>.json   PoseTrack18: images, annotations, categories
    DIR/annotations/coco_{train,val}.json  COCO keypoints (coco17), with --layout coco17|both

The PoseTrack files use the real PoseTrack18 fields and ids (image id = 1 + 6-digit video id +
4-digit frame, ``frame_id`` = id, ``vid_id``, ``nframes``, ``is_labeled``, ``ignore_regions_*``,
``track_id``, ``bbox``, ``bbox_head``, 17x3 ``keypoints`` in ``posetrack17`` order with empty ear
slots), so ``edgepose.data.posetrack.read_posetrack`` reads them like the real set. Extensions
per annotation: ``occluded`` and ``blurred`` (17 ints, same joint order), ``area`` (amodal
silhouette pixels), ``visible_fraction``, ``num_keypoints``, ``action``. ``v`` follows COCO:
2 visible, 1 labelled but hidden, 0 outside the image (then x = y = 0). File names are
relative to DIR (for the COCO file, pass ``image_root=DIR`` to the reader).

The directory is built in a staging directory and swapped in only when complete
(``edgepose.core.atomic.atomic_dir``); each JSON is itself written atomically.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from .. import __version__
from ..core.atomic import atomic_dir, atomic_file
from ..core.keypoints import COCO17, POSETRACK17, KeypointLayout
from .synthetic import GENERATOR_VERSION, SynthConfig, SyntheticVideo, SynthFrame

GENERATOR = "edgepose.synthetic"
LAYOUT_CHOICES = {"posetrack17": ("posetrack17",), "coco17": ("coco17",), "both": ("posetrack17", "coco17")}


@dataclass
class SynthStats:
    """Running counts over frames, for the CLI summary and meta.json."""

    frames: int = 0
    labeled_frames: int = 0
    persons: int = 0
    joints: int = 0  # labelled joints (v > 0) in the 19-joint superset
    occluded: int = 0
    self_occluded: int = 0
    blurred_joints: int = 0
    blurred_frames: int = 0
    person_blur: int = 0
    tracks: set = field(default_factory=set)
    tracks_per_video: list = field(default_factory=list)
    births_after_start: int = 0
    deaths_before_end: int = 0
    seconds: float = 0.0

    def add(self, frame: SynthFrame, labeled: bool = True) -> None:
        self.frames += 1
        self.blurred_frames += int(frame.blurred)
        if not labeled:
            return
        self.labeled_frames += 1
        for p in frame.persons:
            lab = p.visibility > 0
            self.persons += 1
            self.joints += int(lab.sum())
            self.occluded += int((p.occluded & lab).sum())
            self.self_occluded += int(((p.visibility == 1) & ~p.occluded).sum())
            self.blurred_joints += int((p.blurred & lab).sum())
            self.person_blur += int(bool(p.blurred.any()) and not frame.blurred)
            self.tracks.add((frame.video, p.track_id))

    def add_video_tracks(self, first: dict, last: dict, nframes: int) -> None:
        self.births_after_start += sum(1 for f in first.values() if f > 0)
        self.deaths_before_end += sum(1 for f in last.values() if f < nframes - 1)

    def merge(self, other: SynthStats) -> None:
        for k in (
            "frames",
            "labeled_frames",
            "persons",
            "joints",
            "occluded",
            "self_occluded",
            "blurred_joints",
            "blurred_frames",
            "person_blur",
            "births_after_start",
            "deaths_before_end",
        ):
            setattr(self, k, getattr(self, k) + getattr(other, k))
        self.tracks |= other.tracks

    def as_dict(self) -> dict:
        j = max(self.joints, 1)
        return {
            "frames": self.frames,
            "labeled_frames": self.labeled_frames,
            "persons": self.persons,
            "tracks": len(self.tracks),
            "persons_per_frame": round(self.persons / max(self.labeled_frames, 1), 2),
            "labelled_joints": self.joints,
            "occluded_joint_pct": round(100.0 * self.occluded / j, 2),
            "self_occluded_joint_pct": round(100.0 * self.self_occluded / j, 2),
            "blurred_joint_pct": round(100.0 * self.blurred_joints / j, 2),
            "blurred_frame_pct": round(100.0 * self.blurred_frames / max(self.frames, 1), 2),
            "person_blur_annotations": self.person_blur,
            "track_births_after_first_frame": self.births_after_start,
            "track_deaths_before_last_frame": self.deaths_before_end,
            "seconds": round(self.seconds, 2),
            "frames_per_s": round(self.frames / self.seconds, 1) if self.seconds > 0 else None,
        }


def _skeleton_1based(layout: KeypointLayout) -> list[list[int]]:
    return [[a + 1, b + 1] for a, b in layout.skeleton]


def category(layout: KeypointLayout) -> dict:
    return {
        "supercategory": "person",
        "id": 1,
        "name": "person",
        "keypoints": list(layout.names),
        "skeleton": _skeleton_1based(layout),
    }


def image_id(video_index: int, frame: int) -> int:
    """PoseTrack18's id scheme: '1' + 6-digit video number + 4-digit frame number."""
    if not (0 <= video_index < 1_000_000 and 0 <= frame < 10_000):
        raise ValueError(f"PoseTrack ids need video index < 1e6 and frame < 1e4, got {video_index}, {frame}")
    return 10_000_000_000 + video_index * 10_000 + frame


def annotation(p, layout: KeypointLayout, img_id: int, k: int) -> dict:
    kp = p.keypoints_in(layout)
    fl = p.flags_in(layout)
    flat = []
    for x, y, v in kp:
        flat += [round(float(x), 2), round(float(y), 2), int(v)]
    return {
        "id": img_id * 100 + k,
        "image_id": img_id,
        "track_id": int(p.track_id),
        "category_id": 1,
        "bbox": [round(float(v), 2) for v in p.bbox],
        "bbox_head": [round(float(v), 2) for v in p.bbox_head],
        "keypoints": flat,
        "num_keypoints": int((kp[:, 2] > 0).sum()),
        "scores": [],
        "iscrowd": 0,
        "area": round(float(p.area), 1),
        "visible_fraction": round(float(p.visible_fraction), 3),
        "occluded": [int(v) for v in fl["occluded"]],
        "blurred": [int(v) for v in fl["blurred"]],
        "action": p.action,
    }


def _write_json(path: Path, obj) -> None:
    with atomic_file(path, "w") as f:
        json.dump(obj, f, separators=(",", ":"))


@dataclass
class _Job:
    stage: str
    config: dict
    seed: int
    index: int
    split: str
    layouts: tuple[str, ...]
    jpeg_quality: int
    label_every: int


def _write_video(job: _Job, on_frame: Callable[[], None] | None = None) -> dict:
    """Render one video into the staging dir; returns its COCO part, stats and info."""
    cfg = SynthConfig.from_dict(job.config)
    video = SyntheticVideo(cfg, seed=job.seed, index=job.index, keep_jpeg=True)
    name = video.name
    img_dir = Path(job.stage) / "images" / name
    img_dir.mkdir(parents=True, exist_ok=True)
    images, anns, coco_images, coco_anns = [], [], [], []
    stats = SynthStats()
    first, last = {}, {}
    t0 = time.perf_counter()
    for fr in video:
        t = fr.index
        iid = image_id(job.index, t)
        rel = f"images/{name}/{t:06d}.jpg"
        data = fr.jpeg
        if data is None:
            ok, buf = cv2.imencode(
                ".jpg",
                cv2.cvtColor(fr.image, cv2.COLOR_RGB2BGR),
                [cv2.IMWRITE_JPEG_QUALITY, job.jpeg_quality],
            )
            if not ok:
                raise RuntimeError(f"could not encode frame {t} of {name} as JPEG")
            data = buf.tobytes()
        (img_dir / f"{t:06d}.jpg").write_bytes(data)
        labeled = t % job.label_every == 0
        stats.add(fr, labeled)
        images.append(
            {
                "id": iid,
                "file_name": rel,
                "vid_id": f"{job.index:06d}",
                "frame_id": iid,
                "nframes": cfg.frames,
                "is_labeled": labeled,
                "ignore_regions_x": [],
                "ignore_regions_y": [],
                "width": cfg.width,
                "height": cfg.height,
            }
        )
        for p in fr.persons:
            first.setdefault(p.track_id, t)
            last[p.track_id] = t
        if labeled:
            for k, p in enumerate(fr.persons):
                if "posetrack17" in job.layouts:
                    anns.append(annotation(p, POSETRACK17, iid, k))
                if "coco17" in job.layouts:
                    coco_anns.append(annotation(p, COCO17, iid, k))
            if "coco17" in job.layouts:
                coco_images.append(
                    {
                        "id": iid,
                        "file_name": rel,
                        "width": cfg.width,
                        "height": cfg.height,
                        "vid_id": f"{job.index:06d}",
                        "frame_id": iid,
                        "track_video": name,
                    }
                )
        if on_frame is not None:
            on_frame()
    stats.add_video_tracks(first, last, cfg.frames)
    stats.seconds = time.perf_counter() - t0
    if "posetrack17" in job.layouts:
        _write_json(
            Path(job.stage) / "annotations" / job.split / f"{name}.json",
            {"images": images, "annotations": anns, "categories": [category(POSETRACK17)]},
        )
    return {
        "name": name,
        "split": job.split,
        "coco_images": coco_images,
        "coco_annotations": coco_anns,
        "stats": stats,
        "info": video.info,
    }


def split_videos(n: int, split_val: float, seed: int) -> list[str]:
    """'train' or 'val' per video index: a seeded choice of round(n * split_val) val videos
    (at least one when split_val > 0 and n > 1, never all of them)."""
    if not 0.0 <= split_val < 1.0:
        raise ValueError(f"split_val must be in [0, 1), got {split_val}")
    n_val = int(round(n * split_val))
    if split_val > 0 and n > 1:
        n_val = min(max(n_val, 1), n - 1)
    order = np.random.default_rng(np.random.SeedSequence([seed, 0x5B11])).permutation(n)
    val = set(order[:n_val].tolist())
    return ["val" if i in val else "train" for i in range(n)]


def _check_target(out: Path, overwrite: bool) -> None:
    if not out.exists():
        return
    if not out.is_dir():
        raise FileExistsError(f"{out} exists and is not a directory; choose another --out")
    if not any(out.iterdir()):
        return
    meta = out / "meta.json"
    ours = False
    if meta.is_file():
        try:
            ours = json.loads(meta.read_text()).get("generator") == GENERATOR
        except (OSError, ValueError):
            ours = False
    if not ours:
        raise FileExistsError(
            f"{out} is not empty and is not a synthetic dataset; refusing to replace it "
            "(choose an empty or new directory)"
        )
    if not overwrite:
        raise FileExistsError(
            f"{out} already holds a synthetic dataset; pass overwrite=True (--overwrite) to replace it"
        )


def write_dataset(
    out: str | os.PathLike,
    config: SynthConfig | None = None,
    videos: int = 8,
    seed: int = 0,
    split_val: float = 0.25,
    layout: str = "both",
    jpeg_quality: int = 92,
    label_every: int = 1,
    overwrite: bool = False,
    workers: int = 1,
    progress: Callable[[int], None] | None = None,
) -> dict:
    """Render ``videos`` videos into ``out``; returns the dataset's meta (with statistics).

    ``progress(n)`` is called with the number of frames just finished. ``workers`` > 1 renders
    videos in parallel processes (output identical to ``workers=1``).
    """
    config = config or SynthConfig()
    if layout not in LAYOUT_CHOICES:
        raise ValueError(f"layout must be one of {sorted(LAYOUT_CHOICES)}, got {layout!r}")
    if videos < 1:
        raise ValueError(f"need at least one video, got {videos}")
    if config.frames > 10_000:
        raise ValueError(f"PoseTrack ids hold at most 10000 frames per video, got {config.frames}")
    if label_every < 1:
        raise ValueError(f"label_every must be >= 1, got {label_every}")
    if not 1 <= jpeg_quality <= 100:
        raise ValueError(f"jpeg_quality must be in 1..100, got {jpeg_quality}")
    out = Path(out)
    _check_target(out, overwrite)
    splits = split_videos(videos, split_val, seed)
    layouts = LAYOUT_CHOICES[layout]
    t0 = time.perf_counter()
    total = SynthStats()
    results = []
    with atomic_dir(out) as stage:
        jobs = [
            _Job(str(stage), config.to_dict(), seed, i, splits[i], layouts, jpeg_quality, label_every)
            for i in range(videos)
        ]
        if workers <= 1:
            for job in jobs:
                results.append(_write_video(job, (lambda: progress(1)) if progress else None))
        else:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                futs = {pool.submit(_write_video, job): job for job in jobs}
                for fut in as_completed(futs):
                    results.append(fut.result())
                    if progress:
                        progress(config.frames)
        results.sort(key=lambda r: r["name"])
        for r in results:
            total.merge(r["stats"])
        if "coco17" in layouts:
            for split in ("train", "val"):
                part = [r for r in results if r["split"] == split]
                if not part:
                    continue
                _write_json(
                    stage / "annotations" / f"coco_{split}.json",
                    {
                        "info": {
                            "description": "edgepose synthetic pose videos",
                            "version": GENERATOR_VERSION,
                        },
                        "images": [im for r in part for im in r["coco_images"]],
                        "annotations": [a for r in part for a in r["coco_annotations"]],
                        "categories": [category(COCO17)],
                    },
                )
        total.seconds = time.perf_counter() - t0
        meta = {
            "generator": GENERATOR,
            "generator_version": GENERATOR_VERSION,
            "edgepose_version": __version__,
            "seed": seed,
            "videos": videos,
            "split_val": split_val,
            "layout": layout,
            "jpeg_quality": jpeg_quality,
            "label_every": label_every,
            "config": config.to_dict(),
            "splits": {s: [r["name"] for r in results if r["split"] == s] for s in ("train", "val")},
            "video_info": {r["name"]: r["info"] for r in results},
            "keypoints": {"posetrack17": list(POSETRACK17.names), "coco17": list(COCO17.names)},
            "visibility": "v: 2 visible, 1 labelled but hidden, 0 outside the image; occluded: hidden by an "
            "occluder or another person; blurred: frame or person blurred",
            "stats": total.as_dict(),
        }
        _write_json(stage / "meta.json", meta)
    return meta


def read_meta(path: str | os.PathLike) -> dict:
    """The meta.json of a synthetic dataset directory (clear error if it is not one)."""
    p = Path(path) / "meta.json"
    if not p.is_file():
        raise FileNotFoundError(f"{path} has no meta.json; it is not an edgepose synthetic dataset")
    meta = json.loads(p.read_text())
    if meta.get("generator") != GENERATOR:
        raise ValueError(f"{p} was not written by {GENERATOR}")
    return meta


__all__ = [
    "GENERATOR",
    "SynthStats",
    "annotation",
    "category",
    "image_id",
    "read_meta",
    "split_videos",
    "write_dataset",
]

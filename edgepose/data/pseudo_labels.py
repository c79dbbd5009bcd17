"""Pseudo-labels for unlabelled real footage: a detector finds people, pretrained teachers pose them.

Per frame: the detector's boxes; for each box a teacher's COCO-17 keypoints. With a second teacher
(``agree``) a joint is labelled only where both are confident and agree within COCO's own
tolerance for that joint (OKS >= ``agree_oks`` with the box area as scale), at the mean of the two;
the other joints stay unlabelled. A person with fewer than ``min_joints`` labelled joints becomes an
ignore region, so training neither learns from nor is penalised on it. Tracks are assigned over
the whole video afterwards (the SDK's tracker, every detection confirmed at once).

Output is the layout the synthetic benchmark writes, which ``edgepose train`` and ``edgepose eval``
read as they are::

    OUT/meta.json                              sources (sha256), teachers, detector, settings, counts
    OUT/images/<video>/<frame:06d>.jpg
    OUT/annotations/{train,val}/<video>.json  PoseTrack18 form, joints named as COCO-17
    OUT/annotations/coco_{train,val}.json     COCO keypoints (labelled frames)

Resumable: each processed frame is appended to ``OUT/.work/<video>.jsonl`` (flushed), and a rerun
with the same settings continues after the last one; annotation files are written atomically when a
video is complete. A video can be held out whole (``val``) or by its last fraction (``val_tail``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from .. import __version__
from ..core.atomic import atomic_file
from ..core.keypoints import COCO17
from ..data.synth_dataset import category, image_id
from ..external.check import file_sha256

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


@dataclass(frozen=True)
class LabelConfig:
    teacher: str = "movenet_thunder"
    agree: str | None = "blazepose_full"  # a second teacher; None labels with ``teacher`` alone
    detector: str = "nanodet"
    min_score: float = 0.3  # a teacher's joint confidence to count
    agree_oks: float = 0.5  # per-joint OKS between the two teachers to label a joint
    min_joints: int = 5  # fewer labelled joints: the person becomes an ignore region
    min_box_score: float = 0.4
    every: int = 1  # label every N-th frame (all frames are kept for temporal windows)
    max_side: int = 1280  # frames are scaled down to this long side first
    jpeg_quality: int = 92

    def key(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class VideoJob:
    """One input: a video file or one image; ``val_tail`` of its frames (from the end) go to val."""

    path: Path
    name: str
    val_tail: float = 0.0  # 1.0 = the whole video is held out

    def split_of(self, frame: int, nframes: int) -> str:
        return "val" if frame >= self.first_val(nframes) else "train"

    def first_val(self, nframes: int) -> int:
        return nframes - round(self.val_tail * nframes)


@dataclass
class LabelStats:
    frames: int = 0
    labelled_frames: int = 0
    persons: int = 0
    ignored: int = 0
    joints: int = 0
    per_video: dict = field(default_factory=dict)


def joint_oks(a: np.ndarray, b: np.ndarray, area: float, sigmas: np.ndarray) -> np.ndarray:
    """COCO's per-joint keypoint similarity between two (J, 2) predictions of one person."""
    d2 = ((a - b) ** 2).sum(-1)
    return np.exp(-d2 / (2.0 * max(area, 1.0) * (2.0 * sigmas) ** 2))


class Labeller:
    """Labels one BGR frame: ``persons(image) -> list of dicts`` (box, score, keypoints, ignore)."""

    def __init__(self, config: LabelConfig, device: str = "cpu", threads: int | None = None):
        from ..external.registry import load_detector, load_teacher

        self.config = config
        self.detector = load_detector(config.detector, device=device, threads=threads)
        self.teacher = load_teacher(config.teacher, device=device, threads=threads)
        self.second = load_teacher(config.agree, device=device, threads=threads) if config.agree else None
        self.sigmas = COCO17.sigmas

    def persons(self, image: np.ndarray) -> list[dict]:
        c = self.config
        det = self.detector(image, 0)
        keep = det.scores >= c.min_box_score
        boxes, scores = det.boxes[keep], det.scores[keep]
        if len(boxes) == 0:
            return []
        a = self.teacher(image, boxes)
        b = self.second(image, boxes) if self.second is not None else None
        out = []
        for i, box in enumerate(boxes):
            ok = a[i, :, 2] >= c.min_score
            xy = a[i, :, :2].copy()
            if b is not None:
                area = float((box[2] - box[0]) * (box[3] - box[1]))
                ok &= b[i, :, 2] >= c.min_score
                ok &= joint_oks(a[i, :, :2], b[i, :, :2], area, self.sigmas) >= c.agree_oks
                xy = (a[i, :, :2] + b[i, :, :2]) / 2
            kp = np.zeros((len(xy), 3), np.float64)
            kp[ok, :2] = xy[ok]
            kp[ok, 2] = 2
            out.append(
                {
                    "box": [round(float(v), 2) for v in box],
                    "score": round(float(scores[i]), 4),
                    "keypoints": [[round(float(x), 2), round(float(y), 2), int(v)] for x, y, v in kp],
                    "ignore": int(ok.sum()) < c.min_joints,
                }
            )
        return out


# -- reading inputs -----------------------------------------------------------------------------------
def _frames(path: Path, max_side: int):
    """(index, BGR frame scaled to ``max_side``) of a video or an image, in order."""
    if path.suffix.lower() in IMAGE_SUFFIXES:
        img = cv2.imread(str(path))
        if img is None:
            raise ValueError(f"{path} is not a readable image")
        yield 0, _scaled(img, max_side)
        return
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise ValueError(f"{path} is not a readable video")
    try:
        i = 0
        while True:
            ok, img = cap.read()
            if not ok:
                break
            yield i, _scaled(img, max_side)
            i += 1
    finally:
        cap.release()


def _count(path: Path) -> int:
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return 1
    cap = cv2.VideoCapture(str(path))
    n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    cap.release()
    return max(n, 0)


def _scaled(img: np.ndarray, max_side: int) -> np.ndarray:
    h, w = img.shape[:2]
    s = max_side / max(h, w)
    return img if s >= 1 else cv2.resize(img, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)


# -- the run ------------------------------------------------------------------------------------------
def _done_frames(work: Path) -> list[dict]:
    """Frames already processed (a torn last line from a kill is dropped)."""
    if not work.is_file():
        return []
    rows = []
    with open(work, encoding="utf-8") as f:
        for line in f:
            try:
                rows.append(json.loads(line))
            except ValueError:
                break
    return rows


def _check_out(out: Path, config: LabelConfig, overwrite: bool) -> None:
    meta = out / "meta.json"
    work_key = out / ".work" / "config.key"
    for p in (meta, work_key):
        if not p.is_file():
            continue
        key = json.loads(p.read_text()).get("config_key") if p is meta else p.read_text().strip()
        if key != config.key() and not overwrite:
            raise FileExistsError(
                f"{out} holds labels made with other settings; choose another --out or pass --overwrite"
            )


def label_videos(
    jobs: Sequence[VideoJob],
    out: str | Path,
    config: LabelConfig = LabelConfig(),
    labeller: Labeller | None = None,
    overwrite: bool = False,
    progress: Callable[[str, int, int], None] | None = None,
) -> LabelStats:
    """Label every job into ``out`` (see the module docstring); resumes an interrupted run."""
    out = Path(out)
    _check_out(out, config, overwrite)
    names = [j.name for j in jobs]
    if len(set(names)) != len(names):
        raise ValueError(f"two inputs share a name: {names}; rename one of the files")
    work_dir = out / ".work"
    work_dir.mkdir(parents=True, exist_ok=True)
    if overwrite:
        for p in work_dir.glob("*.jsonl"):
            p.unlink()
    (work_dir / "config.key").write_text(config.key())
    labeller = labeller or Labeller(config)
    stats = LabelStats()
    coco: dict[str, dict] = {s: {"images": [], "annotations": []} for s in ("train", "val")}
    sources = {}
    for v, job in enumerate(jobs):
        rows = _label_one(job, out, config, labeller, progress)
        sources[job.name] = {
            "file": str(job.path),
            "sha256": file_sha256(job.path),
            "frames": len(rows),
            "val_tail": job.val_tail,
        }
        _write_video(job, v, rows, out, coco, stats)
    for split, data in coco.items():
        with atomic_file(out / "annotations" / f"coco_{split}.json", "w") as f:
            json.dump({**data, "categories": [category(COCO17)]}, f)
    from ..external.check import describe
    from ..external.registry import DETECTORS, TEACHERS

    models = [TEACHERS[config.teacher].file, DETECTORS[config.detector].file]
    if config.agree:
        models.append(TEACHERS[config.agree].file)
    meta = {
        "generator": "edgepose.label",
        "version": __version__,
        "config": asdict(config),
        "config_key": config.key(),
        "sources": sources,
        "models": [describe(m) for m in models],
        "stats": asdict(stats),
    }
    with atomic_file(out / "meta.json", "w") as f:
        json.dump(meta, f, indent=1)
    return stats


def _label_one(job: VideoJob, out: Path, config: LabelConfig, labeller: Labeller, progress) -> list[dict]:
    work = out / ".work" / f"{job.name}.jsonl"
    rows = _done_frames(work)
    if rows and not work.read_bytes().endswith(b"\n"):  # a torn line: rewrite the good ones
        with atomic_file(work, "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)
    start = len(rows)
    total = _count(job.path)
    img_dir = out / "images" / job.name
    img_dir.mkdir(parents=True, exist_ok=True)
    with open(work, "a", encoding="utf-8") as log:
        for index, img in _frames(job.path, config.max_side):
            if index < start:
                continue
            path = img_dir / f"{index:06d}.jpg"
            ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, config.jpeg_quality])
            if not ok:
                raise RuntimeError(f"could not encode frame {index} of {job.path} as JPEG")
            with atomic_file(path) as f:
                f.write(buf.tobytes())
            labelled = index % config.every == 0
            row = {
                "frame": index,
                "width": img.shape[1],
                "height": img.shape[0],
                "labelled": labelled,
                "persons": labeller.persons(img) if labelled else [],
            }
            log.write(json.dumps(row) + "\n")
            log.flush()
            rows.append(row)
            if progress is not None:
                progress(job.name, index + 1, max(total, index + 1))
    return rows


def _write_video(job: VideoJob, v: int, rows: list[dict], out: Path, coco: dict, stats: LabelStats) -> None:
    """Track ids over the video, then its PoseTrack file(s) and its share of the COCO files."""
    from ..sdk.tracker import Tracker

    tracker = Tracker(min_hits=1, max_age=15, sigmas=COCO17.sigmas)
    n = len(rows)
    first_val = job.first_val(n)
    parts: dict[str, dict] = {}
    for row in rows:
        t = row["frame"]
        persons = row["persons"]
        boxes = np.array([p["box"] for p in persons], np.float64).reshape(-1, 4)
        kps = np.array([p["keypoints"] for p in persons], np.float64).reshape(-1, 17, 3)
        kps[..., 2] = kps[..., 2] > 0
        ids = {}
        if row["labelled"]:
            for tr in tracker.update(boxes, np.array([p["score"] for p in persons]), kps, frame=t):
                ids[tr.det_index] = tr.id
        split = "val" if t >= first_val else "train"
        vid = job.name if split == "train" or first_val == 0 else f"{job.name}-tail"
        part = parts.setdefault(split, {"vid": vid, "images": [], "annotations": []})
        iid = image_id(v, t)
        rel = f"images/{job.name}/{t:06d}.jpg"
        ign_x, ign_y = [], []
        img = {
            "id": iid,
            "file_name": rel,
            "vid_id": vid,
            "frame_id": iid,
            "is_labeled": row["labelled"],
            "width": row["width"],
            "height": row["height"],
        }
        anns = []
        for k, p in enumerate(persons):
            if p["ignore"]:
                x1, y1, x2, y2 = p["box"]
                ign_x.append([x1, x2, x2, x1])
                ign_y.append([y1, y1, y2, y2])
                stats.ignored += 1
                continue
            x1, y1, x2, y2 = p["box"]
            flat = [c for x, y, v in p["keypoints"] for c in ((x, y, 2) if v > 0 else (0, 0, 0))]
            labelled = sum(1 for kp in p["keypoints"] if kp[2] > 0)
            anns.append(
                {
                    "id": iid * 100 + k,
                    "image_id": iid,
                    "track_id": int(ids.get(k, -1)),
                    "category_id": 1,
                    "bbox": [x1, y1, round(x2 - x1, 2), round(y2 - y1, 2)],
                    "keypoints": flat,
                    "num_keypoints": labelled,
                    "score": p["score"],
                    "iscrowd": 0,
                    "area": round((x2 - x1) * (y2 - y1), 1),
                }
            )
            stats.persons += 1
            stats.joints += labelled
        img["ignore_regions_x"], img["ignore_regions_y"] = ign_x, ign_y
        part["images"].append(img)
        part["annotations"].extend(anns)
        if row["labelled"]:
            stats.labelled_frames += 1
            coco[split]["images"].append(
                {k: img[k] for k in ("id", "file_name", "width", "height", "vid_id")}
            )
            coco[split]["annotations"].extend(anns)
        stats.frames += 1
    for split, part in parts.items():
        for img in part["images"]:
            img["nframes"] = len(part["images"])
        name = part["vid"]
        with atomic_file(out / "annotations" / split / f"{name}.json", "w") as f:
            json.dump(
                {
                    "images": part["images"],
                    "annotations": part["annotations"],
                    "categories": [category(COCO17)],
                },
                f,
            )
        stats.per_video[name] = {
            "split": split,
            "frames": len(part["images"]),
            "persons": len(part["annotations"]),
        }


# -- the real-footage set ------------------------------------------------------------------------
def real_footage_jobs() -> list[VideoJob]:
    """vtest.avi (last 30% held out) and the 8 Pose2Sim videos (camera 4 of each set held out)."""
    from ..core.assets import asset_path, missing_reason

    wanted = [("vtest.avi", "vtest", 0.3)]
    for kind in ("single", "multi"):
        for cam in (1, 2, 3, 4):
            wanted.append(
                (f"pose2sim-{kind}-cam0{cam}.mp4", f"pose2sim-{kind}-cam0{cam}", 1.0 if cam == 4 else 0.0)
            )
    jobs = []
    for file, name, tail in wanted:
        p = asset_path(file)
        if p is None:
            raise FileNotFoundError(missing_reason(file))
        jobs.append(VideoJob(p, name, tail))
    return jobs

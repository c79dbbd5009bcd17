"""Pose models on held-out real footage: COCO AP on the 13 joints every layout shares, ms per person.

The held-out frames and their labels are the ``val`` split of ``edgepose label --preset real``
(the last 30% of vtest.avi and camera 4 of both Pose2Sim sets), labelled by MoveNet Thunder and
BlazePose full where they agree. Every model gets the same person boxes (the labels' detector
boxes) and is scored by pycocotools on nose + the 12 body joints (eyes and ears are dropped: the
PoseTrack layout has none), with the labels' boxes as OKS area.

Rows: a constant mean pose placed in each box (the floor: the training split's mean joint position
relative to the box), the teachers and MoveNet Lightning (the two teachers made the labels, so
their AP is an upper reference, not a fair score), and zoo models through their exported bundles.
Temporal zoo models run here one frame at a time with the window clamped to the current frame
(``PoseEstimator``'s single-image path); their window is measured by the video pipeline elsewhere.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..core.keypoints import COCO17, convert, get_layout
from .report import Table, new_figure, save_figure

SHARED = (
    "nose", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
)  # fmt: skip
SHARED_IDX = np.array([COCO17.index(n) for n in SHARED])

Predictor = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (image, boxes) -> (N, 17, 3) COCO-17


@dataclass
class HeldOut:
    frames: list  # FrameRecords with persons (COCO-17 layout)
    gt: dict  # COCO ground truth on the 13 shared joints
    train_mean: np.ndarray  # (17, 2) mean joint position in box-normalised coordinates
    source: str


def _boxes(frame) -> np.ndarray:
    return np.array([p.box() for p in frame.persons], np.float32).reshape(-1, 4)


def load_held_out(labels: str | Path, max_frames: int | None = None) -> HeldOut:
    """The labelled ``val`` frames of a label directory, and the mean pose of its ``train`` split."""
    from ..data.posetrack import read_posetrack

    root = Path(labels)
    val_dir, train_dir = root / "annotations" / "val", root / "annotations" / "train"
    if not val_dir.is_dir():
        raise FileNotFoundError(
            f"{val_dir} does not exist: run `edgepose label --preset real --out {root}` first"
        )
    frames = [
        f for v in read_posetrack(val_dir, layout="coco17") for f in v.frames if f.is_labeled and f.persons
    ]
    if max_frames:
        frames = frames[:: max(1, len(frames) // max_frames)][:max_frames]
    images, anns = [], []
    for f in frames:
        images.append(image_entry(f))
        anns += person_annotations(f, len(anns) + 1)
    gt = {
        "images": images,
        "annotations": anns,
        "categories": [{"id": 1, "name": "person", "keypoints": list(SHARED)}],
    }
    rel, weight = np.zeros((17, 2)), np.zeros((17, 1))
    for v in read_posetrack(train_dir, layout="coco17"):
        for f in v.frames:
            for p in f.persons:
                x1, y1, x2, y2 = p.box()
                ok = p.keypoints[:, 2:3] > 0
                size = np.array([max(x2 - x1, 1.0), max(y2 - y1, 1.0)])
                rel += ok * (p.keypoints[:, :2] - [x1, y1]) / size
                weight += ok
    return HeldOut(frames, gt, rel / np.maximum(weight, 1), str(root))


def image_entry(frame) -> dict:
    """A labelled frame as a COCO image record."""
    f = frame
    return {"id": int(f.image_id), "width": f.width, "height": f.height, "file_name": f.file_name}


def annotation(i: int, image_id: int, box, keypoints, visible: int, crowd: int = 0) -> dict:
    """One COCO person annotation on the shared joints; the box area is the OKS scale."""
    x1, y1, x2, y2 = (float(v) for v in box)
    return {
        "id": i,
        "image_id": image_id,
        "category_id": 1,
        "iscrowd": crowd,
        "bbox": [x1, y1, x2 - x1, y2 - y1],
        "area": (x2 - x1) * (y2 - y1),
        "keypoints": np.asarray(keypoints, np.float64).reshape(-1).tolist(),
        "num_keypoints": visible,
    }


def person_annotations(frame, first_id: int) -> list[dict]:
    """A frame's labelled people on the 13 shared joints (visible joints flagged 2), ids from ``first_id``."""
    out = []
    for p in frame.persons:
        kp = p.keypoints[SHARED_IDX]
        flat = np.concatenate([kp[:, :2], (kp[:, 2:3] > 0) * 2.0], 1)
        out.append(
            annotation(first_id + len(out), int(frame.image_id), p.box(), flat, int((kp[:, 2] > 0).sum()))
        )
    return out


def mean_pose(train_mean: np.ndarray) -> Predictor:
    def predict(image, boxes):
        size = boxes[:, 2:] - boxes[:, :2]
        xy = boxes[:, None, :2] + train_mean[None] * size[:, None]
        return np.concatenate([xy, np.ones((len(boxes), 17, 1))], -1)

    return predict


def teacher(name: str, threads: int | None) -> Predictor:
    from ..external.registry import load_teacher

    return load_teacher(name, threads=threads)


def bundle_model(bundle: str | Path, threads: int | None) -> Predictor:
    """A zoo bundle through the SDK's PoseEstimator, its keypoints converted to COCO-17 by name."""
    from ..runtimes.bundle import load
    from ..sdk.estimator import PoseEstimator

    est = PoseEstimator(
        load(bundle, device="cpu", threads=threads) if threads else load(bundle, device="cpu")
    )
    layout = get_layout(est.layout.name) if hasattr(est.layout, "name") else est.layout

    def predict(image, boxes):
        poses = est(image, boxes)
        kp = np.stack([np.concatenate([p.keypoints, p.scores[:, None]], 1) for p in poses])
        return convert(kp, layout, COCO17)

    return predict


def score(predict: Predictor, held: HeldOut) -> tuple[dict, float, int]:
    """COCO AP stats on the shared joints, ms per person, persons run."""
    from ..eval.coco_ap import coco_keypoint_ap

    sigmas = COCO17.sigmas[SHARED_IDX]
    preds, persons, seconds = [], 0, 0.0
    root = Path(held.source)
    for f in held.frames:
        img = cv2.imread(str(root / f.file_name))
        boxes = _boxes(f)
        t = time.perf_counter()
        kp = np.asarray(predict(img, boxes), np.float64)
        seconds += time.perf_counter() - t
        persons += len(boxes)
        for k in kp:
            preds.append(
                {
                    "image_id": int(f.image_id),
                    "keypoints": k[SHARED_IDX, :2],
                    "scores": np.clip(k[SHARED_IDX, 2], 0, 1),
                }
            )
    stats = coco_keypoint_ap(preds, held.gt, sigmas=sigmas)
    return stats, 1e3 * seconds / max(persons, 1), persons


def run(
    labels: str | Path,
    bundles: dict[str, str | Path],
    threads: int | None = None,
    max_frames: int | None = None,
    progress=print,
) -> Table:
    t0 = time.perf_counter()
    held = load_held_out(labels, max_frames)
    people = len(held.gt["annotations"])
    progress(f"{len(held.frames)} held-out frames, {people} labelled people ({labels})")
    rows: list[tuple[str, Predictor]] = [("mean pose", mean_pose(held.train_mean))]
    rows += [
        (f"{n} (teacher)" if n in ("movenet_thunder", "blazepose_full") else n, teacher(n, threads))
        for n in ("movenet_lightning", "movenet_thunder", "blazepose_full")
    ]
    rows += [(name, bundle_model(b, threads)) for name, b in bundles.items()]
    table = Table(
        "real_world",
        f"Held-out real footage: COCO AP on 13 joints ({len(held.frames)} frames, {people} people, same boxes)",
        ["model", "AP", "AP50", "AR", "ms/person"],
        settings={"labels": str(labels), "threads": threads, "frames": len(held.frames)},
        plot=plot,
    )
    table.extra["text_columns"] = ["model"]
    for name, predict in rows:
        stats, ms, _ = score(predict, held)
        progress(f"{name}: AP {100 * stats['AP']:.1f}, {ms:.1f} ms/person")
        table.add(
            name,
            100 * stats["AP"],
            100 * stats["AP50"],
            100 * stats["AR"],
            None if name == "mean pose" else ms,
        )
    table.notes.append(
        "labels: MoveNet Thunder and BlazePose full where they agree (edgepose label), so those two rows are "
        "an upper reference; every row gets the labels' detector boxes"
    )
    table.seconds = time.perf_counter() - t0
    return table


def plot(table: Table, path) -> None:
    fig, ax = new_figure()
    for name, ap, _, _, ms in table.rows:
        if ms is None:
            ax.axhline(ap, color="grey", ls="--", lw=1)
            ax.annotate(name, (ax.get_xlim()[0], ap), fontsize=7, xytext=(2, 2), textcoords="offset points")
            continue
        ax.scatter(ms, ap)
        ax.annotate(name, (ms, ap), fontsize=7, xytext=(4, 2), textcoords="offset points")
    ax.set_xlabel("ms per person")
    ax.set_ylabel("COCO AP, 13 joints (%)")
    ax.set_title("Held-out real footage")
    ax.grid(alpha=0.3)
    save_figure(fig, path)


def ap_against_teachers(
    images: list[np.ndarray], predicted: dict[str, list[np.ndarray]], threads: int | None = None
) -> dict:
    """COCO AP (13 shared joints) of each entry of ``predicted`` on ``images`` against labels made
    on the spot by ``edgepose label``'s default teachers and detector; with the mean-pose floor and
    MoveNet Lightning on the labels' boxes beside them.

    ``predicted[name][k]``: (N, 17, 3) COCO-17 x, y, score of image k (any boxes: OKS matches).
    Returns {name: AP in %, ..., "mean pose": ..., "movenet_lightning": ..., "people": count}.
    """
    from ..data.pseudo_labels import LabelConfig, Labeller
    from ..eval.coco_ap import coco_keypoint_ap
    from ..external.registry import load_teacher

    labeller = Labeller(LabelConfig(), threads=threads)
    images_gt, anns, boxes_per = [], [], []
    for k, img in enumerate(images):
        people = [p for p in labeller.persons(img) if not p["ignore"]]
        images_gt.append({"id": k, "width": img.shape[1], "height": img.shape[0]})
        boxes_per.append(np.array([p["box"] for p in people], np.float32).reshape(-1, 4))
        for p in people:
            x1, y1, x2, y2 = p["box"]
            kp = np.array(p["keypoints"], np.float64)[SHARED_IDX]
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": k,
                    "category_id": 1,
                    "iscrowd": 0,
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "area": (x2 - x1) * (y2 - y1),
                    "keypoints": kp.reshape(-1).tolist(),
                    "num_keypoints": int((kp[:, 2] > 0).sum()),
                }
            )
    if not anns:
        return {"people": 0}
    gt = {
        "images": images_gt,
        "annotations": anns,
        "categories": [{"id": 1, "name": "person", "keypoints": list(SHARED)}],
    }
    rel, n = np.zeros((len(SHARED), 2)), np.zeros((len(SHARED), 1))
    for a in anns:
        x, y, w, h = a["bbox"]
        kp = np.array(a["keypoints"]).reshape(-1, 3)
        ok = kp[:, 2:3] > 0
        rel += ok * (kp[:, :2] - [x, y]) / [max(w, 1), max(h, 1)]
        n += ok
    mean = np.zeros((17, 2))
    mean[SHARED_IDX] = rel / np.maximum(n, 1)
    lightning = load_teacher("movenet_lightning", threads=threads)
    rows = dict(predicted)
    rows["mean pose"] = [mean_pose(mean)(img, b) for img, b in zip(images, boxes_per)]
    rows["movenet_lightning"] = [
        lightning(img, b) if len(b) else np.zeros((0, 17, 3)) for img, b in zip(images, boxes_per)
    ]
    out: dict = {"people": len(anns), "frames": len(images)}
    sigmas = COCO17.sigmas[SHARED_IDX]
    for name, per_image in rows.items():
        preds = [
            {"image_id": k, "keypoints": p[SHARED_IDX, :2], "scores": np.clip(p[SHARED_IDX, 2], 0, 1)}
            for k, kp in enumerate(per_image)
            for p in np.asarray(kp, np.float64).reshape(-1, 17, 3)
        ]
        out[name] = 100 * coco_keypoint_ap(preds, gt, sigmas=sigmas)["AP"] if preds else 0.0
    return out

"""Person detectors and pose teachers on held-out real frames: recall, speed, agreement.

The held-out frames are the last 30% of ``vtest.avi`` (the part ``edgepose label --preset real``
keeps out of training). Nobody labelled them, so the reference people are built here, the same for
every detector: the boxes of all pretrained detectors (NanoDet, CenterNet, MoveNet MultiPose) are
pooled, and a pooled box counts as a person when two independent teachers (MoveNet Thunder,
BlazePose full) agree on at least ``min_joints`` of its joints (COCO's per-joint OKS >= 0.5).
A detector finds a person when one of its boxes holds >= 75% of that person's agreed joints and is
at most 4x the joints' extent box (a box over a whole group does not count for each member).

Detecting every N frames runs the SDK's own ``ReusePoses``: between detections the boxes come from
the previous frame's poses (MoveNet Lightning here, standing in for the pose model of the loop).
Times are per frame, in one run: every detector (NanoDet at each input size x precision, the
others once) runs on each frame in turn, in a new random order per frame, after one warm-up call,
so a change of the shared machine's load falls on all of them alike.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field

import cv2
import numpy as np

from ..core.assets import asset_path, missing_reason
from ..core.keypoints import COCO17
from ..data.pseudo_labels import joint_oks
from .report import Table, new_figure, save_figure

HELD_OUT = 0.3  # the last 30% of vtest


@dataclass
class Settings:
    step: int = 4  # every step-th held-out frame is scored
    min_joints: int = 5
    every: tuple[int, ...] = (1, 3, 5)  # detect-every-N runs of the default detector
    threads: int | None = None
    detectors: tuple[str, ...] = ("centernet", "movenet_multipose", "hog")
    sizes: tuple[int, ...] = (416, 384, 352, 320, 288, 256)  # NanoDet input sizes (multiples of 32)
    precisions: tuple[str, ...] = ("fp32", "int8")
    every_detector: str = "nanodet"
    max_frames: int | None = None  # cap on held-out frames (tests)
    extra: dict = field(default_factory=dict)


def held_out_frames(max_frames: int | None = None) -> tuple[list[np.ndarray], int]:
    path = asset_path("vtest.avi")
    if path is None:
        raise FileNotFoundError(missing_reason("vtest.avi"))
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, img = cap.read()
        if not ok:
            break
        frames.append(img)
    cap.release()
    first = len(frames) - round(HELD_OUT * len(frames))
    held = frames[first:]
    return (held[:max_frames] if max_frames else held), first


def make(name: str, threads: int | None):
    from ..external.registry import load_detector
    from ..sdk.detectors import HogDetector

    if name == "hog":
        return HogDetector()
    from ..external.registry import variant_options

    base, _, variant = name.partition("@")
    kind, _, arg = base.partition(":")
    opts = {"tiles": 1} if variant == "1tile" else {}
    return load_detector(kind, threads=threads, **variant_options(kind, arg or None), **opts)


REFERENCE = "nanodet:fp32,416"  # the converted NanoDet as it is; the grid's ratios are to its time


def grid(settings: Settings) -> tuple[str, ...]:
    """NanoDet at every size x precision, as ``--detector`` strings."""
    return tuple(f"nanodet:{p},{s}" for s in settings.sizes for p in settings.precisions)


def reference_people(frames, pooled, thunder, blaze, min_joints: int) -> list[np.ndarray]:
    """Per frame, (P, 17, 3) agreed joints (x, y, 1 where agreed) of the reference people."""
    out = []
    for img, boxes in zip(frames, pooled):
        if len(boxes) == 0:
            out.append(np.zeros((0, 17, 3)))
            continue
        a, b = thunder(img, boxes), blaze(img, boxes)
        people = []
        for i, box in enumerate(boxes):
            area = float((box[2] - box[0]) * (box[3] - box[1]))
            ok = (a[i, :, 2] >= 0.3) & (b[i, :, 2] >= 0.3)
            ok &= joint_oks(a[i, :, :2], b[i, :, :2], area, COCO17.sigmas) >= 0.5
            if ok.sum() >= min_joints:
                people.append(np.concatenate([(a[i, :, :2] + b[i, :, :2]) / 2, ok[:, None]], 1))
        # one person found through two pooled boxes counts once
        kept: list[np.ndarray] = []
        for p in people:
            if not any(_same_person(p, q) for q in kept):
                kept.append(p)
        out.append(np.stack(kept) if kept else np.zeros((0, 17, 3)))
    return out


def _extent(p: np.ndarray) -> np.ndarray:
    xy = p[p[:, 2] > 0, :2]
    return np.concatenate([xy.min(0), xy.max(0)])


def _same_person(p: np.ndarray, q: np.ndarray) -> bool:
    both = (p[:, 2] > 0) & (q[:, 2] > 0)
    if both.sum() < 3:
        return False
    ext = _extent(p)
    scale = max(ext[2] - ext[0], ext[3] - ext[1], 1.0)
    return float(np.median(np.linalg.norm(p[both, :2] - q[both, :2], axis=1))) < 0.1 * scale


def found(people: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Whether each reference person is found by one of ``boxes`` (see the module docstring)."""
    hit = np.zeros(len(people), bool)
    for i, p in enumerate(people):
        xy = p[p[:, 2] > 0, :2]
        ext = _extent(p)
        ext_area = max((ext[2] - ext[0]) * (ext[3] - ext[1]), 1.0)
        for b in boxes:
            inside = (
                (xy[:, 0] >= b[0]) & (xy[:, 0] <= b[2]) & (xy[:, 1] >= b[1]) & (xy[:, 1] <= b[3])
            ).mean()
            if inside >= 0.75 and (b[2] - b[0]) * (b[3] - b[1]) <= 4 * ext_area:
                hit[i] = True
                break
    return hit


def run(settings: Settings | None = None, progress=print) -> list[Table]:
    from ..external.registry import load_teacher
    from ..sdk.detectors import ReusePoses

    settings = settings or Settings()
    t0 = time.perf_counter()
    held, first = held_out_frames(settings.max_frames)
    scored = list(range(0, len(held), settings.step))
    frames = [held[i] for i in scored]
    progress(f"{len(held)} held-out vtest frames (from frame {first}); scoring {len(frames)}")
    names = (*grid(settings), *settings.detectors)
    dets = {n: make(n, settings.threads) for n in names}  # builds NanoDet's derived files on first use
    for det in dets.values():
        det(frames[0], 0)  # warm-up: first-run allocations are not a frame's cost
    boxes: dict[str, list[np.ndarray]] = {n: [] for n in names}
    spent = dict.fromkeys(names, 0.0)
    order = list(names)
    shuffle = random.Random(0).shuffle
    for i, f in enumerate(frames):
        shuffle(order)
        for name in order:
            t = time.perf_counter()
            boxes[name].append(dets[name](f, i).boxes)
            spent[name] += time.perf_counter() - t
    ms = {n: 1e3 * spent[n] / len(frames) for n in names}
    for name in names:
        progress(f"{name}: {ms[name]:.1f} ms/frame")
    if "nanodet" not in boxes and REFERENCE in boxes:
        boxes["nanodet"] = boxes[REFERENCE]  # the reference pool's NanoDet
    pool_from = [n for n in ("nanodet", "centernet", "movenet_multipose") if boxes.get(n)]
    pooled = [np.concatenate([boxes[n][k] for n in pool_from]).reshape(-1, 4) for k in range(len(frames))]
    thunder = load_teacher("movenet_thunder", threads=settings.threads)
    blaze = load_teacher("blazepose_full", threads=settings.threads)
    people = reference_people(frames, pooled, thunder, blaze, settings.min_joints)
    total = sum(len(p) for p in people)
    progress(f"{total} reference people ({total / len(frames):.1f} per frame)")

    table = Table(
        "detectors",
        f"Person detectors on held-out vtest frames ({len(frames)} frames, {total} reference people)",
        ["detector", "recall", "boxes/frame", "ms/frame", f"x {REFERENCE} time"],
        settings={
            "step": settings.step,
            "min_joints": settings.min_joints,
            "threads": settings.threads,
            "frames": len(frames),
            "first_held_out_frame": first,
            "sizes": list(settings.sizes),
            "precisions": list(settings.precisions),
        },
        plot=plot,
    )
    table.extra["text_columns"] = ["detector"]
    recall = {}
    for name in names:
        hits = sum(int(found(p, b).sum()) for p, b in zip(people, boxes[name]))
        recall[name] = hits / max(total, 1)
        per_frame = float(np.mean([len(b) for b in boxes[name]]))
        table.add(
            name, recall[name], per_frame, ms[name], ms[name] / ms[REFERENCE] if REFERENCE in ms else None
        )
    table.extra["auto"] = auto_choice(recall, ms)

    # detect every N frames with pose-propagated boxes between (the SDK's ReusePoses)
    default = settings.every_detector
    lightning = load_teacher("movenet_lightning", threads=settings.threads)
    every_rows = []
    for n in settings.every:
        sched = ReusePoses(make(default, settings.threads), every=n)
        hits, runs, t = 0, 0, time.perf_counter()
        for i, img in enumerate(held[: scored[-1] + 1]):
            det = sched(img, i)
            runs += sched.ran_detector
            kp = lightning(img, det.boxes) if len(det) else np.zeros((0, 17, 3), np.float32)
            sched.observe(kp[..., :2], kp[..., 2])
            if i % settings.step == 0:
                hits += int(found(people[i // settings.step], det.boxes).sum())
        frame_ms = 1e3 * (time.perf_counter() - t) / (scored[-1] + 1)
        every_rows.append((n, hits / max(total, 1), runs, frame_ms))
        table.add(f"{default} every {n} (+poses)", hits / max(total, 1), None, frame_ms, None)
    table.extra["every"] = every_rows
    table.notes += [
        (
            "recall: share of reference people (pooled detector boxes where MoveNet Thunder and BlazePose "
            f"full agree on >= {settings.min_joints} joints) that a box holds (>= 75% of their joints, "
            "<= 4x their extent)"
        ),
        (
            "ms/frame of the 'every N' rows include MoveNet Lightning on every person of every frame (the "
            "loop's pose model stand-in), not the detector alone"
        ),
        (
            "nanodet:PRECISION,SIZE: NanoDet at a SIZExSIZE input (fp32: the converted graph with a free "
            "input size; int8: its ONNX Runtime PTQ, calibrated on 32 frames of vtest's training part); "
            "vtest's 4:3 frames take one squashed pass"
        ),
        (
            f"fastest NanoDet within {AUTO_TOLERANCE} recall of {REFERENCE}: {table.extra['auto']} "
            "(what the SDK's auto detector runs)"
        ),
    ]
    table.seconds = time.perf_counter() - t0

    teachers = Table(
        "teachers",
        "Pose teachers on the reference people: agreement with MoveNet Thunder and ms per person",
        ["teacher", "median dist / height", "PCK@0.05h vs Thunder", "ms/person"],
        settings=table.settings,
    )
    teachers.extra["text_columns"] = ["teacher"]
    crops = [(img, _boxes_of(p)) for img, p in zip(frames, people) if len(p)]
    ref = [thunder(img, b) for img, b in crops]
    for name in (
        "movenet_thunder",
        "movenet_lightning",
        "blazepose_lite",
        "blazepose_full",
        "blazepose_heavy",
    ):
        teacher = load_teacher(name, threads=settings.threads)
        t = time.perf_counter()
        got = [teacher(img, b) for img, b in crops]
        per = 1e3 * (time.perf_counter() - t) / max(sum(len(b) for _, b in crops), 1)
        d = np.concatenate(
            [
                (np.linalg.norm(g[..., :2] - r[..., :2], axis=-1) / (b[:, 3] - b[:, 1])[:, None])[
                    r[..., 2] > 0.3
                ]
                for g, r, (_, b) in zip(got, ref, crops)
            ]
        )
        teachers.add(name, float(np.median(d)), float((d < 0.05).mean()), per)
    teachers.seconds = time.perf_counter() - t0 - table.seconds
    return [table, teachers]


AUTO_TOLERANCE = 0.01


def auto_choice(
    recall: dict[str, float], ms: dict[str, float], tolerance: float = AUTO_TOLERANCE
) -> str | None:
    """The fastest NanoDet row whose recall is within ``tolerance`` of the reference's."""
    if REFERENCE not in recall:
        return None
    ok = [n for n in recall if n.startswith("nanodet:") and recall[n] >= recall[REFERENCE] - tolerance - 1e-9]
    return min(ok, key=lambda n: ms[n])


def _boxes_of(people: np.ndarray) -> np.ndarray:
    """Person boxes from agreed joints, grown 15% per side (what a detector box roughly is)."""
    out = []
    for p in people:
        x1, y1, x2, y2 = _extent(p)
        dx, dy = 0.15 * (x2 - x1), 0.15 * (y2 - y1)
        out.append([x1 - dx, y1 - dy, x2 + dx, y2 + dy])
    return np.asarray(out, np.float32)


def plot(table: Table, path) -> None:
    fig, ax = new_figure()
    rows = [r for r in table.rows if r[3] is not None]
    for precision in ("fp32", "int8"):  # NanoDet's sizes as one line per precision
        line = [r for r in rows if r[0].startswith(f"nanodet:{precision},")]
        if line:
            ax.plot(
                [r[3] for r in line], [100 * r[1] for r in line], "-o", ms=4, label=f"NanoDet {precision}"
            )
            for r in line:
                size = r[0].rsplit(",", 1)[1]
                ax.annotate(size, (r[3], 100 * r[1]), fontsize=7, xytext=(3, -9), textcoords="offset points")
    for name, recall, _, ms, _ in rows:
        if name.startswith("nanodet:"):
            continue
        ax.scatter(ms, 100 * recall)
        ax.annotate(name, (ms, 100 * recall), fontsize=7, xytext=(4, 2), textcoords="offset points")
    ax.legend(fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("ms per frame (log)")
    ax.set_ylabel("recall of reference people, %")
    ax.set_title("Detectors on held-out vtest frames")
    ax.grid(alpha=0.3)
    save_figure(fig, path)

"""Whole systems, ours and the peers', in one run on the same held-out street frames: fps and AP.

Each system is run as a user would deploy it, frames in -> poses out: our ``VideoPipeline`` (the
default detector on its own thread, tracker, ring buffers, a zoo bundle), MoveNet Lightning and
Thunder top-down on NanoDet boxes, MoveNet MultiPose on whole frames, and BlazePose behind
MediaPipe's own person detector (and on NanoDet boxes, to separate the detector from the landmark
model). Every session gets one intra-op thread. AP is COCO keypoint AP on the 13 joints every
layout shares, of the people each system *found*, against the held-out labels of
``edgepose label --preset real`` (so a missed or invented person costs AP, as COCO scores
detection + pose); the labels' ignore regions are crowd regions that neither reward nor penalise.
``real_world`` scores the pose models alone on the labels' own boxes.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..core.keypoints import COCO17, convert, get_layout
from .real_world import SHARED, SHARED_IDX, annotation, image_entry, person_annotations
from .report import Table, new_figure, save_figure

LABELLED_VIDEO = "vtest-tail"  # the held-out tail of vtest.avi in the label directory's val split
PEER_DETECTOR = (
    "nanodet"  # the peers' person boxes: plain fp32 NanoDet, the model the labels' boxes came from
)


@dataclass
class Run:
    """What one pass of a system over the frames gave: COCO-17 poses (N, 17, 3) per frame, and the
    pose model's own time (None where it cannot be separated from detection)."""

    poses: list[np.ndarray] = field(default_factory=list)
    model_ms: float | None = None
    model_people: int = 0


@dataclass
class System:
    """A deployable system: ``open()`` returns a runner (sessions opened, untimed), and
    ``runner(frames) -> Run`` is timed whole."""

    name: str
    detector: str
    open: Callable[[], Callable[[list[np.ndarray]], Run]]


# -- ground truth -----------------------------------------------------------------------------------
def held_out_ground_truth(labels: str | Path, first: int, count: int) -> tuple[dict, dict[int, int]]:
    """COCO ground truth (13 shared joints) of the labelled frames among vtest frames
    ``first .. first + count - 1``, and {frame index in that clip: image id}.

    Every labelled frame is an image, also one without people (what a system finds there is a false
    positive); ignore regions become crowd annotations without joints, so a person predicted inside
    one is matched to it and dropped from the score."""
    from ..data.posetrack import read_posetrack

    path = Path(labels) / "annotations" / "val" / f"{LABELLED_VIDEO}.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: run `edgepose label --preset real --out {labels}`")
    images, anns, index = [], [], {}
    (video,) = read_posetrack(path, layout="coco17")
    for f in video.frames:
        k = int(Path(f.file_name).stem) - first
        if not f.is_labeled or not 0 <= k < count:
            continue
        index[k] = int(f.image_id)
        images.append(image_entry(f))
        anns += person_annotations(f, len(anns) + 1)
        for poly in f.ignore_regions:
            anns.append(
                annotation(
                    len(anns) + 1,
                    int(f.image_id),
                    (*poly.min(0), *poly.max(0)),
                    np.zeros((len(SHARED), 3)),
                    0,
                    1,
                )
            )
    gt = {
        "images": images,
        "annotations": anns,
        "categories": [{"id": 1, "name": "person", "keypoints": list(SHARED)}],
    }
    return gt, index


def score_found(poses: dict[int, np.ndarray], gt: dict) -> dict:
    """COCO keypoint stats of the predicted people ``{image id: (N, 17, 3) COCO-17}`` on the 13
    shared joints; a person's score is its mean joint score (13 joints), for every system alike."""
    from ..eval.coco_ap import coco_keypoint_ap

    preds = [
        {"image_id": image_id, "keypoints": p[SHARED_IDX, :2], "scores": np.clip(p[SHARED_IDX, 2], 0, 1)}
        for image_id, kp in poses.items()
        for p in np.asarray(kp, np.float64).reshape(-1, 17, 3)
    ]
    return coco_keypoint_ap(preds, gt, sigmas=COCO17.sigmas[SHARED_IDX])


def labels_as_poses(gt: dict) -> dict[int, np.ndarray]:
    """The ground truth's people as COCO-17 predictions (score 1 on labelled joints): a check that
    scoring them gives AP 1."""
    out: dict[int, list] = {im["id"]: [] for im in gt["images"]}
    for a in gt["annotations"]:
        if a["iscrowd"]:
            continue
        kp = np.zeros((17, 3))
        shared = np.asarray(a["keypoints"]).reshape(-1, 3)
        kp[SHARED_IDX, :2] = shared[:, :2]
        kp[SHARED_IDX, 2] = shared[:, 2] > 0
        out[a["image_id"]].append(kp)
    return {k: np.array(v).reshape(-1, 17, 3) for k, v in out.items()}


# -- systems ----------------------------------------------------------------------------------------
def ours(bundle: str | Path, name: str, concurrent: bool | None = None, detector: str = "auto") -> System:
    """Our loop: ``VideoPipeline`` with ``detector``, the tracker, smoothing and the bundle, offline
    mode (a video file); ``concurrent=None``: detection on its own thread where it is by default."""
    from ..runtimes.bundle import load
    from ..sdk.detectors import make_detector
    from ..sdk.estimator import PoseEstimator
    from ..sdk.pipeline import VideoPipeline
    from ..sdk.sources import IterableSource
    from .real_loop import POSE_STAGES
    from .workload import TotalsTimer

    def open_():
        est = PoseEstimator(load(bundle, device="cpu", threads=1))
        layout = get_layout(est.layout.name) if hasattr(est.layout, "name") else est.layout
        det = make_detector(detector, threads=1)
        pipe = VideoPipeline(est, detector=det, mode="offline", concurrent_detection=concurrent)
        system.detector = f"{describe(det)}, {'own thread' if pipe.concurrent_detection else 'serial'}"

        def run(frames):
            pipe.reset()
            pipe.timer, pipe.detector_timer = TotalsTimer(), TotalsTimer()
            out = Run()
            for r in pipe.run(IterableSource(frames, fps=10.0)):
                kp = [np.concatenate([p.keypoints, p.scores[:, None]], 1) for p in r.poses]
                out.poses.append(convert(np.array(kp), layout, COCO17) if kp else np.zeros((0, 17, 3)))
            out.model_ms = sum(pipe.timer.total_ms.get(k, 0.0) for k in POSE_STAGES)
            out.model_people = sum(len(p) for p in out.poses)
            return out

        return run

    system = System(name, detector, open_)
    return system


def describe(detector) -> str:
    """What a detector object is, as the table shows it ("nanodet int8 416"): ``auto`` resolves to
    a configuration that changes as the SDK's default does."""
    parts = [type(detector).__name__.lower()]
    parts += [
        str(getattr(detector, a)) for a in ("precision", "size") if getattr(detector, a, None) is not None
    ]
    return " ".join(parts)


def top_down(name: str, detector: str, pose: Callable[[], Callable]) -> System:
    """A per-frame loop without tracking: ``detector`` boxes, then the pose model on each box."""
    from ..sdk.detectors import make_detector

    def open_():
        det, model = make_detector(detector, threads=1), pose()
        system.detector = describe(det)

        def run(frames):
            out, seconds = Run(), 0.0
            for i, img in enumerate(frames):
                boxes = det(img, i).boxes
                t = time.perf_counter()
                out.poses.append(model(img, boxes) if len(boxes) else np.zeros((0, 17, 3)))
                seconds += time.perf_counter() - t
                out.model_people += len(boxes)
            out.model_ms = 1e3 * seconds
            return out

        return run

    system = System(name, detector, open_)
    return system


def teacher(name: str) -> Callable[[], Callable]:
    def make():
        from ..external.registry import load_teacher

        return load_teacher(name, threads=1)

    return make


def multipose() -> System:
    """MoveNet MultiPose on whole frames: its own people, no separate pose model to time."""

    def open_():
        from ..external.registry import load_detector

        model = load_detector("movenet_multipose", threads=1)

        def run(frames):
            out = Run()
            for img in frames:
                d = model.detect(img)
                out.poses.append(d.keypoints if d.keypoints is not None else np.zeros((0, 17, 3)))
            return out

        return run

    return System("MoveNet MultiPose", "its own (whole frame)", open_)


def blazepose_own(size: str, max_people: int = 10) -> System:
    """BlazePose as MediaPipe runs it: its person detector, then the landmark model in each rotated
    ROI; the detector runs on every frame (MediaPipe's video mode follows landmarks between
    detections instead, which this does not reproduce)."""

    def open_():
        from ..core.assets import asset_path, missing_reason
        from ..external.blazepose import BlazePoseDetector
        from ..external.registry import load_teacher
        from ..runtimes import open_session

        path = asset_path("pose_detection.tflite")
        if path is None:
            raise FileNotFoundError(missing_reason("pose_detection.tflite"))
        det = BlazePoseDetector(open_session(path, device="cpu", threads=1), max_people=max_people)
        model = load_teacher(f"blazepose_{size}", threads=1)

        def run(frames):
            out, seconds = Run(), 0.0
            for img in frames:
                _, rois = det.detect(img)
                t = time.perf_counter()
                out.poses.append(model.in_rois(img, rois) if len(rois) else np.zeros((0, 17, 3)))
                seconds += time.perf_counter() - t
                out.model_people += len(rois)
            out.model_ms = 1e3 * seconds
            return out

        return run

    return System(f"BlazePose {size}", f"BlazePose detector (up to {max_people})", open_)


def default_systems(bundles: dict[str, str | Path]) -> list[System]:
    systems: list[System] = []
    for i, (label, b) in enumerate(bundles.items()):
        systems.append(ours(b, f"ours: {label}"))
        if i == 0:  # the same loop with the peers' detector run in line, like for like with them
            systems.append(ours(b, f"ours: {label}, peers' detector, serial", False, PEER_DETECTOR))
    systems += [
        top_down("MoveNet Lightning", PEER_DETECTOR, teacher("movenet_lightning")),
        top_down("MoveNet Thunder", PEER_DETECTOR, teacher("movenet_thunder")),
        multipose(),
        blazepose_own("full"),
        blazepose_own("lite"),
        top_down("BlazePose full on NanoDet boxes", PEER_DETECTOR, teacher("blazepose_full")),
    ]
    return systems


# -- the run ----------------------------------------------------------------------------------------
COLUMNS = [
    "system",
    "detector",
    "fps",
    "ms/frame",
    "pose ms/person",
    "people/frame",
    "AP",
    "AP50",
    "AR",
]


def measure(
    systems: list[System],
    frames: list[np.ndarray],
    gt: dict,
    index: dict[int, int],
    rounds: int = 2,
    warmup: int = 2,
    progress=print,
) -> tuple[list[list], dict]:
    """Rows of ``COLUMNS``, systems interleaved round by round (a busy neighbour slows all alike);
    fps over all rounds, AP from the first round's poses. Systems that cannot open are skipped."""
    if len({s.name for s in systems}) != len(systems):
        raise ValueError(f"system names must differ: {[s.name for s in systems]}")
    stats: dict[str, dict] = {}
    for r in range(rounds):
        for s in systems:
            if stats.get(s.name, {}).get("skipped"):
                continue
            try:
                run = s.open()
            except (FileNotFoundError, ValueError, RuntimeError, ImportError) as e:
                progress(f"{s.name}: skipped ({e})")
                stats[s.name] = {"skipped": str(e)}
                continue
            run(frames[:warmup])  # first-call allocations
            t = time.perf_counter()
            got = run(frames)
            wall = time.perf_counter() - t
            st = stats.setdefault(s.name, {"wall": 0.0, "frames": 0, "model_ms": 0.0, "model_people": 0})
            st["wall"] += wall
            st["frames"] += len(got.poses)
            if got.model_ms is None:
                st["model_ms"] = None
            elif st["model_ms"] is not None:
                st["model_ms"] += got.model_ms
                st["model_people"] += got.model_people
            st.setdefault("poses", got.poses)
            progress(f"round {r + 1}, {s.name}: {len(got.poses) / wall:.2f} fps")
    rows = []
    for s in systems:
        st = stats.get(s.name)
        if not st or "skipped" in st:
            continue
        poses = st["poses"]
        found = {index[k]: poses[k] for k in index if k < len(poses)}
        ap = score_found(found, gt)
        n = max(st["frames"], 1)
        per_person = st["model_ms"] / st["model_people"] if st["model_ms"] and st["model_people"] else None
        rows.append(
            [
                s.name,
                s.detector,
                n / st["wall"],
                1e3 * st["wall"] / n,
                per_person,
                sum(len(p) for p in poses) / max(len(poses), 1),
                100 * ap["AP"],
                100 * ap["AP50"],
                100 * ap["AR"],
            ]
        )
    return rows, {k: v.get("skipped") for k, v in stats.items() if "skipped" in v}


def run(
    labels: str | Path,
    bundles: dict[str, str | Path],
    frames: int = 60,
    rounds: int = 2,
    systems: list[System] | None = None,
    progress=print,
) -> Table:
    from ..cli.demo import held_out_clip

    t0 = time.perf_counter()
    images, _, first = held_out_clip(frames)
    gt, index = held_out_ground_truth(labels, first, len(images))
    people = sum(1 for a in gt["annotations"] if not a["iscrowd"])
    progress(f"vtest frames {first}-{first + len(images) - 1}: {len(index)} labelled, {people} people")
    load_before = os.getloadavg()[0]
    rows, skipped = measure(systems or default_systems(bundles), images, gt, index, rounds, progress=progress)
    table = Table(
        "peers_loop",
        f"Whole systems on vtest.avi's held-out frames {first}-{first + len(images) - 1}: fps and COCO AP "
        f"(13 joints) of the people each found ({len(index)} labelled frames, {people} people)",
        COLUMNS,
        settings={
            "labels": str(labels),
            "frames": len(images),
            "labelled frames": len(index),
            "rounds": rounds,
            "threads per session": 1,
            "bundles": {k: str(v) for k, v in bundles.items()},
            "load_avg_1m before/after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        },
        plot=plot,
    )
    table.extra["text_columns"] = ["system", "detector"]
    for row in rows:
        table.add(*row)
    table.notes += [
        "fps: the whole system, frames in -> poses out, one intra-op thread per session, the mean over "
        f"{rounds} interleaved rounds; ours runs the SDK's default detector ('auto') on its own thread "
        "(its default on 2+ CPUs), the 'serial' row the peers' fp32 NanoDet in line as the peers do; "
        "pose ms/person: the pose model alone "
        "(ours: crops, both stages, decoding), '-' where detection and pose are one model",
        "AP: pycocotools on nose + 12 body joints of the people each system found, person score = mean "
        "joint score, OKS area = the label's box; labels: MoveNet Thunder and BlazePose full where they "
        "agree, on NanoDet boxes (score >= 0.4), so the Thunder and BlazePose-full rows are an upper "
        "reference and people NanoDet missed are neither labelled nor ignored (a system that finds "
        "them is charged a false positive); ignore regions are crowd regions",
        "BlazePose's own detector runs on every frame (MediaPipe's video mode tracks landmarks between "
        "detections instead); it is trained for one near person and finds few of vtest's small people",
    ]
    if skipped:
        table.notes.append("skipped: " + "; ".join(f"{k} ({v})" for k, v in skipped.items()))
    table.seconds = time.perf_counter() - t0
    return table


def plot(table: Table, path) -> None:
    fig, ax = new_figure(7.5, 4.8)
    placed: list[tuple[float, float]] = []  # (fps, label y): a label moves down past near neighbours
    for name, _, fps, *_, ap, _, _ in sorted(table.rows, key=lambda r: -r[6]):
        y = ap
        while any(abs(np.log(fps / f)) < 0.5 and abs(y - ly) < 4.0 for f, ly in placed):
            y -= 4.0
        placed.append((fps, y))
        ax.scatter(fps, ap, color="C3" if name.startswith("ours") else "C0")
        ax.annotate(
            name,
            (fps, ap),
            xytext=(fps * 1.06, y),
            fontsize=7,
            va="center",
            arrowprops={"arrowstyle": "-", "color": "grey", "lw": 0.5} if y != ap else None,
        )
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter("{x:g}")
    ax.xaxis.set_minor_formatter("{x:g}")
    ax.set_xlabel("frames per second, whole system (1 thread per session; log scale)")
    ax.set_ylabel("COCO AP, 13 joints, people found (%)")
    m = table.machine
    ax.set_title(
        f"Held-out street video: speed vs accuracy ({m.get('cpus')} CPUs, load {m.get('load_avg_1m', '?')})",
        fontsize=10,
    )
    ax.grid(alpha=0.3)
    save_figure(fig, path)

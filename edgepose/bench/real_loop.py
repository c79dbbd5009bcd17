"""The whole loop on real street video, once per detector: frames per second and where the time goes.

Runs ``VideoPipeline`` (detector, tracker, per-track ring buffers, the zoo bundle, smoothing; no
video or JSON sinks) over the held-out tail of vtest.avi, the same frames ``edgepose demo`` shows,
with each detector of ``edgepose.sdk.DETECTORS`` that is fetched here. The per-person AP of the
pose model does not depend on the detector and is measured by ``real_world``; this table answers
the other question a user has: how fast is the whole thing with each detector.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .report import Table, new_figure, save_figure

# detector specs in the order the table shows them (vtest is 4:3, so NanoDet makes one pass: no tiles)
DEFAULT_DETECTORS = ("nanodet:int8", "nanodet", "nanodet:int8,320", "centernet", "movenet_multipose", "hog")
POSE_STAGES = ("crops", "frame stage", "temporal stage", "model", "decode")  # VideoPipeline's timer names


def loop_fps(
    bundle: str | Path,
    detectors=DEFAULT_DETECTORS,
    frames: int = 60,
    threads: int | None = None,
    progress=print,
    concurrent_detection: bool | None = None,
    labels: str | Path | None = None,
) -> Table:
    """One row per detector: fps, ms per frame for detection and for the pose stages, people per frame
    and, with ``labels`` (the labelled held-out frames), COCO AP of the people the loop found.

    Detection runs as ``VideoPipeline`` runs it by default (``concurrent_detection=None``: on its own
    thread on two or more CPUs, one intra-op thread per session unless ``threads`` says otherwise)."""
    from ..cli.demo import held_out_clip
    from ..runtimes.bundle import load
    from ..sdk.detectors import make_detector
    from ..sdk.estimator import PoseEstimator
    from ..sdk.pipeline import CONCURRENT_SESSION_THREADS, VideoPipeline, default_concurrent_detection
    from ..sdk.sources import IterableSource
    from .workload import TotalsTimer

    t0 = time.perf_counter()
    if concurrent_detection is None:
        concurrent_detection = default_concurrent_detection()
    threads = threads or (CONCURRENT_SESSION_THREADS if concurrent_detection else None)
    images, fps, first = held_out_clip(frames)
    gt = _ground_truth(labels, first, len(images))
    table = Table(
        "real_loop",
        f"Whole loop on vtest.avi's held-out frames {first}-{first + len(images) - 1}, per detector",
        ["detector", "fps", "detect ms/frame", "pose ms/frame", "other ms/frame", "people/frame"]
        + (["AP"] if gt else []),
        settings={
            "bundle": str(bundle),
            "frames": len(images),
            "threads": threads,
            "concurrent_detection": concurrent_detection,
        },
        plot=plot,
    )
    table.extra["text_columns"] = ["detector"]
    opts = {"threads": threads} if threads else {}
    for spec in detectors:
        try:
            det = make_detector(spec, threads=threads)
        except (FileNotFoundError, ValueError, RuntimeError) as e:
            progress(f"{spec}: skipped ({e})")
            continue
        est = PoseEstimator(load(bundle, device="cpu", **opts))
        pipe = VideoPipeline(est, detector=det, mode="offline", concurrent_detection=concurrent_detection)
        for _ in pipe.run(IterableSource(images[:2], fps=fps)):  # warm-up: first-call allocations
            pass
        pipe.reset()
        pipe.timer, pipe.detector_timer = TotalsTimer(), TotalsTimer()
        got = []
        t = time.perf_counter()
        for r in pipe.run(IterableSource(images, fps=fps, name="vtest.avi (held-out tail)")):
            got.append([(p.box, p.keypoints, p.scores, p.track_id) for p in r.poses])
        wall = 1e3 * (time.perf_counter() - t)
        people, n = sum(map(len, got)), len(got)
        est.close()
        totals = pipe.timer.total_ms
        waited = totals.get("detect", 0.0)  # serial: the detector's time; concurrent: the wait for it
        detect = pipe.detector_timer.total_ms.get("detect", waited)
        pose = sum(totals.get(k, 0.0) for k in POSE_STAGES)
        n = max(n, 1)
        row = [spec, 1e3 * n / wall, detect / n, pose / n, (wall - waited - pose) / n, people / n]
        if gt:
            row.append(100 * loop_ap(got, est.layout, *gt)["AP"])
        table.add(*row)
        progress(f"{spec}: {1e3 * n / wall:.2f} fps")
    table.notes.append(
        "pose = crops, frame and temporal stages and decoding; other = tracking, smoothing and the loop "
        "itself (and, with concurrent detection, the wait for the detector's thread); the pose model's "
        "accuracy on given boxes does not depend on the detector (see real_world); AP here is the whole "
        "system's: COCO AP (13 joints) of the people the loop found on the labelled held-out frames"
    )
    table.seconds = time.perf_counter() - t0
    return table


def plot(table: Table, path) -> None:
    fig, ax = new_figure()
    names = table.column("detector")
    detect, pose, other = (table.column(c) for c in ("detect ms/frame", "pose ms/frame", "other ms/frame"))
    ax.barh(names, detect, label="detector")
    ax.barh(names, pose, left=detect, label="pose")
    ax.barh(names, other, left=[d + p for d, p in zip(detect, pose)], label="other")
    ax.set_xlabel("ms per frame")
    ax.set_title("Whole loop on real street video")
    ax.legend()
    ax.invert_yaxis()
    save_figure(fig, path)


@dataclass(frozen=True)
class LoopConfig:
    """One way to run the loop: detection serial or on its thread, thread counts (None: the runtime's
    default, one per core), detection every N frames, pose workers and which bundle (a key of
    ``bundles``)."""

    label: str
    concurrent: bool
    detector_threads: int | None = 1
    pose_threads: int | None = 1
    detect_every: int = 1
    pose_workers: int = 1
    bundle: str = "fp32"
    detector: str | None = None  # None: the run's detector

    def twin_key(self) -> tuple:
        """What must match for two runs to give the same poses bit for bit (all but concurrency)."""
        return (
            self.detector_threads,
            self.pose_threads,
            self.detect_every,
            self.pose_workers,
            self.bundle,
            self.detector,
        )


CONCURRENCY_CONFIGS = (
    LoopConfig("serial, default threads", False, None, None),
    LoopConfig("serial, 1 thread each", False, 1, 1),
    LoopConfig("concurrent, 1 thread each", True, 1, 1),
    LoopConfig("concurrent, default threads", True, None, None),
)


def concurrency_fps(
    bundle: str | Path | dict[str, str | Path],
    detector: str = "nanodet",
    frames: int | None = None,
    rounds: int = 2,
    configs=CONCURRENCY_CONFIGS,
    progress=print,
    name: str = "concurrent_loop",
    title: str = "detection serial or on its own thread",
    labels: str | Path | None = None,
) -> Table:
    """The whole loop on vtest's held-out tail, once per ``LoopConfig``.

    Configurations alternate round by round (a busy neighbour slows all alike); each row is the mean of
    its rounds' frames. "same poses" compares every pose (boxes, keypoints, scores, track ids) with the
    serial run of the same settings: a thread count changes a runtime's summation order, so only runs
    with equal counts can be equal bit for bit. ``bundle``: one bundle, or ``{key: bundle}`` for configs
    naming their ``bundle``. ``labels``: the labelled held-out frames (``edgepose label --preset real``
    output) that score each configuration's poses: COCO AP on 13 joints, people as the loop found them.
    """
    from ..cli.demo import HELD_OUT, held_out_clip
    from ..runtimes.bundle import load
    from ..sdk.detectors import make_detector
    from ..sdk.estimator import PoseEstimator
    from ..sdk.pipeline import VideoPipeline
    from ..sdk.sources import IterableSource
    from .workload import TotalsTimer

    t0 = time.perf_counter()
    bundles = dict(bundle) if isinstance(bundle, dict) else {"fp32": bundle}
    images, fps, first = held_out_clip(frames or 10**9)
    gt = _ground_truth(labels, first, len(images))
    columns = [
        "configuration",
        "bundle",
        "detector threads",
        "pose threads",
        "detect every",
        "pose workers",
        "fps",
        "speed-up",
        "cores busy",
        "detect ms/frame",
        "waited ms/frame",
        "pose ms/frame",
        "people/frame",
        "same poses",
    ] + (["AP"] if gt else [])
    table = Table(
        name,
        f"Whole loop on vtest.avi's held-out frames {first}-{first + len(images) - 1} ({detector}): {title}",
        columns,
        settings={
            "bundles": {k: str(v) for k, v in bundles.items()},
            "detector": detector,
            "frames": len(images),
            "rounds": rounds,
            "labels": str(labels) if labels else None,
        },
    )
    table.extra["text_columns"] = [
        "configuration",
        "bundle",
        "detector threads",
        "pose threads",
        "same poses",
    ] + (["AP"] if gt else [])
    stats = {
        c.label: dict.fromkeys(("wall", "cpu", "frames", "people", "detect", "waited", "pose"), 0.0)
        for c in configs
    }
    poses: dict[str, list] = {}
    layouts: dict[str, object] = {}
    for r in range(rounds):
        for c in configs:
            det = make_detector(
                c.detector or detector, **({"threads": c.detector_threads} if c.detector_threads else {})
            )
            opts = {"threads": c.pose_threads} if c.pose_threads else {}
            est = PoseEstimator(load(bundles[c.bundle], device="cpu", **opts), workers=c.pose_workers)
            pipe = VideoPipeline(
                est,
                detector=det,
                mode="offline",
                concurrent_detection=c.concurrent,
                detect_every=c.detect_every,
            )
            for _ in pipe.run(IterableSource(images[:3], fps=fps)):  # warm-up: first-call allocations
                pass
            pipe.timer, pipe.detector_timer = TotalsTimer(), TotalsTimer()
            got = []
            t, cpu = time.perf_counter(), time.process_time()
            for res in pipe.run(IterableSource(images, fps=fps)):
                got.append([(p.box, p.keypoints, p.scores, p.track_id) for p in res.poses])
            wall = time.perf_counter() - t
            s = stats[c.label]
            s["cpu"] += time.process_time() - cpu
            s["wall"] += wall
            s["frames"] += len(got)
            s["people"] += sum(len(g) for g in got)
            waited = pipe.timer.total_ms.get("detect", 0.0)
            s["waited"] += waited
            s["detect"] += pipe.detector_timer.total_ms.get("detect", waited) if c.concurrent else waited
            s["pose"] += sum(pipe.timer.total_ms.get(k, 0.0) for k in POSE_STAGES)
            poses.setdefault(c.label, got)
            layouts[c.label] = est.layout
            est.close()
            progress(f"round {r + 1}, {c.label}: {len(got) / wall:.2f} fps")
    base = None
    for c in configs:
        s = stats[c.label]
        n = max(s["frames"], 1)
        rate = n / s["wall"]
        base = base or rate
        twin = next((o.label for o in configs if not o.concurrent and o.twin_key() == c.twin_key()), None)
        same = "-" if twin in (None, c.label) else ("yes" if _same(poses[c.label], poses[twin]) else "no")
        row = [
            c.label,
            c.bundle,
            str(c.detector_threads or "default"),
            str(c.pose_threads or "default"),
            c.detect_every,
            c.pose_workers,
            rate,
            rate / base,
            s["cpu"] / s["wall"],
            s["detect"] / n,
            s["waited"] / n,
            s["pose"] / n,
            s["people"] / n,
            same,
        ]
        if gt:
            row.append(100 * loop_ap(poses[c.label], layouts[c.label], *gt)["AP"])
        table.add(*row)
    table.notes += [
        f"held-out = the last {round(100 * HELD_OUT)}% of vtest.avi; offline mode, tracker, ring buffers, "
        "smoothing, no sinks; speed-up against the first row; cores busy = this process's CPU time / "
        "wall time (above 1: the stages overlapped; it cannot exceed the cores other work leaves free)",
        "detect = the detector's own time (concurrent: on its thread, beside the pose stages); waited = "
        "the time the loop waited for it (serial: all of it); default threads = the runtime's own choice "
        "(one per core); pose workers = sessions a frame's people are split over (PoseEstimator(workers=))",
    ]
    if gt:
        table.notes.append(
            "AP: COCO AP (13 joints every layout shares) of the loop's own people (no given boxes) on the "
            "labelled held-out frames, against the teachers' labels (edgepose.bench.peers_loop)"
        )
    table.seconds = time.perf_counter() - t0
    return table


def _ground_truth(labels, first: int, count: int):
    """(COCO ground truth, {clip frame: image id}) of the labelled frames in the clip, or None without
    labels (or when the label directory is not there: the fps columns do not need it)."""
    if not labels or not (Path(labels) / "annotations" / "val").is_dir():
        return None
    from .peers_loop import held_out_ground_truth

    return held_out_ground_truth(labels, first, count)


def loop_ap(frames: list, layout, gt: dict, index: dict[int, int]) -> dict:
    """COCO AP of a loop's poses (per emitted frame: (box, keypoints, scores, track id) rows in
    ``layout``) on the labelled frames ``index`` maps to image ids."""
    from ..core.keypoints import COCO17, convert
    from .peers_loop import score_found

    found = {}
    for k, image_id in index.items():
        rows = frames[k] if k < len(frames) else []
        kp = np.array([np.concatenate([r[1], r[2][:, None]], 1) for r in rows], np.float64)
        found[image_id] = convert(kp, layout, COCO17) if len(kp) else np.zeros((0, 17, 3))
    return score_found(found, gt)


def _same(a: list, b: list) -> bool:
    """Whether two runs' poses are equal bit for bit, frame by frame and person by person."""
    if len(a) != len(b):
        return False
    for fa, fb in zip(a, b):
        if len(fa) != len(fb):
            return False
        for pa, pb in zip(fa, fb):
            if pa[3] != pb[3] or not all(
                np.array_equal(x, y, equal_nan=True) for x, y in zip(pa[:3], pb[:3])
            ):
                return False
    return True

"""The whole loop on real street video, once per detector: frames per second and where the time goes.

Runs ``VideoPipeline`` (detector, tracker, per-track ring buffers, the zoo bundle, smoothing; no
video or JSON sinks) over the held-out tail of vtest.avi, the same frames ``edgepose demo`` shows,
with each detector of ``edgepose.sdk.DETECTORS`` that is fetched here. The per-person AP of the
pose model does not depend on the detector and is measured by ``real_world``; this table answers
the other question a user has: how fast is the whole thing with each detector.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from .report import Table, new_figure, save_figure

# detector specs in the order the table shows them (vtest is 4:3, so NanoDet makes one pass: no tiles)
DEFAULT_DETECTORS = ("nanodet", "centernet", "movenet_multipose", "hog")
POSE_STAGES = ("crops", "frame stage", "temporal stage", "model", "decode")  # VideoPipeline's timer names


def loop_fps(
    bundle: str | Path,
    detectors=DEFAULT_DETECTORS,
    frames: int = 60,
    threads: int | None = None,
    progress=print,
    concurrent_detection: bool | None = None,
) -> Table:
    """One row per detector: fps, ms per frame for detection and for the pose stages, people per frame.

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
    table = Table(
        "real_loop",
        f"Whole loop on vtest.avi's held-out frames {first}-{first + len(images) - 1}, per detector",
        ["detector", "fps", "detect ms/frame", "pose ms/frame", "other ms/frame", "people/frame"],
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
        people, n = 0, 0
        t = time.perf_counter()
        for r in pipe.run(IterableSource(images, fps=fps, name="vtest.avi (held-out tail)")):
            people += len(r.poses)
            n += 1
        wall = 1e3 * (time.perf_counter() - t)
        est.close()
        totals = pipe.timer.total_ms
        waited = totals.get("detect", 0.0)  # serial: the detector's time; concurrent: the wait for it
        detect = pipe.detector_timer.total_ms.get("detect", waited)
        pose = sum(totals.get(k, 0.0) for k in POSE_STAGES)
        n = max(n, 1)
        table.add(spec, 1e3 * n / wall, detect / n, pose / n, (wall - waited - pose) / n, people / n)
        progress(f"{spec}: {1e3 * n / wall:.2f} fps")
    table.notes.append(
        "pose = crops, frame and temporal stages and decoding; other = tracking, smoothing and the loop "
        "itself (and, with concurrent detection, the wait for the detector's thread); the pose model's "
        "accuracy does not depend on the detector (see real_world)"
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


# (label, concurrent, detector threads, pose threads); None: the runtime's default (every core)
CONCURRENCY_CONFIGS = (
    ("serial, default threads", False, None, None),
    ("serial, 1 thread each", False, 1, 1),
    ("concurrent, 1 thread each", True, 1, 1),
    ("concurrent, default threads", True, None, None),
)


def concurrency_fps(
    bundle: str | Path,
    detector: str = "nanodet",
    frames: int | None = None,
    rounds: int = 2,
    configs=CONCURRENCY_CONFIGS,
    progress=print,
) -> Table:
    """The whole loop on vtest's held-out tail with detection serial and on its own thread, by threads.

    Configurations alternate round by round (a busy neighbour slows all alike); each row is the mean of
    its rounds' frames. "same poses" compares every pose (boxes, keypoints, scores, track ids) with the
    serial run of the same thread counts: a thread count changes a runtime's summation order, so only
    runs with equal counts can be equal bit for bit.
    """
    from ..cli.demo import HELD_OUT, held_out_clip
    from ..runtimes.bundle import load
    from ..sdk.detectors import make_detector
    from ..sdk.estimator import PoseEstimator
    from ..sdk.pipeline import VideoPipeline
    from ..sdk.sources import IterableSource
    from .workload import TotalsTimer

    t0 = time.perf_counter()
    images, fps, first = held_out_clip(frames or 10**9)
    table = Table(
        "concurrent_loop",
        f"Whole loop on vtest.avi's held-out frames {first}-{first + len(images) - 1} ({detector}): "
        "detection serial or on its own thread",
        [
            "configuration",
            "detector threads",
            "pose threads",
            "fps",
            "speed-up",
            "cores busy",
            "detect ms/frame",
            "waited ms/frame",
            "pose ms/frame",
            "people/frame",
            "same poses",
        ],
        settings={"bundle": str(bundle), "detector": detector, "frames": len(images), "rounds": rounds},
    )
    table.extra["text_columns"] = ["configuration", "detector threads", "pose threads", "same poses"]
    stats = {
        c[0]: dict.fromkeys(("wall", "cpu", "frames", "people", "detect", "waited", "pose"), 0.0)
        for c in configs
    }
    poses: dict[str, list] = {}
    for r in range(rounds):
        for label, concurrent, det_threads, pose_threads in configs:
            det = make_detector(detector, **({"threads": det_threads} if det_threads else {}))
            opts = {"threads": pose_threads} if pose_threads else {}
            est = PoseEstimator(load(bundle, device="cpu", **opts))
            pipe = VideoPipeline(est, detector=det, mode="offline", concurrent_detection=concurrent)
            for _ in pipe.run(IterableSource(images[:3], fps=fps)):  # warm-up: first-call allocations
                pass
            pipe.timer, pipe.detector_timer = TotalsTimer(), TotalsTimer()
            got = []
            t, cpu = time.perf_counter(), time.process_time()
            for res in pipe.run(IterableSource(images, fps=fps)):
                got.append([(p.box, p.keypoints, p.scores, p.track_id) for p in res.poses])
            wall = time.perf_counter() - t
            s = stats[label]
            s["cpu"] += time.process_time() - cpu
            s["wall"] += wall
            s["frames"] += len(got)
            s["people"] += sum(len(g) for g in got)
            waited = pipe.timer.total_ms.get("detect", 0.0)
            s["waited"] += waited
            s["detect"] += pipe.detector_timer.total_ms.get("detect", waited) if concurrent else waited
            s["pose"] += sum(pipe.timer.total_ms.get(k, 0.0) for k in POSE_STAGES)
            poses.setdefault(label, got)
            est.close()
            progress(f"round {r + 1}, {label}: {len(got) / wall:.2f} fps")
    base = None
    for label, _concurrent, det_threads, pose_threads in configs:
        s = stats[label]
        n = max(s["frames"], 1)
        rate = n / s["wall"]
        base = base or rate
        twin = next((c[0] for c in configs if not c[1] and (c[2], c[3]) == (det_threads, pose_threads)), None)
        same = "-" if twin in (None, label) else ("yes" if _same(poses[label], poses[twin]) else "no")
        table.add(
            label,
            str(det_threads or "default"),
            str(pose_threads or "default"),
            rate,
            rate / base,
            s["cpu"] / s["wall"],
            s["detect"] / n,
            s["waited"] / n,
            s["pose"] / n,
            s["people"] / n,
            same,
        )
    table.notes += [
        f"held-out = the last {round(100 * HELD_OUT)}% of vtest.avi; offline mode, tracker, ring buffers, "
        "smoothing, no sinks; speed-up against the first row; cores busy = this process's CPU time / "
        "wall time (above 1: the two stages overlapped; it cannot exceed the cores other work leaves free)",
        "detect = the detector's own time (concurrent: on its thread, beside the pose stages); waited = "
        "the time the loop waited for it (serial: all of it); default threads = the runtime's own choice "
        "(one per core)",
    ]
    table.seconds = time.perf_counter() - t0
    return table


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

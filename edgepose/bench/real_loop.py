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

from .report import Table, new_figure, save_figure

# detector specs in the order the table shows them (vtest is 4:3, so NanoDet makes one pass: no tiles)
DEFAULT_DETECTORS = ("nanodet", "centernet", "movenet_multipose", "hog")
POSE_STAGES = ("frame stage", "temporal stage", "model", "decode")  # VideoPipeline's timer names


def loop_fps(
    bundle: str | Path,
    detectors=DEFAULT_DETECTORS,
    frames: int = 60,
    threads: int | None = None,
    progress=print,
) -> Table:
    """One row per detector: fps, ms per frame for detection and for the pose stages, people per frame."""
    from ..cli.demo import held_out_clip
    from ..runtimes.bundle import load
    from ..sdk.detectors import make_detector
    from ..sdk.estimator import PoseEstimator
    from ..sdk.pipeline import VideoPipeline
    from ..sdk.sources import IterableSource
    from .workload import TotalsTimer

    t0 = time.perf_counter()
    images, fps, first = held_out_clip(frames)
    table = Table(
        "real_loop",
        f"Whole loop on vtest.avi's held-out frames {first}-{first + len(images) - 1}, per detector",
        ["detector", "fps", "detect ms/frame", "pose ms/frame", "other ms/frame", "people/frame"],
        settings={"bundle": str(bundle), "frames": len(images), "threads": threads},
        plot=plot,
    )
    table.extra["text_columns"] = ["detector"]
    opts = {"threads": threads} if threads else {}
    for spec in detectors:
        try:
            det = make_detector(spec)
        except (FileNotFoundError, ValueError, RuntimeError) as e:
            progress(f"{spec}: skipped ({e})")
            continue
        est = PoseEstimator(load(bundle, device="cpu", **opts))
        pipe = VideoPipeline(est, detector=det, mode="offline")
        for _ in pipe.run(IterableSource(images[:2], fps=fps)):  # warm-up: first-call allocations
            pass
        pipe.reset()
        pipe.timer = TotalsTimer()
        people, n = 0, 0
        t = time.perf_counter()
        for r in pipe.run(IterableSource(images, fps=fps, name="vtest.avi (held-out tail)")):
            people += len(r.poses)
            n += 1
        wall = 1e3 * (time.perf_counter() - t)
        est.close()
        totals = pipe.timer.total_ms
        detect = totals.get("detect", 0.0)
        pose = sum(totals.get(k, 0.0) for k in POSE_STAGES)
        n = max(n, 1)
        table.add(spec, 1e3 * n / wall, detect / n, pose / n, (wall - detect - pose) / n, people / n)
        progress(f"{spec}: {1e3 * n / wall:.2f} fps")
    table.notes.append(
        "pose = crops, frame and temporal stages and decoding; other = tracking, smoothing and the loop "
        "itself; the pose model's accuracy does not depend on the detector (see real_world)"
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

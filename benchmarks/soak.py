#!/usr/bin/env python
"""Soak: the SDK's ``VideoPipeline`` over a looped real video for an hour; RSS slope and exact frame indices.

    .venv/bin/python benchmarks/soak.py                     # 60 minutes over .assets/vtest.avi
    nice -n 19 .venv/bin/python benchmarks/soak.py --minutes 3 --loop-frames 150 --tag 3min  # a quick check

What runs is what ``edgepose demo`` runs on real video: the shipped real-footage weights
(``dsta_mnv2_coco``, ``--weights pretrained``) exported to an ONNX bundle (in a child process, so this
process stays torch-free like a device; unverified, as ``edgepose demo`` verifies the same export;
``--bundle`` reuses one), the default detector (``auto``:
NanoDet where fetched, else HOG), tracker, ring buffers and smoothing in ``offline`` mode, with the
poses drawn on a copy of each frame (as a video sink would; no sinks: nothing grows on disk). The source is
``vtest.avi`` re-opened at each loop end (``--loop-frames N``: its first N frames only, so a short run
crosses several loop boundaries); it numbers frames ``loop * frames_per_loop + the file's own index``
and the pipeline is never reset, so the tracker, ring buffers and smoother see one long video with
a scene cut at every loop boundary.

Checks:
- frame indices: every output frame's index is the next one expected (no gap, no repeat, in order)
  and its image is the source frame with that true index (a fingerprint of the decoded frame,
  table made before the run), across every loop boundary;
- memory: RSS (``/proc/self/status`` VmRSS) every ``--sample-every`` frames; a least-squares line
  after ``--warmup-frames`` gives the slope in MB per 1000 frames (and the RSS range after warm-up),
  and one over the second half of those samples (the runtime's arenas grow in steps the first time a
  frame holds more people than before; a step early in a short run tilts the whole fit).

Writes ``benchmarks/results/soak[_TAG].{json,md,png}`` (the plot only if matplotlib is installed).
Exit status 1 if an index check failed or the slope is above ``--max-slope`` MB/1000 frames.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def rss_mb() -> float:
    """Resident set size of this process now (MB), from /proc (psutil where /proc is missing)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def fingerprint(img: np.ndarray) -> int:
    """A cheap content id of a decoded frame (crc32 of every 4th pixel)."""
    return zlib.crc32(np.ascontiguousarray(img[::4, ::4]).tobytes())


def fingerprints(path: Path, limit: int | None) -> list[int]:
    """The fingerprint of each frame of ``path`` by its true index, as the SDK's file source numbers it."""
    from edgepose.sdk.sources import VideoFileSource

    table: list[int] = []
    for f in VideoFileSource(path):
        if f.index != len(table):
            raise RuntimeError(f"{path}: the file source itself numbers frame {len(table)} as {f.index}")
        table.append(fingerprint(f.image))
        if limit is not None and len(table) >= limit:
            break
    return table


def looped_source(path: Path, frames_per_loop: int, fps: float):
    """A ``Source`` replaying ``path``'s first ``frames_per_loop`` frames forever, with global indices."""
    from edgepose.sdk.sources import Source, VideoFileSource
    from edgepose.sdk.types import Frame

    class Looped(Source):
        name = f"{path.name} looped ({frames_per_loop} frames a loop)"
        live = False

        def __init__(self):
            super().__init__()
            self.fps = fps
            self.loops = 0

        def __iter__(self):
            while True:
                src = VideoFileSource(path)
                base = self.loops * frames_per_loop
                try:
                    for f in src:
                        if f.index >= frames_per_loop:
                            break
                        yield Frame(base + f.index, f.image, (base + f.index) / self.fps)
                finally:
                    src.close()
                self.skipped += src.skipped
                self.loops += 1

    return Looped()


def export_bundle(model: str, out: Path) -> None:
    """The shipped weights -> an ONNX bundle, in a child process (torch stays out of this one)."""
    cmd = [
        str(Path(sys.executable).with_name("edgepose")),
        "export",
        model,
        "--weights",
        "pretrained",
        "--format",
        "onnx",
        "--onnx-exporter",
        "torchscript",
        "--no-verify",
        "--out",
        str(out),
    ]
    if not Path(cmd[0]).exists():
        cmd[:1] = [sys.executable, "-m", "edgepose.cli"]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
    if p.returncode:
        raise SystemExit(f"export failed ({' '.join(cmd)}):\n{p.stdout[-3000:]}")


def fit_slope(frames: list[int], rss: list[float]) -> float | None:
    """Least-squares RSS slope in MB per 1000 frames (None with fewer than 3 samples)."""
    if len(frames) < 3:
        return None
    a, _ = np.polyfit(np.asarray(frames, float), np.asarray(rss, float), 1)
    return float(a * 1000.0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=60.0, help="how long to feed frames (default 60)")
    ap.add_argument("--video", default="vtest.avi", help="an asset name or a path (default vtest.avi)")
    ap.add_argument(
        "--loop-frames",
        type=int,
        default=None,
        help="loop the video's first N frames only (default: the whole video)",
    )
    ap.add_argument("--model", default="dsta_mnv2_coco", help="zoo model with shipped weights")
    ap.add_argument(
        "--bundle", default=None, help="an existing bundle instead of exporting the shipped weights"
    )
    ap.add_argument("--detector", default="auto", help="detector (default auto, as edgepose demo)")
    ap.add_argument("--sample-every", type=int, default=50, help="frames between RSS samples")
    ap.add_argument(
        "--warmup-frames",
        type=int,
        default=None,
        help="frames left out of the slope fit (default: 10%% of the frames, at least 50)",
    )
    ap.add_argument("--max-slope", type=float, default=1.0, help="fail above this many MB per 1000 frames")
    ap.add_argument("--tag", default="", help="results file suffix: soak_TAG.*")
    ap.add_argument("--threads", type=int, default=None, help="ONNX Runtime intra-op threads")
    args = ap.parse_args(argv)

    from edgepose.core.assets import asset_path
    from edgepose.runtimes.bundle import load
    from edgepose.sdk.drawing import draw_poses
    from edgepose.sdk.estimator import PoseEstimator
    from edgepose.sdk.pipeline import VideoPipeline

    video = Path(args.video) if Path(args.video).exists() else asset_path(args.video)
    if video is None:
        print(f"error: {args.video} not found (run scripts/fetch_assets.sh)", file=sys.stderr)
        return 2
    import cv2

    cap = cv2.VideoCapture(str(video))
    fps = cap.get(cv2.CAP_PROP_FPS) or 10.0
    cap.release()
    print(f"fingerprinting {video} ...", flush=True)
    table = fingerprints(video, args.loop_frames)
    per_loop = len(table)
    if args.loop_frames and per_loop < args.loop_frames:
        print(f"note: the video has {per_loop} frames; looping all of them", flush=True)

    tmp = None
    if args.bundle:
        bundle = Path(args.bundle)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="edgepose-soak-")
        bundle = Path(tmp.name) / "bundle"
        print(f"exporting the shipped {args.model} weights to ONNX ...", flush=True)
        t = time.perf_counter()
        export_bundle(args.model, bundle)
        print(f"  done in {time.perf_counter() - t:.0f}s", flush=True)

    kw = {} if args.threads is None else {"threads": args.threads}
    est = PoseEstimator(load(bundle, **kw))
    pipe = VideoPipeline(est, detector=args.detector, mode="offline")
    src = looped_source(video, per_loop, fps)
    rss0 = rss_mb()
    print(
        f"soak: {args.minutes:g} min over {src.name}, detector {type(pipe.detector).__name__}, "
        f"model {est.name}, RSS at start {rss0:.0f} MB",
        flush=True,
    )

    samples: list[dict] = []
    bad: list[str] = []
    expected = 0
    persons = 0
    max_people = 0
    tracks: set[int] = set()
    deadline = time.monotonic() + args.minutes * 60.0
    t0 = time.perf_counter()
    fed = 0

    def take(res) -> None:
        nonlocal expected, persons, max_people
        if res.index != expected and len(bad) < 20:
            bad.append(f"output frame #{expected} has index {res.index}")
        if fingerprint(res.image) != table[res.index % per_loop] and len(bad) < 20:
            bad.append(
                f"frame {res.index}: image is not source frame {res.index % per_loop} of loop "
                f"{res.index // per_loop}"
            )
        expected += 1
        draw_poses(res.image.copy(), res.poses, est.layout)  # what a sink would draw
        persons += len(res.poses)
        max_people = max(max_people, len(res.poses))
        tracks.update(p.track_id for p in res.poses)
        if expected % args.sample_every == 0:
            samples.append(
                {"frame": expected, "t_s": round(time.perf_counter() - t0, 2), "rss_mb": round(rss_mb(), 2)}
            )
            if len(samples) % 20 == 0:
                s = samples[-1]
                print(
                    f"  frame {s['frame']:>7}  {s['t_s']:>7.0f}s  RSS {s['rss_mb']:7.1f} MB  "
                    f"{expected / max(s['t_s'], 1e-9):5.2f} fps  loop {src.loops}",
                    flush=True,
                )

    def frames():
        nonlocal fed
        for f in src:
            fed += 1
            yield f
            if time.monotonic() >= deadline:
                return

    from edgepose.sdk.sources import IterableSource

    feed = IterableSource(frames(), fps=fps, name=src.name)  # Frame items keep their global index
    for res in pipe.run(feed, draw=False):  # the decoded image comes back, to fingerprint; drawn in take()
        take(res)
    wall = time.perf_counter() - t0
    if expected != fed:
        bad.append(f"{fed} frames fed, {expected} came out")
    if tmp is not None:
        tmp.cleanup()

    warm = args.warmup_frames if args.warmup_frames is not None else max(50, expected // 10)
    after = [s for s in samples if s["frame"] > warm]
    slope = fit_slope([s["frame"] for s in after], [s["rss_mb"] for s in after])
    rss_after = [s["rss_mb"] for s in after] or [rss_mb()]
    late = after[
        len(after) // 2 :
    ]  # the second half after warm-up: a step early in it cannot pass for a trend
    late_slope = fit_slope([s["frame"] for s in late], [s["rss_mb"] for s in late])
    summary = {
        "video": str(video.name),
        "frames_per_loop": per_loop,
        "loops_started": src.loops + 1,
        "minutes": args.minutes,
        "frames": expected,
        "fps": round(expected / wall, 3) if wall else None,
        "wall_s": round(wall, 1),
        "model": args.model if not args.bundle else str(args.bundle),
        "detector": type(pipe.detector).__name__,
        "persons": persons,
        "max_people_in_a_frame": max_people,
        "tracks": len(tracks),
        "skipped_frames": src.skipped,
        "rss_start_mb": round(rss0, 1),
        "rss_end_mb": round(rss_mb(), 1),
        "warmup_frames": warm,
        "rss_after_warmup_min_mb": round(min(rss_after), 1),
        "rss_after_warmup_max_mb": round(max(rss_after), 1),
        "rss_slope_mb_per_1000_frames": None if slope is None else round(slope, 3),
        "rss_slope_second_half_mb_per_1000_frames": None if late_slope is None else round(late_slope, 3),
        "index_errors": bad,
        "indices_exact": not bad,
        "machine": f"{platform.machine()} {os.cpu_count()} cpus, {platform.python_version()}",
        "samples": samples,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = RESULTS / ("soak" + (f"_{args.tag}" if args.tag else ""))
    stem.with_suffix(".json").write_text(json.dumps(summary, indent=1) + "\n")
    rows = [
        ("frames (loops)", f"{expected} ({expected / per_loop:.2f} x {per_loop})"),
        ("wall, fps", f"{wall / 60:.1f} min, {summary['fps']}"),
        ("people (max per frame, tracks)", f"{persons} ({max_people}, {len(tracks)})"),
        ("RSS start -> end", f"{summary['rss_start_mb']} -> {summary['rss_end_mb']} MB"),
        (
            f"RSS after {warm} warm-up frames",
            f"{summary['rss_after_warmup_min_mb']} - {summary['rss_after_warmup_max_mb']} MB",
        ),
        ("RSS slope (MB / 1000 frames)", "n/a (too few samples)" if slope is None else f"{slope:+.3f}"),
        (
            "  over the second half of it",
            "n/a (too few samples)" if late_slope is None else f"{late_slope:+.3f}",
        ),
        ("frame indices exact", "yes" if not bad else f"NO: {bad[:3]}"),
    ]
    w = max(len(k) for k, _ in rows)
    table_md = "\n".join(["| what | measured |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows])
    stem.with_suffix(".md").write_text(
        f"# Soak: `python benchmarks/soak.py {' '.join(argv if argv is not None else sys.argv[1:])}`\n\n"
        f"{summary['machine']}; detector {summary['detector']}; {summary['video']}, "
        f"{per_loop} frames a loop.\n\n{table_md}\n"
    )
    print()
    for k, v in rows:
        print(f"{k:<{w}}  {v}")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 3.5))
        ax.plot([s["frame"] for s in samples], [s["rss_mb"] for s in samples], lw=1)
        ax.axvline(warm, color="grey", ls=":", lw=1, label="warm-up end")
        if slope is not None:
            xs = np.array([after[0]["frame"], after[-1]["frame"]], float)
            ys = np.polyval(np.polyfit([s["frame"] for s in after], [s["rss_mb"] for s in after], 1), xs)
            ax.plot(xs, ys, "r--", lw=1, label=f"fit {slope:+.3f} MB/1000 frames")
        for k in range(1, expected // per_loop + 1):
            ax.axvline(k * per_loop, color="k", alpha=0.08, lw=0.8)
        ax.set_xlabel("frame")
        ax.set_ylabel("RSS (MB)")
        ax.set_title(f"VideoPipeline soak over looped {summary['video']} ({wall / 60:.0f} min)")
        ax.legend(loc="lower right", fontsize=8)
        fig.tight_layout()
        fig.savefig(stem.with_suffix(".png"), dpi=100)
        print(f"\nwrote {stem}.json, .md, .png")
    except ImportError:
        print(f"\nwrote {stem}.json, .md (no plot: matplotlib is not installed)")
    ok = not bad and (slope is None or slope <= args.max_slope)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

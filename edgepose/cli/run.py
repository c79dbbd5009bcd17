"""``edgepose run``: pose tracking on a video, camera or stream with a bundle (or a zoo model, exported once).

``--model NAME`` exports the model to a verified bundle in the cache directory
(``edgepose.bench.bundles``; later runs reuse it) and runs that, so what runs is
always the device path (a runtime session per stage, no torch in the loop).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from pathlib import Path

import typer

from . import _timing
from ._common import console, err_console, friendly_errors, import_errors, print_json, sigterm_as_interrupt
from ._timing import RunStats, timing_rows, timing_table

MODES = ("auto", "online", "offline")


def backend_format(backend: str | None) -> str | None:
    """The bundle format a runtime backend runs (``onnxruntime`` -> ``onnx``)."""
    if backend is None:
        return None
    from ..runtimes.bundle import FORMAT_BACKENDS
    from ..runtimes.registry import get_backend

    name = get_backend(backend).name
    formats = [f for f, b in FORMAT_BACKENDS.items() if b == name and f != "torch"]
    if not formats:
        raise ValueError(
            f"backend {name!r} runs no exported bundle format; use one of "
            f"{sorted(b for f, b in FORMAT_BACKENDS.items() if f != 'torch')}"
        )
    return formats[0]


PRECISIONS = ("auto", "fp32", "int8")


def resolve_bundle(
    bundle: Path | None,
    model: str | None,
    weights: str | None,
    frames: int | None,
    fmt: str | None,
    say,
    precision: str = "fp32",
    device: str = "auto",
) -> tuple[Path, str]:
    """(bundle dir, how it was obtained) from --bundle or --model [--weights] [--precision].

    ``precision`` ``auto``: int8 for shipped weights whose int8 build of this format was measured
    within ``INT8_MAX_LOSS`` AP of fp32 (``pretrained_info(model)["int8"]``) when the run is on the
    CPU, else fp32. int8 bundles are quantised once, calibrated on vtest's training part."""
    if precision not in PRECISIONS:
        raise ValueError(f"--precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if (bundle is None) == (model is None):
        raise ValueError(
            "pass exactly one of --bundle DIR (an exported bundle) or --model NAME (a zoo model)"
        )
    if bundle is not None:
        if not bundle.exists():
            raise FileNotFoundError(f"bundle directory {str(bundle)!r} does not exist")
        if weights or frames:
            raise ValueError("--weights and --frames apply to --model; a bundle already holds its weights")
        if precision not in ("auto", "fp32"):
            raise ValueError("--precision applies to --model; a bundle already has its precision")
        return bundle, f"bundle {bundle}"
    try:
        from ..bench.bundles import cached_bundle
        from ..zoo import get_spec
    except ImportError as e:  # a device-only install (no torch) can only run bundles
        raise RuntimeError(
            f"--model needs the workstation side of edgepose (torch): {e}; or pass --bundle DIR "
            "exported elsewhere"
        ) from None
    get_spec(model)  # unknown names fail with the list of known ones
    fmt = fmt or "onnx"
    if weights == "pretrained":
        from ..zoo.pretrained import load_pretrained, pretrained_info

        net = load_pretrained(model)
        info = pretrained_info(model)
        if precision == "auto":
            precision = default_precision(info, fmt, device)
        path = cached_bundle(net, format=fmt, precision=precision, progress=say)
        trained_on = info.get("trained_on", "see edgepose/assets/weights/index.json")
        return (
            path,
            f"{model} with the shipped weights (trained on {trained_on.split(';')[0]}), {fmt} {precision} "
            f"bundle {path}",
        )
    if precision == "auto":
        precision = "fp32"  # int8 by default only where measured: the shipped weights
    if weights is None:
        err_console.print(
            f"[yellow]warning:[/] no --weights for {model}: random weights, so the poses are "
            "meaningless (fine for testing the loop and its speed). Pass --weights CKPT, or "
            "--weights pretrained for the shipped demo weights."
        )
    elif not Path(weights).is_file():
        raise FileNotFoundError(f"--weights {weights!r} does not exist (a checkpoint file, or 'pretrained')")
    path = cached_bundle(model, weights=weights, frames=frames, format=fmt, precision=precision, progress=say)
    return path, f"{model} ({'random init' if weights is None else weights}), {fmt} {precision} bundle {path}"


# int8 is the default where its measured loss is at most this many AP points (issue 19's rule)
INT8_MAX_LOSS = 1.0


def default_precision(info: dict, fmt: str, device: str) -> str:
    """``int8`` where the shipped weights' int8 build of ``fmt`` was measured within ``INT8_MAX_LOSS``
    AP of fp32 and the run is on the CPU (``cpu``, or ``auto`` with no CUDA runtime); else ``fp32``.
    A record made with other int8 defaults than today's (``int8_record``) counts as none."""
    from ..zoo.pretrained import int8_record

    measured = int8_record(info, fmt)
    if not measured or measured["fp32_ap"] - measured["ap"] > INT8_MAX_LOSS:
        return "fp32"
    if device == "cpu":
        return "int8"
    if device != "auto":
        return "fp32"
    try:
        import onnxruntime as ort
    except ImportError:
        return "int8"
    return "fp32" if "CUDAExecutionProvider" in ort.get_available_providers() else "int8"


def open_estimator(path: Path, fmt: str | None, device: str, threads: int | None, workers: int = 1):
    from ..runtimes.bundle import load
    from ..sdk.estimator import PoseEstimator

    opts = {"threads": threads} if threads else {}
    return PoseEstimator(load(path, device=device, format=fmt, **opts), workers=workers)


def session_threads(
    path: Path, threads: int | None, concurrent: bool | None, detect_every: int
) -> tuple[bool, int | None]:
    """(detect concurrently, intra-op threads of the pose and detector sessions) for ``run``/``demo``.

    ``--threads`` wins; otherwise one thread each while detection runs beside the pose stages (the
    measured best on two cores), else the runtime's default. A whole-frame bundle has no detector."""
    from ..sdk.estimator import _peek_input_kind
    from ..sdk.pipeline import CONCURRENT_SESSION_THREADS, default_concurrent_detection

    if concurrent and detect_every > 1:
        raise ValueError(
            "--concurrent-detection needs --detect-every 1: between detections the detector follows the "
            "poses of the frame before, so it cannot run ahead"
        )
    if _peek_input_kind(path) == "frame":
        return False, threads
    if concurrent is None:
        concurrent = default_concurrent_detection(detect_every)
    return concurrent, threads or (CONCURRENT_SESSION_THREADS if concurrent else None)


def check_display() -> None:
    """--show needs a GUI-enabled OpenCV and a display; say which is missing."""
    import cv2

    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        raise RuntimeError("--show needs a display (no $DISPLAY here): write a video with --out instead")
    try:
        cv2.namedWindow("edgepose", cv2.WINDOW_NORMAL)
    except cv2.error:
        raise RuntimeError(
            "--show needs an OpenCV with GUI support (opencv-python, not -headless; JetPack's "
            "OpenCV has it): write a video with --out instead"
        ) from None


def register(app: typer.Typer) -> None:
    @app.command("run")
    def run_cmd(
        source: str = typer.Argument(
            ...,
            help="Video file, image folder, camera index (0) or /dev/videoN, "
            "RTSP/HTTP URL, or a GStreamer pipeline ending in appsink.",
        ),
        bundle: Path = typer.Option(None, "--bundle", help="Exported bundle directory (or an export root)."),
        model: str = typer.Option(None, "--model", help="Zoo model: exported once to the cache, then run."),
        weights: str = typer.Option(
            None,
            "--weights",
            help="With --model: a checkpoint, or 'pretrained' for the "
            "shipped demo weights. Without: random weights (a warning says so).",
        ),
        frames: int = typer.Option(
            None, "--frames", help="With --model: window of a temporal model (3 or 5)."
        ),
        backend: str = typer.Option(
            None,
            "--backend",
            help="onnxruntime | openvino | tflite | coreml (picks the "
            "bundle format; default: the bundle's, or onnx for --model).",
        ),
        device: str = typer.Option(
            "auto", "--device", help="auto | cpu | gpu | npu | a runtime's device name."
        ),
        mode: str = typer.Option(
            "auto",
            "--mode",
            help="online (causal, cameras) | offline (look-ahead, files) | auto (online for live sources).",
        ),
        detect_every: int = typer.Option(
            1, "--detect-every", help="Run the detector every N frames; follow the poses in between."
        ),
        detector: str = typer.Option(
            "auto",
            "--detector",
            help="auto (nanodet int8 at 416 where fetched, else hog) | nanodet[:int8,SIZE] | centernet | "
            "movenet_multipose | hog | onnx:PATH | boxes:JSONL.",
        ),
        out: Path = typer.Option(None, "--out", help="Annotated video (.mp4 or .avi)."),
        json_out: Path = typer.Option(
            None, "--json-out", help="Poses as JSON lines (one per person per frame) in this file."
        ),
        max_frames: int = typer.Option(None, "--max-frames", help="Stop after N frames."),
        no_smooth: bool = typer.Option(False, "--no-smooth", help="Turn off One-Euro keypoint smoothing."),
        show: bool = typer.Option(False, "--show", help="Show the annotated frames in a window (q quits)."),
        threads: int = typer.Option(
            None,
            "--threads",
            min=1,
            help="Intra-op threads of each runtime session, pose and detector (>= 1; default: 1 each "
            "with concurrent detection, else the runtime's own).",
        ),
        precision: str = typer.Option(
            "auto",
            "--precision",
            help="With --model: auto (int8 for the shipped weights where measured within 1 AP of fp32, "
            "on the CPU; else fp32) | fp32 | int8.",
        ),
        pose_workers: int = typer.Option(
            1,
            "--pose-workers",
            min=1,
            help="Split each frame's people over N one-thread CPU sessions (for a core the detector "
            "leaves free; see benchmarks/results/loop_configs.md).",
        ),
        concurrent_detection: bool = typer.Option(
            None,
            "--concurrent-detection/--serial-detection",
            help="Run the detector on a thread of its own, ahead of the pose stages (default: on with "
            "2+ CPUs and --detect-every 1). Same poses either way.",
        ),
        as_json: bool = typer.Option(False, "--json", help="Print the end-of-run summary as JSON."),
        summary_json: bool = typer.Option(False, "--summary-json", hidden=True, help="Old name of --json."),
    ):
        """Track people and estimate their poses through SOURCE; ends with a per-stage timing table."""
        summary_json = summary_json or as_json
        say = None if summary_json else (lambda m: err_console.print(f"[dim]{m}[/]"))
        with friendly_errors(), import_errors(), json_stdout(summary_json):
            if mode not in MODES:
                raise ValueError(f"--mode must be one of {', '.join(MODES)}, got {mode!r}")
            if detect_every < 1:
                raise ValueError(f"--detect-every must be >= 1, got {detect_every}")
            if max_frames is not None and max_frames < 1:
                raise ValueError(f"--max-frames must be >= 1, got {max_frames}")
            if out is not None and out.suffix.lower() not in (".mp4", ".avi"):
                raise ValueError(f"--out {str(out)!r}: use a .mp4 or .avi file name")
            if show:
                check_display()
            from ..sdk.detectors import make_detector
            from ..sdk.pipeline import VideoPipeline
            from ..sdk.sources import open_source

            src = open_source(int(source) if source.isdigit() else source)
            try:
                fmt = backend_format(backend)
                path, how = resolve_bundle(bundle, model, weights, frames, fmt, say, precision, device)
                concurrent, n_threads = session_threads(path, threads, concurrent_detection, detect_every)
                est = open_estimator(path, fmt, device, n_threads, pose_workers)
                # a whole-frame bundle finds the people itself: no detector is made
                det = make_detector(detector, threads=n_threads) if est.needs_detector else None
                pipe = VideoPipeline(
                    est,
                    detector=det,
                    mode=mode,
                    detect_every=detect_every,
                    smoothing=not no_smooth,
                    concurrent_detection=concurrent,
                )
            except BaseException:
                src.close()
                raise
            pipe.timer = _timing.TotalsTimer()
            pipe.detector_timer = _timing.TotalsTimer()  # concurrent: the detector thread's own time
            with sigterm_as_interrupt():
                stats, tracks = _loop(pipe, src, out, json_out, max_frames, show, quiet=summary_json)
            if stats.frames == 0:
                raise RuntimeError(
                    f"no frames could be read from {source!r}"
                    + (
                        f": {src.error}"
                        if getattr(src, "error", None)
                        else " (an empty or undecodable video?)"
                    )
                )
        sessions = {n: f"{s.backend}/{s.device}" for n, s in est.bundle.sessions.items()}
        summary = {
            "source": source,
            "bundle": str(est.bundle.path),
            "model": est.name,
            "how": how,
            "format": est.bundle.format,
            "precision": est.manifest.precision,
            "sessions": sessions,
            "mode": pipe.mode,
            "concurrent_detection": pipe.concurrent_detection,
            # concurrent: the stage table's "detect" is the wait for detections; this is the detector's time
            "detector_thread_ms_per_frame": round(
                pipe.detector_timer.total_ms.get("detect", 0.0) / max(stats.frames, 1), 2
            )
            if pipe.concurrent_detection
            else None,
            "threads": n_threads,
            "pose_workers": pose_workers,
            "frames": stats.frames,
            "seconds": round(stats.wall_s, 3),
            "fps": round(stats.fps, 2),
            "poses": stats.poses,
            "tracks": len(tracks),
            "stages": timing_rows(pipe.timer, stats),
            "outputs": {"video": str(out) if out else None, "json": str(json_out) if json_out else None},
        }
        if getattr(src, "skipped", 0):
            summary["skipped_frames"] = src.skipped
            summary["gaps"] = [list(g) for g in getattr(src, "gaps", [])]
        est.close()
        if summary_json:
            print_json(summary)
            return
        detection = (
            f"on its own thread ({summary['detector_thread_ms_per_frame']} ms/frame beside the stages; "
            "'detect' below is the wait for it)"
            if pipe.concurrent_detection
            else "serial"
        )
        console.print(f"[dim]{how}; sessions {sessions}; mode {pipe.mode}; detection {detection}[/]")
        console.print(timing_table(pipe.timer, stats))
        if summary.get("skipped_frames"):
            gaps = summary["gaps"]
            where = (
                "; gaps (first frame, count): "
                + ", ".join(f"{a}+{n}" for a, n in gaps[:8])
                + (f" and {len(gaps) - 8} more" if len(gaps) > 8 else "")
                if gaps
                else ""
            )
            lost = summary["skipped_frames"]
            console.print(
                f"[yellow]lost frames:[/] {lost} frames of {source!r} could not be decoded or "
                f"were missing{where}"
            )
        for kind, p in (("video", out), ("poses", json_out)):
            if p is not None:
                console.print(f"{kind}: {p}")


def _loop(pipe, src, out, json_out, max_frames, show, quiet=False):
    """Run the pipeline with a progress bar; returns (RunStats, track ids seen)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    total = getattr(src, "frame_count", 0) or None
    if max_frames:
        total = min(total, max_frames) if total else max_frames
    frames = poses = 0
    tracks: set[int] = set()
    t0 = time.perf_counter()
    progress = Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[info]}"),
        console=err_console,
        disable=quiet,
        transient=False,
    )
    with progress:
        task = progress.add_task("edgepose run", total=total, info="")
        results = pipe.run(
            src, video_out=out, jsonl_out=json_out, draw=bool(out or show), max_frames=max_frames
        )
        try:
            for res in results:
                frames += 1
                poses += len(res.poses)
                tracks.update(p.track_id for p in res.poses)
                progress.update(task, advance=1, info=f"{res.fps:5.1f} fps, {len(res.poses)} people")
                if show:
                    import cv2

                    cv2.imshow("edgepose", res.image)
                    if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
                        break
        finally:
            results.close()  # closes the source and finalises the sinks, also on Ctrl-C
            if show:
                import cv2

                cv2.destroyAllWindows()
    return RunStats(frames, time.perf_counter() - t0, poses, len(tracks)), tracks


def json_stdout(active: bool):
    """While a command's JSON goes to stdout, send everything else printed there (converters' progress
    during an export, for instance) to stderr, so stdout stays one parseable document."""
    return contextlib.redirect_stdout(sys.stderr) if active else contextlib.nullcontext()

#!/usr/bin/env python3
"""Live pose tracking on a Jetson: CSI camera -> edgepose bundle on TensorRT/CUDA -> display or recording.

    python3 examples/jetson_camera.py --bundle bundles/dsta                # CSI camera, screen
    python3 examples/jetson_camera.py --bundle bundles/dsta --source usb --record out.mp4
    python3 examples/jetson_camera.py --bundle bundles/dsta --source clip.mp4 --no-display --max-frames 100

Source (``--source auto``, the default, tries them in this order):

1. ``csi``: the Jetson's CSI camera through GStreamer (``nvarguscamerasrc`` -> ``nvvidconv`` -> BGR
   ``appsink``). Needs an OpenCV built with GStreamer: JetPack's ``python3-opencv`` is; pip's
   ``opencv-python(-headless)`` wheels are not (see docs/jetson.md).
2. ``usb``: a V4L2 camera (``/dev/video<N>``, ``--usb-index``), which any OpenCV opens.
3. ``--video FILE``: a file, so the same script runs (and is tested) on any machine.

Runtime: an ONNX bundle runs on ONNX Runtime's TensorRT provider when this onnxruntime has it
(JetPack's onnxruntime-gpu wheel), with its engine cache in ``--trt-cache`` so only the first start
pays for the engine build; else the CUDA provider; else the CPU. OpenVINO and TFLite bundles run on
whatever ``edgepose.runtimes`` resolves for ``--device``. The chosen provider is printed and drawn.

Display: a window when there is a display and OpenCV has GUI support, else (or with ``--no-display``)
frames are recorded (``--record``, default ``jetson_camera.mp4``). Online mode (causal window, no
look-ahead delay) is the default for cameras. q or Esc quits the window; Ctrl-C stops cleanly.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import cv2

from edgepose.core.manifest import read_manifest
from edgepose.runtimes import devices, open_session
from edgepose.runtimes.bundle import Bundle, load
from edgepose.sdk import (
    PoseEstimator,
    VideoPipeline,
    VideoSink,
    draw_overlay,
    gstreamer_available,
    open_source,
)


def csi_pipeline(sensor_id: int, width: int, height: int, fps: int, flip: int) -> str:
    """nvarguscamerasrc (NVMM, ISP-processed) -> nvvidconv (to BGRx in CPU memory) -> BGR -> appsink."""
    return (
        f"nvarguscamerasrc sensor-id={sensor_id} ! "
        f"video/x-raw(memory:NVMM), width=(int){width}, height=(int){height}, framerate=(fraction){fps}/1 ! "
        f"nvvidconv flip-method={flip} ! video/x-raw, format=(string)BGRx ! "
        "videoconvert ! video/x-raw, format=(string)BGR ! appsink drop=true max-buffers=1"
    )


def _csi(args):
    if not gstreamer_available():
        raise RuntimeError("this OpenCV has no GStreamer (pip wheels never do; use JetPack's python3-opencv)")
    pipe = csi_pipeline(args.sensor_id, args.width, args.height, args.fps, args.flip)
    return open_source(pipe, max_reconnects=2), "CSI camera (nvarguscamerasrc)"


def _usb(args):
    dev = f"/dev/video{args.usb_index}"
    if sys.platform.startswith("linux") and not os.path.exists(dev):
        raise RuntimeError(f"no {dev}")
    return open_source(
        args.usb_index, size=(args.width, args.height), fps=args.fps, max_reconnects=2
    ), f"USB camera {dev} (V4L2)"


def _file(args):
    if args.video is None:
        raise RuntimeError("no --video given")
    return open_source(args.video), f"file {args.video}"


# --source name -> opener; "auto" tries them in this order
SOURCES = {"csi": _csi, "usb": _usb, "file": _file}


def open_camera_or_file(args) -> tuple[object, str]:
    """The first source that opens, in --source order, and what it is (with what failed before it)."""
    if args.source not in (*SOURCES, "auto"):  # an explicit path, URL or GStreamer pipeline
        return open_source(args.source), args.source
    tried: list[str] = []
    for kind in SOURCES if args.source == "auto" else [args.source]:
        try:
            source, what = SOURCES[kind](args)
        except (ValueError, RuntimeError, FileNotFoundError) as e:
            tried.append(f"{kind}: {e}")
            continue
        return source, what + (f" (fell back: {'; '.join(tried)})" if tried else "")
    raise SystemExit("no video source could be opened:\n  " + "\n  ".join(tried))


def tensorrt_options(stage_entry, max_persons: int, cache: Path, fp16: bool) -> dict:
    """TensorRT EP options: engine + timing caches on disk, one optimisation profile over the batch."""

    def shape(t, batch):
        return "x".join(str(batch if i == 0 else d) for i, d in enumerate(t.shape))

    dynamic = [t for t in stage_entry.inputs if not isinstance(t.shape[0], int)]
    opts = {
        "trt_engine_cache_enable": "True",
        "trt_engine_cache_path": str(cache),
        "trt_timing_cache_enable": "True",
        "trt_timing_cache_path": str(cache),
        "trt_fp16_enable": "True" if fp16 else "False",
    }
    if dynamic:
        opts["trt_profile_min_shapes"] = ",".join(f"{t.name}:{shape(t, 1)}" for t in dynamic)
        opts["trt_profile_opt_shapes"] = ",".join(
            f"{t.name}:{shape(t, max(1, max_persons // 2))}" for t in dynamic
        )
        opts["trt_profile_max_shapes"] = ",".join(f"{t.name}:{shape(t, max_persons)}" for t in dynamic)
    return opts


def open_bundle(args) -> tuple[Bundle, str]:
    """TensorRT (engine cache) > CUDA > CPU for ONNX bundles; the runtimes' own resolution otherwise."""
    manifest = read_manifest(args.bundle)
    if manifest.format == "onnx" and args.device == "auto":
        present, _ = devices.present("onnxruntime")
        if "TensorrtExecutionProvider" in present:
            args.trt_cache.mkdir(parents=True, exist_ok=True)
            sessions = {}
            for entry in manifest.stages:
                opts = tensorrt_options(entry, args.max_persons, args.trt_cache, not args.no_fp16)
                sessions[entry.name] = open_session(
                    Path(args.bundle) / entry.file,
                    backend="onnxruntime",
                    device="TensorrtExecutionProvider",
                    allow_fallback=True,
                    provider_options=opts,
                )
            return Bundle(Path(args.bundle), manifest, sessions), "TensorRT (engine cache in " + str(
                args.trt_cache
            ) + ")"
        device = "CUDAExecutionProvider" if "CUDAExecutionProvider" in present else "cpu"
        return load(args.bundle, device=device, allow_fallback=True), device
    bundle = load(args.bundle, device=args.device, allow_fallback=True)
    return bundle, args.device


def make_detector(spec: str):
    from edgepose.sdk.detectors import make_detector as from_table

    try:
        return from_table(spec)
    except (ValueError, OSError) as e:
        raise SystemExit(f"--detector {spec!r}: {e}") from None


def can_display() -> bool:
    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        return False
    try:
        cv2.namedWindow("edgepose", cv2.WINDOW_NORMAL)
        return True
    except cv2.error:  # opencv-python-headless
        return False


def parse(argv=None):
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--bundle", type=Path, required=True, help="exported bundle (edgepose export ... --out DIR)"
    )
    ap.add_argument("--source", default="auto", help="auto | csi | usb | a file/URL/GStreamer pipeline")
    ap.add_argument("--video", type=Path, help="file to fall back to when no camera opens")
    ap.add_argument("--sensor-id", type=int, default=0, help="CSI sensor (nvarguscamerasrc sensor-id)")
    ap.add_argument("--usb-index", type=int, default=0, help="V4L2 camera index (/dev/videoN)")
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=720)
    ap.add_argument("--fps", type=int, default=30)
    ap.add_argument("--flip", type=int, default=0, help="nvvidconv flip-method (0-7; 2 = rotate 180)")
    ap.add_argument(
        "--device", default="auto", help="auto (TensorRT > CUDA > CPU) | cpu | gpu | a provider name"
    )
    ap.add_argument("--trt-cache", type=Path, default=Path.home() / ".cache" / "edgepose" / "trt")
    ap.add_argument("--no-fp16", action="store_true", help="TensorRT in fp32 (default: fp16 kernels allowed)")
    ap.add_argument("--max-persons", type=int, default=8, help="largest batch of the TensorRT profile")
    ap.add_argument(
        "--detector",
        default="auto",
        help="auto (NanoDet where fetched, else HOG) | nanodet | centernet | movenet_multipose | hog | "
        "onnx:PATH (your person detector) | boxes:JSONL",
    )
    ap.add_argument("--detect-every", type=int, default=3, help="detector every N frames, poses in between")
    ap.add_argument("--mode", default="online", choices=("online", "offline"))
    ap.add_argument("--record", type=Path, help="write the annotated video here (.mp4/.avi)")
    ap.add_argument("--json", type=Path, help="write poses as JSON lines")
    ap.add_argument("--no-display", action="store_true", help="never open a window")
    ap.add_argument("--max-frames", type=int, help="stop after N frames")
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = parse(argv)
    source, what = open_camera_or_file(args)
    bundle, runtime = open_bundle(args)
    est = PoseEstimator(bundle)
    devs = sorted({s.device for s in bundle.sessions.values()})
    print(f"source: {what}; model {est.name} ({bundle.format}) on {', '.join(devs)} [{runtime}]")
    for name, s in bundle.sessions.items():
        if getattr(s, "reason", ""):
            print(f"  {name}: {s.reason}")
    display = not args.no_display and can_display()
    record = args.record or (None if display else Path("jetson_camera.mp4"))
    if record is not None:
        print(f"recording to {record}" + ("" if display else " (no display here)"))
    pipe = VideoPipeline(
        est, detector=make_detector(args.detector), mode=args.mode, detect_every=args.detect_every
    )
    sink = VideoSink(record, fps=source.fps) if record is not None else None
    frames, t0 = 0, time.perf_counter()
    results = pipe.run(source, jsonl_out=args.json, draw=True, overlay=False, max_frames=args.max_frames)
    try:
        for res in results:
            frames += 1
            lines = [f"{res.fps:5.1f} FPS  {len(res.poses)} people", f"{est.name} on {devs[0]}"]
            lines += [f"{k}: {v:5.1f} ms" for k, v in res.timings.items()]
            draw_overlay(res.image, lines)  # res.image is the annotated copy of the frame
            if sink is not None:
                sink.write(res.image)
            if display:
                cv2.imshow("edgepose", res.image)
                if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
                    break
    except KeyboardInterrupt:
        print("interrupted")
    finally:
        results.close()
        if sink is not None:
            sink.close()
        if display:
            cv2.destroyAllWindows()
        est.close()
    dt = time.perf_counter() - t0
    print(f"{frames} frames in {dt:.1f} s ({frames / dt if dt else 0:.1f} fps)")
    if getattr(source, "error", None):
        print(f"source ended: {source.error}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``edgepose predict``: poses on a photo, a folder of photos or a video, drawn and as JSON.

The first command a newcomer runs: a person detector (``--detector``, NanoDet where fetched) finds
people, the pose model (``--model`` with ``--weights pretrained`` by default, exported once to the
cache as ``run`` does, or ``--bundle``) estimates each one, and the annotated picture and the poses
are written. Stills have poses from the first (only) frame: a temporal model sees a one-frame clip,
its window clamped as at a clip edge, and there is no tracker to confirm anyone; ``--detector auto``
pools every fetched detector on a still, and people split in two or boxes holding no one are
settled by the pose model (:mod:`edgepose.sdk.stills`). A video runs the
offline pipeline with a tracker that confirms on the first hit, so its first frames have poses too.
"""

from __future__ import annotations

from pathlib import Path

import typer

from ._common import console, err_console, friendly_errors, import_errors, print_json, sigterm_as_interrupt

DEFAULT_MODEL = "dsta_mnv2_coco"  # the shipped weights distilled on real footage
FALLBACK_MODEL = "dsta_mnv2"  # synthetic-only weights, where an install lacks the real ones


def default_model() -> str:
    from ..zoo.pretrained import list_pretrained

    return DEFAULT_MODEL if DEFAULT_MODEL in list_pretrained() else FALLBACK_MODEL


DEFAULT_OUT = Path("edgepose-predict")
VIDEO_SUFFIXES = (".mp4", ".avi")


def plan_outputs(source: Path, out: Path | None, images: list[Path]) -> dict:
    """Where each output goes: ``{"kind": image|folder|video, "image"|"folder"|"video", "json"}``.

    One image: ``--out x.jpg`` (the picture, poses in ``x.json``) or a folder. Several images: a
    folder (``predictions.json`` inside). A video: ``--out x.mp4`` (poses in ``x.jsonl``) or a folder.
    """
    from ..sdk.results import IMAGE_SUFFIXES

    out = out if out is not None else DEFAULT_OUT
    suffix = out.suffix.lower()
    if images and len(images) == 1 and source.is_file():
        if suffix in IMAGE_SUFFIXES:
            return {"kind": "image", "image": out, "json": out.with_suffix(".json")}
        if suffix:
            raise ValueError(
                f"--out {str(out)!r}: for an image give an image file "
                f"({', '.join(IMAGE_SUFFIXES)}) or a folder"
            )
        name = source.name if source.suffix.lower() in IMAGE_SUFFIXES else source.stem + ".jpg"
        return {"kind": "image", "image": out / name, "json": out / (Path(name).stem + ".json")}
    if images:
        if suffix:
            raise ValueError(f"--out {str(out)!r}: {len(images)} images need a folder, not a file name")
        return {"kind": "folder", "folder": out, "json": out / "predictions.json"}
    if suffix in VIDEO_SUFFIXES:
        return {"kind": "video", "video": out, "json": out.with_suffix(".jsonl")}
    if suffix:
        raise ValueError(
            f"--out {str(out)!r}: for a video give a {' or '.join(VIDEO_SUFFIXES)} file or a folder"
        )
    return {"kind": "video", "video": out / (source.stem + ".mp4"), "json": out / (source.stem + ".jsonl")}


def classify(source: Path) -> list[Path]:
    """The images to predict on (empty: ``source`` is a video); one clear error for anything else."""
    if not source.exists():  # before importing OpenCV and the SDK: a typo answers at once
        raise FileNotFoundError(f"{str(source)!r} does not exist (an image, a folder of images or a video)")
    from ..sdk.results import IMAGE_SUFFIXES, image_files

    if source.is_dir():
        found = image_files(source)
        if not found:
            raise ValueError(f"folder {str(source)!r} holds no images ({', '.join(IMAGE_SUFFIXES)})")
        return found
    return [source] if source.suffix.lower() in IMAGE_SUFFIXES else []


def _predict_images(est, images: list[Path], plan: dict, say, refine: bool = True) -> list[dict]:
    from ..sdk.results import read_image, save_all
    from ..sdk.stills import poses_on_still

    results = []
    for path in images:
        res = poses_on_still(est, read_image(path), refine=refine)
        res.path = str(path)
        results.append(res)
        say(f"{path.name}: {len(res)} {'person' if len(res) == 1 else 'people'}")
    if plan["kind"] == "image":
        results[0].save(plan["image"])
        results[0].save(plan["json"])
    else:
        save_all(results, plan["folder"])
    return [r.to_dict() for r in results]


def _predict_video(est, source: Path, plan: dict, max_frames: int | None) -> dict:
    from ..sdk.pipeline import VideoPipeline
    from ..sdk.tracker import Tracker

    # confirm a track on its first detection: a prediction shows everyone from frame 0 (a live run
    # keeps the tracker's 3-hit confirmation against flickering false detections)
    tracker = Tracker(min_hits=1, sigmas=est.layout.sigmas)
    pipe = VideoPipeline(est, detector=est.detector, tracker=tracker, mode="offline")
    frames = poses = 0
    tracks: set[int] = set()
    for res in pipe.run(
        str(source), video_out=plan["video"], jsonl_out=plan["json"], max_frames=max_frames, overlay=False
    ):
        frames += 1
        poses += len(res.poses)
        tracks.update(p.track_id for p in res.poses)
    if frames == 0:
        raise RuntimeError(f"no frames could be read from {str(source)!r} (an empty or undecodable video?)")
    return {"frames": frames, "poses": poses, "tracks": len(tracks)}


def register(app: typer.Typer) -> None:
    @app.command("predict")
    def predict_cmd(
        source: Path = typer.Argument(..., help="An image, a folder of images, or a video file."),
        model: str = typer.Option(
            None, "--model", help=f"Zoo model (default {DEFAULT_MODEL}); exported once to the cache."
        ),
        bundle: Path = typer.Option(None, "--bundle", help="An exported bundle instead of --model."),
        weights: str = typer.Option(
            None,
            "--weights",
            help="With --model: 'pretrained' (the default: the shipped weights) or a checkpoint.",
        ),
        detector: str = typer.Option(
            "auto",
            "--detector",
            help="auto (a photo: nanodet + centernet pooled, a video: nanodet; hog where none is "
            "fetched) | "
            "nanodet | centernet | movenet_multipose | hog | onnx:PATH.",
        ),
        out: Path = typer.Option(
            None,
            "--out",
            help=f"An image file (x.jpg) for one image, a video file "
            f"(x.mp4) for a video, or a folder (default {DEFAULT_OUT}/).",
        ),
        backend: str = typer.Option(
            None, "--backend", help="onnxruntime | openvino | tflite (default: onnx)."
        ),
        device: str = typer.Option("auto", "--device", help="auto | cpu | gpu | npu."),
        precision: str = typer.Option(
            "auto",
            "--precision",
            help="With --model: auto (photos fp32; video int8 for the shipped weights where measured "
            "within 1 AP of fp32, on the CPU, else fp32) | fp32 | int8.",
        ),
        max_frames: int = typer.Option(None, "--max-frames", min=1, help="A video: stop after N frames."),
        min_pose_score: float = typer.Option(
            None,
            "--min-pose-score",
            min=0.0,
            max=1.0,
            help="Photos: the mean keypoint confidence a box's pose needs to count as a person (default: "
            "the one measured for the weights, in their bundle; else 0.4).",
        ),
        as_json: bool = typer.Option(False, "--json", help="Print the poses as JSON."),
    ):
        """Find people and their poses in SOURCE; write the annotated image (or video) and the poses."""
        say = (lambda m: None) if as_json else (lambda m: err_console.print(f"[dim]{m}[/]", soft_wrap=True))
        from .run import json_stdout

        with friendly_errors(), import_errors(), json_stdout(as_json):
            images = classify(source)
            plan = plan_outputs(source, out, images)
            if bundle is not None and (model or weights):
                raise ValueError("pass --bundle DIR or --model NAME [--weights], not both")
            from ..sdk.detectors import make_detector
            from ..sdk.stills import still_detector
            from .run import backend_format, open_estimator, resolve_bundle, session_threads

            fmt = backend_format(backend)
            name = None if bundle is not None else (model or default_model())
            weights = None if bundle is not None else (weights or "pretrained")
            if images and precision == "auto" and bundle is None:
                # a photo gets one try and a few ms more per person: the stills judge's decisions sit
                # on confidence margins measured in fp32 (on messi5.jpg the union of the kick's two
                # half-boxes beats the better half by 0.071 in fp32, by 0.0498 in int8: under the
                # 0.05 that merges them, so int8 counted two people there)
                precision = "fp32"
            path, how = resolve_bundle(bundle, name, weights, None, fmt, say, precision, device)
            say(how)
            # a video runs the loop's way (detection on its own thread, one intra-op thread per session)
            threads = None if images else session_threads(path, None, None, 1)[1]
            est = open_estimator(path, fmt, device, threads)
            judge = None
            if est.needs_detector and images:
                from ..sdk.stills import StillRefine

                if min_pose_score is not None:
                    est.still_refine = StillRefine(min_pose_score=min_pose_score)
                judge = est.still_refine.min_pose_score
                if min_pose_score is not None:
                    origin = "given"
                elif "min_pose_score" in est.manifest.extra:
                    origin = "measured for these weights"
                else:
                    origin = "the default: none measured for these weights"
                say(f"person threshold: mean keypoint confidence {judge:g} ({origin})")
            try:
                if est.needs_detector:
                    # stills pool every fetched detector (a photo gets one try); video keeps one
                    est.detector = (
                        still_detector(detector) if images else make_detector(detector, threads=threads)
                    )
                    names = getattr(est.detector, "names", None) or [type(est.detector).__name__]
                    say(f"detector: {detector} ({' + '.join(names)})")
                else:
                    say("detector: none (a whole-frame model finds the people itself)")
                if images:
                    given = isinstance(detector, str) and detector.startswith("boxes:")
                    # boxes from a file are people by the user's word: posed as given, none merged
                    body = {"images": _predict_images(est, images, plan, say, refine=not given)}
                else:
                    with sigterm_as_interrupt():
                        body = {"video": str(source), **_predict_video(est, source, plan, max_frames)}
            finally:
                est.close()
        written = {k: str(v) for k, v in plan.items() if k != "kind"}
        summary = {"model": est.name, "how": how, "detector": detector, "outputs": written, **body}
        if judge is not None:
            summary["min_pose_score"] = judge
        if as_json:
            print_json(summary)
            return
        if "images" in body:
            n = sum(len(r["poses"]) for r in body["images"])
            console.print(f"{len(body['images'])} image(s), {n} {'person' if n == 1 else 'people'}")
        else:
            console.print(f"{body['frames']} frames, {body['poses']} poses, {body['tracks']} tracks")
        for kind, p in written.items():
            console.print(f"{kind}: {p}")

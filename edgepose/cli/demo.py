"""``edgepose demo``: the whole path on a fresh install, with no arguments and nothing downloaded.

1. the video: by default the held-out last 30% of the real street video ``vtest.avi`` (fetched at
   set-up) with the default person detector; ``--source synthetic`` renders a labelled clip
   instead (``edgepose.data.synthetic``; a seed the synthetic weights never trained on), the
   default where vtest or the real weights are missing;
2. the shipped weights (``edgepose.zoo.pretrained``; ``dsta_mnv2_coco``, distilled on real
   footage, on real video; the synthetic ``dsta_mnv2`` on the synthetic clip) are exported to a
   verified bundle (ONNX unless ``--backend`` says otherwise) in ``OUT/bundle``;
3. the temporal pipeline runs offline over the video (ring buffers, tracker, One-Euro
   smoothing) and writes ``OUT/poses.mp4`` and ``OUT/poses.jsonl``;
4. a per-stage timing table and an accuracy line are printed and kept in ``OUT/summary.json``: on
   vtest, COCO AP on 13 joints of every 5th frame against labels the two teachers make on the spot
   (``edgepose label``'s rule), beside a constant mean pose and MoveNet Lightning on the same boxes;
   on the synthetic clip, PCK against its ground truth.

The detector for the synthetic clip is its ground-truth boxes (``GivenBoxes``): the demo measures
the pose model there. Another ``--source`` (a file, a camera) runs with the default detector and
has no labels to score.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import typer

from . import _timing
from ._common import console, err_console, friendly_errors, import_errors, print_json
from ._timing import RunStats, timing_rows, timing_table
from .run import backend_format, json_stdout, session_threads

DEMO_SEED = 7  # the shipped weights trained on generator seed 0: this video is held out
REAL_MODEL = "dsta_mnv2_coco"  # the shipped weights distilled on real footage
HELD_OUT = 0.3  # the last 30% of vtest.avi, kept out of their training (edgepose label --preset real)
SCORE_EVERY = 5  # real footage: every 5th frame is labelled by the teachers and scored
DEMO_SIZE = (640, 480)
DEMO_PRESET = "easy"  # the preset the shipped weights trained on (benchmarks/results/train_synthetic_easy.md)


def _model(name: str, say, weights: str | None = None):
    """(model, description): ``weights`` (a checkpoint, or 'pretrained': the shipped ones, required);
    by default the shipped weights when present, else random weights with a warning."""
    from ..zoo import create_model, get_spec
    from ..zoo.pretrained import list_pretrained, pretrained_info

    get_spec(name)
    if weights is not None and weights != "pretrained":
        from .evaluate import build_for_weights

        return build_for_weights(name, weights)[0].eval(), f"weights {weights}"
    if name in list_pretrained() or weights == "pretrained":
        from ..zoo.pretrained import load_pretrained

        info = pretrained_info(name)
        metrics = ", ".join(
            f"{k} {v:.1f}" if isinstance(v, (int, float)) else f"{k} {v}"
            for k, v in (info.get("metrics") or {}).items()
        )
        return load_pretrained(name), (
            f"shipped weights {info['file']} ({info.get('trained_on', 'training data unrecorded')}"
            + (f"; held-out {metrics}" if metrics else "")
            + ")"
        )
    err_console.print(
        f"[bold yellow]warning:[/] no shipped demo weights for {name!r} in this install "
        f"(shipped: {', '.join(list_pretrained()) or 'none'}): using RANDOM weights, so the poses "
        "and the accuracy line are meaningless; only the path and the timings are real"
    )
    import torch

    torch.manual_seed(0)
    return create_model(name).eval(), "random weights (no shipped demo weights found)"


def default_source() -> str:
    """``vtest`` (real street video, its held-out tail) where it and the real weights are present."""
    from ..core.assets import asset_path
    from ..zoo.pretrained import list_pretrained

    return "vtest" if asset_path("vtest.avi") is not None and REAL_MODEL in list_pretrained() else "synthetic"


def held_out_clip(frames: int):
    """(BGR frames, fps, first frame index) of vtest.avi's held-out last 30%."""
    import cv2

    from ..core.assets import asset_path, missing_reason

    path = asset_path("vtest.avi")
    if path is None:
        raise FileNotFoundError(missing_reason("vtest.avi"))
    cap = cv2.VideoCapture(str(path))
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    first = total - round(HELD_OUT * total)
    cap.set(cv2.CAP_PROP_POS_FRAMES, first)
    images = []
    while len(images) < frames:
        ok, img = cap.read()
        if not ok:
            break
        images.append(img)
    fps = cap.get(cv2.CAP_PROP_FPS) or 10.0
    cap.release()
    return images, fps, first


def score_real(kept: list, layout) -> dict:
    """AP of the emitted poses on the kept frames against the teachers' labels, with the floor and
    MoveNet Lightning beside them (``edgepose.bench.real_world.ap_against_teachers``)."""
    import numpy as np

    from ..bench.real_world import ap_against_teachers
    from ..core.keypoints import COCO17, convert
    from ..external.check import ExternalModelError

    images, preds = [], []
    for img, poses in kept:
        images.append(img)
        kp = np.array([np.concatenate([p.keypoints, p.scores[:, None]], 1) for p in poses], np.float64)
        preds.append(convert(kp.reshape(-1, len(layout), 3), layout, COCO17))
    try:
        return ap_against_teachers(images, {"model": preds})
    except (ExternalModelError, ImportError) as e:
        return {"people": 0, "skipped": str(e)}


def synthetic_clip(frames: int, seed: int = DEMO_SEED):
    """(BGR frames, per-frame GT persons, fps) of a held-out synthetic video."""
    import cv2

    from ..data.synthetic import SynthConfig, SyntheticVideo

    cfg = SynthConfig.preset(
        DEMO_PRESET, width=DEMO_SIZE[0], height=DEMO_SIZE[1], frames=frames, min_people=2, max_people=4
    )
    images, truth = [], []
    for f in SyntheticVideo(cfg, seed=seed):
        images.append(cv2.cvtColor(f.image, cv2.COLOR_RGB2BGR))
        truth.append(f.persons)
    return images, truth, cfg.fps


def gt_boxes(truth) -> list[np.ndarray]:  # noqa: F821 - numpy is imported where used (a fast --help)
    import numpy as np

    return [
        np.array([[x, y, x + w, y + h] for x, y, w, h in (p.bbox for p in persons)], np.float32).reshape(
            -1, 4
        )
        for persons in truth
    ]


def score(results, truth, layout) -> dict:
    """PCK@0.2 (box) and PCKh@0.5 (head) of the emitted poses against the synthetic labels.

    Predictions are matched to labelled people by box (the detector gave the labelled boxes);
    joints count where labelled (visible or hidden), split by the ``occluded`` flag.
    """
    import numpy as np

    from ..eval.pck import box_size, head_size, pck_by_flags

    pred, gt, mask, occ, box_n, head_n, gt_box = [], [], [], [], [], [], []
    for res in results:
        persons = truth[res.index]
        if not persons:
            continue
        boxes = gt_boxes([persons])[0]
        for p in res.poses:
            i = int(np.argmin(np.abs(boxes - p.box[None]).sum(1)))
            g = persons[i].keypoints_in(layout)
            pred.append(p.keypoints)
            gt.append(g[:, :2])
            mask.append(g[:, 2] > 0)
            occ.append(persons[i].flags_in(layout)["occluded"])
            box_n.append(box_size(boxes[i]))
            gt_box.append(boxes[i])
            hx, hy, hw, hh = persons[i].bbox_head
            head_n.append(head_size((hx, hy, hx + hw, hy + hh)))
    if not pred:
        return {"persons": 0}
    args = (np.stack(pred), np.stack(gt), np.stack(mask))
    flags = {"occluded": np.stack(occ)}
    by_box = pck_by_flags(*args, np.array(box_n), flags, threshold=0.2, layout=layout)
    by_head = pck_by_flags(*args, np.array(head_n), flags, threshold=0.5, layout=layout)
    # reference: one constant pose (the clip's own average, in box coordinates) placed in every box;
    # a model that does not beat it has not found the joints
    b = np.stack(gt_box)[:, None, :]
    origin, extent = b[..., :2], np.maximum(b[..., 2:] - b[..., :2], 1.0)
    rel = (args[1] - origin) / extent
    m = args[2][..., None]
    mean = (rel * m).sum(0) / np.maximum(m.sum(0), 1)
    ref = origin + mean[None] * extent
    by_ref = pck_by_flags(ref, args[1], args[2], np.array(head_n), flags, threshold=0.5, layout=layout)
    return {
        "persons": len(pred),
        "joints": by_box["all"].count,
        "pck@0.2": by_box["all"].mean,
        "pckh@0.5": by_head["all"].mean,
        "pckh@0.5 occluded": by_head["occluded"].mean,
        "pckh@0.5 visible": by_head["not_occluded"].mean,
        "occluded joints": by_head["occluded"].count,
        "pckh@0.5 constant pose": by_ref["all"].mean,
    }


def _fmt(v) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.1f}"


def run_demo(
    out: Path,
    model: str | None = None,
    frames: int = 75,
    source: str | None = None,
    backend: str | None = None,
    device: str = "auto",
    detector: str | None = None,
    say=lambda m: None,
    weights: str | None = None,
    concurrent_detection: bool | None = None,
) -> dict:
    """The demo (see the module docstring); returns the summary it also writes to ``OUT/summary.json``."""
    from ..core.atomic import atomic_file
    from ..export import export
    from ..runtimes.bundle import load
    from ..sdk.detectors import GivenBoxes, make_detector
    from ..sdk.estimator import PoseEstimator
    from ..sdk.pipeline import VideoPipeline
    from ..sdk.sources import IterableSource, open_source

    if frames < 4:
        raise ValueError(f"--frames must be at least 4, got {frames}")
    source = source or default_source()
    model = model or (REAL_MODEL if source != "synthetic" else "dsta_mnv2")
    t_all = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    fmt = backend_format(backend) or "onnx"
    times: dict[str, float] = {}

    t = time.perf_counter()
    net, weights = _model(model, say, weights)
    say(f"model {model}: {weights}")
    res = export(net, out=out / "bundle", format=fmt, onnx_exporter="torchscript", progress=say)
    check = res.bundles[0].check
    verified = None if check is None else check.passed
    times["export + verify"] = time.perf_counter() - t
    concurrent, threads = session_threads(out / "bundle", None, concurrent_detection, 1)
    lean = {"threads": threads} if threads else {}

    t = time.perf_counter()
    truth = None
    real = source != "synthetic"
    if source == "vtest":
        images, fps, first = held_out_clip(frames)
        src = IterableSource(images, fps=fps, name="vtest.avi (held-out tail)")
        det = make_detector(detector or "auto", **lean)
        det_name = detector or f"auto ({type(det).__name__})"
        src_name = f"vtest.avi frames {first}-{first + len(images) - 1} (held out of the weights' training)"
    elif source == "synthetic":
        images, truth, fps = synthetic_clip(frames)
        src = IterableSource(images, fps=fps, name=f"synthetic video (seed {DEMO_SEED})")
        det = make_detector(detector, **lean) if detector else GivenBoxes(gt_boxes(truth))
        det_name = detector or "ground-truth boxes"
        src_name = (
            f"synthetic {DEMO_PRESET} video, {frames} frames {DEMO_SIZE[0]}x{DEMO_SIZE[1]}, seed {DEMO_SEED}"
        )
    else:
        src = open_source(source)
        det = make_detector(detector or "auto", **lean)
        det_name = detector or f"auto ({type(det).__name__})"
        src_name = source
    times["make video"] = time.perf_counter() - t

    est = PoseEstimator(load(out / "bundle", device=device, **lean))
    pipe = VideoPipeline(est, detector=det, mode="offline", concurrent_detection=concurrent)
    pipe.timer = _timing.TotalsTimer()
    results, kept = [], []
    t = time.perf_counter()
    poses = 0
    tracks: set[int] = set()
    for r in pipe.run(
        src,
        video_out=out / "poses.mp4",
        jsonl_out=out / "poses.jsonl",
        max_frames=frames if real else None,
    ):
        results.append(_Light(r.index, r.poses))
        if source == "vtest" and len(results) % SCORE_EVERY == 1:
            kept.append((images[r.index], r.poses))  # r.image has the poses drawn on it
        poses += len(r.poses)
        tracks.update(p.track_id for p in r.poses)
    stats = RunStats(len(results), time.perf_counter() - t, poses, len(tracks))
    times["pipeline"] = stats.wall_s
    if not results:
        raise RuntimeError(f"no frames could be read from {src_name!r}")

    acc = score(results, truth, est.layout) if truth is not None else None
    real_acc = None
    if kept:
        t = time.perf_counter()
        say(f"labelling {len(kept)} frames with the teachers to score them")
        real_acc = score_real(kept, est.layout)
        times["teacher labels + AP"] = time.perf_counter() - t
    sessions = {n: f"{s.backend}/{s.device}" for n, s in est.bundle.sessions.items()}
    summary = {
        "model": model,
        "weights": weights,
        "bundle": str(out / "bundle"),
        "format": est.bundle.format,
        "verified": verified,
        "sessions": sessions,
        "input_size": list(est.input_size),
        "frame_offsets": list(est.offsets),
        "source": src_name,
        "detector": det_name,
        "mode": pipe.mode,
        "frames": stats.frames,
        "fps": round(stats.fps, 2),
        "poses": poses,
        "tracks": len(tracks),
        "stages": timing_rows(pipe.timer, stats),
        "accuracy": acc,
        "real_accuracy": real_acc,
        "seconds": {k: round(v, 2) for k, v in {**times, "total": time.perf_counter() - t_all}.items()},
        "outputs": {
            "video": str(out / "poses.mp4"),
            "json": str(out / "poses.jsonl"),
            "summary": str(out / "summary.json"),
        },
    }
    with atomic_file(out / "summary.json", "w") as f:
        json.dump(summary, f, indent=1, default=str)
    est.close()
    summary["_timer"], summary["_stats"] = pipe.timer, stats
    return summary


class _Light:
    """A frame result without its image (the demo keeps poses only, not every frame in memory)."""

    def __init__(self, index, poses):
        self.index, self.poses = index, poses


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo_cmd(
        out: Path = typer.Option(Path("edgepose-demo"), "--out", help="Output directory."),
        model: str = typer.Option(
            None,
            "--model",
            help=f"Zoo model (its shipped weights if any); default {REAL_MODEL} on real "
            "footage, dsta_mnv2 on the synthetic clip.",
        ),
        frames: int = typer.Option(
            75, "--frames", help="Frames of the synthetic video (or the most read from --source)."
        ),
        source: str = typer.Option(
            None,
            "--source",
            help="vtest (default where fetched: the held-out tail of the street video) | "
            "synthetic (a rendered clip with ground truth) | a video path or camera.",
        ),
        backend: str = typer.Option(None, "--backend", help="onnxruntime (default) | openvino | tflite."),
        device: str = typer.Option("auto", "--device", help="auto | cpu | gpu | npu."),
        detector: str = typer.Option(
            None,
            "--detector",
            help="auto | nanodet | centernet | movenet_multipose | hog | onnx:PATH | boxes:JSONL "
            "(default: ground truth for the synthetic video, auto for --source).",
        ),
        weights: str = typer.Option(
            None,
            "--weights",
            help="'pretrained' (the shipped weights; the default where the model has them) or a checkpoint.",
        ),
        concurrent_detection: bool = typer.Option(
            None,
            "--concurrent-detection/--serial-detection",
            help="Run the detector on a thread of its own, ahead of the pose stages (default: on with "
            "2+ CPUs). Same poses either way.",
        ),
        quick: bool = typer.Option(False, "--quick", help="A 16-frame smoke run."),
        as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
    ):
        """The whole path, nothing downloaded: synthetic video, shipped weights, bundle, pipeline, report.

        Renders a short labelled video, exports the shipped demo weights to a verified bundle, runs the
        temporal pipeline offline, writes the annotated video and JSON lines, and prints per-stage timings
        and accuracy against the video's ground truth.
        """
        say = (lambda m: None) if as_json else (lambda m: err_console.print(f"[dim]{m}[/]"))
        with friendly_errors(), import_errors(), json_stdout(as_json):
            if weights is not None:
                from .evaluate import check_paths

                check_paths(weights=weights)
            s = run_demo(
                out,
                model,
                16 if quick else frames,
                source,
                backend,
                device,
                detector,
                say,
                weights,
                concurrent_detection,
            )
        timer, stats = s.pop("_timer"), s.pop("_stats")
        if as_json:
            print_json(s)
            return
        console.print(f"[bold]edgepose demo[/]: {s['model']} ({s['weights']})")
        console.print(
            f"bundle {s['bundle']} ({s['format']}, verified: {s['verified']}), sessions {s['sessions']}, "
            f"crops {s['input_size'][0]}x{s['input_size'][1]}, window {s['frame_offsets']}, "
            f"mode {s['mode']}"
        )
        console.print(f"video: {s['source']}; detector: {s['detector']}")
        console.print(timing_table(timer, stats, title="Per-stage timing (the pipeline)"))
        secs = s["seconds"]
        console.print("wall time: " + ", ".join(f"{k} {v:.1f} s" for k, v in secs.items()))
        acc, real_acc = s["accuracy"], s["real_accuracy"]
        if real_acc is not None and real_acc.get("people"):
            console.print(
                f"[bold]accuracy[/] vs the teachers' labels (MoveNet Thunder + BlazePose full where they agree; "
                f"{real_acc['people']} people on {real_acc['frames']} frames, 13 joints): COCO AP "
                f"{_fmt(real_acc['model'])} for {s['model']}; a constant mean pose in each box "
                f"{_fmt(real_acc['mean pose'])}, MoveNet Lightning {_fmt(real_acc['movenet_lightning'])}"
            )
        elif real_acc is not None:
            console.print(f"accuracy: not scored ({real_acc.get('skipped', 'no labelled people')})")
        if acc is None:
            if real_acc is None:
                console.print("accuracy: no ground truth for this video")
        elif not acc.get("persons"):
            console.print("accuracy: no poses were emitted to score")
        else:
            console.print(
                f"[bold]accuracy[/] vs synthetic ground truth ({acc['persons']} poses, {acc['joints']} "
                f"labelled joints): PCK@0.2 {_fmt(acc['pck@0.2'])}%, PCKh@0.5 {_fmt(acc['pckh@0.5'])}% "
                f"(occluded joints {_fmt(acc['pckh@0.5 occluded'])}%, visible "
                f"{_fmt(acc['pckh@0.5 visible'])}%); a constant pose (this clip's average pose in each box) "
                f"scores PCKh@0.5 {_fmt(acc['pckh@0.5 constant pose'])}%"
            )
        console.print(f"wrote {s['outputs']['video']}, {s['outputs']['json']}, {s['outputs']['summary']}")

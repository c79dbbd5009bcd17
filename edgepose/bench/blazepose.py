"""Table (d): MediaPipe's BlazePose landmark model (full, 256x256) as a peer, on the same person crops.

BlazePose is a real, pretrained single-person model that runs in LiteRT, so it
is the fairest speed reference available offline (DESIGN.md §7). Both sides run
through edgepose's runtimes layer on the CPU with the same thread count, one
person at a time (BlazePose's graph has a static batch of 1), on crops of the
same boxes: 256x256 for BlazePose, each model's input size for ours. Timed is
the model only (crop warping and decoding excluded on both sides): for our
temporal models one frame-stage call plus one temporal-stage call, the steady
state of the ring buffer. Crops come from the real street video (``vtest.avi``,
HOG boxes) when it is fetched, else from a synthetic video's labelled boxes.
All variants run in interleaved rounds; the ratio is per round.
"""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np

from ..core.assets import asset_path, missing_reason
from ..core.transforms import box_to_center_size, crop_matrix, warp
from ..sdk.estimator import Crops
from .report import Table, new_figure, save_figure
from .settings import Settings
from .workload import interleave, median, open_estimator

BLAZEPOSE = "pose_landmark_full.tflite"
BLAZE_SIZE = (256, 256)


def person_boxes(count: int = 6) -> tuple[list[np.ndarray], list[np.ndarray], str]:
    """(frames, boxes per frame, where from): people in vtest.avi found by HOG, else synthetic labels."""
    video = asset_path("vtest.avi")
    frames, boxes = [], []
    if video is not None:
        from ..sdk.detectors import HogDetector

        hog = HogDetector()
        cap = cv2.VideoCapture(str(video))
        try:
            for i in range(0, 200, 20):
                cap.set(cv2.CAP_PROP_POS_FRAMES, i)
                ok, img = cap.read()
                if not ok:
                    break
                det = hog(img)
                if len(det):
                    frames.append(img)
                    boxes.append(det.boxes)
                if sum(len(b) for b in boxes) >= count:
                    break
        finally:
            cap.release()
        if boxes:
            return frames, boxes, f"{sum(len(b) for b in boxes)} HOG boxes on vtest.avi"
    from ..data.synthetic import SynthConfig, SyntheticVideo

    for f in SyntheticVideo(SynthConfig.preset("easy", frames=4, min_people=2), seed=3):
        if f.persons:
            frames.append(cv2.cvtColor(f.image, cv2.COLOR_RGB2BGR))
            boxes.append(
                np.array([[x, y, x + w, y + h] for x, y, w, h in (p.bbox for p in f.persons)], np.float32)
            )
    return (
        frames,
        boxes,
        f"{sum(len(b) for b in boxes)} labelled boxes of a synthetic video ({missing_reason('vtest.avi')})",
    )


def blaze_crops(frames, boxes) -> list[np.ndarray]:
    """(1, 256, 256, 3) float32 RGB in [0, 1] per person: BlazePose's input."""
    out = []
    for img, bs in zip(frames, boxes):
        rgb = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        for b in bs:
            center, size = box_to_center_size(b, BLAZE_SIZE)
            crop = warp(rgb, crop_matrix(center, size, BLAZE_SIZE), BLAZE_SIZE)
            out.append((crop.astype(np.float32) / 255.0)[None])
    return out


def our_crops(est, frames, boxes) -> list[np.ndarray]:
    return [c[None] for img, bs in zip(frames, boxes) for c in est.prepare(img, bs).images]


def _per_person_fn(est, crops):
    """ms per person of the model alone: one frame (+ temporal) call, or the single/coarse-fine plan."""
    if est.is_temporal:
        t = len(est.offsets)

        def one(x):
            feats = est.run_frame(_Crops(x))
            est.run_temporal({k: np.repeat(v[:, None], t, axis=1) for k, v in feats.items()})
    else:

        def one(x):
            est.run_crops(_Crops(x))

    def fn() -> float:
        t0 = time.perf_counter()
        for x in crops:
            one(x)
        return 1e3 * (time.perf_counter() - t0) / len(crops)

    return fn


def _Crops(images: np.ndarray) -> Crops:
    return Crops(images, np.zeros((len(images), 2, 3)))


def run(settings: Settings) -> Table:
    from ..runtimes import open_session

    t_start = time.perf_counter()
    formats = settings.formats
    table = Table(
        "blazepose",
        "BlazePose (MediaPipe, pretrained) vs edgepose models: model ms per person (CPU)",
        ["model", "runtime/device", "input", "ms/person", "x BlazePose"],
        settings={
            "models": list(settings.models),
            "formats": list(formats),
            "rounds": settings.rounds,
            "threads": settings.threads,
        },
        plot=plot,
    )
    table.extra["text_columns"] = ["model", "runtime/device", "input"]
    path = asset_path(BLAZEPOSE)
    if path is None:
        table.notes.append(f"not measured: {missing_reason(BLAZEPOSE)}")
        table.seconds = time.perf_counter() - t_start
        return table
    frames, boxes, where = person_boxes()
    opts = {"threads": settings.threads} if settings.threads else {}
    blaze = open_session(path, device=settings.device, **opts)
    bcrops = blaze_crops(frames, boxes)
    name = blaze.input_names[0]
    presence_key = next(t.name for t in blaze.outputs if tuple(t.shape) == (1, 1))
    present = sum(float(blaze.run({name: c})[presence_key].item()) > 0.5 for c in bcrops)

    def blaze_fn() -> float:
        t0 = time.perf_counter()
        for c in bcrops:
            blaze.run({name: c})
        return 1e3 * (time.perf_counter() - t0) / len(bcrops)

    variants = {"BlazePose": blaze_fn}
    meta = {"BlazePose": ("BlazePose landmark (full)", f"tflite/{blaze.device}", "256x256")}
    ests = []
    for model in settings.models:
        for fmt in formats:
            settings.say(f"blazepose: {model} {fmt}")
            try:
                est = open_estimator(model, settings, format=fmt)
            except Exception as e:
                table.notes.append(
                    f"{model} {fmt}: not measured ({type(e).__name__}: {str(e).splitlines()[0][:200]})"
                )
                continue
            ests.append(est)
            key = f"{model}/{fmt}"
            variants[key] = _per_person_fn(est, our_crops(est, frames, boxes))
            s = est.bundle.sessions[est.manifest.stage_names[0]]
            h, w = est.input_size
            stages = "+".join(est.manifest.stage_names)
            meta[key] = (model, f"{fmt}/{s.device}", f"{h}x{w} ({stages})")
    got = interleave(variants, settings.rounds, budget_s=settings.budget_s)
    for key, times in got.items():
        ratio = median([a / b for a, b in zip(times, got["BlazePose"]) if b > 0])
        table.add(*meta[key], median(times), ratio)
    for e in ests:
        e.close()
    blaze.close()
    table.extra["series_ms_per_person"] = got
    table.notes += [
        f"crops: {where}; BlazePose's presence > 0.5 on {present} of {len(bcrops)} of them.",
        "ms/person: the model alone, one person per call (BlazePose's graph has batch 1; ours too), "
        "median of interleaved rounds; x BlazePose: per-round ratio (<1: faster than BlazePose).",
        "Temporal models: one frame-stage + one temporal-stage call, the ring buffer's steady state per "
        "person-frame. BlazePose also predicts segmentation and 3D world landmarks; ours predict 17 joints.",
        "Accuracy is not compared: no keypoint-annotated real video ships offline, and our weights here are "
        "random (speed does not depend on them).",
    ]
    table.seconds = time.perf_counter() - t_start
    return table


def plot(table: Table, path: Path) -> None:
    fig, ax = new_figure()
    labels = [f"{r[0]}\n{r[1].split('/')[0]}" for r in table.rows]
    vals = table.column("ms/person")
    colors = ["tab:gray" if r[0].startswith("BlazePose") else "tab:blue" for r in table.rows]
    ax.barh(np.arange(len(labels)), vals, color=colors)
    ax.set_yticks(np.arange(len(labels)), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("ms per person (model only)")
    ax.set_title("BlazePose landmark (full) vs edgepose models, CPU")
    for i, r in enumerate(table.column("x BlazePose")):
        ax.annotate(f"x{r:.2f}", (vals[i], i), va="center", fontsize=7)
    save_figure(fig, path)

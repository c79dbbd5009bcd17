"""Per-person overhead of the SDK loop: what each person costs outside the model (issue 19, item 3).

A top-down model's time is linear in people; the loop around it should add little per person. This
runs ``VideoPipeline`` (given boxes, so no detector time; tracker, ring buffers, smoothing, a JSON-lines
sink and a video sink with the poses drawn) on synthetic frames of vtest's size with 1, 5 and 20
people, and splits each frame's time into the model (frame and temporal stages, the ring-buffer
window included) and everything else: crops (warp + normalise), decode, tracker, smoothing, sinks,
and the rest of the loop (the wall time nobody above claims).

"before" swaps in the crop code of commit dc73422 (one warp, float conversion and normalisation per
person, on a colour-converted copy of the frame), "after" is ``TopDownEstimator.prepare`` (warps into
one preallocated batch, one table look-up for the whole batch); the two alternate clip by clip
(``rounds`` interleaved passes) so a busy neighbour on this shared machine slows both alike. Both give
the same crops bit for bit (checked before timing).
"""

from __future__ import annotations

import tempfile
import time
import types
from pathlib import Path

import numpy as np

from .report import Table, new_figure, save_figure

PERSONS = (1, 5, 20)
FRAME_SIZE = (576, 768)  # vtest.avi's (H, W)
MODEL_STAGES = ("frame stage", "temporal stage", "model")
OVERHEAD = ("crops", "decode", "track", "smoothing", "sinks")


def per_person_prepare(self, image, boxes, colour_converted=False, reuse=False):
    """The crop code as it was before this benchmark (dc73422): the baseline of the "before" rows."""
    from ..core.transforms import box_to_center_size, crop_matrix, warp
    from ..sdk.estimator import Crops

    img = image if colour_converted else self.to_model_colour(image)
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    h, w = self.input_size
    out = np.empty((len(boxes), 3, h, w), np.float32)
    mats = np.empty((len(boxes), 2, 3), np.float64)
    scale = np.float32(1.0 / 255.0)
    for i, b in enumerate(boxes):
        center, size = box_to_center_size(b, self.input_size)
        m = crop_matrix(center, size, self.input_size)
        crop = warp(img, m, self.input_size).astype(np.float32) * scale
        out[i] = ((crop - self.mean) / self.std).transpose(2, 0, 1)
        mats[i] = m
    return Crops(out, mats)


class _TimedSmoother:
    """Delegates to the pipeline's smoother, adding its calls' time to the timer as ``smoothing``."""

    def __init__(self, inner, timer):
        self._inner, self._timer = inner, timer

    def __call__(self, *args, **kw):
        with self._timer("smoothing"):
            return self._inner(*args, **kw)

    def __getattr__(self, name):
        return getattr(self._inner, name)


def _pipeline(est, boxes, timer):
    from ..sdk.detectors import GivenBoxes
    from ..sdk.pipeline import VideoPipeline

    class Timed(VideoPipeline):
        def _sink(self, res, *args):
            with self.timer("sinks"):
                return super()._sink(res, *args)

    pipe = Timed(est, detector=GivenBoxes(boxes), mode="offline", concurrent_detection=False)
    pipe.timer = timer
    pipe.smoother = _TimedSmoother(pipe.smoother, timer)
    return pipe


def overhead(
    bundle: str | Path,
    persons=PERSONS,
    frames: int = 24,
    rounds: int = 3,
    threads: int | None = 1,
    progress=print,
) -> Table:
    """Rows per persons and variant: model ms per frame, each overhead's ms, overhead / model."""
    from ..runtimes.bundle import load
    from ..sdk.estimator import PoseEstimator
    from ..sdk.sources import IterableSource
    from .workload import TotalsTimer, make_clip

    t0 = time.perf_counter()
    opts = {"threads": threads} if threads else {}
    est = PoseEstimator(load(bundle, device="cpu", **opts))
    variants = {"before": types.MethodType(per_person_prepare, est), "after": est.prepare}
    table = Table(
        "pose_overhead",
        f"Per-person overhead outside the model, {est.name}, {FRAME_SIZE[1]}x{FRAME_SIZE[0]} frames",
        ["persons", "crop code", "model ms/frame", *OVERHEAD, "rest of loop", "overhead / model"],
        settings={"bundle": str(bundle), "frames": frames, "rounds": rounds, "threads": threads},
        plot=plot,
    )
    table.extra["text_columns"] = ["crop code"]
    with tempfile.TemporaryDirectory() as tmp:
        for n in persons:
            clip = make_clip(n, frames=frames, size=FRAME_SIZE)
            ref = variants["before"](clip.frames[0], clip.boxes[0]).images
            if not np.array_equal(ref, est.prepare(clip.frames[0], clip.boxes[0]).images):
                raise AssertionError(f"{n} persons: the batched crops differ from the per-person ones")
            totals = {v: {"wall": 0.0, "frames": 0} for v in variants}
            timers = {v: TotalsTimer() for v in variants}
            for r in range(rounds + 1):  # round 0 warms both up (first-call allocations) and is dropped
                for name, prepare in variants.items():
                    est.prepare = prepare
                    timer = TotalsTimer() if r == 0 else timers[name]
                    pipe = _pipeline(est, clip.boxes, timer)
                    src = IterableSource(clip.frames, fps=10.0)
                    out = Path(tmp) / f"{name}-{n}"
                    t = time.perf_counter()
                    count = 0
                    for _ in pipe.run(
                        src, video_out=out.with_suffix(".avi"), jsonl_out=out.with_suffix(".jsonl")
                    ):
                        count += 1
                    if r:
                        totals[name]["wall"] += (time.perf_counter() - t) * 1e3
                        totals[name]["frames"] += count
            est.prepare = variants["after"]
            for name in variants:
                f = max(totals[name]["frames"], 1)
                ms = {k: v / f for k, v in timers[name].total_ms.items()}
                model = sum(ms.get(k, 0.0) for k in MODEL_STAGES)
                parts = [ms.get(k, 0.0) for k in OVERHEAD]
                rest = totals[name]["wall"] / f - model - sum(parts) - ms.get("detect", 0.0)
                ratio = (sum(parts) + max(rest, 0.0)) / model
                table.add(n, name, model, *parts, max(rest, 0.0), ratio)
                progress(f"{n} persons, {name}: overhead {100 * ratio:.1f}% of model time")
    est.close()
    table.notes += [
        "ms per frame; model = frame stage + temporal stage (with the ring-buffer window); crops = warp and "
        "normalise; sinks = JSON-lines record and video frame with the poses drawn; rest of loop = wall time "
        "outside every timed stage (source, bookkeeping, result objects)",
        "before = per-person crop code of dc73422, after = batched crops; alternated within one run, "
        "one intra-op thread, crops identical bit for bit",
    ]
    table.notes += marginal_notes(table)
    table.seconds = time.perf_counter() - t0
    return table


def marginal_notes(table: Table) -> list[str]:
    """Per variant, what one more person costs outside the model against inside it: the slope from the
    fewest to the most persons measured (a frame's fixed costs, such as encoding the video, cancel)."""
    lines = []
    for variant in dict.fromkeys(r[1] for r in table.rows):
        rows = sorted((r for r in table.rows if r[1] == variant), key=lambda r: r[0])
        if len(rows) < 2 or rows[-1][0] == rows[0][0]:
            continue
        lo, hi = rows[0], rows[-1]
        people = hi[0] - lo[0]
        over = (sum(hi[3:-1]) - sum(lo[3:-1])) / people
        model = (hi[2] - lo[2]) / people
        lines.append(
            f"{variant}: each person from {lo[0]} to {hi[0]} adds {over:.2f} ms outside the model and "
            f"{model:.1f} ms in it ({100 * over / model:.1f}%)"
        )
    return lines


def plot(table: Table, path) -> None:
    fig, ax = new_figure()
    for variant, marker in (("before", "o--"), ("after", "s-")):
        rows = [r for r in table.rows if r[1] == variant]
        ax.plot([r[0] for r in rows], [100 * r[-1] for r in rows], marker, label=variant)
    ax.axhline(10, color="grey", lw=0.8, ls=":", label="target (10%)")
    ax.set_xlabel("persons per frame")
    ax.set_ylabel("overhead outside the model, % of model time")
    ax.set_title("Per-person overhead of the loop")
    ax.legend()
    save_figure(fig, path)

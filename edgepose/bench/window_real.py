"""Does DSTA's window earn its keep on real video? The window model against its collapsed twin.

The twin is the same model trained with the same recipe, seed and data, with every slot of its window
holding the current frame (``edgepose train --collapse-window``), and scored the same way: what is
left of the difference is what the neighbouring frames add. The window model with the current frame
in every slot at test time is reported too (how much its output leans on the neighbours).

The teachers' labels carry no blur or occlusion flags, so joints are split by how fast they move
instead (motion blur grows with speed): a joint's speed is its labelled displacement between the
nearest labelled frames of the same track before and after, per frame, in units of the person's
scale (sqrt of the label box area). "fast" is the held-out joints' top quartile. Per group the table
gives the mean per-joint OKS (COCO's per-joint similarity, the quantity AP thresholds).
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .report import Table

FAST_QUANTILE = 0.75


@dataclass(frozen=True)
class Entry:
    label: str
    model: str
    weights: str
    collapse: bool  # the current frame in every slot at test time


def _person_scale(person) -> float:
    if person.area:
        return math.sqrt(person.area)
    x1, y1, x2, y2 = person.bbox
    return math.sqrt(max((x2 - x1) * (y2 - y1), 1.0))


def joint_speeds(samples, videos) -> np.ndarray:
    """(N, J) speed of each sample's joints (person scales per frame); NaN where unknown: the joint is
    unlabelled, or the track has no labelled neighbour frame on either side with that joint."""
    by_frame = {}
    for v in videos:
        labelled = [f for f in v.frames if f.is_labeled]
        for i, f in enumerate(labelled):
            by_frame[id(f)] = (labelled, i)
    out = []
    for s in samples:
        frame, person = s.clip[s.current], s.person
        kp = person.keypoints
        speed = np.full(len(kp), np.nan)
        labelled, i = by_frame[id(frame)]
        ends = []
        for j in (i - 1, i + 1):
            if 0 <= j < len(labelled):
                match = [p for p in labelled[j].persons if p.track_id == person.track_id]
                if match and person.track_id is not None:
                    ends.append((labelled[j].frame_index, match[0].keypoints))
        if ends:
            (fa, ka), (fb, kb) = (ends[0], ends[-1]) if len(ends) == 2 else ((frame.frame_index, kp), ends[0])
            ok = (ka[:, 2] > 0) & (kb[:, 2] > 0) & (kp[:, 2] > 0)
            d = np.linalg.norm(kb[:, :2] - ka[:, :2], axis=1) / max(abs(fb - fa), 1)
            speed[ok] = d[ok] / _person_scale(person)
        out.append(speed)
    return np.stack(out) if out else np.zeros((0, 0))


def joint_oks(preds, samples, sigmas: np.ndarray) -> np.ndarray:
    """(N, J) COCO per-joint similarity of each prediction to its sample's label; NaN where unlabelled."""
    out = []
    for p, s in zip(preds, samples):
        gt = s.person.keypoints
        area = _person_scale(s.person) ** 2
        d2 = ((p.keypoints - gt[:, :2]) ** 2).sum(axis=1)
        ks = np.exp(-d2 / (2 * area * (2 * sigmas) ** 2 + np.spacing(1)))
        ks[gt[:, 2] <= 0] = np.nan
        out.append(ks)
    return np.stack(out)


def score(entry: Entry, labels: str | Path, batch_size: int = 16, progress=print) -> dict:
    import torch

    from ..cli.evaluate import build_for_weights
    from ..core.keypoints import get_layout
    from ..training import datasets as D
    from ..training.validate import metrics_of, predict
    from ..zoo import get_spec

    model, _ = build_for_weights(entry.model, entry.weights)
    spec = dataclasses.replace(  # the crops and window the weights were built for
        get_spec(entry.model), frame_offsets=tuple(model.frame_offsets), input_size=tuple(model.input_size)
    )
    split = D.load_split(labels, "val", spec)
    dataset = D.topdown_dataset(spec, split, train=False, collapse_window=entry.collapse)
    t0 = time.perf_counter()
    with torch.inference_mode():
        preds = predict(model, spec, dataset, batch_size=batch_size)
    progress(f"{entry.label}: {len(preds)} crops in {time.perf_counter() - t0:.0f} s")
    metrics = metrics_of(split.format, preds, split.records, spec.layout)
    sigmas = np.asarray(get_layout(spec.layout).sigmas, dtype=np.float64)
    return {
        "AP": metrics["AP"],
        "oks": joint_oks(preds, dataset.samples, sigmas),
        "speed": joint_speeds(dataset.samples, split.records),
    }


COLUMNS = ["model", "AP (17 joints)", "joint OKS x100: all", "fast joints", "slow joints", "unknown speed"]


def run(labels: str | Path, entries: list[Entry], progress=print) -> Table:
    t0 = time.perf_counter()
    results = [(e, score(e, labels, progress=progress)) for e in entries]
    speed = results[0][1]["speed"]
    known = speed[np.isfinite(speed)]
    cut = float(np.quantile(known, FAST_QUANTILE)) if known.size else math.inf
    fast, slow, unknown = speed >= cut, speed < cut, ~np.isfinite(speed)
    table = Table(
        "window_real",
        "DSTA's window on held-out real video: the window model against its collapsed twin (COCO AP, "
        "17 joints, label boxes)",
        COLUMNS,
        settings={"labels": str(labels), "fast quantile": FAST_QUANTILE},
    )
    table.extra["text_columns"] = ["model"]
    for e, r in results:
        oks = 100.0 * r["oks"]
        table.add(
            e.label,
            r["AP"],
            float(np.nanmean(oks)),
            float(np.nanmean(np.where(fast, oks, np.nan))),
            float(np.nanmean(np.where(slow, oks, np.nan))),
            float(np.nanmean(np.where(unknown, oks, np.nan))),
        )
    n = np.isfinite(results[0][1]["oks"])
    table.notes += [
        f"{n.shape[0]} held-out people, {int(n.sum())} labelled joints: {int((fast & n).sum())} fast "
        f"(speed >= {cut:.3f} person scales per frame, the top quartile), {int((slow & n).sum())} slow, "
        f"{int((unknown & n).sum())} of unknown speed (no labelled neighbour frame of the track)",
        "the labels (MoveNet Thunder and BlazePose full where they agree) carry no blur or occlusion "
        "flags; fast joints stand in for blurred ones, occluded joints cannot be told apart",
        "twin: the same recipe, seed and data as the window model, trained with --collapse-window",
    ]
    table.seconds = time.perf_counter() - t0
    return table

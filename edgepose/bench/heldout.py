"""Torch checkpoints scored on held-out real footage (``edgepose label --preset real``'s val split):
COCO AP on the label boxes, overall and per source video, and per-joint measures for the benchmarks
that ask what a model does where (window_real, mix_real)."""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np


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
    sources = {}  # AP of each held-out video (vtest's tail, a Pose2Sim camera)
    for video in split.records:
        ids = {f.image_id for f in video.frames}
        mine = [p for p in preds if p.image_id in ids]
        sources[video.video_id] = metrics_of(split.format, mine, [video], spec.layout)["AP"]
    return {
        "AP": metrics["AP"],
        "by_source": sources,
        "oks": joint_oks(preds, dataset.samples, sigmas),
        "speed": joint_speeds(dataset.samples, split.records),
    }

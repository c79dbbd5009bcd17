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

import math
import time
from pathlib import Path

import numpy as np

from .heldout import Entry, score
from .report import Table

FAST_QUANTILE = 0.75


OKS_COLUMNS = ["joint OKS x100: all", "fast joints", "slow joints", "unknown speed"]


def run(labels: str | Path, entries: list[Entry], progress=print) -> Table:
    t0 = time.perf_counter()
    results = [(e, score(e, labels, progress=progress)) for e in entries]
    speed = results[0][1]["speed"]
    known = speed[np.isfinite(speed)]
    cut = float(np.quantile(known, FAST_QUANTILE)) if known.size else math.inf
    fast, slow, unknown = speed >= cut, speed < cut, ~np.isfinite(speed)
    sources = list(results[0][1]["by_source"])
    table = Table(
        "window_real",
        "DSTA's window on held-out real video: the window model against its collapsed twin (COCO AP, "
        "17 joints, label boxes)",
        ["model", "AP (17 joints)", *(f"AP {s}" for s in sources), *OKS_COLUMNS],
        settings={"labels": str(labels), "fast quantile": FAST_QUANTILE},
    )
    table.extra["text_columns"] = ["model"]
    for e, r in results:
        oks = 100.0 * r["oks"]
        table.add(
            e.label,
            r["AP"],
            *(r["by_source"][s] for s in sources),
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

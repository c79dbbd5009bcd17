"""Latency of int8 bundles against their fp32 twins in the same run, same runtime, same inputs.

Each bundle's stages are timed at every batch size on real inputs (calibration crops for
the first stage, their fp32 outputs for later ones). Candidates are *interleaved*: round
after round, each bundle runs its reps in turn, so a busy neighbour on a shared machine
slows both sides of a comparison alike; the median over all reps is reported. A model's
per-crop cost is the sum of its stages at the same batch (for temporal models that is
the steady state of the ring-buffered loop: one frame-stage pass and one temporal pass
per person and frame). TFLite graphs have a static batch of 1: batch 8 runs as 8 calls.
Threads default to 1 (intra-op), the setting least disturbed by other processes; pass
more to measure multi-core. Beside wall-clock time the process CPU time of each call is
kept (``cpu_*``): on a machine shared with other jobs it counts the work done, not the
time spent waiting for a core (with more than one thread it also counts spinning workers).
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import numpy as np

from ..export.stages import quiet
from ..runtimes.bundle import load
from .pipeline import session_stage_runner


def stage_inputs(calibration, stage: str, batch: int) -> dict[str, np.ndarray]:
    data = calibration.stages[stage]
    n = len(next(iter(data.values())))
    idx = np.arange(batch) % n
    return {k: np.ascontiguousarray(v[idx]) for k, v in data.items()}


def measure(
    bundles: Mapping[str, str],
    calibration,
    batches=(1, 8),
    rounds: int = 5,
    reps: int = 10,
    threads: int | None = 1,
    warmup: int = 3,
) -> dict:
    """{label: {"stages": {stage: {batch: ms}}, "total": {batch: ms}}} (median ms per call)."""
    opened = {}
    opts = {"threads": threads} if threads else {}
    samples: dict = {}
    try:
        with quiet():
            for label, path in bundles.items():
                opened[label] = load(path, device="cpu", **opts)
        feeds = {}
        for b in opened.values():
            run = session_stage_runner(b.sessions, b.manifest.layout)
            for stage in b.stage_names:
                for batch in batches:
                    key = (stage, batch)
                    if key not in feeds:
                        feeds[key] = stage_inputs(calibration, stage, batch)
                    for _ in range(warmup):
                        run(stage, feeds[key])
        for _ in range(rounds):
            for label, b in opened.items():
                run = session_stage_runner(b.sessions, b.manifest.layout)
                for stage in b.stage_names:
                    for batch in batches:
                        f = feeds[(stage, batch)]
                        for _ in range(reps):
                            t, c = time.perf_counter(), time.process_time()
                            run(stage, f)
                            samples.setdefault((label, stage, batch), []).append(
                                (time.perf_counter() - t, time.process_time() - c)
                            )
    finally:
        for b in opened.values():
            b.close()
    out: dict = {}
    for (label, stage, batch), ts in samples.items():
        rec = out.setdefault(label, {"stages": {}, "total": {}, "cpu_stages": {}, "cpu_total": {}})
        wall, cpu = np.asarray(ts).T
        rec["stages"].setdefault(stage, {})[batch] = round(1000 * float(np.median(wall)), 4)
        rec["cpu_stages"].setdefault(stage, {})[batch] = round(1000 * float(np.median(cpu)), 4)
    for rec in out.values():
        for batch in batches:
            rec["total"][batch] = round(sum(rec["stages"][s][batch] for s in rec["stages"]), 4)
            rec["cpu_total"][batch] = round(sum(rec["cpu_stages"][s][batch] for s in rec["cpu_stages"]), 4)
    return out

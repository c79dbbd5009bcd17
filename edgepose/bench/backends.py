"""Table (c): runtimes x precisions on this machine, per model.

One row per (model, format), named by its runtime (the format table's label). One
column of ms per precision, then each precision's speed-up over fp32 on the
same runtime, then the runtime's fp32 against ONNX Runtime fp32. Precisions
come from the format table (``edgepose.core.formats.PRECISIONS``) unless the
settings name them; a precision that needs more than ``export`` (INT8: a
calibrated quantiser) gets its bundles from ``BUNDLE_BUILDERS``, so adding it is
one entry there and the table grows a column. A combination that cannot be
built or fails its parity check is left empty and the notes say why.

The measure is the SDK loop (``VideoPipeline``, given boxes, no smoothing) with
one person per frame: crop, stages, ring buffer, decode. All variants of a
model run in interleaved rounds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..core.formats import FORMATS, PRECISIONS, RUNTIMES
from ..runtimes.registry import backend_module
from ..sdk.estimator import PoseEstimator
from .bundles import cached_bundle
from .report import Table, new_figure, save_figure
from .settings import Settings
from .workload import interleave, make_clip, median, run_sdk

# precision -> function(model, format, settings) -> bundle dir. Precisions without an entry are
# exported by `cached_bundle` (export's own precisions); INT8 adds its quantising builder here.
BUNDLE_BUILDERS: dict[str, Callable[[str, str, Settings], Path]] = {}


def precisions(settings: Settings) -> tuple[list[str], list[str]]:
    """(precisions to measure, notes): the settings' list, else the export table's precisions that
    ``export`` builds alone or that have a builder here (INT8 needs a calibrated quantiser)."""
    if settings.precisions:
        return list(settings.precisions), []
    names, notes = [], []
    for name, p in PRECISIONS.items():
        if getattr(p, "needs_hook", False) and name not in BUNDLE_BUILDERS:
            notes.append(
                f"{name}: no column yet: its bundles need a quantiser with calibration data "
                "(edgepose.bench.backends.BUNDLE_BUILDERS has no builder for it)"
            )
            continue
        names.append(name)
    return list(dict.fromkeys([*names, *BUNDLE_BUILDERS])), notes


def build(model: str, fmt: str, precision: str, settings: Settings) -> Path:
    builder = BUNDLE_BUILDERS.get(precision)
    if builder is not None:
        return builder(model, fmt, settings)
    return cached_bundle(
        model, format=fmt, precision=precision, init_seed=settings.init_seed, progress=settings.progress
    )


def _why(e: Exception) -> str:
    lines = [ln.strip() for ln in str(e).strip().splitlines() if ln.strip()]
    return f"{type(e).__name__}: {' '.join(lines[:2])[:240]}"


def run(settings: Settings) -> Table:
    t_start = time.perf_counter()
    precs, skipped = precisions(settings)
    others = [p for p in precs if p != "fp32"]
    columns = [
        "model",
        "format",
        "runtime/device",
        *[f"{p} ms" for p in precs],
        *[f"{p} speed-up" for p in others],
    ]
    if "fp32" in precs:
        columns.append("fp32 vs onnx fp32")
    table = Table(
        "backends",
        "Runtimes x precisions, ms per frame with one person (CPU)",
        columns,
        settings={
            "formats": list(settings.formats),
            "precisions": precs,
            "clip_frames": settings.clip_frames,
            "rounds": settings.rounds,
            "threads": settings.threads,
            "weights": "random init",
        },
        plot=plot,
    )
    table.extra["text_columns"] = ["model", "format", "runtime/device"]
    clip = make_clip(1, settings.clip_frames)
    series: dict[str, list[float]] = {}
    opts = {"threads": settings.threads} if settings.threads else {}
    for model in settings.models:
        ests: dict[tuple[str, str], PoseEstimator] = {}
        for fmt in settings.formats:
            for prec in precs:
                settings.say(f"backends: {model} {fmt} {prec}")
                try:
                    path = build(model, fmt, prec, settings)
                    ests[(fmt, prec)] = PoseEstimator(path, device=settings.device, **opts)
                except Exception as e:  # a cell we cannot fill is a note, not the end of the table
                    table.notes.append(f"{model} {fmt} {prec}: not measured ({_why(e)})")
        got = (
            interleave(
                {f"{f}/{p}": (lambda e=e: run_sdk(e, clip).ms_per_frame) for (f, p), e in ests.items()},
                settings.rounds,
                budget_s=settings.budget_s,
            )
            if ests
            else {}
        )
        ms = {k: median(v) for k, v in got.items()}
        series.update({f"{model} {k}": v for k, v in got.items()})
        ref = got.get("onnx/fp32")
        for fmt in settings.formats:
            row_ests = [e for (f, _), e in ests.items() if f == fmt]
            if not row_ests:
                continue
            s = next(iter(row_ests[0].bundle.sessions.values()))
            device = f"{RUNTIMES[FORMATS[fmt].backend].display}/{s.device}"
            cells = [ms.get(f"{fmt}/{p}") for p in precs]
            base = got.get(f"{fmt}/fp32")
            speed = [_paired(base, got.get(f"{fmt}/{p}")) for p in others]
            row = [model, fmt, device, *cells, *speed]
            if "fp32" in precs:
                row.append(_paired(ref, base))
            table.add(*row)
        for e in ests.values():
            e.close()
    table.extra["series_ms_per_frame"] = series
    table.notes[:0] = [
        "ms: the SDK loop per frame with one person (crop, every stage, ring buffer, decode), median of "
        "interleaved rounds; random weights (latency does not depend on them).",
        "speed-up: the runtime's fp32 time over this precision's (>1: faster), from per-round ratios; "
        "'fp32 vs onnx fp32': ONNX Runtime fp32 time over this runtime's fp32 (>1: faster than ORT).",
        "fp16: half-precision weights, float32 I/O; whether the arithmetic then runs in fp16, bf16 or fp32 "
        "is each runtime's choice on this CPU: the speed-up column shows the effect.",
    ]
    table.notes += skipped + runtime_notes(settings)
    table.seconds = time.perf_counter() - t_start
    return table


def runtime_notes(settings: Settings) -> list[str]:
    """What each runtime does with the precisions on this CPU (its module's ``precision_notes``)."""
    notes = []
    for name in dict.fromkeys(FORMATS[f].backend for f in settings.formats if f in FORMATS):
        notes += getattr(backend_module(name), "precision_notes", list)()
    return notes


def _paired(base: list[float] | None, other: list[float] | None) -> float | None:
    """Median over rounds of base/other (rounds interleaved, so each pair ran back to back)."""
    if not base or not other:
        return None
    return median([b / o for b, o in zip(base, other) if o > 0])


def plot(table: Table, path: Path) -> None:
    precs = [c[:-3] for c in table.columns if c.endswith(" ms")]
    fig, ax = new_figure(max(6.0, 1.2 * len(table.rows) + 2), 4.2)
    x = np.arange(len(table.rows))
    width = 0.8 / max(len(precs), 1)
    for i, p in enumerate(precs):
        vals = [np.nan if v is None else v for v in table.column(f"{p} ms")]
        ax.bar(x + (i - (len(precs) - 1) / 2) * width, vals, width, label=p)
    ax.set_xticks(x, [f"{r[0]}\n{r[1]}" for r in table.rows], fontsize=8)
    values = [v for p in precs for v in table.column(f"{p} ms") if v is not None]
    if values and max(values) > 20 * min(values):
        ax.set_yscale("log")
    ax.set_ylabel("ms per frame, one person")
    ax.set_title("Runtimes x precisions (CPU)")
    ax.legend(fontsize=8)
    save_figure(fig, path)

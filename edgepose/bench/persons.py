"""Table (b): pose latency per frame against persons per frame, laid out as PAVE-Net's Table 2.

PAVE-Net's Table 2 has one row per method and one column per number of people
(1, 3, 5, 10, 20), in ms per frame, grouped into two-stage (top-down) and
end-to-end methods. Ours keeps that layout for the four zoo models, all top-down
(every person is cropped), and splits the temporal ones into the two ways of
running them: the ring buffer (frame stage once per person per frame) and
recomputing the window every frame (what DCPose/DSTA-style demos do, and what
the paper timed). No detector is included (given boxes); the paper's top-down
rows included theirs. Variants of one person count run in interleaved rounds.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from .report import Table, new_figure, save_figure
from .settings import Settings
from .workload import (
    count_stage,
    interleave,
    make_clip,
    median,
    open_estimator,
    paired_ratio,
    run_recompute,
    run_sdk,
)

# PAVE-Net (AAAI 2026) Table 2, HRNet-W48 on an A800, ms per frame; for the notes only (other hardware).
PAPER_ROWS = {
    "DCPose": (150, 204, 292, 431, 721),
    "DSTA": (122, 181, 265, 418, 631),
    "PAVE-Net": (None,) * 4 + (133,),
}

LOOPS = {"ring buffer": run_sdk, "recompute window": run_recompute, "single image": run_sdk}
SPEEDUP = "speed-up (recompute / ring)"


def speedups(series: dict, model: str, persons: list[int]) -> list[float]:
    """Per person count, the median of per-round ratios recompute / ring (the two ran interleaved)."""
    ring, rec = series[f"{model} (ring buffer)"], series[f"{model} (recompute window)"]
    return [paired_ratio(rec[p], ring[p]) for p in persons]


def run(settings: Settings) -> Table:
    t_start = time.perf_counter()
    persons = list(settings.persons)
    growth = f"{persons[-1]} vs {persons[0]}" if len(persons) > 1 else "growth"
    table = Table(
        "persons",
        "Pose latency per frame (ms) against persons per frame (ONNX Runtime, CPU)",
        ["method", "loop", *[str(p) for p in persons], growth],
        settings={
            "persons": persons,
            "clip_frames": settings.clip_frames,
            "rounds": settings.rounds,
            "threads": settings.threads,
            "weights": "random init",
        },
        plot=plot,
    )
    table.extra["text_columns"] = ["method", "loop"]
    series: dict[str, dict[int, list[float]]] = {}
    refined: dict[str, dict[int, float]] = {}
    for model in settings.models:
        est = open_estimator(model, settings)
        loops = ["ring buffer", "recompute window"] if est.is_temporal else ["single image"]
        rows = {loop: [] for loop in loops}
        fine = count_stage(est, "fine") if "fine" in est.manifest.stage_names else None
        coarse = count_stage(est, "coarse") if fine is not None else None
        for p in persons:
            settings.say(f"persons: {model}, {p} per frame")
            clip = make_clip(p, settings.clip_frames)
            got = interleave(
                {loop: (lambda f=LOOPS[loop], e=est, c=clip: f(e, c).ms_per_frame) for loop in loops},
                settings.rounds,
                budget_s=settings.budget_s,
            )
            for loop in loops:
                rows[loop].append(median(got[loop]))
                series.setdefault(f"{model} ({loop})", {})[p] = got[loop]
            if fine is not None and coarse.rows:
                refined.setdefault(model, {})[p] = round(100.0 * fine.rows / coarse.rows, 1)
                fine.reset()
                coarse.reset()
        for loop in loops:
            ms = rows[loop]
            table.add(model, loop, *ms, ms[-1] / ms[0] if ms[0] else float("nan"))
        if est.is_temporal:
            table.add(model, SPEEDUP, *speedups(series, model, persons), None)
        est.close()
    table.extra["series_ms_per_frame"] = series
    table.extra["sharpose_refined_percent"] = refined
    paper = "; ".join(
        f"{k} " + "/".join("-" if v is None else str(v) for v in vals) for k, vals in PAPER_ROWS.items()
    )
    table.notes += [
        "ms per frame for all people of the frame: crops, model stages, ring buffer or window, decode, "
        "tracker (the SDK's VideoPipeline; given boxes, no detector); 'recompute window' re-crops and "
        "re-runs the frame stage on all T=3 frames of every person each frame.",
        f"'{growth}': how latency grows with the crowd. PAVE-Net's Table 2 (HRNet-W48, A800, detector "
        f"included, ms at 1/3/5/10/20 persons): {paper}; i.e. DSTA x{631 / 122:.1f} from 1 to 20 people, "
        "PAVE-Net flat. "
        "Other hardware and backbones: compare growth, not ms.",
        "Each person count's variants ran in interleaved rounds (median shown); columns were measured at "
        "different times, so read a row's shape with the machine's drift in mind. The speed-up rows are "
        "medians of per-round ratios, which drift cancels.",
    ]
    if refined:
        table.notes.append(
            "SHaRPose crops refined by the fine stage (quality below the exported gate), % by "
            f"persons: {refined}; with random weights the quality head stays under the gate, so "
            "every crop runs both passes: SHaRPose's slowest case."
        )
    table.seconds = time.perf_counter() - t_start
    return table


def plot(table: Table, path: Path) -> None:
    fig, ax = new_figure()
    persons = [int(c) for c in table.columns[2:-1]]
    colours = {}
    for r in table.rows:
        if r[1] == SPEEDUP:
            continue
        colour = colours.setdefault(r[0], f"C{len(colours)}")  # one colour per model, dashed = recompute
        style = "--" if r[1] == "recompute window" else "-"
        ax.plot(persons, r[2:-1], style, marker="o", color=colour, label=f"{r[0]} ({r[1]})")
    ax.set_xlabel("persons per frame")
    ax.set_ylabel("ms per frame")
    ax.set_xticks(persons)
    values = [v for r in table.rows if r[1] != SPEEDUP for v in r[2:-1]]
    if values and np.nanmax(values) > 20 * np.nanmin(values):
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.set_title("Latency against persons per frame (cf. PAVE-Net Table 2)")
    ax.legend(fontsize=7)
    save_figure(fig, path)

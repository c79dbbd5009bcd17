#!/usr/bin/env python
"""Persons per frame, whole-frame vs top-down: PAVE-Net's edge build against DSTA + a detector (issue #17 item 6).

    python benchmarks/whole_frame_persons.py                 # -> benchmarks/results/whole_frame_persons.{md,json,png}
    python benchmarks/whole_frame_persons.py --quick         # 1/3/5 persons, short clips (a smoke run)

One run, the same crafted clips for every method (``edgepose.bench.workload.make_clip``: 1280x720
frames with 1, 3, 5, 10, 20 people-sized figures drifting sideways), ONNX Runtime on the CPU, both
models as verified ONNX bundles (random init, as ``benchmarks/persons.py``) through the SDK's
``VideoPipeline`` (offline, smoothing off):

* ``pave_mnv2`` (whole frame): ``VideoPipeline(detector=None)``: the frame stage once per frame on
  the letterboxed frame, its memory in the stream's ring buffer, the temporal stage once per frame;
* ``dsta_mnv2`` (top-down, window 3): the boxes given (``GivenBoxes``; detector excluded), and the
  same plus the default person detector's time per frame (NanoDet, ``make_detector("nanodet")``,
  run on the same frames and added: the drawn figures are not people to a real
  detector, so its boxes could not drive the crops; its cost per frame does not depend on them).

Per method two numbers per frame: **model** ms (the bundle's stage sessions only, summed: what the
target is about) and **loop** ms (everything the SDK does per frame: letterbox or crops, stages,
decode, tracker). Person counts of one method run in interleaved rounds and the growth column is
the median of per-round ratios (20 vs 1), which cancels the slow drift of a shared machine.
Target (issue #17): PAVE-Net's model time at 20 persons <= 1.3x at 1 person.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from edgepose.bench.report import Table, new_figure, save_figure
from edgepose.bench.workload import TotalsTimer, interleave, make_clip, median, paired_ratio

RESULTS = Path(__file__).resolve().parent / "results"
TARGET = 1.3


class TimedSession:
    """Wraps a bundle stage's session and adds up the ms of its ``run`` calls."""

    def __init__(self, session):
        self._session = session
        self.ms = 0.0

    def run(self, feeds):
        t = time.perf_counter()
        out = self._session.run(feeds)
        self.ms += (time.perf_counter() - t) * 1e3
        return out

    def __getattr__(self, name):
        return getattr(self._session, name)


def timed(est) -> dict[str, TimedSession]:
    sessions = est.bundle.sessions
    for name in list(sessions):
        if not isinstance(sessions[name], TimedSession):
            sessions[name] = TimedSession(sessions[name])
    return sessions


def run_loop(est, clip, detector=None) -> tuple[float, float]:
    """(loop ms per frame, model ms per frame) of one pass of the SDK loop over ``clip``."""
    from edgepose.sdk.detectors import GivenBoxes
    from edgepose.sdk.pipeline import VideoPipeline
    from edgepose.sdk.types import Frame

    whole = getattr(est, "input_kind", "crop") == "frame"
    pipe = VideoPipeline(
        est, detector=None if whole else (detector or GivenBoxes(clip.boxes)), mode="offline", smoothing=False
    )
    pipe.reset("offline")
    pipe.timer = TotalsTimer()
    sessions = timed(est)
    for s in sessions.values():
        s.ms = 0.0
    t0 = time.perf_counter()
    n = 0
    for i, img in enumerate(clip.frames):
        n += len(pipe.process(Frame(i, img, i / 25.0)))
    n += len(pipe.flush())
    loop = (time.perf_counter() - t0) * 1e3 / len(clip)
    model = sum(s.ms for s in sessions.values()) / len(clip)
    return loop, model


def detector_ms(detector, clip) -> float:
    t0 = time.perf_counter()
    for i, img in enumerate(clip.frames):
        detector(img, i)
    return (time.perf_counter() - t0) * 1e3 / len(clip)


def run(args) -> Table:
    from edgepose.bench.bundles import cached_bundle
    from edgepose.sdk.detectors import make_detector
    from edgepose.sdk.estimator import PoseEstimator

    say = lambda m: print(m, file=sys.stderr, flush=True)
    persons = list(args.persons)
    clips = {p: make_clip(p, args.frames) for p in persons}
    opts = {"threads": args.threads} if args.threads else {}
    t_start = time.perf_counter()
    growth = f"{persons[-1]} vs {persons[0]}"
    table = Table(
        "whole_frame_persons",
        "ms per frame against persons per frame: PAVE-Net (whole frame) vs DSTA top-down (ONNX Runtime, CPU)",
        ["method", "time", *[str(p) for p in persons], growth],
        settings={
            "pave": args.pave,
            "dsta": args.dsta,
            "persons": persons,
            "clip_frames": args.frames,
            "rounds": args.rounds,
            "threads": args.threads,
            "frame_size": "1280x720",
            "weights": "random init",
            "detector": args.detector,
        },
        plot=plot,
    )
    table.extra["text_columns"] = ["method", "time"]
    series: dict[str, dict[int, list[float]]] = {}

    # interleave() wants numbers: keep the pairs in a side list and hand it the loop time
    def pairs(fn):
        store: dict[int, list[tuple[float, float]]] = {p: [] for p in persons}

        def one(p):
            v = fn(p)
            store[p].append(v)
            return v[0]

        return store, one

    say(f"bundles: {args.pave}, {args.dsta} (exported on first use)")
    pave = PoseEstimator(
        cached_bundle(args.pave, format="onnx", init_seed=0, progress=say), device="cpu", **opts
    )
    dsta = PoseEstimator(
        cached_bundle(args.dsta, format="onnx", init_seed=0, progress=say), device="cpu", **opts
    )
    assert pave.detector is None  # a whole-frame bundle loads no person detector
    # random weights score nobody at the SDK's 0.5, and decode_people fails on an empty keep set (a bug
    # reported to the SDK owner); keeping all M people also times the loop's worst case (decode + track M)
    pave.score_threshold = 0.0
    det = make_detector(args.detector)

    results: dict[str, dict[int, list[tuple[float, float]]]] = {}
    for label, fn in (
        (f"{args.pave} (whole frame, no detector)", lambda p: run_loop(pave, clips[p])),
        (f"{args.dsta} top-down, given boxes", lambda p: run_loop(dsta, clips[p])),
        (f"{args.detector} detector alone", lambda p: (detector_ms(det, clips[p]), 0.0)),
    ):
        say(f"timing {label}")
        store, one = pairs(fn)
        interleave({p: (lambda p=p: one(p)) for p in persons}, args.rounds, warmup=1, budget_s=args.budget)
        results[label] = {
            p: store[p][1:] or store[p] for p in persons
        }  # the first call per count was warm-up

    def col(label, k):
        return {p: [v[k] for v in results[label][p]] for p in persons}

    pave_l = f"{args.pave} (whole frame, no detector)"
    dsta_l = f"{args.dsta} top-down, given boxes"
    det_l = f"{args.detector} detector alone"
    rows = {
        (f"{args.pave} whole frame (no detector)", "model"): col(pave_l, 1),
        (f"{args.pave} whole frame (no detector)", "loop"): col(pave_l, 0),
        (f"{args.dsta} top-down, detector excluded", "model"): col(dsta_l, 1),
        (f"{args.dsta} top-down, detector excluded", "loop"): col(dsta_l, 0),
    }
    # detector included: per round, the loop (or model) time plus that round's detector time
    det_ms = col(det_l, 0)
    rows[(f"{args.dsta} top-down + {args.detector}", "model + detector")] = {
        p: [a + b for a, b in zip(col(dsta_l, 1)[p], det_ms[p])] for p in persons
    }
    rows[(f"{args.dsta} top-down + {args.detector}", "loop + detector")] = {
        p: [a + b for a, b in zip(col(dsta_l, 0)[p], det_ms[p])] for p in persons
    }
    rows[(f"{args.detector} detector", "per frame")] = det_ms
    for (method, kind), vals in rows.items():
        ms = [median(vals[p]) for p in persons]
        table.add(method, kind, *ms, paired_ratio(vals[persons[-1]], vals[persons[0]]))
        series[f"{method} [{kind}]"] = vals
    table.extra["series_ms_per_frame"] = series
    pave_growth = paired_ratio(
        rows[(f"{args.pave} whole frame (no detector)", "model")][persons[-1]],
        rows[(f"{args.pave} whole frame (no detector)", "model")][persons[0]],
    )
    table.extra["pave_model_growth"] = pave_growth
    table.extra["target"] = f"{args.pave} model time {growth} <= {TARGET}x"
    table.extra["target_met"] = bool(pave_growth <= TARGET)
    table.notes += [
        "model: the bundle's stage sessions only (ONNX Runtime run calls), summed per frame; loop: the SDK's "
        "VideoPipeline per frame (letterbox or crops, stages, ring buffer, decode, tracker; smoothing off).",
        f"detector included = the top-down row plus {args.detector}'s own time on the same frames in the same "
        "rounds, measured right after the top-down loop (the drawn figures are not people to a real detector, so its boxes could not drive the crops).",
        f"'{growth}': median of per-round ratios (person counts of a method ran interleaved). Target: PAVE-Net "
        f"model time {growth} <= {TARGET}x: {'met' if pave_growth <= TARGET else 'NOT met'} "
        f"({pave_growth:.2f}x).",
        "pave_mnv2 decodes a fixed M = 20 people per window whatever the frame holds (the paper's point); "
        "its score threshold is 0 here (random weights), so the loop decodes and tracks all 20 every frame; "
        "dsta_mnv2 runs its frame stage once per person per frame (ring buffer) and its temporal stage once "
        "per person. Random weights: timing only.",
        "PAVE-Net's Table 2 (HRNet-W48, A800, detector included): DSTA 122 -> 631 ms from 1 to 20 persons, "
        "PAVE-Net 133 ms at 20. Other hardware and backbones: compare growth, not ms.",
    ]
    table.seconds = time.perf_counter() - t_start
    pave.close()
    dsta.close()
    return table


def plot(table: Table, path: Path) -> None:
    fig, ax = new_figure()
    persons = [int(c) for c in table.columns[2:-1]]
    colours: dict[str, str] = {}
    for r in table.rows:
        colour = colours.setdefault(r[0], f"C{len(colours)}")
        style = "-" if r[1].startswith("model") else "--"
        ax.plot(persons, r[2:-1], style, marker="o", color=colour, label=f"{r[0]} [{r[1]}]")
    ax.set_xlabel("persons per frame")
    ax.set_ylabel("ms per frame")
    ax.set_xticks(persons)
    values = [v for r in table.rows for v in r[2:-1] if v and np.isfinite(v)]
    if values and max(values) > 20 * min(values):
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.set_title("Whole-frame PAVE-Net vs top-down DSTA: latency against persons per frame")
    ax.legend(fontsize=6)
    save_figure(fig, path)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--persons", type=lambda s: [int(v) for v in s.split(",")], default=[1, 3, 5, 10, 20])
    ap.add_argument("--frames", type=int, default=8, help="frames per timed clip")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument(
        "--budget", type=float, default=240.0, help="seconds per method before rounds stop (>= 2)"
    )
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--detector", default="nanodet")
    ap.add_argument("--pave", default="pave_mnv2", help="the whole-frame model")
    ap.add_argument("--dsta", default="dsta_mnv2", help="the top-down model")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=str(RESULTS))
    ap.add_argument("--name", default="whole_frame_persons")
    args = ap.parse_args(argv)
    if args.quick:
        args.persons, args.frames, args.rounds, args.budget = [1, 3, 5], 4, 2, 30.0
    table = run(args)
    table.name = args.name
    from rich.console import Console

    table.publish(Console(), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Export benchmark: per model x format, export time, bundle size, parity with PyTorch, CPU latency.

    python benchmarks/export_bench.py                       # the four full-size models, all formats
    python benchmarks/export_bench.py --models dsta_mnv2_tiny --formats onnx,tflite --md /tmp/t.md

Each format is exported on its own (OpenVINO's time includes its ONNX export),
verified as every export is, then each stage is timed in its runtime on this
CPU at batch 1, and at batch 8 for the stages that take images (frame, model,
coarse, fine). ``per frame`` is what one person costs per video frame in steady
state: the sum of the stages at batch 1 (a temporal model's frame stage runs
once per frame, its temporal stage reads the ring buffer). TFLite graphs have a
fixed batch of 1, so their batch-8 figure is 8 sequential calls. Core ML runs on
macOS only: here it is exported and checked structurally, not timed. Without
``--weights`` the models are randomly initialised: timings and sizes do not
depend on the weights, parity errors do only mildly.

Prints a rich table and writes a markdown table (``--md``) for the README.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from edgepose.core.atomic import atomic_file
from edgepose.export import export
from edgepose.export.formats import FORMATS
from edgepose.export.verify import pipeline_inputs
from edgepose.runtimes.bundle import load
from edgepose.zoo import create_model

FULL = ("dsta_mnv2", "distilpose_s", "sharpose_s", "tar_vitpose_s")
COLUMNS = (
    "model",
    "format",
    "export s",
    "size MB",
    "max abs err",
    "kp err px",
    "stage ms (b1)",
    "per frame ms (b1)",
    "image stages ms (b8)",
)


def _time(fn, min_runs: int, budget_s: float) -> float:
    """Median wall time in ms after warm-up; at least ``min_runs`` runs, more while within ``budget_s``."""
    for _ in range(2):
        fn()
    times, start = [], time.perf_counter()
    while len(times) < min_runs or (time.perf_counter() - start < budget_s and len(times) < 200):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def _feeds(model, batch: int, layout: str) -> dict[str, dict[str, np.ndarray]]:
    feeds, _ = pipeline_inputs(model, batch, seed=2)
    out = {}
    for stage, named in feeds.items():
        out[stage] = {}
        for n, t in named.items():
            x = t.numpy()
            if n == "image" and layout == "NHWC":
                x = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
            out[stage][n] = x
    return out


def _image_stages(model) -> list[str]:
    return [s for s in model.stage_names if "image" in model.stage_io(s)[0]]


def bench_torch(model, runs: int, budget: float) -> dict:
    row = {"format": "pytorch (eager)", "export s": "", "size MB": "", "max abs err": "", "kp err px": ""}
    stage_ms = {}
    for batch in (1, 8):
        feeds, _ = pipeline_inputs(model, batch, seed=2)
        for stage in model.stage_names if batch == 1 else _image_stages(model):
            mod = model.stage(stage).eval()
            args = tuple(feeds[stage].values())

            def call(mod=mod, args=args):
                with torch.no_grad():
                    mod(*args)

            stage_ms[(stage, batch)] = _time(call, runs, budget)
    return {**row, **_latency_cells(model, stage_ms)}


def _latency_cells(model, stage_ms: dict) -> dict:
    b1 = {s: stage_ms[(s, 1)] for s in model.stage_names if (s, 1) in stage_ms}
    b8 = {s: stage_ms[(s, 8)] for s in _image_stages(model) if (s, 8) in stage_ms}
    return {
        "stage ms (b1)": ", ".join(f"{s} {v:.2f}" for s, v in b1.items()),
        "per frame ms (b1)": f"{sum(b1.values()):.2f}" if b1 else "",
        "image stages ms (b8)": ", ".join(f"{s} {v:.1f}" for s, v in b8.items()),
    }


def bench_format(name: str, fmt: str, weights, precision: str, work: Path, runs: int, budget: float) -> dict:
    out = work / f"{name}-{fmt}"
    t = time.perf_counter()
    result = export(name, out=out, format=fmt, precision=precision, weights=weights)
    seconds = time.perf_counter() - t
    b = result[fmt]
    m = b.manifest
    errs = [v.max_abs_error for v in m.verification if v.max_abs_error is not None]
    final = m.verification_for(m.stage_names[-1])
    row = {
        "format": fmt if precision == "fp32" else f"{fmt} {precision}",
        "export s": f"{seconds:.1f}",
        "size MB": f"{b.size_bytes / 1e6:.1f}",
        "max abs err": f"{max(errs):.1e}" if errs else "structural",
        "kp err px": f"{final.keypoint_error_px:.1e}" if final.keypoint_error_px is not None else "",
    }
    if FORMATS[fmt].numeric_check_reason() is not None:
        return {
            **row,
            "stage ms (b1)": f"n/a: {fmt} runs on macOS only",
            "per frame ms (b1)": "",
            "image stages ms (b8)": "",
        }
    model = create_model(name)
    stage_ms = {}
    with load(out, device="cpu") as bundle:
        for batch in (1, 8):
            feeds = _feeds(model, batch, m.layout)
            for stage in m.stage_names if batch == 1 else _image_stages(model):
                sess = bundle.sessions[stage]
                f = feeds[stage]
                stage_ms[(stage, batch)] = _time(lambda sess=sess, f=f: sess.run(f), runs, budget)
    shutil.rmtree(out, ignore_errors=True)
    return {**row, **_latency_cells(model, stage_ms)}


def to_markdown(rows: list[dict], header: str) -> str:
    lines = [header, "", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in rows:
        lines.append("| " + " | ".join(str(r.get(c, "")) for c in COLUMNS) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(FULL))
    ap.add_argument("--formats", default="all")
    ap.add_argument("--precision", default="fp32")
    ap.add_argument("--weights", default=None, help="checkpoint (only with a single model)")
    ap.add_argument("--runs", type=int, default=10, help="minimum timed runs per stage and batch")
    ap.add_argument("--budget", type=float, default=2.0, help="seconds of timing per stage and batch")
    ap.add_argument("--threads", type=int, default=0, help="torch threads for the PyTorch rows (0: default)")
    ap.add_argument("--md", default="benchmarks/results/export_bench.md")
    args = ap.parse_args(argv)
    models = [m for m in args.models.split(",") if m]
    formats = list(FORMATS) if args.formats == "all" else [f for f in args.formats.split(",") if f]
    if args.weights and len(models) != 1:
        ap.error("--weights needs exactly one model")
    if args.threads:
        torch.set_num_threads(args.threads)
    console = Console()
    load_start = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    rows = []
    work = Path(tempfile.mkdtemp(prefix="edgepose-export-bench-"))
    try:
        for name in models:
            with torch.random.fork_rng():
                torch.manual_seed(0)
                model = create_model(name).eval()
            rows.append({"model": name, **bench_torch(model, args.runs, args.budget)})
            console.print(f"[dim]{name}: pytorch timed[/]")
            for fmt in formats:
                rows.append(
                    {
                        "model": name,
                        **bench_format(name, fmt, args.weights, args.precision, work, args.runs, args.budget),
                    }
                )
                console.print(f"[dim]{name}: {fmt} exported, verified, timed[/]")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    from edgepose.bench.report import cpu_name

    cpu = cpu_name()
    load_end = os.getloadavg()[1] if hasattr(os, "getloadavg") else float("nan")
    header = (
        f"Export benchmark ({args.precision}; {cpu}, {os.cpu_count()} cores, {platform.system()}; torch "
        f"{torch.__version__}; median latency; {'random-init' if not args.weights else 'given'} weights; "
        f"load average {load_start:.1f} at start, {load_end:.1f} (5 min) at the end: other processes "
        "shared the CPU where it exceeds the core count)"
    )
    table = Table(title=header)
    for c in COLUMNS:
        table.add_column(c)
    for r in rows:
        table.add_row(*(str(r.get(c, "")) for c in COLUMNS))
    console.print(table)
    md = Path(args.md)
    with atomic_file(md, "w") as f:
        f.write(to_markdown(rows, header))
    console.print(f"markdown table written to {md}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

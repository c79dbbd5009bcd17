#!/usr/bin/env python
"""INT8 speed and size of the *full-size* zoo models: int8 PTQ bundles against their fp32 twins.

    python benchmarks/int8_speed.py                                  # 4 models x onnx, openvino, tflite
    python benchmarks/int8_speed.py --models dsta_mnv2 --formats onnx,openvino

Accuracy needs trained weights and lives in ``benchmarks/int8_report.py`` (reduced builds
trained on the synthetic benchmark). Latency and size do not depend on the weights' values, so
this script quantises the papers' full-size builds (random init, seed 0, calibrated on
synthetic crops) and reports only what they can tell: size and the int8/fp32 latency ratio
per runtime at batch 1 and 8 (interleaved timing, ``edgepose.quantization.latency``).
Writes ``benchmarks/results/int8_speed.{md,json}``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
MODELS = ("dsta_mnv2", "distilpose_s", "sharpose_s", "tar_vitpose_s")


def measure(model: str, formats: str, calib: int, threads: int) -> list[dict]:
    from edgepose.quantization import quantize

    with tempfile.TemporaryDirectory(prefix="int8-speed-") as tmp:
        result = quantize(
            model,
            out=Path(tmp) / "b",
            data="synthetic",
            calib=calib,
            format=formats,
            eval_limit=20,
            latency=True,
            batches=(1, 8),
            threads=threads,
            strict=False,
        )
    rows = []
    for r in result.rows:
        lat = r.latency_ms
        rows.append(
            {
                "model": model,
                "format": r.format,
                "size_mb": round(r.size_bytes / 1e6, 2),
                "fp32_size_mb": round(r.fp32_size_bytes / 1e6, 2),
                "size_ratio": round(r.size_ratio, 3),
                "fp32_ms": {str(b): v for b, v in lat.get("fp32", {}).items()},
                "int8_ms": {str(b): v for b, v in lat.get("int8", {}).items()},
                "speedup": {str(b): r.speedup(b) for b in lat.get("int8", {})},
                "float_scopes": r.float_scopes,
            }
        )
    return rows


def markdown(rows: list[dict], env: dict) -> str:
    lines = [
        "# INT8 speed and size, full-size models (`benchmarks/int8_speed.py`)",
        "",
        f"{env['cpu']}, {env['cores']} cores, {env['threads']} intra-op thread(s); load average "
        f"{env['load_avg']:.1f} at the end. Random-init full-size builds calibrated on synthetic crops: "
        "speed and size only (accuracy: `int8_report.md`). ms: median per call summed over a model's "
        "stages (the ring buffer's steady state per person for temporal models), int8 and fp32 "
        "interleaved in one run; x = fp32 ms / int8 ms (>1: int8 faster).",
        "",
        "| model | format | size MB int8 / fp32 | ms b1 fp32 / int8 | x b1 | ms b8 fp32 / int8 | x b8 |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        f, i, s = r["fp32_ms"], r["int8_ms"], r["speedup"]
        lines.append(
            f"| {r['model']} | {r['format']} | {r['size_mb']} / {r['fp32_size_mb']} ({r['size_ratio']:.0%}) | "
            f"{f.get('1', '-')} / {i.get('1', '-')} | {s.get('1', '-')} | {f.get('8', '-')} / {i.get('8', '-')} | "
            f"{s.get('8', '-')} |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--formats", default="onnx,openvino,tflite")
    ap.add_argument("--calib", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(max(1, args.threads))
    t0 = time.perf_counter()
    rows = []
    for model in [m for m in args.models.split(",") if m]:
        print(f"[{time.perf_counter() - t0:6.0f}s] {model} ...", flush=True)
        rows += measure(model, args.formats, args.calib, args.threads)
    from edgepose.bench.report import cpu_name
    from edgepose.core.atomic import atomic_file

    env = {
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "threads": args.threads,
        "load_avg": os.getloadavg()[0],
        "python": platform.python_version(),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    previous = args.out / "int8_speed.json"
    if previous.is_file():  # keep other models' rows from earlier invocations
        done = {(r["model"], r["format"]) for r in rows}
        kept = [r for r in json.loads(previous.read_text())["rows"] if (r["model"], r["format"]) not in done]
        order = {m: i for i, m in enumerate(MODELS)}
        rows = sorted(kept + rows, key=lambda r: (order.get(r["model"], 99), r["format"]))
    with atomic_file(args.out / "int8_speed.json", "w") as f:
        json.dump({"environment": env, "rows": rows}, f, indent=1)
    md = markdown(rows, env)
    with atomic_file(args.out / "int8_speed.md", "w") as f:
        f.write(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())

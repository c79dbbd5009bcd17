#!/usr/bin/env python
"""Where INT8 PTQ loses accuracy on the shipped real-footage weights: one variant per row.

    OMP_NUM_THREADS=1 python benchmarks/int8_real.py --model dsta_mnv2_coco --data runs/real-labels \
        --format onnx --variants base,percentile,float:trunk.conv1

Every variant quantises the fp32 bundle's stages with the family's chosen float scopes plus
the variant's own extra scopes and quantiser options, then scores the val crops (whole videos,
``--eval-limit`` persons) in its runtime against the fp32 bundle's keypoints in the same run:
the COCO AP drop and the keypoint deviation (px in the crop) are the fast proxy for the
held-out AP of ``benchmarks/real_world.py``. Calibration crops, the evaluation crops and the
fp32 bundles are made once and cached under ``--work``; each variant's row is cached as JSON,
so an interrupted study resumes (``--keep`` keeps the bundles, e.g. for ``real_world.py --bundle``). ``--timing`` adds ms per person of the frame stage at batch 1
on one thread, int8 and fp32 interleaved (ratios; absolute times drift on a shared machine).

A variant is ``NAME`` of ``VARIANTS`` or ``float:PATTERN[+PATTERN]`` (extra module scopes kept
float, e.g. ``float:trunk.conv1+trunk.conv2``), optionally ``@key=value[+key=value]`` quantiser
options (``float:trunk.conv1@calibration_method=percentile``).
"""

from __future__ import annotations

import argparse
import json
import pickle
import shutil
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

VARIANTS = {  # name -> (extra float patterns, quantiser options)
    "base": ((), {}),
    "percentile": ((), {"calibration_method": "percentile"}),
    "entropy": ((), {"calibration_method": "entropy"}),
    "per_tensor": ((), {"per_channel": False}),
    "no_bias_corr_fast": ((), {"fast_bias_correction": False}),
    "mixed": ((), {"preset": "mixed"}),
    "whole_trunk_float": (("trunk",), {}),
}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def parse_variant(text: str) -> tuple[tuple[str, ...], dict]:
    name, _, opts = text.partition("@")
    if name.startswith("float:"):
        patterns, options = tuple(p for p in name[len("float:") :].split("+") if p), {}
    else:
        patterns, options = VARIANTS[name]
        options = dict(options)
    for kv in filter(None, opts.split("+")):
        k, _, v = kv.partition("=")
        options[k] = {"true": True, "false": False}.get(v.lower(), int(v) if v.isdigit() else v)
    return patterns, options


def cached(path: Path, fn):
    if path.is_file():
        with open(path, "rb") as f:
            return pickle.load(f)
    value = fn()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".tmp"), "wb") as f:
        pickle.dump(value, f)
    path.with_suffix(".tmp").replace(path)
    return value


def quantize_variant(fmt, fp32_dir: Path, dest: Path, model, cal, scopes, options) -> dict:
    """The fp32 bundle copied to ``dest`` with each stage quantised (a stage wholly in float is left)."""
    from edgepose.quantization import onnx_ptq, openvino_ptq
    from edgepose.quantization.scopes import for_stage

    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(fp32_dir, dest)
    info = {}
    for stage in model.stage_names:
        st = for_stage(scopes, stage)
        if any(s.pattern == "*" and not s.direct for s in st):
            continue
        if fmt == "onnx":
            info[stage] = onnx_ptq.quantize_file(
                fp32_dir / f"{stage}.onnx",
                dest / f"{stage}.onnx",
                cal.batches(stage, int(options.get("calibration_batch", 8))),
                st,
                per_channel=options.get("per_channel", True),
                method=options.get("calibration_method", "minmax"),
                reduce_range=bool(options.get("reduce_range", False)),
                weight_type=options.get("weight_type", "s8"),
            )
            info[stage].pop("ops", None)
        else:
            import onnx
            import openvino as ov

            graph_src = fp32_dir.parent / "fp32-onnx" / f"{stage}.onnx"
            ignored = onnx_ptq.onnx_nodes_in(onnx.load(str(graph_src), load_external_data=False).graph, st)
            items = list(cal.batches(stage, 1))
            m = ov.Core().read_model(str(fp32_dir / f"{stage}.xml"))
            q, info[stage] = openvino_ptq.quantize_ir(m, items, ignored, **openvino_ptq.nncf_options(options))
            ov.save_model(q, str(dest / f"{stage}.xml"), compress_to_fp16=False)
    from edgepose.core.manifest import read_manifest, write_manifest

    write_manifest(dest, read_manifest(dest, check_files=False), seal=True)  # the stage files changed
    return info


def frame_ms(fp32_dir: Path, int8_dir: Path, x: np.ndarray, rounds: int = 10, reps: int = 50) -> dict:
    """Median ms of the first stage at batch 1, one thread, fp32 and int8 interleaved round by round."""
    from edgepose.quantization.pipeline import StagePlan, session_stage_runner
    from edgepose.runtimes.bundle import load

    times = {"fp32": [], "int8": []}
    with load(fp32_dir, device="cpu", threads=1) as a, load(int8_dir, device="cpu", threads=1) as b:
        plan = StagePlan.from_manifest(a.manifest)
        first = plan.names[0]
        feed = {plan.io(first)[0][0]: x[:1]}
        run = {
            "fp32": session_stage_runner(a.sessions, a.manifest.layout),
            "int8": session_stage_runner(b.sessions, b.manifest.layout),
        }
        for k in run:  # warm-up
            for _ in range(5):
                run[k](first, feed)
        for _ in range(rounds):
            for k in run:
                t = time.perf_counter()
                for _ in range(reps):
                    run[k](first, feed)
                times[k].append((time.perf_counter() - t) / reps * 1e3)
    med = {k: float(np.median(v)) for k, v in times.items()}
    return {
        "fp32_ms": round(med["fp32"], 3),
        "int8_ms": round(med["int8"], 3),
        "ratio": round(med["int8"] / med["fp32"], 3),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="dsta_mnv2_coco")
    ap.add_argument("--weights", default="pretrained")
    ap.add_argument("--data", default=str(ROOT / "runs" / "real-labels"))
    ap.add_argument("--work", default=str(ROOT / "runs" / "int8-real-study"))
    ap.add_argument("--format", default="onnx", choices=("onnx", "openvino"))
    ap.add_argument("--calib", type=int, default=256)
    ap.add_argument("--eval-limit", type=int, default=300)
    ap.add_argument("--variants", default="base")
    ap.add_argument("--timing", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the variants' bundles (under WORK/bundles)")
    ap.add_argument("--refresh", action="store_true", help="recompute the variants' rows")
    args = ap.parse_args(argv)

    from edgepose.export import export
    from edgepose.export.source import build
    from edgepose.quantization import evaluate as ev
    from edgepose.quantization.calibration import collect, open_data
    from edgepose.quantization.scopes import Scope, choice_for
    from edgepose.zoo.pretrained import model_spec

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    src = build(args.model, args.weights)
    spec = model_spec(src.model)
    data = open_data(args.data, spec)
    log("calibration crops ...")
    cal = cached(
        work / f"cal{args.calib}.pkl",
        lambda: collect(src.model, data.calibration_set, count=args.calib, progress=log),
    )
    log("evaluation crops ...")
    evalset = cached(work / f"eval{args.eval_limit}.pkl", lambda: ev.build(data, args.eval_limit))
    for fmt in ("onnx", args.format):
        d = work / f"fp32-{fmt}"
        if not (d / "manifest.json").is_file():
            log(f"fp32 {fmt} bundle ...")
            export(src.model, out=d, format=fmt, verify=False)
    fp32_dir = work / f"fp32-{args.format}"
    ref_path = work / f"ref-{args.format}-{args.eval_limit}.pkl"
    ref = cached(ref_path, lambda: ev.evaluate_bundle(fp32_dir, evalset, threads=1))
    ref_kp = ref["keypoints"]
    log(f"fp32 {args.format}: {ref['metric_name']} {ref['metric']} on {evalset.describe()}")
    choice = choice_for(spec.family)
    rows_path = work / f"rows-{args.format}.json"
    rows = json.loads(rows_path.read_text()) if rows_path.is_file() else {}
    for text in filter(None, args.variants.split(",")):
        key = f"{text} [cal{args.calib}, eval{args.eval_limit}]"
        if key in rows and not args.refresh and not (args.timing and "timing" not in rows[key]):
            log(f"{key}: cached {rows[key]}")
            continue
        patterns, options = parse_variant(text)
        scopes = choice.scopes() + tuple(Scope(p, why="study") for p in patterns)
        dest = (
            work / "bundles" / f"{args.format}-{text.replace(':', '_').replace('+', '_').replace('@', '_')}"
        )
        t = time.perf_counter()
        info = quantize_variant(args.format, fp32_dir, dest, src.model, cal, scopes, options)
        acc = ev.evaluate_bundle(dest, evalset, threads=1)
        kp = acc.pop("keypoints")
        row = {
            "float_extra": list(patterns),
            "options": options,
            "metric": acc["metric"],
            "drop": round(ref["metric"] - acc["metric"], 3),
            **ev.keypoint_deviation(kp, ref_kp),
            "float_nodes": {s: i.get("float_nodes") for s, i in info.items()},
            "seconds": round(time.perf_counter() - t, 1),
        }
        if args.timing:
            row["timing"] = frame_ms(fp32_dir, dest, evalset.x[:, 0].astype(np.float32))
        rows[key] = row
        rows_path.write_text(json.dumps(rows, indent=1))
        log(f"{key}: {row}")
        if not args.keep:
            shutil.rmtree(dest, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

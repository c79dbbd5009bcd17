#!/usr/bin/env python
"""INT8 report for the four zoo models: PTQ and QAT per format, against fp32, with trained weights.

    python benchmarks/int8_report.py                         # everything -> benchmarks/results/int8_report.{md,json}
    python benchmarks/int8_report.py --models dsta_mnv2 --methods ptq --formats onnx,openvino
    python benchmarks/int8_report.py --measure-scopes        # re-measure which parts stay float
    python benchmarks/int8_report.py --ort-study             # why ONNX Runtime int8 is (not) faster

Weights: the models trained on the synthetic benchmark by ``benchmarks/train_synthetic.py``
(``runs/train_synthetic/runs/<model>/last.pt``; DistilPose-S: its distilled run, else the
ground-truth-heatmap one), else the shipped demo weights (``edgepose.zoo.pretrained``);
``--weights MODEL=PATH`` overrides. Never random weights: a model without trained weights is
skipped and said so. Data: the same synthetic benchmark (``--data``): its train split
calibrates and trains QAT, its val split evaluates (``--eval-limit`` persons, whole videos).

Parts (each cached as JSON under ``--work``, so an interrupted run resumes):

1. ``--measure-scopes``: per model, ONNX Runtime PTQ (the fastest route to a score) with
   every candidate float scope of ``edgepose.quantization.scopes`` quantised, then with each
   candidate alone kept in float, then all of them; metric drop and keypoint deviation
   against fp32 for each. The chosen scopes in ``scopes.FLOAT_SCOPES`` come from this table.
2. the report: ``edgepose.quantization.quantize`` per model x method (PTQ, QAT) x format:
   size, accuracy and latency (batch 1 and 8) against fp32 in the same run.
3. ``--ort-study``: the fp32 ONNX graph of each model against int8 variants (QDQ vs
   QOperator, per-channel vs per-tensor, depthwise convolutions left in float), at graph
   optimisation levels, batch sizes and thread counts, timed interleaved.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
STEM = "int8_report"
MODELS = ("dsta_mnv2", "distilpose_s", "sharpose_s", "tar_vitpose_s")
TRAINED_RUNS = {  # train_synthetic run keys, best first
    "dsta_mnv2": ("dsta_mnv2",),
    "tar_vitpose_s": ("tar_vitpose_s",),
    "sharpose_s": ("sharpose_s",),
    "distilpose_s": ("distilpose_s/teacher", "distilpose_s/gt-heatmaps", "distilpose_s/no-teacher"),
}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ------------------------------------------------------------------------------------ weights
def find_weights(model: str, runs: Path, overrides: dict[str, str]) -> tuple[Path | None, str]:
    if model in overrides:
        return Path(overrides[model]), "given with --weights"
    for key in TRAINED_RUNS[model]:
        p = runs / key.replace("/", "__") / "last.pt"
        if p.is_file():
            return p, f"benchmarks/train_synthetic.py run {key!r} ({p})"
    from edgepose.zoo.pretrained import WEIGHTS_DIR, list_pretrained, pretrained_info

    if model in list_pretrained():
        return WEIGHTS_DIR / pretrained_info(model)["file"], "shipped demo weights (edgepose.zoo.pretrained)"
    return None, "no trained weights found (train_synthetic run or shipped weights)"


def snapshot(src: Path, dest: Path, refresh: bool) -> Path:
    """A private copy of the checkpoint, taken once (a training run may overwrite its last.pt)."""
    if dest.is_file() and not refresh:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(".tmp")
    shutil.copyfile(src, tmp)
    tmp.replace(dest)
    return dest


def checkpoint_summary(path: Path) -> dict:
    from edgepose.zoo.checkpoints import read_checkpoint

    ck = read_checkpoint(path)
    meta = ck.get("meta") or {}
    return {
        "epoch": meta.get("epoch"),
        "step": meta.get("step"),
        "run": meta.get("run"),
        "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in (ck.get("config") or {}).items()},
    }


# ------------------------------------------------------------------------------------ caching
def cached(work: Path, name: str, fn, refresh: bool = False):
    path = work / f"{name}.json"
    if path.is_file() and not refresh:
        return json.loads(path.read_text())
    value = fn()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(value, indent=1, default=str))
    tmp.replace(path)
    return value


# ------------------------------------------------------------------------------------ 1. scopes
def measure_scopes(model: str, weights: Path, data: str, calib: int, eval_limit: int, threads: int) -> dict:
    """ORT PTQ with no float scope, each candidate alone in float, and all candidates in float."""
    from edgepose.export import export
    from edgepose.export.source import build
    from edgepose.quantization import evaluate as ev
    from edgepose.quantization.calibration import collect, open_data
    from edgepose.quantization.onnx_ptq import quantize_file
    from edgepose.quantization.scopes import choice_for, for_stage
    from edgepose.zoo.pretrained import model_spec

    src = build(model, weights)
    spec = model_spec(src.model)
    choice = choice_for(spec.family)
    data_src = open_data(data, spec)
    cal = collect(src.model, data_src.calibration_set, count=calib)
    evalset = ev.build(data_src, eval_limit)
    ref = ev.evaluate_model(src.model, evalset)
    ref_kp = ref.pop("keypoints")
    work = Path(tempfile.mkdtemp(prefix="int8-scopes-"))
    try:
        fp32 = export(model, weights=weights, out=work / "fp32", format="onnx", verify=False)
        variants = {"none": ()}
        variants.update({f"only {n}": (n,) for n in choice.candidates})
        variants["all"] = tuple(choice.candidates)
        rows = {}
        for label, names in variants.items():
            bundle = work / label.replace(" ", "_")
            shutil.copytree(fp32.out, bundle)
            for stage in src.model.stage_names:
                f = bundle / f"{stage}.onnx"
                quantize_file(
                    fp32.out / f"{stage}.onnx",
                    f,
                    cal.batches(stage, 8),
                    for_stage(choice.scopes(names), stage),
                )
            acc = ev.evaluate_bundle(bundle, evalset, threads=threads)
            kp = acc.pop("keypoints")
            rows[label] = {
                "float": list(names),
                **acc,
                "drop": round(ref["metric"] - acc["metric"], 3),
                "pckh_drop": round(ref["pckh@0.5"] - acc["pckh@0.5"], 3),
                **ev.keypoint_deviation(kp, ref_kp),
            }
            log(f"  scopes {model} [{label}]: {rows[label]}")
        return {
            "model": model,
            "weights": str(weights),
            "fp32": ref,
            "evaluation": evalset.describe(),
            "calibration": f"{calib} crops",
            "variants": rows,
            "suggested": suggest(rows),
            "candidates": {n: [str(s) for s in ss] for n, ss in choice.candidates.items()},
            "chosen_in_code": list(choice.chosen),
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)


def suggest(rows: dict, points: float = 0.25, share: float = 0.05) -> list[str]:
    """The rule that picks float scopes from the measurement: a candidate stays float when keeping it
    (alone) in float cuts the fully-quantised model's metric drop by ``points`` or more, or its mean
    keypoint deviation from fp32 by ``share`` (5%) or more of the fully-quantised model's."""
    base = rows["none"]
    out = []
    for label, v in rows.items():
        if not label.startswith("only "):
            continue
        drop_gain = base["drop"] - v["drop"]
        kp_gain = base["mean_px"] - v["mean_px"]
        if drop_gain >= points or kp_gain >= share * base["mean_px"]:
            out.append(label[len("only ") :])
    return out


# ------------------------------------------------------------------------------------ 2. report
def run_quantize(model: str, weights: Path, method: str, args) -> dict:
    from edgepose.quantization import quantize

    out = Path(args.work) / "bundles" / f"{model}-{method}"
    if out.exists():
        shutil.rmtree(out)
    t = time.perf_counter()
    result = quantize(
        model,
        weights=weights,
        out=out,
        method=method,
        data=args.data,
        calib=args.calib,
        epochs=args.qat_epochs,
        qat_steps=args.qat_steps,
        qat_batch_size=args.qat_batch_size,
        format=args.formats,
        eval_limit=args.eval_limit,
        threads=args.threads,
        strict=False,
        options={"coreml_mode": args.coreml_mode},
        progress=lambda m: log(f"  {model} {method}: {m}"),
    )
    d = result.to_dict()
    d["wall_seconds"] = round(time.perf_counter() - t, 1)
    return d


# ------------------------------------------------------------------------------------ 3. ORT study
def ort_study(model: str, weights: Path, data: str, calib: int, threads_list, batches) -> dict:
    """Latency of fp32 vs int8 variants of each stage's ONNX graph in ONNX Runtime (CPU)."""
    import onnx
    import onnxruntime as ort

    from edgepose.export import export
    from edgepose.export.source import build
    from edgepose.quantization.calibration import collect, open_data
    from edgepose.quantization.onnx_ptq import quantize_file
    from edgepose.quantization.scopes import choice_for
    from edgepose.zoo.pretrained import model_spec

    src = build(model, weights)
    spec = model_spec(src.model)
    data_src = open_data(data, spec)
    cal = collect(src.model, data_src.calibration_set, count=calib)
    all_scopes = choice_for(spec.family).scopes()
    work = Path(tempfile.mkdtemp(prefix="int8-ort-"))
    levels = {
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }
    out = {"model": model, "stages": {}}
    try:
        fp32 = export(model, weights=weights, out=work / "fp32", format="onnx", verify=False)
        for stage in src.model.stage_names:
            scopes = tuple(s for s in all_scopes if s.applies_to(stage))
            f32 = fp32.out / f"{stage}.onnx"
            graph = onnx.load(str(f32), load_external_data=False).graph
            depthwise = [
                n.name
                for n in graph.node
                if n.op_type == "Conv" and any(a.name == "group" and a.i > 1 for a in n.attribute)
            ]
            variants = {"fp32": f32}
            from edgepose.quantization.onnx_ptq import LINEAR_OPS

            specs = {
                "qdq per-channel": dict(per_channel=True),
                "qdq per-tensor": dict(per_channel=False),
                "qoperator per-channel": dict(per_channel=True, fmt="qoperator"),
                "qdq per-channel, linear ops only": dict(per_channel=True, op_types=LINEAR_OPS),
            }
            for label, kw in specs.items():
                p = work / f"{stage}.{label.replace(' ', '_')}.onnx"
                quantize_file(f32, p, cal.batches(stage, 8), scopes, **kw)
                variants[label] = p
            if depthwise:  # int8 depthwise convolutions are memory-bound: keep them float
                p = work / f"{stage}.qdq_no_depthwise.onnx"
                quantize_file(
                    f32, p, cal.batches(stage, 8), scopes, per_channel=True, exclude_nodes=depthwise
                )
                variants["qdq per-channel, depthwise float"] = p
            feeds_all = cal.stages[stage]
            n = len(next(iter(feeds_all.values())))
            res = {}
            configs = [(lvl, b, t) for t in threads_list for b in batches for lvl in levels]
            sessions = {}
            for lvl, _b, t in configs:
                for label, path in variants.items():
                    so = ort.SessionOptions()
                    so.intra_op_num_threads = t
                    so.inter_op_num_threads = 1
                    so.graph_optimization_level = levels[lvl]
                    so.log_severity_level = 3
                    sessions[(label, lvl, t)] = sessions.get((label, lvl, t)) or ort.InferenceSession(
                        str(path), so, providers=["CPUExecutionProvider"]
                    )
            for lvl, b, t in configs:
                feed = {k: np.ascontiguousarray(v[np.arange(b) % n]) for k, v in feeds_all.items()}
                samples = {label: [] for label in variants}
                for label in variants:
                    for _ in range(3):
                        sessions[(label, lvl, t)].run(None, feed)
                for _ in range(6):  # interleaved rounds
                    for label in variants:
                        s = sessions[(label, lvl, t)]
                        for _ in range(8):
                            w, c = time.perf_counter(), time.process_time()
                            s.run(None, feed)
                            samples[label].append((time.perf_counter() - w, time.process_time() - c))
                key = f"{lvl} b{b} t{t}"
                res[key] = {
                    label: {
                        "wall_ms": round(1000 * float(np.median([x[0] for x in v])), 3),
                        "cpu_ms": round(1000 * float(np.median([x[1] for x in v])), 3),
                    }
                    for label, v in samples.items()
                }
                log(
                    f"  ort {model}/{stage} {key}: "
                    + ", ".join(f"{k} {v['wall_ms']:.2f}/{v['cpu_ms']:.2f}" for k, v in res[key].items())
                )
            out["stages"][stage] = {"depthwise_convs": len(depthwise), "timings": res}
        return out
    finally:
        shutil.rmtree(work, ignore_errors=True)


# ------------------------------------------------------------------------------------ writing
def write(args, weights_info: dict, scopes: dict, reports: dict, study: dict) -> None:
    from edgepose.bench.report import cpu_name
    from edgepose.core.atomic import atomic_file
    from edgepose.quantization.report import ArtifactReport, markdown

    env = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "load_avg": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }
    payload = {
        "environment": env,
        "args": {k: v for k, v in vars(args).items() if k != "weights"},
        "weights": weights_info,
        "scopes": scopes,
        "reports": reports,
        "ort_study": study,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    with atomic_file(RESULTS / f"{STEM}.json", "w") as f:
        json.dump(payload, f, indent=1, default=str)
    lines = [
        "# INT8 report (`benchmarks/int8_report.py`)",
        "",
        f"CPU: {env['cpu']}, {env['cores']} cores (shared with other jobs; load average "
        f"{env['load_avg']:.1f} at the end). Latency: median ms per call, int8 and fp32 interleaved in "
        f"the same run, {args.threads} intra-op thread(s), summed over a model's stages (per crop; the "
        "temporal models' steady state). Accuracy: the split's own metric (PoseTrack mAP for DSTA and "
        "TAR-ViTPose, COCO AP for DistilPose and SHaRPose) on the val split of the synthetic benchmark.",
        "",
        "## Weights",
        "",
    ]
    for m, w in weights_info.items():
        lines.append(f"- `{m}`: {w.get('source')}" + (f"; epoch {w['epoch']}" if w.get("epoch") else ""))
    rows = []
    for rep in reports.values():
        for a in rep.get("artifacts", []):
            rows.append(ArtifactReport(**{k: a[k] for k in ArtifactReport.__dataclass_fields__}))
    if rows:
        lines += ["", "## Artifacts", "", markdown(rows)]
        for key, rep in reports.items():
            q = rep.get("qat")
            lines.append(
                f"- {key}: evaluation {rep['evaluation']}; calibration {rep['calibration']}; "
                f"float scopes {', '.join(rep['float_scopes']['scopes']) or 'none'}"
                + (
                    f"; QAT {q['steps']} steps in {q['seconds']} s on {q['device']}, loss "
                    f"{q['first_loss']} -> {q['last_loss']}"
                    if q
                    else ""
                )
            )
    if scopes:
        lines += [
            "",
            "## Float scopes: the measurement (ONNX Runtime PTQ)",
            "",
            "| model | kept in float | metric | drop | PCKh@0.5 | kp mean / p90 px |",
            "|---|---|---|---|---|---|",
        ]
        for m, s in scopes.items():
            lines.append(f"| {m} | (fp32) | {s['fp32']['metric']} | 0 | {s['fp32']['pckh@0.5']} | - |")
            for label, v in s["variants"].items():
                lines.append(
                    f"| {m} | {label} | {v['metric']} | {v['drop']} | {v['pckh@0.5']} | "
                    f"{v['mean_px']} / {v['p90_px']} |"
                )
    if study:
        lines += ["", "## ONNX Runtime int8 speed study", "", "wall / CPU ms per call (median)", ""]
        for m, s in study.items():
            for stage, st in s["stages"].items():
                labels = list(next(iter(st["timings"].values())))
                lines += [
                    f"### {m} / {stage}",
                    "",
                    "| setting | " + " | ".join(labels) + " |",
                    "|---|" + "---|" * len(labels),
                ]
                for key, r in st["timings"].items():
                    lines.append(
                        f"| {key} | "
                        + " | ".join(f"{r[k]['wall_ms']} / {r[k]['cpu_ms']}" for k in labels)
                        + " |"
                    )
                lines.append("")
    if args.notes and Path(args.notes).is_file():
        lines += ["", Path(args.notes).read_text()]
    with atomic_file(RESULTS / f"{STEM}.md", "w") as f:
        f.write("\n".join(lines) + "\n")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--methods", default="ptq,qat")
    ap.add_argument("--formats", default="all")
    ap.add_argument("--data", default=str(ROOT / "runs" / "train_synthetic" / "data"))
    ap.add_argument("--runs", default=str(ROOT / "runs" / "train_synthetic" / "runs"))
    ap.add_argument("--weights", action="append", default=[], help="MODEL=PATH (repeatable)")
    ap.add_argument("--work", default=str(ROOT / "runs" / "int8_report"))
    ap.add_argument("--calib", type=int, default=256)
    ap.add_argument("--eval-limit", type=int, default=1000)
    ap.add_argument("--qat-epochs", type=float, default=1.0)
    ap.add_argument("--qat-steps", type=int, default=None)
    ap.add_argument("--qat-batch-size", type=int, default=16)
    ap.add_argument("--coreml-mode", default="w8")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--measure-scopes", action="store_true")
    ap.add_argument("--ort-study", action="store_true")
    ap.add_argument(
        "--skip-report", action="store_true", help="only the parts asked for with the flags above"
    )
    ap.add_argument("--refresh", action="store_true", help="recompute cached parts (and re-copy the weights)")
    ap.add_argument(
        "--notes", default=str(RESULTS / f"{STEM}.notes.md"), help="markdown appended to the report"
    )
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(max(1, args.threads))
    work = Path(args.work)
    overrides = dict(w.split("=", 1) for w in args.weights)
    models = [m for m in args.models.split(",") if m]
    weights_info, scopes, reports, study = {}, {}, {}, {}
    for m in models:
        path, how = find_weights(m, Path(args.runs), overrides)
        if path is None:
            weights_info[m] = {"path": None, "source": how}
            log(f"{m}: skipped: {how}")
            continue
        path = snapshot(path, work / "weights" / f"{m}.pt", args.refresh)  # training may still be writing
        from edgepose.zoo.checkpoints import file_sha256

        weights_info[m] = {
            "path": str(path),
            "source": how,
            "sha256": file_sha256(path),
            **checkpoint_summary(path),
        }
        log(f"{m}: weights {how}")
        if args.measure_scopes:
            scopes[m] = cached(
                work,
                f"scopes-{m}",
                lambda: measure_scopes(
                    m, path, args.data, args.calib, min(args.eval_limit, 600), args.threads
                ),
                args.refresh,
            )
        if args.ort_study:
            study[m] = cached(
                work, f"ort-{m}", lambda: ort_study(m, path, args.data, 64, (1, 2), (1, 8)), args.refresh
            )
        if not args.skip_report:
            for method in [x for x in args.methods.split(",") if x]:
                reports[f"{m}/{method}"] = cached(
                    work, f"report-{m}-{method}", lambda: run_quantize(m, path, method, args), args.refresh
                )
    # keep parts measured in earlier invocations
    for part, store in (("scopes", scopes), ("ort", study), ("report", reports)):
        for f in sorted(work.glob(f"{part}-*.json")):
            key = f.stem[len(part) + 1 :]
            if part == "report":
                key = "/".join(key.rsplit("-", 1))
            store.setdefault(key, json.loads(f.read_text()))
    write(args, weights_info, scopes, reports, study)
    log(f"wrote {RESULTS / (STEM + '.md')} and .json")
    return 0


if __name__ == "__main__":
    sys.exit(main())

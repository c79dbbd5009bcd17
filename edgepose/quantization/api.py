"""``quantize()``: a trained zoo model -> verified int8 bundles with a report, written atomically.

    from edgepose.quantization import quantize
    result = quantize("dsta_mnv2", weights="dsta.pt", method="ptq", data="data/posetrack",
                      format="all", out="bundles/dsta-int8")
    result.print()                       # the report table; result.to_dict() for JSON

Steps: build the model; draw the calibration set from the data's train split through the
inference preprocessing (``calibration``); with ``method="qat"`` fine-tune it with PT2E
fake quantisation on the train split (``qat``); export int8 bundles through
``edgepose.export.export`` with the int8 hook (``hook``) and fp32 twins of the same formats
(for size and latency); score fp32 and every int8 artifact on the val split
(``evaluate``); check each int8 stage on real crops (``check``); time int8 against fp32
(``latency``). The report goes into each bundle's manifest (``extra["int8_report"]``, with
the check as its ``verification``) and into ``int8_report.json`` at ``out``. Bundles are
staged and swapped in only when everything passed; a failing check raises and leaves
``out`` untouched unless ``strict=False``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ..core.atomic import atomic_dir, atomic_file, clean_temp_dirs, make_temp_dir
from ..core.manifest import read_manifest, write_manifest
from ..export.exporter import TEMP_PREFIXES
from ..export.formats import ExportError, resolve_formats
from .report import REPORT_KEY, ArtifactReport, markdown, table

METHODS = ("ptq", "qat")
REPORT_NAME = "int8_report.json"
QAT_WEIGHTS = "qat_weights.pt"


class QuantizationError(ExportError):
    """An int8 artifact that could not be made or did not pass its check; the message says what to do."""


@dataclass
class QuantizeResult:
    model: str
    method: str
    out: Path
    rows: list[ArtifactReport]
    fp32_accuracy: dict[str, Any]
    evaluation: str
    calibration: str
    float_scopes: dict
    seconds: dict[str, float] = field(default_factory=dict)
    qat: dict | None = None
    notes: list[str] = field(default_factory=list)

    def __getitem__(self, fmt: str) -> ArtifactReport:
        for r in self.rows:
            if r.format == fmt:
                return r
        raise KeyError(f"no {fmt} artifact; formats: {[r.format for r in self.rows]}")

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "method": self.method,
            "out": str(self.out),
            "fp32_accuracy": self.fp32_accuracy,
            "evaluation": self.evaluation,
            "calibration": self.calibration,
            "float_scopes": self.float_scopes,
            "qat": self.qat,
            "seconds": {k: round(v, 1) for k, v in self.seconds.items()},
            "artifacts": [r.to_dict() for r in self.rows],
            "notes": self.notes,
        }

    def print(self, console=None) -> None:
        from rich.console import Console

        console = console or Console()
        console.print(table(self.rows, f"edgepose quantize {self.model} ({self.method}) -> {self.out}"))
        console.print(f"[dim]evaluation: {self.evaluation}; calibration: {self.calibration}[/]")
        console.print(f"[dim]float scopes: {', '.join(self.float_scopes.get('scopes', [])) or 'none'}[/]")
        for n in self.notes + [n for r in self.rows for n in r.notes]:
            console.print(f"[yellow]note[/] {n}")

    def markdown(self) -> str:
        return markdown(self.rows)


def _task_state(weights) -> dict | None:
    """Training-only task parameters (e.g. DSTA's RLE flow) saved in a training checkpoint, if any."""
    if weights is None:
        return None
    from ..zoo.checkpoints import read_checkpoint

    train = read_checkpoint(weights).get("train") or {}
    state = train.get("task")
    return state if state else None


def _simulated_coreml(model, mode: str, hook) -> tuple[torch.nn.Module | None, str]:
    from .coreml_int8 import simulate_weights_int8

    if mode == "w8":
        return simulate_weights_int8(model), ("simulated in PyTorch: int8 per-channel weights as "
                                              "linear_quantize_weights stores them (Core ML predicts on macOS only)")
    return None, "not measured: Core ML W8A8 predicts on macOS only"


def quantize(
    model: str | Any,
    *,
    out: str | os.PathLike,
    weights: str | os.PathLike | None = None,
    method: str = "ptq",
    data: str | os.PathLike = "synthetic",
    calib: int = 256,
    epochs: float = 1.0,
    format: str | list[str] = "all",  # noqa: A002 - the CLI's word
    float_scopes: list[str] | None = None,
    eval_limit: int | None = 1000,
    latency: bool = True,
    batches: tuple[int, ...] = (1, 8),
    threads: int | None = 1,
    qat_steps: int | None = None,
    qat_batch_size: int = 16,
    qat_lr: float | None = None,
    device: str = "auto",
    options: dict | None = None,
    strict: bool = True,
    seed: int = 0,
    onnx_exporter: str = "auto",
    progress: Callable[[str], None] | None = None,
) -> QuantizeResult:
    """Quantise ``model`` to int8 bundles in ``format`` (``"all"``, a name or a list) under ``out``.

    ``data``: a dataset directory (PoseTrack and/or COCO form; train split calibrates and
    trains, val split evaluates) or ``"synthetic"``. ``calib``: calibration samples.
    ``method``: ``ptq`` or ``qat`` (``epochs`` of fine-tuning, at most ``qat_steps`` steps).
    ``float_scopes``: candidate names from ``scopes.FLOAT_SCOPES`` to keep in float (default:
    the family's measured choice). ``eval_limit``: persons evaluated (whole videos).
    ``options``: quantiser knobs (``calibration_method``, ``per_channel``, ``onnx_format``,
    ``coreml_mode`` ``w8``/``w8a8``, ``transformer``). ``onnx_exporter``: as ``export`` (QAT graphs
    always go through the dynamo exporter).
    """
    from ..export import source as source_mod
    from ..export.exporter import _check_out, export
    from ..zoo.pretrained import model_spec
    from . import evaluate as ev
    from .calibration import collect, open_data
    from .check import check
    from .hook import Int8Hook
    from .latency import measure
    from .scopes import resolve

    say = progress or (lambda s: None)
    model, weights = source_mod.adopt_pretrained(model, weights)  # weights="pretrained": the shipped ones
    if method not in METHODS:
        raise QuantizationError(f"method must be one of {METHODS}, got {method!r}")
    formats = resolve_formats(format)
    for f in formats:
        f.require()
    out = Path(out)
    targets = _check_out(out, formats)
    options = dict(options or {})
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    src = source_mod.build(model, weights)
    spec = model_spec(src.model)
    scopes = resolve(spec.family, float_scopes)
    clean_temp_dirs(TEMP_PREFIXES)  # work dirs of killed exports and quantisations
    work = make_temp_dir("edgepose-quantize-")
    notes: list[str] = []
    try:
        data_src = open_data(data, spec, cache_dir=work, seed=seed)
        calibration = collect(src.model, data_src.calibration_set, count=calib,
                              description=f"{min(calib, len(data_src.calibration_set))} crops spread over the "
                              f"train split of {data_src.root}")
        say(f"calibration: {calibration.description}")
        timings["calibration"] = time.perf_counter() - t0

        export_model, qat_result, qat_info = src.model, None, None
        if method == "qat":
            from ..training.recipes import recipe_for
            from ..training.tasks import build_task
            from .qat import fine_tune_augmentation, finetune

            t = time.perf_counter()
            recipe = recipe_for(spec, synthetic=True)
            heat = build_task(spec, src.model, **({"gt_teacher": True} if spec.family == "distilpose" else {}),
                              **recipe.task_options).heatmap_size()
            train_set = data_src.dataset("train", train=True, heatmap_size=heat,
                                         **recipe.dataset_options(spec.layout))
            train_set.augment = fine_tune_augmentation()
            qat_result = finetune(src.model, spec, train_set, scopes, epochs=epochs, max_steps=qat_steps,
                                  batch_size=min(qat_batch_size, len(train_set)), lr=qat_lr, device=device,
                                  task_state=_task_state(weights), seed=seed, log=say)
            export_model = qat_result.model
            export_model.spec_name = src.model.spec_name
            qat_info = qat_result.summary()
            timings["qat"] = time.perf_counter() - t
            # the formats quantised from weights calibrate on the fine-tuned model's own activations
            calibration = collect(export_model, data_src.calibration_set, count=calib,
                                  description=calibration.description)
        hook = Int8Hook(calibration, scopes, options,
                        qat_modules=qat_result.modules if qat_result else None,
                        qat_float_nodes=qat_result.float_nodes if qat_result else {})
        t = time.perf_counter()
        # the manifest records the checkpoint where there is one (PTQ from --weights), else the model's state
        by_path = method == "ptq" and weights is not None and isinstance(model, str)
        source = (model, {"weights": weights}) if by_path else (export_model, {})
        fmt_names = [f.name for f in formats]
        int8 = export(source[0], out=work / "int8", format=fmt_names, precision="int8", hook=hook, verify=False,
                      progress=say, onnx_exporter=onnx_exporter if method == "ptq" else "auto", **source[1])
        fp32 = export(source[0] if by_path else src.model, out=work / "fp32", format=fmt_names, precision="fp32",
                      verify=False, onnx_exporter=onnx_exporter, **source[1])
        timings["export"] = time.perf_counter() - t

        t = time.perf_counter()
        evalset = ev.build(data_src, eval_limit)
        say(f"evaluation set: {evalset.describe()}")
        ref = ev.evaluate_model(src.model, evalset)
        ref_kp = ref.pop("keypoints")
        crops = evalset.x[: min(32, len(evalset))].astype(np.float32)
        lat = {}
        if latency:
            pairs = {}
            for f in formats:
                if f.numeric_check_reason() is None:
                    pairs[f"{f.name}/int8"] = int8[f.name].path
                    pairs[f"{f.name}/fp32"] = fp32[f.name].path
            say("timing int8 against fp32 ...")
            lat = measure(pairs, calibration, batches=batches, threads=threads) if pairs else {}
        rows = []
        for f in formats:
            b8 = int8[f.name]
            if f.numeric_check_reason() is None:
                acc = ev.evaluate_bundle(b8.path, evalset, threads=threads)
                how = f"measured in {f.backend} (CPU)"
            else:
                sim, how = _simulated_coreml(export_model, options.get("coreml_mode", "w8"), hook)
                acc = ev.evaluate_model(sim, evalset) if sim is not None else {"keypoints": None}
            kp = acc.pop("keypoints")
            dev = ev.keypoint_deviation(kp, ref_kp) if kp is not None else {}
            verifications, detail = check(b8.path, b8.manifest, export_model, crops, threads=threads)
            row = ArtifactReport(
                model=src.name, method=method, format=f.name, path=str(targets[f.name]),
                size_bytes=b8.size_bytes, fp32_size_bytes=fp32[f.name].size_bytes,
                accuracy={k: v for k, v in acc.items()}, fp32_accuracy=ref, deviation=dev, accuracy_source=how,
                latency_ms={"int8": lat.get(f"{f.name}/int8", {}).get("total", {}),
                            "fp32": lat.get(f"{f.name}/fp32", {}).get("total", {}),
                            "stages_int8": lat.get(f"{f.name}/int8", {}).get("stages", {}),
                            "stages_fp32": lat.get(f"{f.name}/fp32", {}).get("stages", {}),
                            "cpu_int8": lat.get(f"{f.name}/int8", {}).get("cpu_total", {}),
                            "cpu_fp32": lat.get(f"{f.name}/fp32", {}).get("cpu_total", {}),
                            "threads": threads},
                float_scopes=[str(s) for s in scopes.scopes], calibration=calibration.description,
                verified=None if any(v.passed is None for v in verifications) else all(v.passed for v in
                                                                                       verifications),
                notes=list(b8.notes), qat=qat_info,
            )
            rows.append(row)
            manifest = read_manifest(b8.path).replace(
                verification=tuple(verifications),
                extra={**b8.manifest.extra, "verification_detail": detail, REPORT_KEY: row.to_dict()},
            )
            write_manifest(b8.path, manifest)
            failures = [f"{f.name}/{v.stage}: {v.reason}" for v in verifications if v.passed is False]
            if failures and strict:
                raise QuantizationError(
                    "int8 check against PyTorch failed:\n  " + "\n  ".join(failures)
                    + "\nNothing was written; strict=False (--no-strict) keeps the bundles anyway."
                )
            notes += failures
        timings["evaluate"] = time.perf_counter() - t
        result = QuantizeResult(src.name, method, out, rows, ref, evalset.describe(), calibration.description,
                                scopes.to_dict(), timings, qat_info, notes)
        _install(out, targets, {f.name: int8[f.name].path for f in formats}, result,
                 export_model if method == "qat" else None)
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _install(out: Path, targets: dict[str, Path], built: dict[str, Path], result: QuantizeResult, qat_model) -> None:
    """Swap the staged bundles in together, with the report (and QAT weights) at ``out``."""
    from ..zoo.checkpoints import save_checkpoint

    created = not out.exists()
    try:
        with contextlib.ExitStack() as stack:
            for fmt, target in targets.items():
                staging = stack.enter_context(atomic_dir(target))
                shutil.copytree(built[fmt], staging, dirs_exist_ok=True)
        out.mkdir(parents=True, exist_ok=True)
        if qat_model is not None:
            save_checkpoint(qat_model, out / QAT_WEIGHTS, meta={"note": "QAT-fine-tuned float weights "
                                                                 "(TFLite/Core ML int8 were quantised from these)"})
        with atomic_file(out / REPORT_NAME, "w") as f:
            json.dump(result.to_dict(), f, indent=1, default=str)
    except BaseException:
        if created and out.is_dir() and not any(out.iterdir()):
            out.rmdir()
        raise

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

With several formats (``format="all"`` or a list), each format is exported, checked and
installed on its own: a format that fails (its converter raises, or its strict int8 check
fails) is reported in ``QuantizeResult.failures`` and the others are still written
(``edgepose quantize`` prints the failures in a table and exits non-zero); only when every
format failed does ``quantize`` raise. With one format a failure raises, as ever.

The steps are named functions taking small dataclasses: ``QuantizeRequest`` (what to make)
holding ``DataOptions``, ``QatOptions`` and ``ReportOptions``; ``prepare`` -> ``calibrate`` ->
``fine_tune`` (QAT) -> per format ``export_pair`` and ``report_format`` -> ``install``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..core.atomic import atomic_dir, atomic_file, clean_temp_dirs, make_temp_dir
from ..core.formats import Format
from ..core.manifest import read_manifest, write_manifest
from ..export import source as source_mod
from ..export.exporter import INT8_REPORT, TEMP_PREFIXES, BundleResult, check_out, export
from ..export.formats import ExportError, resolve_formats
from ..families import get_family
from ..zoo.checkpoints import read_checkpoint, save_checkpoint
from ..zoo.pretrained import model_spec
from . import evaluate as ev
from .calibration import Calibration, collect, model_inputs, open_data, spread
from .check import check
from .coreml_int8 import simulate_weights_int8
from .hook import Int8Hook
from .latency import measure
from .report import REPORT_KEY, ArtifactReport, markdown, table
from .scopes import FloatScopes, options_for, resolve

METHODS = ("ptq", "qat")
REPORT_NAME = INT8_REPORT  # named by the exporter, whose check_out accepts it in a root of bundles
QAT_WEIGHTS = "qat_weights.pt"
STRICT_HINT = (
    "Nothing was written for it. To keep such bundles anyway: Python quantize(..., strict=False); "
    "CLI edgepose quantize ... --no-strict"
)


class QuantizationError(ExportError):
    """An int8 artifact that could not be made or did not pass its check; the message says what to do."""


# ----------------------------------------------------------------------------- what to make


@dataclass(frozen=True)
class DataOptions:
    """Where calibration, fine-tuning and evaluation data come from."""

    data: str | os.PathLike = "synthetic"
    calib: int = 256  # calibration samples, spread over the train split
    eval_limit: int | None = 1000  # persons evaluated (whole videos)
    seed: int = 0


@dataclass(frozen=True)
class QatOptions:
    epochs: float = 1.0
    steps: int | None = None
    batch_size: int = 16
    lr: float | None = None
    device: str = "auto"


@dataclass(frozen=True)
class ReportOptions:
    latency: bool = True
    batches: tuple[int, ...] = (1, 8)
    threads: int | None = 1
    strict: bool = True


@dataclass(frozen=True)
class QuantizeRequest:
    model: Any  # a zoo name or a model
    out: Path
    formats: tuple[Format, ...]
    weights: str | os.PathLike | None = None
    method: str = "ptq"
    float_scopes: tuple[str, ...] | None = None
    options: dict = field(default_factory=dict, hash=False)  # quantiser knobs
    onnx_exporter: str = "auto"
    data: DataOptions = DataOptions()
    qat: QatOptions = QatOptions()
    report: ReportOptions = ReportOptions()

    @property
    def keep_going(self) -> bool:
        """Several formats: one failing does not lose the others."""
        return len(self.formats) > 1


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
    failures: dict[str, str] = field(default_factory=dict)  # format -> why nothing was written for it

    @property
    def ok(self) -> bool:
        return not self.failures

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
            "failures": self.failures,
            "notes": self.notes,
        }

    def print(self, console=None) -> None:
        from rich.console import Console  # lazy: rich

        console = console or Console()
        if self.rows:
            console.print(table(self.rows, f"edgepose quantize {self.model} ({self.method}) -> {self.out}"))
        console.print(f"[dim]evaluation: {self.evaluation}; calibration: {self.calibration}[/]")
        console.print(f"[dim]float scopes: {', '.join(self.float_scopes.get('scopes', [])) or 'none'}[/]")
        for n in self.notes + [n for r in self.rows for n in r.notes]:
            console.print(f"[yellow]note[/] {n}")
        if self.failures:
            console.print(failure_table(self.failures))

    def markdown(self) -> str:
        return markdown(self.rows)


def failure_table(failures: dict[str, str]):
    """The formats that failed (nothing written for them) and why, one row each."""
    from rich.table import Table  # lazy: rich

    t = Table(title=f"{len(failures)} format(s) failed: nothing written for them", title_justify="left")
    t.add_column("format", no_wrap=True)
    t.add_column("why")
    for fmt, why in failures.items():
        t.add_row(fmt, why, style="red")
    return t


@dataclass
class Prepared:
    """The built model and what the steps share."""

    src: Any  # export.source.Source
    spec: Any
    scopes: FloatScopes
    targets: dict[str, Path]
    work: Path
    say: Callable[[str], None]
    timings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass
class Calibrated:
    data_src: Any  # calibration.DataSource
    calibration: Calibration
    export_model: Any  # the model the int8 bundles come from (the QAT-fine-tuned one with QAT)
    qat_result: Any = None
    qat_info: dict | None = None


@dataclass
class Reference:
    """The fp32 PyTorch model scored on the evaluation set, and crops for the int8 check."""

    evalset: Any
    accuracy: dict
    keypoints: np.ndarray
    crops: np.ndarray


# ----------------------------------------------------------------------------- the steps


def _task_state(weights) -> dict | None:
    """Training-only task parameters (e.g. DSTA's RLE flow) saved in a training checkpoint, if any."""
    if weights is None:
        return None
    train = read_checkpoint(weights).get("train") or {}
    state = train.get("task")
    return state if state else None


def _simulated_coreml(model, mode: str) -> tuple[torch.nn.Module | None, str]:
    if mode == "w8":
        return simulate_weights_int8(model), (
            "simulated in PyTorch: int8 per-channel weights as "
            "linear_quantize_weights stores them (Core ML predicts on macOS only)"
        )
    return None, "not measured: Core ML W8A8 predicts on macOS only"


def prepare(req: QuantizeRequest, work: Path, say: Callable[[str], None]) -> Prepared:
    """Build the model and resolve its float scopes; refuse an ``out`` that is not ours."""
    targets = check_out(req.out, list(req.formats))
    say(f"building {req.model if isinstance(req.model, str) else type(req.model).__name__} ...")
    src = source_mod.build(req.model, req.weights)
    spec = model_spec(src.model)
    scopes = resolve(spec.family, list(req.float_scopes) if req.float_scopes is not None else None)
    return Prepared(src, spec, scopes, targets, work, say)


def calibrate(req: QuantizeRequest, prep: Prepared) -> Calibrated:
    """Open the data and collect the calibration set from the fp32 model."""
    t = time.perf_counter()
    d = req.data
    data_src = open_data(d.data, prep.spec, cache_dir=prep.work, seed=d.seed)
    labelled = getattr(data_src, "labelled", True)
    if req.method == "qat" and not labelled:
        raise QuantizationError(
            f"QAT fine-tunes on labels; --data {d.data} is unlabelled footage (PTQ calibration only): "
            "pass a labelled dataset directory (e.g. one `edgepose label` wrote) or --method ptq"
        )
    n = min(d.calib, len(data_src.calibration_set))
    where = f"the train split of {data_src.root}" if labelled else data_src.describe()
    description = f"{n} crops spread over {where}"
    prep.say(f"calibration: collecting {n} crops ...")
    calibration = collect(
        prep.src.model, data_src.calibration_set, count=d.calib, description=description, progress=prep.say
    )
    prep.say(f"calibration: {calibration.description}")
    prep.timings["calibration"] = time.perf_counter() - t
    return Calibrated(data_src, calibration, prep.src.model)


def fine_tune(req: QuantizeRequest, prep: Prepared, cal: Calibrated) -> Calibrated:
    """QAT: fine-tune with fake quantisation; later formats calibrate on the fine-tuned activations."""
    from ..training.recipes import recipe_for  # lazy: training
    from ..training.tasks import build_task  # lazy: training
    from .qat import fine_tune_augmentation, finetune  # lazy: torchao

    t = time.perf_counter()
    spec, q = prep.spec, req.qat
    recipe = recipe_for(spec, synthetic=True)
    options = {**get_family(spec).qat_data_options, **recipe.task_options}
    heat = build_task(spec, prep.src.model, **options).heatmap_size()
    train_set = cal.data_src.dataset(
        "train", train=True, heatmap_size=heat, **recipe.dataset_options(spec.layout)
    )
    train_set.augment = fine_tune_augmentation()
    prep.say("QAT: fine-tuning ...")
    result = finetune(
        prep.src.model,
        spec,
        train_set,
        prep.scopes,
        epochs=q.epochs,
        max_steps=q.steps,
        batch_size=min(q.batch_size, len(train_set)),
        lr=q.lr,
        device=q.device,
        task_state=_task_state(req.weights),
        seed=req.data.seed,
        log=prep.say,
    )
    model = result.model
    model.spec_name = prep.src.model.spec_name
    prep.timings["qat"] = time.perf_counter() - t
    prep.say("calibration: again, on the fine-tuned model ...")
    calibration = collect(
        model,
        cal.data_src.calibration_set,
        count=req.data.calib,
        description=cal.calibration.description,
        progress=prep.say,
    )
    return Calibrated(cal.data_src, calibration, model, result, result.summary())


def make_hook(req: QuantizeRequest, prep: Prepared, cal: Calibrated) -> Int8Hook:
    qat = cal.qat_result
    return Int8Hook(
        cal.calibration,
        prep.scopes,
        options_for(prep.spec.family, req.options),  # the family's measured knobs, the caller's on top
        qat_modules=qat.modules if qat else None,
        qat_float_nodes=qat.float_nodes if qat else {},
    )


def export_pair(
    req: QuantizeRequest, prep: Prepared, cal: Calibrated, hook: Int8Hook, fmt: Format
) -> tuple[BundleResult, BundleResult]:
    """One format's int8 bundle and its fp32 twin (for size and latency), in the work directory."""
    # the manifest records the checkpoint where there is one (PTQ from --weights), else the model's state
    by_path = req.method == "ptq" and req.weights is not None and isinstance(req.model, str)
    source, kw = (req.model, {"weights": req.weights}) if by_path else (cal.export_model, {})
    prep.say(f"{fmt.name}: int8 conversion ...")
    int8 = export(
        source,
        out=prep.work / "int8" / fmt.name,
        format=[fmt.name],
        precision="int8",
        hook=hook,
        verify=False,
        progress=prep.say,
        onnx_exporter=req.onnx_exporter if req.method == "ptq" else "auto",
        **kw,
    )
    prep.say(f"{fmt.name}: fp32 twin ...")
    fp32 = export(
        source if by_path else prep.src.model,
        out=prep.work / "fp32" / fmt.name,
        format=[fmt.name],
        precision="fp32",
        verify=False,
        onnx_exporter=req.onnx_exporter,
        progress=prep.say,
        **kw,
    )
    return int8[fmt.name], fp32[fmt.name]


def reference(req: QuantizeRequest, prep: Prepared, cal: Calibrated) -> Reference:
    if not getattr(
        cal.data_src, "labelled", True
    ):  # unlabelled footage: nothing to score, check on its crops
        ds = cal.data_src.calibration_set
        crops = model_inputs(ds, spread(len(ds), 32)).numpy().astype(np.float32)
        prep.say("evaluation: none (unlabelled footage); the int8 check runs on calibration crops")
        return Reference(None, {}, None, crops)
    evalset = ev.build(cal.data_src, req.data.eval_limit)
    prep.say(f"evaluation set: {evalset.describe()}; scoring fp32 PyTorch ...")
    ref = ev.evaluate_model(prep.src.model, evalset, progress=prep.say)
    kp = ref.pop("keypoints")
    crops = evalset.x[: min(32, len(evalset))].astype(np.float32)
    return Reference(evalset, ref, kp, crops)


def time_formats(
    req: QuantizeRequest, prep: Prepared, cal: Calibrated, built: dict[str, tuple[BundleResult, BundleResult]]
) -> dict:
    """int8 against fp32 per format that runs here, interleaved."""
    if not req.report.latency:
        return {}
    pairs = {}
    for f in req.formats:
        if f.name in built and f.numeric_check_reason() is None:
            pairs[f"{f.name}/int8"] = built[f.name][0].path
            pairs[f"{f.name}/fp32"] = built[f.name][1].path
    if not pairs:
        return {}
    prep.say("timing int8 against fp32 ...")
    return measure(pairs, cal.calibration, batches=req.report.batches, threads=req.report.threads)


def report_format(
    req: QuantizeRequest,
    prep: Prepared,
    cal: Calibrated,
    ref: Reference,
    fmt: Format,
    pair: tuple[BundleResult, BundleResult],
    lat: dict,
) -> tuple[ArtifactReport, list[str]]:
    """Score one int8 bundle, check it stage by stage on real crops, record both in its manifest.

    Returns the report row and the check's failures (empty: passed)."""
    b8, b32 = pair
    threads = req.report.threads
    prep.say(f"{fmt.name}: evaluating int8 ...")
    if ref.evalset is None:
        acc, how = {"keypoints": None}, "not scored: calibrated on unlabelled footage"
    elif fmt.numeric_check_reason() is None:
        acc = ev.evaluate_bundle(b8.path, ref.evalset, threads=threads, progress=prep.say)
        how = f"measured in {fmt.backend} (CPU)"
    else:
        sim, how = _simulated_coreml(cal.export_model, req.options.get("coreml_mode", "w8"))
        acc = (
            ev.evaluate_model(sim, ref.evalset, progress=prep.say) if sim is not None else {"keypoints": None}
        )
    kp = acc.pop("keypoints")
    dev = ev.keypoint_deviation(kp, ref.keypoints) if kp is not None else {}
    prep.say(f"{fmt.name}: checking int8 stages against PyTorch ...")
    verifications, detail = check(b8.path, b8.manifest, cal.export_model, ref.crops, threads=threads)
    mine = {k: v for k, v in lat.items() if k.startswith(f"{fmt.name}/")}
    row = ArtifactReport(
        model=prep.src.name,
        method=req.method,
        format=fmt.name,
        path=str(prep.targets[fmt.name]),
        size_bytes=b8.size_bytes,
        fp32_size_bytes=b32.size_bytes,
        accuracy=dict(acc),
        fp32_accuracy=ref.accuracy,
        deviation=dev,
        accuracy_source=how,
        latency_ms={
            "int8": mine.get(f"{fmt.name}/int8", {}).get("total", {}),
            "fp32": mine.get(f"{fmt.name}/fp32", {}).get("total", {}),
            "stages_int8": mine.get(f"{fmt.name}/int8", {}).get("stages", {}),
            "stages_fp32": mine.get(f"{fmt.name}/fp32", {}).get("stages", {}),
            "cpu_int8": mine.get(f"{fmt.name}/int8", {}).get("cpu_total", {}),
            "cpu_fp32": mine.get(f"{fmt.name}/fp32", {}).get("cpu_total", {}),
            "threads": threads,
        },
        float_scopes=[str(s) for s in prep.scopes.scopes],
        calibration=cal.calibration.description,
        verified=None
        if any(v.passed is None for v in verifications)
        else all(v.passed for v in verifications),
        notes=list(b8.notes),
        qat=cal.qat_info,
    )
    manifest = read_manifest(b8.path).replace(
        verification=tuple(verifications),
        extra={**b8.manifest.extra, "verification_detail": detail, REPORT_KEY: row.to_dict()},
    )
    write_manifest(b8.path, manifest)
    return row, [f"{fmt.name}/{v.stage}: {v.reason}" for v in verifications if v.passed is False]


def strict_error(failures: list[str]) -> QuantizationError:
    return QuantizationError(
        "int8 check against PyTorch failed:\n  " + "\n  ".join(failures) + "\n" + STRICT_HINT
    )


def _one_line(e: BaseException) -> str:
    lines = [ln.strip() for ln in str(e).strip().splitlines() if ln.strip()]
    return f"{type(e).__name__}: {' '.join(lines[:3])[:400]}" if lines else type(e).__name__


def install(
    out: Path, targets: dict[str, Path], built: dict[str, Path], result: QuantizeResult, qat_model
) -> None:
    """Swap the staged bundles in together, with the report (and QAT weights) at ``out``."""
    created = not out.exists()
    try:
        with contextlib.ExitStack() as stack:
            for fmt, path in built.items():
                staging = stack.enter_context(atomic_dir(targets[fmt]))
                shutil.copytree(path, staging, dirs_exist_ok=True)
        out.mkdir(parents=True, exist_ok=True)
        if qat_model is not None:
            save_checkpoint(
                qat_model,
                out / QAT_WEIGHTS,
                meta={"note": "QAT-fine-tuned float weights (TFLite/Core ML int8 were quantised from these)"},
            )
        with atomic_file(out / REPORT_NAME, "w") as f:
            json.dump(result.to_dict(), f, indent=1, default=str)
    except BaseException:
        if created and out.is_dir() and not any(out.iterdir()):
            out.rmdir()
        raise


def run(req: QuantizeRequest, progress: Callable[[str], None] | None = None) -> QuantizeResult:
    """The steps, in order, for a checked request (see ``quantize``)."""
    say = progress or (lambda s: None)
    clean_temp_dirs(TEMP_PREFIXES)  # work dirs of killed exports and quantisations
    work = make_temp_dir("edgepose-quantize-")
    try:
        prep = prepare(req, work, say)
        cal = calibrate(req, prep)
        if req.method == "qat":
            cal = fine_tune(req, prep, cal)
        hook = make_hook(req, prep, cal)
        failures: dict[str, str] = {}

        t = time.perf_counter()
        built: dict[str, tuple[BundleResult, BundleResult]] = {}
        for i, fmt in enumerate(req.formats, 1):
            say(f"format {i}/{len(req.formats)}: {fmt.name}")
            try:
                built[fmt.name] = export_pair(req, prep, cal, hook, fmt)
            except Exception as e:
                if not req.keep_going:
                    raise
                failures[fmt.name] = f"export: {_one_line(e)}"
                say(f"{fmt.name}: FAILED ({failures[fmt.name]}); going on with the other formats")
        prep.timings["export"] = time.perf_counter() - t
        if not built:
            raise QuantizationError(
                "no format could be quantised:\n  " + "\n  ".join(f"{k}: {v}" for k, v in failures.items())
            )

        t = time.perf_counter()
        ref = reference(req, prep, cal)
        lat = time_formats(req, prep, cal, built)
        rows, ok = [], {}
        for fmt in req.formats:
            if fmt.name not in built:
                continue
            try:
                row, bad = report_format(req, prep, cal, ref, fmt, built[fmt.name], lat)
            except Exception as e:
                if not req.keep_going:
                    raise
                failures[fmt.name] = f"evaluation/check: {_one_line(e)}"
                continue
            if bad and req.report.strict:
                if not req.keep_going:
                    raise strict_error(bad)
                failures[fmt.name] = "int8 check failed: " + "; ".join(bad) + ". " + STRICT_HINT
                continue
            prep.notes += bad
            rows.append(row)
            ok[fmt.name] = built[fmt.name][0].path
        prep.timings["evaluate"] = time.perf_counter() - t
        prep.timings.setdefault("calibration", 0.0)
        if not ok:
            raise QuantizationError(
                "no format passed:\n  " + "\n  ".join(f"{k}: {v}" for k, v in failures.items())
            )
        result = QuantizeResult(
            prep.src.name,
            req.method,
            req.out,
            rows,
            ref.accuracy,
            ref.evalset.describe() if ref.evalset is not None else "none (unlabelled footage)",
            cal.calibration.description,
            prep.scopes.to_dict(),
            prep.timings,
            cal.qat_info,
            prep.notes,
            failures,
        )
        say(f"installing {', '.join(ok)} in {req.out} ...")
        install(req.out, prep.targets, ok, result, cal.export_model if req.method == "qat" else None)
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)


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
    ``float_scopes``: candidate names from the family's ``float_scopes`` to keep in float (default:
    the family's measured choice). ``eval_limit``: persons evaluated (whole videos).
    ``options``: quantiser knobs (``calibration_method``, ``per_channel``, ``onnx_format``,
    ``weight_type``, ``reduce_range``; NNCF's ``preset``, ``activation_range``, ``overflow_fix``,
    ``fast_bias_correction``; ``coreml_mode`` ``w8``/``w8a8``, ``transformer``) on top of the
    family's measured ones (``ScopeChoice.options``). ``onnx_exporter``: as ``export`` (QAT graphs
    always go through the dynamo exporter). ``strict``: a stage failing its int8 check writes
    nothing for that format (``strict=False`` keeps it, with a note). With several formats, the
    ones that fail are in ``result.failures`` and the others are written.
    """
    return run(
        make_request(
            model,
            out=out,
            weights=weights,
            method=method,
            data=data,
            calib=calib,
            epochs=epochs,
            format=format,
            float_scopes=float_scopes,
            eval_limit=eval_limit,
            latency=latency,
            batches=batches,
            threads=threads,
            qat_steps=qat_steps,
            qat_batch_size=qat_batch_size,
            qat_lr=qat_lr,
            device=device,
            options=options,
            strict=strict,
            seed=seed,
            onnx_exporter=onnx_exporter,
        ),
        progress,
    )


def make_request(
    model,
    *,
    out,
    weights=None,
    method="ptq",
    data="synthetic",
    calib=256,
    epochs=1.0,
    format="all",
    float_scopes=None,
    eval_limit=1000,
    latency=True,
    batches=(1, 8),
    threads=1,
    qat_steps=None,
    qat_batch_size=16,
    qat_lr=None,
    device="auto",
    options=None,
    strict=True,
    seed=0,
    onnx_exporter="auto",
) -> QuantizeRequest:
    """``quantize``'s keywords -> a checked ``QuantizeRequest`` (errors before any work)."""
    model, weights = source_mod.adopt_pretrained(model, weights)  # weights="pretrained": the shipped ones
    if method not in METHODS:
        raise QuantizationError(f"method must be one of {METHODS}, got {method!r}")
    formats = resolve_formats(format)
    for f in formats:
        f.require()
    return QuantizeRequest(
        model=model,
        out=Path(out),
        formats=tuple(formats),
        weights=weights,
        method=method,
        float_scopes=tuple(float_scopes) if float_scopes is not None else None,
        options=dict(options or {}),
        onnx_exporter=onnx_exporter,
        data=DataOptions(data, calib, eval_limit, seed),
        qat=QatOptions(epochs, qat_steps, qat_batch_size, qat_lr, device),
        report=ReportOptions(latency, tuple(batches), threads, strict),
    )

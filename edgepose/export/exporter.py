"""``export()``: a zoo model -> one verified bundle per format, written atomically.

Layout on disk: with one format, ``out`` *is* the bundle (``out/manifest.json``,
``out/<stage><suffix>``). With several (``format="all"`` or a list), ``out``
holds one bundle per format: ``out/onnx/``, ``out/openvino/``, ``out/tflite/``,
``out/coreml/``; ``edgepose.load(out)`` then picks the first whose runtime is
installed. Every bundle is staged in a hidden sibling directory and swapped in
only when all formats converted and verified, so a failed export leaves no half
bundle and does not touch an existing one. ``out`` may be new, empty, or a
previous export; anything else is refused rather than replaced.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import torch

from .. import __version__
from ..core.atomic import atomic_dir, clean_temp_dirs, make_temp_dir
from ..core.formats import DEFAULT_FORMAT
from ..core.manifest import MANIFEST_NAME, KeypointInfo, Manifest, StageEntry, Verification, write_manifest
from ..families import find_family
from ..runtimes.bundle import IMAGE_INPUTS, bundle_root_formats, is_bundle
from ..zoo import get_spec
from ..zoo.pretrained import person_score
from . import source as source_mod
from .formats import (
    PRECISIONS,
    ExportError,
    Format,
    check_combination,
    default_batch,
    parse_batch,
    resolve_formats,
)
from .stages import (
    EXPORT_BATCH_DYNAMIC,
    SHARE_MIN_FRACTION,
    Artifact,
    QuantizationHook,
    StageJob,
    file_size,
)
from .verify import VERIFY_SEED, BundleCheck, check_bundle, raise_on_failure

TEMP_PREFIXES = ("edgepose-export-", "edgepose-quantize-")


@dataclass
class BundleResult:
    format: str
    path: Path
    manifest: Manifest
    check: BundleCheck | None
    seconds: float
    stage_seconds: dict[str, float]
    size_bytes: int
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "format": self.format,
            "path": str(self.path),
            "precision": self.manifest.precision,
            "batch": self.manifest.extra.get("batch"),
            "layout": self.manifest.layout,
            "stages": {
                s.name: {
                    "files": list(s.files),
                    "inputs": [t.to_dict() for t in s.inputs],
                    "outputs": [t.to_dict() for t in s.outputs],
                }
                for s in self.manifest.stages
            },
            "export_seconds": round(self.seconds, 2),
            "stage_seconds": {k: round(v, 2) for k, v in self.stage_seconds.items()},
            "size_bytes": self.size_bytes,
            "verification": [v.to_dict() for v in self.manifest.verification],
            "verified": self.check.passed if self.check else None,
            "notes": self.notes,
        }


@dataclass
class ExportResult:
    model: str
    out: Path
    source: str
    bundles: list[BundleResult]

    def __getitem__(self, fmt: str) -> BundleResult:
        for b in self.bundles:
            if b.format == fmt:
                return b
        raise KeyError(f"no {fmt} bundle in this export; formats: {[b.format for b in self.bundles]}")

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "out": str(self.out),
            "source": self.source,
            "bundles": [b.to_dict() for b in self.bundles],
        }


# ----------------------------------------------------------------------------- out dir


# files a root of bundles may hold beside them (quantize's report); a rerun into the root replaces them
INT8_REPORT = "int8_report.json"
ROOT_REPORTS = frozenset({INT8_REPORT})


def check_out(out: Path, formats: list[Format]) -> dict[str, Path]:
    """{format: bundle dir}; refuses an ``out`` that holds anything but edgepose bundles (and their report)."""
    single = len(formats) == 1
    targets = {f.name: (out if single else out / f.name) for f in formats}
    if not out.exists():
        return targets
    if not out.is_dir():
        raise ExportError(f"--out {str(out)!r} is a file, not a directory")
    entries = [p for p in out.iterdir() if not p.name.startswith(".")]
    if not entries:
        return targets
    if single and is_bundle(out):
        return targets
    if (
        not single
        and bundle_root_formats(out)
        and all(is_bundle(p) or p.name in ROOT_REPORTS for p in entries)
    ):
        return targets
    what = "a bundle directory" if single else "a directory of bundles (one per format)"
    found = ", ".join(sorted(p.name for p in entries)[:5])
    raise ExportError(
        f"--out {str(out)!r} exists and is not {what} (found {found}); "
        "refusing to replace it: choose a new or empty directory"
    )


# ----------------------------------------------------------------------------- manifest


def _metadata(src, spec, fmt: Format, precision: str, batch, stage: str, inputs, outputs) -> dict[str, str]:
    """Flat string metadata embedded in every artifact: a stray file still says what it is."""
    model = src.model
    return {
        "edgepose.version": __version__,
        "edgepose.model": src.name,
        "edgepose.family": spec.family,
        "edgepose.stage": stage,
        "edgepose.stages": json.dumps(list(model.stage_names)),
        "edgepose.format": fmt.name,
        "edgepose.precision": precision,
        "edgepose.batch": "dynamic" if batch is None else str(batch),
        "edgepose.layout": fmt.layout,
        "edgepose.inputs": json.dumps(list(inputs)),
        "edgepose.outputs": json.dumps(list(outputs)),
        "edgepose.codec": spec.codec,
        "edgepose.keypoints": spec.layout,
        "edgepose.input_size": json.dumps(list(model.input_size)),
        "edgepose.mean": json.dumps(list(spec.mean)),
        "edgepose.std": json.dumps(list(spec.std)),
        "edgepose.color": spec.color,
        "edgepose.frame_offsets": json.dumps(list(model.frame_offsets)),
        "edgepose.weights_sha256": src.weights_sha256 or "",
        "edgepose.state_sha256": src.state_sha256,
    }


def _versions(fmt: Format) -> dict[str, str]:
    out = {"torch": torch.__version__, "python": platform.python_version()}
    for d in fmt.versions:  # the format row's distributions
        with contextlib.suppress(PackageNotFoundError):
            out[d] = version(d)
    return out


def _family_extras(family: str, config: dict, artifacts: dict[str, Artifact]) -> dict[str, Any]:
    """What the family's runtime needs beyond the stages: config entries it reads (SHaRPose's
    quality gate) and how to make the inputs no stage outputs (its ``patch_index``)."""
    fam = find_family(family)
    if fam is None:
        return {}
    extra = {k: config[k] for k in fam.manifest_config if k in config}
    inputs = {t.name for a in artifacts.values() for t in a.inputs}
    derived = {n: d.manifest for n, d in fam.derived_inputs.items() if n in inputs}
    if derived:
        extra["derived_inputs"] = derived
    return extra


def _manifest(
    src,
    spec,
    fmt: Format,
    precision: str,
    batch,
    artifacts: dict[str, Artifact],
    stage_seconds: dict[str, float],
    sizes: dict[str, int],
    notes: list[str],
    shared: dict | None = None,
) -> Manifest:
    model = src.model
    extra: dict[str, Any] = {
        "batch": "dynamic" if batch is None else batch,
        "image_inputs": [
            n for n in IMAGE_INPUTS if any(n in [t.name for t in a.inputs] for a in artifacts.values())
        ],
        "source": src.to_manifest(),
        "exporter": {**{s: a.info for s, a in artifacts.items()}, "versions": _versions(fmt)},
        "export_seconds": {k: round(v, 3) for k, v in stage_seconds.items()},
        "size_bytes": sizes,
        "notes": notes,
    }
    if shared:
        extra["shared_weights"] = shared  # the file every stage lists second; hashed once in ``files``
    static = {s: a.batch for s, a in artifacts.items() if a.batch != batch}
    if static:
        extra["stage_batch"] = static  # stages whose converter had to fix the batch (see notes)
    extra.update(_family_extras(spec.family, src.config, artifacts))
    judge = person_score(getattr(model, "pretrained", None))
    if judge is not None:  # the shipped weights' measured person threshold travels with the bundle
        extra["min_pose_score"] = judge
    return Manifest(
        model=src.name,
        family=spec.family,
        format=fmt.name,
        precision=precision,
        keypoints=KeypointInfo.from_layout(spec.layout),
        input_size=tuple(model.input_size),
        mean=tuple(spec.mean),
        std=tuple(spec.std),
        color=spec.color,
        layout=fmt.layout,
        frame_offsets=tuple(model.frame_offsets),
        codec=spec.codec,
        stages=tuple(StageEntry(s, a.files, a.inputs, a.outputs) for s, a in artifacts.items()),
        weights_sha256=src.weights_sha256,
        extra=extra,
        input_kind=getattr(model, "input_kind", "crop"),
    )


# ----------------------------------------------------------------------------- export


def export(
    model: str | Any,
    *,
    out: str | os.PathLike,
    format: str | list[str] = DEFAULT_FORMAT,  # noqa: A002 - the CLI's word
    precision: str = "fp32",
    batch: int | str | None = "auto",
    frames: int | None = None,
    weights: str | os.PathLike | None = None,
    verify: bool = True,
    verify_seed: int = VERIFY_SEED,
    init_seed: int = source_mod.DEFAULT_INIT_SEED,
    onnx_exporter: str = "auto",
    hook: QuantizationHook | None = None,
    progress: Callable[[str], None] | None = None,
) -> ExportResult:
    """Export ``model`` (a zoo name, or a model from ``edgepose.zoo.create_model``) to verified bundles.

    ``batch``: ``"auto"`` (dynamic where the format can, else 1), ``"dynamic"``/None, or a
    fixed N (a static shape, e.g. for NPUs). ``frames``: window size of a temporal model (3|5).
    ``verify=False`` skips the parity check (the manifest then records it as skipped).
    ``hook``: a quantiser for precisions that need one (INT8: the one ``quantize`` builds).
    """
    say = progress or (lambda msg: None)
    formats = resolve_formats(format)
    want = "auto" if batch == "auto" else parse_batch(batch)
    for fmt in formats:
        check_combination(fmt, precision, default_batch(fmt, want))
        fmt.require()
    if PRECISIONS[precision].needs_hook and hook is None:
        raise ExportError(
            f"precision {precision} needs a quantiser with calibration data: use `edgepose quantize` "
            "(Python: quantize(...)), which passes one to export as hook=..."
        )
    if hook is not None and hook.precision != precision:
        raise ExportError(f"the hook quantises to {hook.precision}, but precision {precision} was asked for")
    out = Path(out)
    targets = check_out(out, formats)
    created_out = not out.exists()
    t_build = time.perf_counter()
    say(f"building {model if isinstance(model, str) else type(model).__name__} ...")
    src = source_mod.build(model, weights, frames, init_seed)
    spec = get_spec(src.name)
    say(f"model {src.name}: {src.describe()} ({time.perf_counter() - t_build:.1f}s)")
    results: list[BundleResult] = []
    clean_temp_dirs(TEMP_PREFIXES)  # work dirs of killed exports and quantisations
    work = make_temp_dir("edgepose-export-")
    job = ExportJob(src, spec, work, precision, verify, verify_seed, onnx_exporter, hook, say)
    try:
        with contextlib.ExitStack() as stack:  # every bundle is swapped in only if all formats succeed
            for fmt in formats:
                staging = stack.enter_context(atomic_dir(targets[fmt.name]))
                target = FormatTarget(fmt, default_batch(fmt, want), staging, targets[fmt.name])
                result = export_format(job, target)
                results.append(result)
                if result.check is not None:
                    try:
                        raise_on_failure([result.check])
                    except ExportError as e:
                        raise ExportError(
                            f"{e}\nNo bundle was written (an existing one is untouched); "
                            "--no-verify / verify=False keeps an unverified export."
                        ) from None
    except BaseException:
        if created_out and out.is_dir() and not any(out.iterdir()):
            out.rmdir()  # made only as the parent of the staged bundles
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return ExportResult(src.name, out, src.describe(), results)


@dataclass
class ExportJob:
    """What every format of one ``export`` call shares: the built model and the options."""

    src: Any  # source.Source: the model, its name, weights and config
    spec: Any  # the zoo ModelSpec
    work: Path  # scratch directory (intermediate graphs)
    precision: str
    verify: bool = True
    verify_seed: int = VERIFY_SEED
    onnx_exporter: str = "auto"
    hook: QuantizationHook | None = None
    say: Callable[[str], None] = lambda msg: None
    cache: dict = field(default_factory=dict)  # shared between formats (e.g. the fp32 ONNX graph)


@dataclass(frozen=True)
class FormatTarget:
    """Where one format's bundle goes: staged in ``staging``, swapped in at ``final``."""

    fmt: Format
    batch: int | None
    staging: Path
    final: Path


@dataclass
class Converted:
    artifacts: dict[str, Artifact]
    seconds: dict[str, float]
    notes: list[str]
    shared: dict | None = None  # the shared weight file's record (``share_weights``)


SHARED_SIZE_KEY = "shared_weights"  # extra["size_bytes"] key of the file the stages share


def share_weights(job: ExportJob, target: FormatTarget, conv: Converted) -> dict | None:
    """Stages that hold the same weights (SHaRPose's coarse and fine: one ViT) point into one file.

    The format's ``share_weights(dir, artifacts, header)`` does it where the format can (ONNX
    external data, OpenVINO IR); formats without one keep a full copy per stage, and the
    manifest's notes say why (the converter module's ``NO_SHARING``). Tensors are matched by
    content, and only when the stages hold a real share in common. Runs inside the staging directory, before the manifest
    is sealed, so the shared file gets its sha256 there and the bundle is swapped in whole.
    """
    src = job.src
    module = target.fmt.module()
    share = getattr(module, "share_weights", None)
    if len(conv.artifacts) < 2:
        return None
    if share is None:
        common = _common_parameter_bytes(src.model, list(conv.artifacts))
        why = getattr(module, "NO_SHARING", None)
        if common and why:
            conv.notes.append(
                f"stages {', '.join(conv.artifacts)} hold {common / 2**20:.1f} MB of the same weights; "
                f"{target.fmt.name} stores a copy in each stage's file: {why}"
            )
        return None
    header = {
        "edgepose.version": __version__,
        "model": src.name,
        "precision": job.precision,
        "stages": list(conv.artifacts),
        "state_sha256": src.state_sha256,
    }
    t = time.perf_counter()
    try:
        record = share(target.staging, conv.artifacts, header)
    except ExportError:
        raise
    except Exception as e:  # onnx / xml internals raise anything; name the format and step
        raise ExportError(
            f"{target.fmt.name}: sharing the weights of {src.name}'s stages failed: {type(e).__name__}: {e}"
        ) from e
    if record is None:
        return None
    conv.shared = record
    mb = 1 / 2**20
    conv.notes.append(
        f"stages {', '.join(record['stages'])} share one weight file {record['file']} "
        f"({record['size'] * mb:.1f} MB, {record['shared_tensors']} tensors in common, "
        f"{record['saved_bytes'] * mb:.1f} MB not stored twice; matched by content) "
        f"in {time.perf_counter() - t:.1f}s"
    )
    job.say(conv.notes[-1])
    return record


def _common_parameter_bytes(model, stages: list[str]) -> int:
    """Bytes of the torch weights that more than one stage's forward reads; 0 when that is under
    ``SHARE_MIN_FRACTION`` of what the stages read (as ``SharedWeights`` gates the file formats).

    A zoo Stage holds the whole model, so what a stage uses is what its forward touches: every
    parameter and buffer passed to a torch function, recorded over one batch-1 example.
    """
    from torch.overrides import TorchFunctionMode
    from torch.utils._pytree import tree_leaves

    weights = {id(t): t for t in (*model.parameters(), *model.buffers())}

    class Seen(TorchFunctionMode):
        def __init__(self):
            super().__init__()
            self.hit: set[int] = set()

        def __torch_function__(self, func, types, args=(), kwargs=None):
            self.hit.update(id(a) for a in tree_leaves((args, kwargs)) if id(a) in weights)
            return func(*args, **(kwargs or {}))

    users: dict[int, int] = {}
    for stage in stages:
        seen = Seen()
        with torch.no_grad(), seen:
            model.stage(stage).eval()(*model.example_inputs(stage, 1, seed=0).values())
        for key in seen.hit:
            users[key] = users.get(key, 0) + 1
    size = {k: weights[k].numel() * weights[k].element_size() for k in users}
    total = sum(size[k] * n for k, n in users.items())
    common = sum(size[k] for k, n in users.items() if n > 1)
    return common if total and common >= SHARE_MIN_FRACTION * total else 0


def export_format(job: ExportJob, target: FormatTarget) -> BundleResult:
    """One format: convert every stage, write the sealed manifest, verify, write it again."""
    t0 = time.perf_counter()
    conv = convert_stages(job, target)
    shared = share_weights(job, target, conv)
    own = {shared["file"]} if shared else set()
    sizes = {
        s: sum(file_size(target.staging / f) for f in a.files if f not in own)
        for s, a in conv.artifacts.items()
    }
    if shared:
        sizes[SHARED_SIZE_KEY] = shared["size"]  # the one file every stage reads, counted once
    # sealed: the size and sha256 of every file written, checked by every later load
    manifest = _manifest(
        job.src,
        job.spec,
        target.fmt,
        job.precision,
        target.batch,
        conv.artifacts,
        conv.seconds,
        sizes,
        conv.notes,
        conv.shared,
    ).sealed(target.staging)
    write_manifest(target.staging, manifest)
    check = None
    if job.verify:
        manifest, check = verify_format(job, target, manifest)
    else:
        manifest = manifest.replace(
            verification=tuple(
                Verification(stage=s, passed=None, reason="verification skipped on request (--no-verify)")
                for s in job.src.model.stage_names
            )
        )
    write_manifest(target.staging, manifest)
    return BundleResult(
        target.fmt.name,
        target.final,
        manifest,
        check,
        time.perf_counter() - t0,
        conv.seconds,
        sum(sizes.values()),
        conv.notes,
    )


def convert_stages(job: ExportJob, target: FormatTarget) -> Converted:
    """Each stage through the format's converter (with the precision's hook, if any)."""
    src, fmt, batch = job.src, target.fmt, target.batch
    model = src.model
    module = fmt.module()
    out = Converted({}, {}, [])
    for stage in model.stage_names:
        ins, outs = model.stage_io(stage)
        ex_batch = EXPORT_BATCH_DYNAMIC if batch is None else batch
        stage_job = StageJob(
            model_name=src.name,
            stage=stage,
            module=model.stage(stage),
            input_names=tuple(ins),
            output_names=tuple(outs),
            example=model.example_inputs(stage, ex_batch, seed=0),
            batch=batch,
            precision=job.precision,
            fmt=fmt,
            out_dir=target.staging,
            work_dir=job.work,
            metadata=_metadata(src, job.spec, fmt, job.precision, batch, stage, ins, outs),
            cache=job.cache,
            options={"onnx_exporter": job.onnx_exporter},
            hook=job.hook,
        )
        job.say(f"{fmt.name}: converting {stage} ({job.precision}) ...")
        t = time.perf_counter()
        try:
            out.artifacts[stage] = module.convert(stage_job)
        except ExportError:
            raise
        except Exception as e:  # converter internals raise anything; name the format and stage
            msg = str(e).strip() or type(e).__name__
            raise ExportError(
                f"{fmt.name} conversion of {src.name} stage {stage!r} failed: "
                f"{type(e).__name__}: {msg[:2000]}"
            ) from e
        out.seconds[stage] = time.perf_counter() - t
        out.notes += out.artifacts[stage].notes
        job.say(f"{fmt.name}: {stage} converted in {out.seconds[stage]:.1f}s")
    return out


def verify_format(job: ExportJob, target: FormatTarget, manifest: Manifest) -> tuple[Manifest, BundleCheck]:
    """Parity of the staged bundle with PyTorch; the manifest gains the verification records."""
    fmt = target.fmt
    job.say(f"{fmt.name}: verifying against PyTorch ...")
    t = time.perf_counter()
    check = check_bundle(target.staging, manifest, job.src.model, seed=job.verify_seed)
    check.source = job.src.describe()
    check.path = target.final
    manifest = manifest.replace(
        verification=tuple(check.verifications),
        extra={**manifest.extra, "verification_detail": check.detail},
    )
    job.say(
        f"{fmt.name}: verified in {time.perf_counter() - t:.1f}s: "
        + ", ".join(_short(v) for v in check.verifications)
    )
    return manifest, check


def _short(v) -> str:
    if v.passed is None:
        return f"{v.stage} structural"
    err = f"{v.max_abs_error:.2g}" if v.max_abs_error is not None else "-"
    kp = f", {v.keypoint_error_px:.2g} px" if v.keypoint_error_px is not None else ""
    return f"{v.stage} {'ok' if v.passed else 'FAILED'} (max err {err}{kp})"


__all__ = [
    "MANIFEST_NAME",
    "BundleResult",
    "ExportJob",
    "ExportResult",
    "FormatTarget",
    "check_out",
    "export",
    "export_format",
]

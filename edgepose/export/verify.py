"""Parity of a bundle with PyTorch, stage by stage, in the bundle's own runtime.

Inputs differ from the export's example (another seed) and are realistic for
each stage: the first stage gets random images; a later stage gets PyTorch's
outputs of the stage before it (a temporal stage the frame outputs of a whole
window stacked on axis 1; SHaRPose's ``fine`` the coarse ``features`` and a
``patch_index`` of distinct top-k relevance indices, as its family object's
``derived_inputs`` makes it). Each stage is compared in
isolation (fed PyTorch's inputs), so an error is pinned to the stage that made
it. Outputs are compared by max abs error against a bound that scales with the
output (``formats.Tolerance``); 0/1 masks by the fraction of flipped elements;
stages with codec outputs also by decoded keypoints in crop pixels. A stage's
``Verification.max_abs_error``/``tolerance`` are those of its deciding output
(the largest error relative to its bound); every output's numbers go into the
manifest's ``extra["verification_detail"]``. Dynamic
batches are checked at batch 3, which catches a batch baked in at export.
int8 bundles (``edgepose quantize``) are judged by RMS error relative to each
output's RMS instead of max abs error: each precision row of the format table
(``edgepose.core.formats.PRECISIONS``) carries its comparison; the quantiser's
real-crop check is the one ``quantize`` records in int8 manifests.

Core ML cannot predict off macOS: there the check is structural (ML program,
I/O names and shapes, operation counts, size against the parameter count) and
the Verification says so with ``passed=None``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..core.codecs import CODEC_OUTPUTS, decode
from ..core.formats import compare_max_abs
from ..core.manifest import BundleDamagedError, Manifest, Verification, read_manifest
from ..families import derived_inputs, model_family
from ..runtimes.bundle import (
    IMAGE_INPUTS,
    bundle_root_formats,
    consistency_problems,
    io_problems,
    is_bundle,
    load,
)
from ..runtimes.coreml import inspect
from ..zoo.costs import stage_cost
from .formats import FORMATS, PRECISIONS, ExportError
from .source import from_manifest
from .stages import quiet

VERIFY_SEED = 1  # the export's example inputs use seed 0
DYNAMIC_CHECK_BATCH = 3


# ----------------------------------------------------------------------------- inputs


def _run(model, stage: str, feeds: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        out = model.stage(stage).eval()(*feeds.values())
    return dict(zip(model.stage_io(stage)[1], out))


def pipeline_inputs(
    model, batch: int, seed: int = VERIFY_SEED, family: str | None = None
) -> tuple[dict, dict]:
    """Per-stage PyTorch inputs and outputs: {stage: {name: tensor}} for both.

    Inputs no earlier stage outputs are made as the model's family says (``Family.derived_inputs``);
    ``family`` defaults to the one ``create_model`` recorded on the model."""
    derived = derived_inputs(family or model_family(model))
    names = list(model.stage_names)
    feeds = {names[0]: model.example_inputs(names[0], batch, seed)}
    outs = {names[0]: _run(model, names[0], feeds[names[0]])}
    t = len(model.frame_offsets)
    for prev, stage in zip(names, names[1:]):
        ex = model.example_inputs(stage, batch, seed)
        if t > 1:  # temporal: the previous stage's outputs for a window of t frames per sample
            window = _run(model, prev, model.example_inputs(prev, batch * t, seed + 1))
            source = {k: v.reshape(batch, t, *v.shape[1:]) for k, v in window.items()}
        else:
            source = {**feeds[prev], **outs[prev]}
        for n in ex:
            if n in source:
                ex[n] = source[n]
            elif n in derived:
                ex[n] = derived[n].make(source, ex[n].shape[1])
        feeds[stage] = ex
        outs[stage] = _run(model, stage, ex)
    return feeds, outs


# ----------------------------------------------------------------------------- comparisons


def _comparer(precision: str):
    """The precision row's comparison (int8: RMS error against the output's RMS, since a max-abs
    bound would be decided by the one element at the edge of a quantisation range)."""
    return PRECISIONS[precision].compare


compare_output = compare_max_abs  # fp32/fp16: max abs error against a bound scaled by the output


def keypoint_error(ref: dict, got: dict, codec: str, input_size: tuple[int, int]) -> tuple[float, int]:
    """Max distance (crop px) between decoded keypoints, and how many joints were ties.

    A heatmap whose peak moves to a location PyTorch scores equally high (within the measured
    heatmap error) is a tie between locations, not an export error: random-init models have
    flat heatmaps full of them. Such joints are counted and left out of the maximum.
    """
    kr, _ = decode(ref, codec, input_size)
    kg, _ = decode(got, codec, input_size)
    dist = np.linalg.norm(kr.astype(np.float64) - kg, axis=-1)
    ties = np.zeros(dist.shape, dtype=bool)
    if codec == "heatmap":
        hr = np.asarray(ref["heatmaps"], dtype=np.float64)
        hg = np.asarray(got["heatmaps"], dtype=np.float64)
        b, j = hr.shape[:2]
        fr, fg = hr.reshape(b, j, -1), hg.reshape(b, j, -1)
        noise = np.abs(fr - fg).max()
        at_got_peak = np.take_along_axis(fr, fg.argmax(-1)[..., None], -1)[..., 0]
        moved = fr.argmax(-1) != fg.argmax(-1)
        ties = moved & (at_got_peak >= fr.max(-1) - 2 * noise - 1e-12)
    kept = dist[~ties]
    return (float(kept.max()) if kept.size else 0.0), int(ties.sum())


# ----------------------------------------------------------------------------- structure


def _check_io(manifest: Manifest, stage: str, inputs, outputs) -> list[str]:
    """Runtime-reported I/O against the manifest: names, ranks and fixed sizes."""
    return io_problems(manifest, stage, inputs, outputs)


def structural_check(bundle_dir: Path, manifest: Manifest, model, reason: str) -> list[Verification]:
    """Where a format's runtime cannot run here (Core ML off macOS): its structure against the model."""
    out = []
    itemsize = PRECISIONS[manifest.precision].itemsize
    for entry in manifest.stages:
        info = inspect(bundle_dir / entry.file)
        problems = _check_io(manifest, entry.name, info.inputs, info.outputs)
        if info.model_type != "mlProgram":
            problems.append(f"model type {info.model_type}, expected mlProgram")
        n_ops = sum(v for k, v in info.ops.items() if k != "const")
        if n_ops == 0:
            problems.append("no operations")
        params = stage_cost(model, entry.name).params  # the parameters this stage uses, not the model's
        if info.size_bytes < 0.5 * params * itemsize:
            problems.append(f"{info.size_bytes} bytes for {params} parameters at {itemsize} bytes each")
        top = ", ".join(f"{k} {v}" for k, v in info.ops.most_common(4) if k != "const")
        summary = f"{n_ops} MIL ops ({top}), {info.size_bytes / 1e6:.2f} MB"
        out.append(
            Verification(
                stage=entry.name,
                passed=False if problems else None,
                backend="coreml (structure)",
                reason=("structure check failed: " + "; ".join(problems))
                if problems
                else f"{reason}. Structure OK: I/O names and shapes match, {summary}",
            )
        )
    return out


# ----------------------------------------------------------------------------- the check


@dataclass
class BundleCheck:
    path: Path
    format: str
    verifications: list[Verification]
    detail: dict[str, Any] = field(default_factory=dict)
    source: str = ""

    @property
    def passed(self) -> bool | None:
        """True: all numeric checks passed; None: structural only (and it passed); False: a failure."""
        if any(v.passed is False for v in self.verifications):
            return False
        if all(v.passed is True for v in self.verifications):
            return True
        return None

    def failures(self) -> list[str]:
        return [f"{self.format}/{v.stage}: {v.reason}" for v in self.verifications if v.passed is False]

    def to_dict(self) -> dict:
        return {
            "path": str(self.path),
            "format": self.format,
            "passed": self.passed,
            "source": self.source,
            "stages": [v.to_dict() for v in self.verifications],
            "detail": self.detail,
        }


def check_bundle(
    bundle_dir: Path, manifest: Manifest, model, seed: int = VERIFY_SEED, device: str = "cpu"
) -> BundleCheck:
    """Verify one bundle directory (its manifest already written) against ``model``."""
    fmt = FORMATS[manifest.format]
    tol = PRECISIONS[manifest.precision].tolerance
    reason = fmt.numeric_check_reason()
    if reason is not None:
        problems = consistency_problems(manifest)
        if problems:
            raise BundleDamagedError(
                f"bundle {str(bundle_dir)!r} does not match its manifest: {'; '.join(problems)}; "
                "re-export it with `edgepose export`"
            )
        return BundleCheck(bundle_dir, fmt.name, structural_check(bundle_dir, manifest, model, reason))
    image_inputs = set(manifest.extra.get("image_inputs", IMAGE_INPUTS))
    cache: dict[int, tuple[dict, dict]] = {}
    verifications, detail = [], {}
    with quiet(), load(bundle_dir, device=device) as bundle:  # runtimes log delegate choices to stderr
        for entry in manifest.stages:
            sess = bundle.sessions[entry.name]
            dim0 = entry.inputs[0].shape[0]
            batch = DYNAMIC_CHECK_BATCH if isinstance(dim0, str) else int(dim0)
            if batch not in cache:
                cache[batch] = pipeline_inputs(model, batch, seed, manifest.family)
            feeds, refs = cache[batch][0][entry.name], cache[batch][1][entry.name]
            problems = _check_io(manifest, entry.name, sess.inputs, sess.outputs)
            arrays = {}
            for n, t in feeds.items():
                x = t.numpy()
                if n in image_inputs and manifest.layout == "NHWC" and x.ndim == 4:
                    x = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
                arrays[n] = x
            try:
                got = sess.run(arrays)
            except Exception as e:  # noqa: BLE001 - e.g. a baked-in batch: a failed check, not a crash
                first = (str(e).strip().splitlines() or [""])[0][:300]
                problems.append(f"the runtime failed at batch {batch}: {type(e).__name__}: {first}")
                got = {}
            ref = {k: v.numpy() for k, v in refs.items()}
            compare = _comparer(manifest.precision)
            per_out = {n: compare(ref[n], got.get(n, np.zeros(0)), tol) for n in entry.output_names}
            if got:
                problems += [f"output {n}: {r['problem']}" for n, r in per_out.items() if "problem" in r]
            for n, r in per_out.items():
                if not r["passed"] and "problem" not in r:
                    if r["kind"] == "binary":
                        problems.append(
                            f"output {n}: {r['flips']:.2%} of mask elements flipped > {r['bound']:.2%}"
                        )
                    else:
                        problems.append(
                            f"output {n}: RMS error {r['rel_rms']:.3g} x the output's RMS > {r['bound']:.3g}"
                            if "rel_rms" in r
                            else f"output {n}: max abs error {r['max_abs']:.3g} > {r['bound']:.3g}"
                        )
            kp_px, ties = None, 0
            if set(CODEC_OUTPUTS[manifest.codec]) <= set(entry.output_names) and not problems:
                kp_px, ties = keypoint_error(ref, got, manifest.codec, tuple(manifest.input_size))
                if kp_px > tol.keypoint_px:
                    problems.append(f"keypoints off by {kp_px:.3g} px > {tol.keypoint_px} px")
            # the deciding output: the largest error relative to its own bound
            floats = {n: r for n, r in per_out.items() if r.get("kind", "float") == "float"}
            worst = max(
                floats,
                key=lambda n: floats[n].get("rel_rms", floats[n]["max_abs"]) / max(floats[n]["bound"], 1e-30),
                default=None,
            )
            detail[entry.name] = {
                "batch": batch,
                "keypoint_ties": ties,
                "worst_output": worst,
                "outputs": {n: _rounded(r) for n, r in per_out.items()},
            }
            verifications.append(
                Verification(
                    stage=entry.name,
                    passed=not problems,
                    max_abs_error=_finite(floats[worst]["max_abs"]) if worst else None,
                    keypoint_error_px=kp_px,
                    tolerance=floats[worst]["bound"] if worst and "rel_rms" not in floats[worst] else None,
                    inputs=f"seed {seed}, batch {batch}: random images, later stages PyTorch's outputs of "
                    "the stage before",
                    backend=sess.backend,
                    device=sess.device,
                    reason="; ".join(problems) if problems else None,
                )
            )
    return BundleCheck(bundle_dir, fmt.name, verifications, detail)


def _finite(x: float) -> float | None:
    return x if np.isfinite(x) else None


def _rounded(r: dict) -> dict:
    """JSON-safe: 3 significant digits, non-finite errors as null."""
    return {
        k: (float(f"{v:.3g}") if np.isfinite(v) else None) if isinstance(v, float) else v
        for k, v in r.items()
    }


def verify_bundle(
    path: str | Path,
    weights: str | Path | None = None,
    model=None,
    seed: int = VERIFY_SEED,
    device: str = "cpu",
) -> list[BundleCheck]:
    """Re-run a bundle's verification (every bundle of an ``--format all`` root).

    The PyTorch model comes from ``model``, else ``weights``, else the source the manifest
    recorded (its checkpoint path, or the seed of a random-init export); each result's
    ``source`` says which.
    """

    root = Path(path)
    dirs = [root] if is_bundle(root) else list(bundle_root_formats(root).values())
    if not dirs:
        read_manifest(root)  # raises the "not a bundle" error
    checks, built = [], {}  # the bundles of one export share their source: build it once
    for d in dirs:
        manifest = read_manifest(d)
        if model is not None:
            net, how = model, "the model passed in"
        else:
            key = (manifest.model, json.dumps(manifest.extra.get("source"), sort_keys=True))
            if key not in built:
                src, how = from_manifest(manifest, weights)
                built[key] = (src.model, how)
            net, how = built[key]
        check = check_bundle(d, manifest, net, seed, device)
        check.source = how
        checks.append(check)
    return checks


def raise_on_failure(checks: list[BundleCheck]) -> None:
    failures = [f for c in checks for f in c.failures()]
    if failures:
        raise ExportError("verification against PyTorch failed:\n  " + "\n  ".join(failures))

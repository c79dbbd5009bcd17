"""Stage-by-stage check of an int8 bundle against the fp32 PyTorch model, on real crops.

Random images say little about an int8 graph calibrated on crops of people (its
activation ranges were set on those), so the int8 check feeds each stage what it sees at
run time: evaluation crops (not the calibration ones) for the first stage, and PyTorch's
fp32 outputs of the stage before for later ones, each stage in isolation. The int8 row of
the format table (``edgepose.core.formats.PRECISIONS["int8"]``: its tolerance and its
``compare``) reads:

* float outputs: RMS error at most ``rtol`` of the output's RMS (0.35: int8 feature maps at
  the end of a CNN trunk differ from fp32 by 10-20% RMS, decoded outputs by under 1%, a
  broken graph by 100% or more), reported with the max abs error;
* 0/1 masks: at most ``flip_fraction`` of the elements flipped;
* decoded keypoints (stages with codec outputs): 90th percentile of the distance to
  PyTorch's at most ``keypoint_px`` crop pixels.

The accuracy that matters (metric against fp32) is in the int8 report; this check pins a
failure to a stage. Core ML cannot run off macOS: its stages get the structural check of
``structural_check`` (the export side's) instead.
"""

from __future__ import annotations

import numpy as np
import torch

from ..core.codecs import CODEC_OUTPUTS, decode
from ..core.formats import FORMATS, PRECISIONS
from ..core.manifest import Verification
from ..export.stages import quiet
from ..export.verify import structural_check
from ..runtimes.bundle import load
from .pipeline import StagePlan, run_pipeline, session_stage_runner, torch_stage_runner


def check(bundle_dir, manifest, model, crops, threads: int | None = None) -> tuple[list[Verification], dict]:
    """Verification records per stage, and the per-output detail, for an int8 bundle."""
    fmt = FORMATS[manifest.format]
    reason = fmt.numeric_check_reason()
    if reason is not None:
        return structural_check(bundle_dir, manifest, model, reason), {}
    precision = PRECISIONS["int8"]
    tol, compare = (
        precision.tolerance,
        precision.compare,
    )  # the row's comparison: RMS error vs the output's RMS
    plan = StagePlan.from_model(model)
    with torch.no_grad():
        feeds, refs = run_pipeline(plan, torch_stage_runner(model.eval()), torch.from_numpy(crops))
    out, detail = [], {}
    opts = {"threads": threads} if threads else {}
    with quiet(), load(bundle_dir, device="cpu", **opts) as bundle:
        run = session_stage_runner(bundle.sessions, manifest.layout)
        for entry in manifest.stages:
            feed = {k: v.numpy() for k, v in feeds[entry.name].items()}
            ref = {k: v.numpy() for k, v in refs[entry.name].items()}
            problems = []
            try:
                got = run(entry.name, feed)
            except Exception as e:  # noqa: BLE001 - a runtime failure is a failed check
                got = {}
                problems.append(f"the runtime failed: {type(e).__name__}: {str(e).strip()[:200]}")
            per = {n: compare(ref[n], got[n], tol) for n in entry.output_names if n in got}
            for n, r in per.items():
                if not r["passed"]:
                    problems.append(
                        f"output {n}: "
                        + (
                            r.get("problem")
                            or (
                                f"{r['flips']:.2%} of mask elements flipped > {r['bound']:.0%}"
                                if r["kind"] == "binary"
                                else f"RMS error {r['rel_rms']:.3g} of the output's RMS > {r['bound']}"
                            )
                        )
                    )
            kp = None
            if got and set(CODEC_OUTPUTS[manifest.codec]) <= set(entry.output_names):
                kr, _ = decode(ref, manifest.codec, tuple(manifest.input_size))
                kg, _ = decode(
                    {k: np.asarray(v, np.float32) for k, v in got.items()},
                    manifest.codec,
                    tuple(manifest.input_size),
                )
                kp = float(np.percentile(np.linalg.norm(kr - kg, axis=-1), 90))
                if kp > tol.keypoint_px:
                    problems.append(f"keypoints off by {kp:.3g} px (90th percentile) > {tol.keypoint_px} px")
            floats = {n: r for n, r in per.items() if r.get("kind") == "float"}
            worst = max(floats, key=lambda n: floats[n]["rel_rms"], default=None)
            detail[entry.name] = {"crops": int(len(crops)), "outputs": per, "keypoint_p90_px": kp}
            out.append(
                Verification(
                    stage=entry.name,
                    passed=not problems,
                    max_abs_error=floats[worst]["max_abs"] if worst else None,
                    keypoint_error_px=kp,
                    inputs=f"{len(crops)} evaluation crops (real, not calibration ones); later stages PyTorch's "
                    f"fp32 outputs of the stage before; int8 bounds: RMS error <= {tol.rtol} x the output's RMS, "
                    f"keypoints (90th percentile, reported here) <= {tol.keypoint_px} px",
                    backend=bundle.sessions[entry.name].backend,
                    device=bundle.sessions[entry.name].device,
                    reason="; ".join(problems) if problems else None,
                )
            )
    return out, detail

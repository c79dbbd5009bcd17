"""Core ML: ``torch.jit.trace`` + ``coremltools.convert`` to an ML program (iOS 17+), float32 I/O.

Inputs are named ``ct.TensorType``s (int64 ones as int32, Core ML's integer
type); a dynamic batch is a ``RangeDim(1, MAX_BATCH)``. Where coremltools
cannot lower a stage with a flexible batch (its symbolic-shape support is
op by op: SHaRPose's ``fine`` converts flexibly in fp32 but its scatter fails
in fp16), that stage falls back to a fixed batch of 1 and the manifest
(``extra.stage_batch``, ``extra.notes``) says so. fp16
sets the ML program's compute precision. The metadata goes into the model's
``user_defined_metadata``. Prediction needs macOS; elsewhere the export is
checked structurally (see ``verify``).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from .stages import Artifact, StageJob, named_module, quiet

# why the stages' files cannot point into one weight file (the export's note says it)
NO_SHARING = (
    "an .mlpackage reads its weights from its own Data/com.apple.CoreML/weights/weight.bin "
    "(blob paths are @model_path-relative to the package), so two packages cannot read one weight "
    "file (one multifunction .mlpackage, iOS 18 / macOS 15 and later, could hold both stages with "
    "weights deduplicated; the Core ML runtime here opens one package per stage)"
)
MAX_BATCH = 64


def _convert(job: StageJob, batch: int | None):
    import coremltools as ct  # lazy: coremltools

    module = named_module(job.torch_module(), job.input_names, job.output_names)
    trace_batch = batch or 1
    example = tuple(t[:1].expand(trace_batch, *t.shape[1:]).contiguous() for t in job.example.values())
    traced = torch.jit.trace(module, example, check_trace=False)
    dim = ct.RangeDim(1, MAX_BATCH, default=1) if batch is None else trace_batch
    inputs = [
        ct.TensorType(
            name=n, shape=(dim, *t.shape[1:]), dtype=np.int32 if t.dtype == torch.int64 else np.float32
        )
        for n, t in job.example.items()
    ]
    outputs = [ct.TensorType(name=n, dtype=np.float32) for n in job.output_names]
    precision = ct.precision.FLOAT16 if job.precision == "fp16" else ct.precision.FLOAT32
    return ct.convert(
        traced,
        inputs=inputs,
        outputs=outputs,
        convert_to="mlprogram",
        minimum_deployment_target=ct.target.iOS17,
        compute_precision=precision,
    )


def convert(job: StageJob) -> Artifact:
    notes = []
    batch = job.batch
    with quiet():  # coremltools warns about versions at import and shows progress bars
        import coremltools as ct  # lazy: coremltools

        try:
            mlmodel = _convert(job, batch)
        except Exception as e:  # noqa: BLE001 - any lowering failure; retried with a fixed batch
            if batch is not None:
                raise
            batch = 1
            first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
            notes.append(
                f"stage {job.stage}: coremltools could not convert it with a flexible batch "
                f"({type(e).__name__}: {first}); converted with a fixed batch of 1"
            )
            mlmodel = _convert(job, batch)
        for k, v in job.metadata.items():
            mlmodel.user_defined_metadata[k] = v
        mlmodel.short_description = f"edgepose {job.model_name} stage {job.stage}"
        mlmodel.save(str(job.file))
    ins, outs = replace(job, batch=batch).tensor_infos(int64_as="int32")
    artifact = Artifact(
        job.fmt.stage_files(job.stage),
        ins,
        outs,
        batch,
        notes,
        info={"exporter": f"coremltools {ct.__version__}", "max_batch": MAX_BATCH},
    )
    return job.finish(artifact)


def read_metadata(path: str | Path) -> dict[str, str]:
    import coremltools as ct  # lazy: coremltools

    return dict(ct.models.MLModel(str(path), skip_model_load=True).user_defined_metadata)

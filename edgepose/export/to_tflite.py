"""TFLite: litert-torch (no TensorFlow) from the stage module; NHWC image input; static batch.

* Layout: image inputs are channel-last, as mobile camera pipelines deliver
  them; the stage wrapper permutes to NCHW inside the graph and the converter
  folds the transpose away. Other tensors keep PyTorch's axis order.
* Batch: litert-torch 0.10 could not lower any zoo stage with a symbolic batch
  (its JAX bridge needs concrete reshape sizes), so the batch is fixed (1 by
  default); the runtime runs a larger batch as a loop of graph-sized pieces.
* int64 inputs (SHaRPose's ``patch_index``) become int32: LiteRT without x64.
* fp16: weights cast to float16 with ai-edge-quantizer's ``float_casting``
  (compute stays float32 on CPU, XNNPACK may run it in fp16).
* int8: the quantisation hook gets the channel-last module the converter traces
  (``before_convert``: PT2E) and may add converter arguments (litert-torch's
  ``quant_config``) through ``StageJob.converter_options``.
* Metadata: a flatbuffer metadata entry ``edgepose`` holding the JSON dict.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .stages import Artifact, StageJob, named_module, quiet, to_nhwc

# why the stages' files cannot point into one weight file (the export's note says it)
NO_SHARING = (
    "a .tflite flatbuffer keeps its weights in its own buffers: a Buffer holds its bytes inline or "
    "an offset/size into the same .tflite file, with no field naming another file, so two .tflite "
    "graphs cannot read one weight file (one .tflite with a signature per stage could share "
    "buffers; the TFLite runtime here opens one graph per stage)"
)
METADATA_NAME = "edgepose"

_FP16_RECIPE = [
    {
        "regex": ".*",
        "operation": "*",
        "algorithm_key": "float_casting",
        "op_config": {
            "weight_tensor_config": {"num_bits": 16, "dtype": "FLOAT"},
            "compute_precision": "FLOAT",
            "explicit_dequantize": True,
            "skip_checks": False,
        },
    }
]


def convert(job: StageJob) -> Artifact:
    with quiet():  # its import logs to stderr
        import litert_torch  # lazy: litert_torch
        import litert_torch.version as lv  # lazy: litert_torch

    nhwc, example = sample_kwargs(job)
    module = named_module(
        job.module.eval(), job.input_names, job.output_names, nhwc_inputs=nhwc, dict_outputs=True
    )
    if job.hook is not None:  # int8: the hook sees exactly what the converter traces (NHWC, named inputs)
        module = job.hook.before_convert(job, module)
    float_path = job.work_dir / f"{job.stage}.b{job.batch}.float.tflite"
    with quiet():
        edge = litert_torch.convert(module, (), sample_kwargs=example, **job.converter_options())
        edge.export(str(float_path))
        src = float_path
        if job.precision == "fp16":
            src = _to_fp16(float_path, job.work_dir / f"{job.stage}.b{job.batch}.fp16.tflite")
        write_with_metadata(src, job.file, job.metadata)
    return job.done({"exporter": f"litert-torch {getattr(lv, '__version__', '?')}"}, int64_as="int32")


def sample_kwargs(job: StageJob) -> tuple[tuple[str, ...], dict]:
    """The NHWC image inputs and the converter's example (image inputs channel-last)."""
    nhwc = job.image_inputs if job.fmt.layout == "NHWC" else ()
    return nhwc, {n: (to_nhwc(t) if n in nhwc else t) for n, t in job.example.items()}


def _to_fp16(src: Path, dest: Path) -> Path:
    from ai_edge_quantizer import quantizer  # lazy: ai_edge_quantizer

    q = quantizer.Quantizer(str(src), _FP16_RECIPE)
    q.quantize(enable_progress_report=False).export_model(str(dest), overwrite=True)
    return dest


def write_with_metadata(src: Path, dest: Path, metadata: dict[str, str]) -> None:
    """Copy a .tflite adding (or replacing) the ``edgepose`` metadata entry."""
    from ai_edge_litert import schema_py_generated as schema  # lazy: ai_edge_litert
    from ai_edge_litert.tools import flatbuffer_utils as fb  # lazy: ai_edge_litert

    model = fb.read_model(str(src))
    buf = schema.BufferT()
    buf.data = np.frombuffer(json.dumps(metadata, sort_keys=True).encode(), dtype=np.uint8)
    model.buffers.append(buf)
    entry = schema.MetadataT()
    entry.name = METADATA_NAME
    entry.buffer = len(model.buffers) - 1
    kept = [m for m in (model.metadata or []) if _name(m.name) != METADATA_NAME]
    model.metadata = kept + [entry]
    fb.write_model(model, str(dest))


def _name(raw) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def read_metadata(path: str | Path) -> dict[str, str]:
    from ai_edge_litert.tools import flatbuffer_utils as fb  # lazy: ai_edge_litert

    model = fb.read_model(str(path))
    for m in model.metadata or []:
        if _name(m.name) == METADATA_NAME:
            return json.loads(bytes(np.asarray(model.buffers[m.buffer].data, dtype=np.uint8)).decode())
    return {}

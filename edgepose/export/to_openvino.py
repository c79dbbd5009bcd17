"""OpenVINO IR from the stage's float32 ONNX graph, saved as ``<stage>.xml`` + ``.bin``.

The graph is read with ``Core().read_model`` (the ONNX frontend
``ov.convert_model`` uses too; ``save_model`` applies the same offline
transformations): ``convert_model`` additionally sends a usage-telemetry event
per call from a forked process unless the user opted out, which a library
should not do and which warns about forking once JAX (litert-torch) has threads.

``ov.save_model`` compresses weights to fp16 unless told not to, so fp32 passes
``compress_to_fp16=False`` explicitly. The edgepose metadata goes into the IR's
``rt_info`` under ``edgepose``.
"""

from __future__ import annotations

from pathlib import Path

from . import to_onnx
from .stages import Artifact, StageJob, quiet

RT_INFO_KEY = "edgepose"


def convert(job: StageJob) -> Artifact:
    import openvino as ov  # lazy: openvino

    src, notes, exporter = to_onnx.fp32_graph(job)
    with quiet():
        model = ov.Core().read_model(str(src))
        for k, v in job.metadata.items():
            model.set_rt_info(v, [RT_INFO_KEY, k])
        ov.save_model(model, str(job.file), compress_to_fp16=job.precision == "fp16")
    ins, outs = job.tensor_infos()
    artifact = Artifact(
        job.fmt.stage_files(job.stage),
        ins,
        outs,
        job.batch,
        list(notes),
        info={"exporter": f"onnx ({exporter}) -> openvino {ov.get_version()}"},
    )
    return job.finish(artifact)


def read_metadata(path: str | Path) -> dict[str, str]:
    import openvino as ov  # lazy: openvino

    info = ov.Core().read_model(str(path)).get_rt_info()  # an RTMap: supports `in` and [] only
    section = info[RT_INFO_KEY] if RT_INFO_KEY in info else {}
    return {str(k): (v.astype(str) if hasattr(v, "astype") else str(v)) for k, v in dict(section).items()}

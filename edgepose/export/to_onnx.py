"""ONNX: torch.onnx's dynamo exporter (opset 18, weights inside the file), TorchScript exporter as fallback.

The dynamic batch is exported from a batch-2 example: from batch 1 the dynamo
exporter can bake 1 into a ViT's reshapes while still naming the axis dynamic.
So after export the graph's batch axes must be symbolic and ONNX Runtime must
run it at batch 3; a graph that fails either is re-exported with the
TorchScript exporter (``dynamo=False``), and the manifest says which one made
it. fp16 converts the float32 graph's weights and compute to float16 and keeps
float32 inputs and outputs, so callers feed the same arrays either way.

Stages that hold the same weights (SHaRPose's coarse and fine: one ViT) are
rewritten after conversion by ``share_weights``: their initializers move to one
external-data file, each distinct tensor stored once, so the bundle holds the
ViT once instead of twice.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from .formats import ExportError
from .stages import Artifact, SharedWeights, StageJob, named_module, quiet

OPSET = 18
EXPORTERS = ("auto", "dynamo", "torchscript")
SHARED_FILE = "shared_weights.data"  # ONNX external data that several stage graphs point into
MIN_EXTERNAL_BYTES = 1024  # smaller initializers (shapes, scalars) stay inside the graph
SHARED_KEY = "edgepose.shared_weights"  # graph metadata: {"file", "sha256", "size"} of the shared file


def _export(job: StageJob, path: Path, exporter: str) -> None:
    module = named_module(job.torch_module(), job.input_names, job.output_names)
    args = tuple(job.example.values())
    common = dict(input_names=list(job.input_names), output_names=list(job.output_names), opset_version=OPSET)
    if exporter == "dynamo":
        dynamic = None
        if job.batch is None:
            batch = torch.export.Dim("batch", min=1, max=4096)
            dynamic = {n: {0: batch} for n in job.input_names}
        torch.onnx.export(
            module,
            args,
            str(path),
            dynamo=True,
            external_data=False,
            dynamic_shapes=dynamic,
            verbose=False,
            **common,
        )
    else:
        axes = {n: {0: "batch"} for n in (*job.input_names, *job.output_names)} if job.batch is None else None
        torch.onnx.export(module, args, str(path), dynamo=False, dynamic_axes=axes, **common)


def check_graph(job: StageJob, path: Path) -> None:
    """I/O names must be the stage's; a dynamic export must have symbolic batch axes and run at batch 3."""
    import onnx  # lazy: onnx

    model = onnx.load(str(path), load_external_data=False)
    onnx.checker.check_model(model)
    names_in = [i.name for i in model.graph.input]
    names_out = [o.name for o in model.graph.output]
    if names_in != list(job.input_names) or names_out != list(job.output_names):
        raise ExportError(
            f"ONNX graph I/O {names_in} -> {names_out} differ from the stage's "
            f"{list(job.input_names)} -> {list(job.output_names)}"
        )
    if job.batch is not None:
        return
    fixed = [
        v.name
        for v in (*model.graph.input, *model.graph.output)
        if v.type.tensor_type.shape.dim and not v.type.tensor_type.shape.dim[0].dim_param
    ]
    if fixed:
        raise ExportError(
            f"ONNX graph has a fixed batch axis on {fixed} although a dynamic batch was asked for"
        )
    try:
        import onnxruntime as ort  # lazy: onnxruntime
    except ImportError:
        return
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {}
    for name, t in job.example.items():
        x = t[:1].numpy()
        feeds[name] = np.concatenate([x] * 3, axis=0)
    outs = sess.run(None, feeds)
    bad = [n for n, o in zip(names_out, outs) if o.shape[0] != 3]
    if bad:
        raise ExportError(f"ONNX graph exported with a dynamic batch returns batch != 3 for {bad} at batch 3")


def fp32_graph(job: StageJob) -> tuple[Path, list[str], str]:
    """The stage's float32 ONNX graph in the scratch dir, its notes and exporter; made once per export.

    OpenVINO converts from the same graph, so ``--format all`` exports each stage to ONNX once.
    """
    key = ("onnx-fp32", job.model_name, job.stage, job.batch)
    if key in job.cache:
        return job.cache[key]
    exporter = job.options.get("onnx_exporter", "auto")
    if exporter not in EXPORTERS:
        raise ExportError(f"onnx_exporter must be one of {EXPORTERS}, got {exporter!r}")
    path = job.work_dir / f"{job.stage}.b{job.batch or 'dyn'}.fp32.onnx"
    notes: list[str] = []
    tries = ["dynamo", "torchscript"] if exporter == "auto" else [exporter]
    errors = []
    for which in tries:
        try:
            with quiet():
                _export(job, path, which)
                check_graph(job, path)
        except Exception as e:  # exporter failures are many kinds; the fallback decides
            errors.append(
                f"{which}: {type(e).__name__}: {str(e).strip().splitlines()[0][:300] if str(e) else ''}"
            )
            continue
        if which != tries[0]:
            notes.append(
                f"stage {job.stage}: the dynamo exporter failed ({errors[0]}); "
                "exported with the TorchScript exporter (dynamo=False) instead"
            )
        job.cache[key] = (path, notes, which)
        return job.cache[key]
    raise ExportError(f"ONNX export of stage {job.stage!r} failed: " + " | ".join(errors))


def convert(job: StageJob) -> Artifact:
    import onnx  # lazy: onnx

    src, notes, exporter = fp32_graph(job)
    dest = job.file
    model = onnx.load(str(src))
    if job.precision == "fp16":
        from onnxruntime.transformers.float16 import convert_float_to_float16  # lazy: onnxruntime

        with quiet():
            model = convert_float_to_float16(model, keep_io_types=True)
        _toposort(model.graph)  # the converter appends its I/O casts at the end of the node list
    del model.metadata_props[:]
    for k, v in job.metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = k, v
    model.producer_name = "edgepose"
    onnx.save(model, str(dest))
    onnx.checker.check_model(str(dest))
    return job.done({"exporter": exporter, "opset": OPSET}, notes)


def share_weights(out_dir: Path, artifacts: dict[str, Artifact], header: dict) -> dict | None:
    """Move the stages' initializers into one external-data file, each distinct tensor once.

    Returns the manifest record of the file, or None (graphs untouched) when the stages hold too
    little in common. Every graph keeps its own initializer names and points them at offsets in
    ``SHARED_FILE``; its metadata names the file with its size and sha256, so a graph opened
    without the manifest still refuses a changed weight file (``runtimes.onnxruntime``).
    """
    import onnx  # lazy: onnx
    from onnx.external_data_helper import set_external_data

    from ..core.integrity import file_sha256

    models = {s: onnx.load(str(out_dir / a.files[0]), load_external_data=False) for s, a in artifacts.items()}
    table = SharedWeights()
    keys: dict[str, list[tuple]] = {}
    for stage, model in models.items():
        for t in model.graph.initializer:
            if t.data_location == onnx.TensorProto.EXTERNAL or len(t.raw_data) < MIN_EXTERNAL_BYTES:
                continue  # typed-field (float_data...) tensors have no raw_data and stay inline too
            keys.setdefault(stage, []).append(table.add(stage, str(t.data_type), t.dims, t.raw_data))
    if not table.worth_sharing():
        return None
    path = out_dir / SHARED_FILE
    placed = table.write(path, {**header, "format": "onnx"})
    sha, size = file_sha256(path, use_cache=False), path.stat().st_size
    for stage, model in models.items():
        moved = iter(keys.get(stage, []))
        for t in model.graph.initializer:
            if t.data_location == onnx.TensorProto.EXTERNAL or len(t.raw_data) < MIN_EXTERNAL_BYTES:
                continue
            offset, length = placed[next(moved)]
            set_external_data(t, SHARED_FILE, offset, length)
            t.ClearField("raw_data")
            t.data_location = onnx.TensorProto.EXTERNAL
        entry = model.metadata_props.add()
        entry.key = SHARED_KEY
        entry.value = json.dumps({"file": SHARED_FILE, "sha256": sha, "size": size})
        dest = out_dir / artifacts[stage].files[0]
        onnx.save(model, str(dest))
        onnx.checker.check_model(str(dest))  # with a path: also checks every external reference
        artifacts[stage].files = (artifacts[stage].files[0], SHARED_FILE)
    return table.record(SHARED_FILE, sha, size)


def read_metadata(path: str | Path) -> dict[str, str]:
    import onnx  # lazy: onnx

    model = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in model.metadata_props}


def _toposort(graph) -> None:
    """Reorder ``graph.node`` so every node comes after the producers of its inputs (ONNX requires it)."""
    produced = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    pending = list(graph.node)
    ordered = []
    while pending:
        rest = []
        for node in pending:
            if all(i in produced for i in node.input):
                ordered.append(node)
                produced.update(node.output)
            else:
                rest.append(node)
        if len(rest) == len(pending):
            missing = sorted({i for n in rest for i in n.input if i not in produced})[:5]
            raise ExportError(f"ONNX graph has a cycle or undefined inputs: {missing}")
        pending = rest
    del graph.node[:]
    graph.node.extend(ordered)

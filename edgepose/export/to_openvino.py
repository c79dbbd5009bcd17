"""OpenVINO IR from the stage's float32 ONNX graph, saved as ``<stage>.xml`` + ``.bin``.

The graph is read with ``Core().read_model`` (the ONNX frontend
``ov.convert_model`` uses too; ``save_model`` applies the same offline
transformations): ``convert_model`` additionally sends a usage-telemetry event
per call from a forked process unless the user opted out, which a library
should not do and which warns about forking once JAX (litert-torch) has threads.

``ov.save_model`` compresses weights to fp16 unless told not to, so fp32 passes
``compress_to_fp16=False`` explicitly. The edgepose metadata goes into the IR's
``rt_info`` under ``edgepose``. ``share_weights`` points several stage IRs at
one ``.bin`` when they hold the same weights (SHaRPose's one ViT).
"""

from __future__ import annotations

from pathlib import Path

from . import to_onnx
from .stages import Artifact, SharedWeights, StageJob, quiet

RT_INFO_KEY = "edgepose"
SHARED_FILE = "shared_weights.bin"  # the one weights file several stage IRs point into
SHARED_KEY = "edgepose.shared_weights"  # rt_info: {"file", "sha256", "size"} of the shared file


def convert(job: StageJob) -> Artifact:
    import openvino as ov  # lazy: openvino

    src, notes, exporter = to_onnx.fp32_graph(job)
    with quiet():
        model = ov.Core().read_model(str(src))
        for k, v in job.metadata.items():
            model.set_rt_info(v, [RT_INFO_KEY, k])
        ov.save_model(model, str(job.file), compress_to_fp16=job.precision == "fp16")
    return job.done({"exporter": f"onnx ({exporter}) -> openvino {ov.get_version()}"}, notes)


def read_metadata(path: str | Path) -> dict[str, str]:
    import openvino as ov  # lazy: openvino

    from ..runtimes.openvino import weights_path

    info = (
        ov.Core().read_model(str(path), str(weights_path(path))).get_rt_info()
    )  # an RTMap: supports `in` and [] only
    section = info[RT_INFO_KEY] if RT_INFO_KEY in info else {}
    return {str(k): (v.astype(str) if hasattr(v, "astype") else str(v)) for k, v in dict(section).items()}


def share_weights(out_dir: Path, artifacts: dict[str, Artifact], header: dict) -> dict | None:
    """Point every stage IR's constants into one ``.bin``, each distinct constant once.

    An IR constant is a ``Const`` layer whose ``<data offset= size=>`` locates its bytes in the
    weights file, and ``read_model(xml, bin)`` takes the weights path apart from the graph, so
    two IRs can share one file: each stage's constants are copied into ``SHARED_FILE`` (matched
    by content), their offsets rewritten, and the per-stage ``.bin`` removed. The IR's rt_info
    names the file with its size and sha256 (``runtimes.openvino`` finds and checks it by that).
    Returns the manifest record, or None (IRs untouched) when the stages hold too little in common.
    """
    import json
    import xml.etree.ElementTree as ET

    from ..core.integrity import file_sha256

    trees, consts = {}, {}
    table = SharedWeights()
    for stage, a in artifacts.items():
        xml_path = out_dir / a.files[0]
        tree = ET.parse(xml_path)
        blob = (out_dir / a.files[0]).with_suffix(".bin").read_bytes()
        seen: dict[tuple[int, int], tuple] = {}  # IRs already store a repeated constant once
        layers = []
        for layer in tree.getroot().iter("layer"):
            data = layer.find("data")
            if layer.get("type") != "Const" or data is None or data.get("offset") is None:
                continue
            where = (int(data.get("offset")), int(data.get("size")))
            if where not in seen:
                chunk = blob[where[0] : where[0] + where[1]]
                if len(chunk) != where[1]:
                    raise ValueError(f"{xml_path.name}: constant {layer.get('name')!r} lies outside its .bin")
                seen[where] = table.add(stage, data.get("element_type"), _dims(data.get("shape")), chunk)
            layers.append((data, seen[where]))
        trees[stage], consts[stage] = tree, layers
    if not table.worth_sharing():
        return None
    path = out_dir / SHARED_FILE
    placed = table.write(path, {**header, "format": "openvino"})
    sha, size = file_sha256(path, use_cache=False), path.stat().st_size
    for stage, tree in trees.items():
        for data, key in consts[stage]:
            offset, length = placed[key]
            data.set("offset", str(offset))
            data.set("size", str(length))
        root = tree.getroot()
        info = root.find("rt_info")
        if info is None:
            info = ET.SubElement(root, "rt_info")
        section = info.find(RT_INFO_KEY)
        if section is None:
            section = ET.SubElement(info, RT_INFO_KEY)
        ET.SubElement(
            section, SHARED_KEY, {"value": json.dumps({"file": SHARED_FILE, "sha256": sha, "size": size})}
        )
        xml_path = out_dir / artifacts[stage].files[0]
        tree.write(xml_path, encoding="utf-8", xml_declaration=True)
        xml_path.with_suffix(".bin").unlink()
        artifacts[stage].files = (artifacts[stage].files[0], SHARED_FILE)
    return table.record(SHARED_FILE, sha, size)


def _dims(shape: str | None) -> tuple[int, ...]:
    return tuple(int(d) for d in (shape or "").replace(" ", "").split(",") if d)

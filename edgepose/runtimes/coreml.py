"""Core ML backend: ``MLModel.predict`` on macOS; a structural ``inspect`` everywhere.

Core ML executes only on Apple's OS. On Linux opening a session raises a clear
error, and ``inspect(path)`` reads the spec instead (inputs, outputs, operation
counts, size), which is what export verification can check there.
coremltools is imported lazily: it imports torch when torch is installed.
"""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..core.manifest import TensorInfo
from .base import BaseSession, DeviceUnavailable, bad_file, check_exists
from .devices import Resolution, Target
from .registry import require

MACOS_ONLY = (
    "Core ML runs on macOS only (this is {platform}): open this bundle on a Mac; here use "
    "edgepose.runtimes.coreml.inspect(path) to check its structure, or run the ONNX/OpenVINO/TFLite bundle"
)
TARGETS: dict[str, tuple[Target, ...]] = {
    "cpu": (Target("CPU_ONLY", "macOS"),),
    "gpu": (Target("CPU_AND_GPU", "macOS"),),
    "npu": (Target("CPU_AND_NE", "macOS on Apple silicon (the Neural Engine)"),),
}
AUTO_TARGET = Target("ALL", "macOS")  # Core ML's own "let the runtime decide" beats our ordering


def probe() -> tuple[set[str], str]:
    if sys.platform != "darwin":
        return set(), MACOS_ONLY.format(platform=sys.platform)
    require("coreml")
    return {"CPU_ONLY", "CPU_AND_GPU", "CPU_AND_NE", "ALL"}, ""


# Core ML's ArrayFeatureType.ArrayDataType values
_ARRAY_DTYPES = {65568: "float32", 65600: "float64", 65552: "float16", 131104: "int32", 131080: "int8"}


def _spec_file(p: Path) -> Path:
    """The protobuf spec inside an .mlpackage (named by its Manifest.json), or the .mlmodel itself."""
    if p.suffix.lower() != ".mlpackage":
        return p
    manifest = p / "Manifest.json"
    if not manifest.is_file():
        raise bad_file(p, "has no Manifest.json: it is not a complete .mlpackage")
    try:
        meta = json.loads(manifest.read_text())
        root = meta["itemInfoEntries"][meta["rootModelIdentifier"]]["path"]
    except (ValueError, KeyError, TypeError) as e:
        raise bad_file(p, f"has an unreadable Manifest.json ({type(e).__name__}: {e})") from None
    spec = p / "Data" / root
    if not spec.is_file() or spec.stat().st_size == 0:
        raise bad_file(p, f"is missing its model spec {('Data/' + root)!r}")
    return spec


def check_file(path: str | os.PathLike) -> None:
    p = Path(path)
    check_exists(p, directory=p.suffix.lower() == ".mlpackage", min_bytes=8)
    _spec_file(p)


def _load_spec(p: Path):
    require("coreml")
    spec_path = _spec_file(p)
    from coremltools.proto import Model_pb2  # lazy: coremltools

    spec = Model_pb2.Model()
    try:
        spec.ParseFromString(spec_path.read_bytes())
    except Exception as e:  # google.protobuf DecodeError
        raise bad_file(p, f"has a Core ML spec that does not parse ({type(e).__name__}: {e})") from None
    return spec


def _feature(f) -> TensorInfo:
    kind = f.type.WhichOneof("Type")
    if kind == "multiArrayType":
        arr = f.type.multiArrayType
        shape = list(arr.shape)
        flex = arr.WhichOneof("ShapeFlexibility")
        if flex == "shapeRange":
            shape = [
                r.lowerBound if r.lowerBound == r.upperBound else ("batch" if i == 0 else f"d{i}")
                for i, r in enumerate(arr.shapeRange.sizeRanges)
            ]
        elif flex == "enumeratedShapes":
            options = [list(s.shape) for s in arr.enumeratedShapes.shapes]
            shape = [
                o[0] if len({x[i] for x in options}) == 1 else ("batch" if i == 0 else f"d{i}")
                for i, o in enumerate(zip(*options))
            ]
        return TensorInfo(f.name, tuple(shape) if shape else None, _ARRAY_DTYPES.get(arr.dataType, "float32"))
    return TensorInfo(f.name, None, kind or "unknown")


@dataclass
class CoreMLInfo:
    """What ``inspect`` reads from a Core ML model without running it."""

    path: Path
    model_type: str  # "mlProgram", "neuralNetwork", ...
    spec_version: int
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    ops: Counter = field(default_factory=Counter)  # MIL operation (or NN layer) types and counts
    size_bytes: int = 0

    def to_dict(self) -> dict:
        return {
            "path": str(self.path),
            "model_type": self.model_type,
            "spec_version": self.spec_version,
            "inputs": [t.to_dict() for t in self.inputs],
            "outputs": [t.to_dict() for t in self.outputs],
            "ops": dict(self.ops),
            "size_bytes": self.size_bytes,
        }


def _size(p: Path) -> int:
    if p.is_dir():
        return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
    return p.stat().st_size


def inspect(path: str | os.PathLike) -> CoreMLInfo:
    """Structure of a .mlpackage/.mlmodel: I/O tensors, op counts, size. Works on any OS."""
    p = Path(path)
    check_file(p)
    spec = _load_spec(p)
    kind = spec.WhichOneof("Type") or "unknown"
    ops: Counter = Counter()
    if kind == "mlProgram":
        for fn in spec.mlProgram.functions.values():
            for block in fn.block_specializations.values():
                _count_ops(block, ops)
    elif kind == "neuralNetwork":
        ops.update(layer.WhichOneof("layer") for layer in spec.neuralNetwork.layers)
    return CoreMLInfo(
        path=p,
        model_type=kind,
        spec_version=int(spec.specificationVersion),
        inputs=tuple(_feature(f) for f in spec.description.input),
        outputs=tuple(_feature(f) for f in spec.description.output),
        ops=ops,
        size_bytes=_size(p),
    )


def _count_ops(block, ops: Counter) -> None:
    for op in block.operations:
        ops[op.type] += 1
        for nested in op.blocks:  # control flow (cond/while) holds blocks of its own
            _count_ops(nested, ops)


class CoreMLSession(BaseSession):
    backend = "coreml"

    def __init__(self, path: Path, choice: Resolution, allow_fallback: bool = False):
        if sys.platform != "darwin":
            raise DeviceUnavailable(MACOS_ONLY.format(platform=sys.platform))
        ct = require("coreml")
        self.path = Path(path)
        info = inspect(self.path)
        try:
            self._model = ct.models.MLModel(str(self.path), compute_units=ct.ComputeUnit[choice.name])
        except Exception as e:
            raise bad_file(self.path, f"could not be loaded by Core ML ({type(e).__name__}: {e})") from None
        self.device = choice.name
        self.reason = choice.reason
        self.inputs, self.outputs = info.inputs, info.outputs

    def _run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = self._model.predict(feeds)
        return {o.name: np.asarray(out[o.name]) for o in self.outputs}

    def close(self) -> None:
        self._model = None


def open_session(
    path: str | os.PathLike, choice: Resolution, allow_fallback: bool = False, **options
) -> CoreMLSession:
    return CoreMLSession(Path(path), choice, allow_fallback, **options)

"""ONNX Runtime backend: one InferenceSession per stage, on the execution provider ``devices`` chose.

ONNX Runtime silently drops a provider it cannot initialise (e.g. TensorRT
without its libraries) and runs on the next one; the session compares what it
got with what was asked and treats a downgrade as a fallback: allowed only with
``allow_fallback``, and always stated in ``reason``.

A graph whose initializers live in a weight file shared with other stages
(ONNX external data; SHaRPose's coarse and fine graphs) names that file with its
size and sha256 in its metadata; the session checks it before it runs, so a
graph opened without its manifest still refuses a changed weight file.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..core.integrity import IntegrityError, check_shared_file
from ..core.manifest import TensorInfo
from .base import BaseSession, DeviceUnavailable, ModelFileError, bad_file, check_exists, dims
from .devices import Resolution, Target
from .registry import require

_ORT_GPU = (
    "pip install onnxruntime-gpu (CUDA 12 + cuDNN 9; on Jetson, NVIDIA's JetPack onnxruntime-gpu wheel)"
)
SHARED_KEY = "edgepose.shared_weights"  # graph metadata: {"file", "sha256", "size"} of shared weights
_QNN_HTP = "QnnHtp.dll" if sys.platform == "win32" else "libQnnHtp.so"

# device kind -> execution providers in preference order (TensorRT is its own runtime: ``tensorrt``)
TARGETS: dict[str, tuple[Target, ...]] = {
    "cpu": (Target("CPUExecutionProvider"),),
    "gpu": (
        Target("CUDAExecutionProvider", _ORT_GPU),
        Target(
            "TensorrtExecutionProvider",
            "onnxruntime-gpu plus the TensorRT 10 libraries on the library path",
        ),
        Target("DmlExecutionProvider", "pip install onnxruntime-directml (Windows)"),
        Target(
            "OpenVINOExecutionProvider",
            "pip install onnxruntime-openvino and Intel's GPU compute runtime",
            {"device_type": "GPU"},
        ),
        Target(
            "CoreMLExecutionProvider",
            "macOS: the standard onnxruntime wheel",
            {"MLComputeUnits": "CPUAndGPU"},
        ),
    ),
    "npu": (
        Target(
            "QNNExecutionProvider",
            "pip install onnxruntime-qnn (Snapdragon) with the QNN HTP backend",
            {"backend_path": _QNN_HTP},
        ),
        Target(
            "OpenVINOExecutionProvider",
            "pip install onnxruntime-openvino and the Intel NPU driver",
            {"device_type": "NPU"},
        ),
        Target(
            "CoreMLExecutionProvider",
            "macOS on Apple silicon: the standard onnxruntime wheel",
            {"MLComputeUnits": "CPUAndNeuralEngine"},
        ),
    ),
}


def probe() -> tuple[set[str], str]:
    return set(require("onnxruntime").get_available_providers()), ""


_ORT_TYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(int8)": "int8",
    "tensor(uint8)": "uint8",
    "tensor(int16)": "int16",
    "tensor(int32)": "int32",
    "tensor(int64)": "int64",
    "tensor(bool)": "bool",
}


def check_file(path: str | os.PathLike) -> None:
    """Reject a corrupt or truncated .onnx before a session is built (onnx.checker when onnx is installed)."""
    p = check_exists(path, min_bytes=16)
    try:
        import onnx  # lazy: onnx
    except ImportError:  # device installs may carry onnxruntime only; session creation still parses strictly
        return
    try:
        onnx.checker.check_model(str(p))
    except Exception as e:  # onnx raises ValidationError, DecodeError, OSError for bad external data...
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise bad_file(p, f"is not a valid ONNX model ({type(e).__name__}: {first[:300]})") from None


def _info(arg) -> TensorInfo:
    dtype = _ORT_TYPES.get(arg.type)
    if dtype is None:
        raise ModelFileError(
            f"ONNX tensor {arg.name!r} has type {arg.type}, which edgepose sessions do not exchange"
        )
    return TensorInfo(arg.name, dims(arg.shape), dtype)


class OrtSession(BaseSession):
    backend = "onnxruntime"

    def __init__(
        self,
        path: Path,
        choice: Resolution,
        allow_fallback: bool = False,
        threads: int | None = None,
        provider_options: dict | None = None,
        graph_optimization: str = "all",
        then: tuple[str, ...] = (),
    ):
        ort = require("onnxruntime")
        self.path = Path(path)
        so = ort.SessionOptions()
        so.log_severity_level = 3  # errors only: provider fallbacks are reported through `reason`
        if threads:
            so.intra_op_num_threads = int(threads)
        levels = {
            "none": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }
        so.graph_optimization_level = levels[graph_optimization]
        wanted = choice.name
        opts = {**choice.options, **(provider_options or {})}
        providers = [(wanted, opts)]
        available = set(ort.get_available_providers())
        providers += [(p, {}) for p in then if p in available and p != wanted]  # e.g. CUDA under TensorRT
        if wanted != "CPUExecutionProvider":
            providers.append(("CPUExecutionProvider", {}))  # for nodes the accelerator does not take
        try:
            self._sess = ort.InferenceSession(str(self.path), sess_options=so, providers=providers)
        except Exception as e:
            msg = str(e)
            if any(
                k in msg for k in ("INVALID_PROTOBUF", "Protobuf parsing failed", "INVALID_GRAPH", "No graph")
            ):
                raise bad_file(
                    self.path, f"could not be loaded by onnxruntime ({msg.strip()[:300]})"
                ) from None
            if wanted != "CPUExecutionProvider":
                if not allow_fallback:
                    raise DeviceUnavailable(
                        f"onnxruntime could not initialise {wanted} for {self.path.name}: {msg.strip()[:300]}. "
                        "Pass allow_fallback=True to run on CPU"
                    ) from None
                self._sess = ort.InferenceSession(
                    str(self.path), sess_options=so, providers=["CPUExecutionProvider"]
                )
                choice = _downgraded(choice, f"{wanted} failed to initialise ({msg.strip()[:120]})")
            else:
                raise
        self._check_shared()
        got = self._sess.get_providers()
        self.device = got[0]
        self.reason = choice.reason
        if got[0] != wanted:
            why = f"onnxruntime dropped {wanted} (it could not be initialised; see its log) and runs on {got[0]}"
            if not allow_fallback:
                raise DeviceUnavailable(
                    f"{why}. To use it: {choice.target.hint or 'install its libraries'}. "
                    "Or pass allow_fallback=True"
                )
            self.reason = f"{choice.reason}; {why}"
        self.inputs = tuple(_info(a) for a in self._sess.get_inputs())
        self.outputs = tuple(_info(a) for a in self._sess.get_outputs())
        self._names = [o.name for o in self.outputs]

    def _check_shared(self) -> None:
        """Refuse a graph whose shared weight file is not the one it was exported with."""
        meta = self._sess.get_modelmeta().custom_metadata_map
        if SHARED_KEY not in meta:
            return
        try:
            check_shared_file(self.path, json.loads(meta[SHARED_KEY]))
        except (IntegrityError, ValueError, KeyError, TypeError) as e:
            self._sess = None
            raise ModelFileError(f"model file {str(self.path)!r}: {e}") from None

    def _run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(self._names, self._sess.run(self._names, feeds)))

    def close(self) -> None:
        self._sess = None


def _downgraded(choice: Resolution, why: str) -> Resolution:
    return replace(
        choice,
        target=Target("CPUExecutionProvider"),
        kind="cpu",
        fell_back=True,
        reason=f"{choice.reason}; {why}; fell back to CPUExecutionProvider",
    )


def open_session(
    path: str | os.PathLike, choice: Resolution, allow_fallback: bool = False, **options
) -> OrtSession:
    return OrtSession(Path(path), choice, allow_fallback, **options)

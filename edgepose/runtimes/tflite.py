"""TFLite backend on LiteRT's Interpreter (``ai-edge-litert``; ``tflite-runtime`` as a fallback import).

CPU runs through the built-in XNNPACK delegate (int8 accelerated in LiteRT);
a GPU or NPU delegate library is loaded when ``devices`` found one. Models with
a signature (litert-torch writes ``serving_default``) are run by signature
names, others by tensor names. Int8/uint8 I/O is quantised and dequantised here
with each tensor's scale/zero-point, so callers always exchange float32.

TFLite graphs usually have a static batch of 1. Where a batch-1 graph is fed a
batch of B, the session runs the B samples one after another (documented, and
cheaper than a re-export); any other shape mismatch is an error.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

import numpy as np

from ..core.manifest import TensorInfo
from .base import (
    BaseSession,
    DeviceUnavailable,
    ModelFileError,
    SessionInputError,
    bad_file,
    check_exists,
    dims,
)
from .devices import Resolution, Target, library_loads
from .registry import require

_GPU_ENV = "EDGEPOSE_TFLITE_GPU_DELEGATE"
_NPU_ENV = "EDGEPOSE_TFLITE_NPU_DELEGATE"

TARGETS: dict[str, tuple[Target, ...]] = {
    "cpu": (Target("XNNPACK"),),  # built into the interpreter; the default
    "gpu": (
        Target(
            "libtensorflowlite_gpu_delegate.so",
            f"build the TFLite GPU delegate (OpenCL) and put it on the library path, or set {_GPU_ENV}",
        ),
    ),
    "npu": (
        Target(
            "libQnnTFLiteDelegate.so",
            "Qualcomm AI Engine Direct (QNN) SDK's TFLite delegate",
            {"backend_type": "htp"},
        ),
        Target("libvx_delegate.so", f"NXP i.MX tflite-vx-delegate, or set {_NPU_ENV}"),
    ),
}


def env_targets(kind: str) -> tuple[Target, ...]:
    """A delegate named by environment variable comes first (a custom build on a board)."""
    env = {"gpu": _GPU_ENV, "npu": _NPU_ENV}.get(kind)
    if env and os.environ.get(env):
        return (Target(os.environ[env], f"the library named by ${env}"),)
    return ()


def probe() -> tuple[set[str], str]:
    require("tflite")
    libs = {t.name for kind in ("gpu", "npu") for t in (*env_targets(kind), *TARGETS[kind])}
    return {"XNNPACK"} | {lib for lib in libs if library_loads(lib)}, ""


FLATBUFFER_ID = b"TFL3"  # the TFLite schema's file identifier, bytes 4..8 of every model


def interpreter_module():
    """``ai_edge_litert.interpreter`` or, failing that, ``tflite_runtime.interpreter``."""
    pkg = require("tflite")
    return importlib.import_module(pkg.__name__ + ".interpreter")


def check_file(path: str | os.PathLike) -> None:
    p = check_exists(path, min_bytes=8)
    with p.open("rb") as f:
        head = f.read(8)
    if head[4:8] != FLATBUFFER_ID:
        raise bad_file(
            p,
            f"is not a TFLite flatbuffer (expected identifier {FLATBUFFER_ID!r} at byte 4, "
            f"found {head[4:8]!r})",
        )


def _info(name: str, d: dict) -> TensorInfo:
    dtype = np.dtype(d["dtype"]).name
    qp = d.get("quantization_parameters") or {}
    scales = np.asarray(qp.get("scales", []))
    zps = np.asarray(qp.get("zero_points", []))
    scale = zp = None
    if scales.size == 1 and dtype in ("int8", "uint8", "int16"):
        scale, zp = float(scales[0]), int(zps[0]) if zps.size else 0
    elif scales.size > 1:
        raise ModelFileError(
            f"TFLite tensor {name!r} has per-axis quantised I/O ({scales.size} scales); "
            "edgepose sessions (de)quantise per-tensor I/O only: re-export with per-tensor I/O"
        )
    elif scales.size == 0 and d.get("quantization", (0.0, 0))[0] and dtype in ("int8", "uint8", "int16"):
        scale, zp = float(d["quantization"][0]), int(d["quantization"][1])
    sig = d.get("shape_signature")
    shape = dims(list(sig) if sig is not None and len(sig) else list(d["shape"]))
    return TensorInfo(name, shape, dtype, scale, zp)


class TfliteSession(BaseSession):
    backend = "tflite"
    check_shapes = False  # checked in _run, which knows about batch loops and resizable axes

    def __init__(
        self,
        path: Path,
        choice: Resolution,
        allow_fallback: bool = False,
        threads: int | None = None,
        signature: str | None = None,
    ):
        itp = interpreter_module()
        self.path = Path(path)
        self.reason = choice.reason
        delegates = []
        self.device = "XNNPACK"
        if choice.name != "XNNPACK":
            try:
                delegates = [itp.load_delegate(choice.name, dict(choice.options))]
                self.device = choice.name
            except (ValueError, OSError, RuntimeError) as e:
                if not allow_fallback:
                    raise DeviceUnavailable(
                        f"could not load TFLite delegate {choice.name}: {e}. "
                        + (f"To use it: {choice.target.hint}. " if choice.target.hint else "")
                        + "Or pass allow_fallback=True"
                    ) from None
                self.reason = (
                    f"{choice.reason}; loading {choice.name} failed ({e}); fell back to XNNPACK (cpu)"
                )
        threads = threads or min(4, os.cpu_count() or 1)
        try:
            self._it = itp.Interpreter(
                model_path=str(self.path), experimental_delegates=delegates or None, num_threads=threads
            )
        except ValueError as e:  # the flatbuffer verifier rejects truncated/corrupt files here
            raise bad_file(self.path, f"could not be loaded by LiteRT ({e})") from None
        sigs = self._it.get_signature_list()
        if sigs:
            if signature is None:
                if len(sigs) > 1:
                    raise ValueError(f"{self.path.name} has signatures {list(sigs)}; pass signature=...")
                signature = next(iter(sigs))
            if signature not in sigs:
                raise ValueError(f"{self.path.name} has no signature {signature!r}; it has {list(sigs)}")
            self._runner = self._it.get_signature_runner(signature)
            ind, outd = self._runner.get_input_details(), self._runner.get_output_details()
            in_names, out_names = sigs[signature]["inputs"], sigs[signature]["outputs"]
            self.inputs = tuple(_info(n, ind[n]) for n in in_names)
            self.outputs = tuple(_info(n, outd[n]) for n in out_names)
        else:
            self._runner = None
            self._it.allocate_tensors()
            ind, outd = self._it.get_input_details(), self._it.get_output_details()
            self.inputs = tuple(_info(d["name"], d) for d in ind)
            self.outputs = tuple(_info(d["name"], d) for d in outd)
            self._in_index = {d["name"]: d["index"] for d in ind}
            self._out_index = {d["name"]: d["index"] for d in outd}
            self._allocated = {d["name"]: tuple(d["shape"]) for d in ind}
        self.signature = signature

    # ---- running
    def _invoke(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self._runner is not None:
            return self._runner(**feeds)  # resizes dynamic axes and allocates as needed
        changed = False
        for name, x in feeds.items():
            if tuple(x.shape) != self._allocated[name]:
                self._it.resize_input_tensor(self._in_index[name], list(x.shape), strict=True)
                self._allocated[name] = tuple(x.shape)
                changed = True
        if changed:
            self._it.allocate_tensors()
        for name, x in feeds.items():
            self._it.set_tensor(self._in_index[name], x)
        self._it.invoke()
        return {o.name: self._it.get_tensor(self._out_index[o.name]) for o in self.outputs}

    def _batch_loop_size(self, feeds: dict[str, np.ndarray]) -> int | None:
        """B when every input is a static batch-1 tensor fed B >= 1 samples and otherwise fits; None if all fit."""
        fits, batch = True, set()
        for info in self.inputs:
            x, spec = feeds[info.name], info.shape
            if len(x.shape) != len(spec):
                raise SessionInputError(
                    f"{self.path.name}: input {info.name!r} has shape {tuple(x.shape)}, "
                    f"expected rank {len(spec)}: {list(spec)}"
                )
            rest_ok = all(isinstance(d, str) or d == s for s, d in zip(x.shape[1:], spec[1:]))
            head_ok = isinstance(spec[0], str) or spec[0] == x.shape[0]
            if not rest_ok:
                raise SessionInputError(
                    f"{self.path.name}: input {info.name!r} has shape {tuple(x.shape)}, "
                    f"expected {list(spec)} (strings are dynamic axes)"
                )
            if not head_ok:
                if spec[0] != 1:
                    raise SessionInputError(
                        f"{self.path.name}: input {info.name!r} has batch {x.shape[0]}, "
                        f"but the graph's batch is fixed at {spec[0]}"
                    )
                fits = False
            batch.add(x.shape[0])
        if fits:
            return None
        if len(batch) != 1:
            raise SessionInputError(f"{self.path.name}: inputs disagree on the batch size: {sorted(batch)}")
        return batch.pop()

    def _run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        b = self._batch_loop_size(feeds)
        if b is None:
            return self._invoke(feeds)
        parts = [self._invoke({k: v[i : i + 1] for k, v in feeds.items()}) for i in range(b)]
        return {k: np.concatenate([p[k] for p in parts], axis=0) for k in parts[0]}

    def close(self) -> None:
        self._runner = None
        self._it = None


def open_session(
    path: str | os.PathLike, choice: Resolution, allow_fallback: bool = False, **options
) -> TfliteSession:
    return TfliteSession(Path(path), choice, allow_fallback, **options)

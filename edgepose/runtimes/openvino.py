"""OpenVINO backend: read an IR (.xml + .bin; or an .onnx), compile it for CPU/GPU/NPU/AUTO, infer.

``read_model`` runs before compilation, so a broken or truncated IR is rejected
with the file named. The device reported is OpenVINO's own
``EXECUTION_DEVICES`` (what AUTO actually picked). ``precision`` maps a bundle's
precision to OpenVINO's inference-precision hint, f32 unless asked otherwise:
left alone, the GPU plugin computes in f16 and the CPU plugin in bf16 on CPUs
with AVX512-BF16 or AMX (seen here: 3.6e-3 error on a toy conv net instead of
1e-6), which a bundle verified against PyTorch must not silently get.
``precision="auto"`` keeps OpenVINO's own choice (faster, less exact).
An fp16 bundle computes in f16 only where the device has native fp16
arithmetic (its ``OPTIMIZATION_CAPABILITIES`` list ``FP16``: GPUs, NPUs, recent
CPUs); elsewhere OpenVINO would silently substitute bf16, which cost SHaRPose-S
5.4 px here, so it runs its fp16-compressed weights in f32 instead.

Stages exported with shared weights (SHaRPose's coarse and fine IRs, one ViT)
read their constants from one ``.bin`` that is not ``<stage>.bin``: the IR's
rt_info names it with its size and sha256 (``weights_path``), and the file is
checked against them before ``read_model``, so an IR opened without its manifest
still refuses a changed weight file.
"""

from __future__ import annotations

import html
import json
import os
import re
from pathlib import Path

import numpy as np

from ..core.integrity import IntegrityError, check_shared_file
from ..core.manifest import TensorInfo
from .base import BaseSession, DeviceUnavailable, ModelFileError, bad_file, check_exists
from .devices import Resolution, Target
from .registry import require

TARGETS: dict[str, tuple[Target, ...]] = {
    "cpu": (Target("CPU"),),
    "gpu": (
        Target(
            "GPU", "Intel GPU compute runtime (intel-opencl-icd / Level Zero) and the openvino GPU plugin"
        ),
    ),
    "npu": (Target("NPU", "an Intel Core Ultra NPU with the Intel NPU driver (linux-npu-driver)"),),
}
SHARED_KEY = "edgepose.shared_weights"  # rt_info entry of an IR whose weights live in a shared .bin
_TAIL_BYTES = 65536  # rt_info is the IR's last element: the record is found without parsing the graph
VIRTUAL_PREFIXES = ("AUTO", "MULTI", "HETERO", "BATCH")  # names that are not devices of their own


def probe() -> tuple[set[str], str]:
    devs = set(require("openvino").Core().available_devices)
    return devs | {d.split(".")[0] for d in devs}, ""  # "GPU.0" also answers to "GPU"


def precision_notes() -> list[str]:
    """What OpenVINO's CPU plugin does with an fp16 bundle here (its f16 hint may run as bf16): for
    the benchmarks' notes."""
    try:
        caps = set(require("openvino").Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
    except Exception:  # noqa: BLE001 - a note is optional
        return []
    if "FP16" not in caps and "BF16" in caps:
        return [
            (
                "OpenVINO: this CPU has bf16 but no fp16 arithmetic (plugin capabilities "
                f"{sorted(caps)}); edgepose runs fp16 bundles here with their fp16 weights decompressed to "
                "f32 compute (OpenVINO's f16 hint would silently run bf16, which cost SHaRPose-S 5.4 px), "
                "hence an fp16 speed-up near 1: fp16 buys size on this CPU, speed only on fp16 hardware."
            )
        ]
    return [f"OpenVINO CPU plugin capabilities here: {sorted(caps)}."]


def pinned_name(requested: str, match: str) -> str:
    return requested.upper()


def session_options(manifest, stage: str) -> dict:
    """Reading an IR or an ONNX bundle: the exact precision hint and the manifest's I/O names among
    the several OpenVINO keeps per tensor."""
    entry = manifest.stage(stage)
    return {"precision": manifest.precision, "names": [*entry.input_names, *entry.output_names]}


# bundle precision -> INFERENCE_PRECISION_HINT; int8 IRs run their quantised ops in int8 and the rest in f32
_PRECISION_HINT = {None: "f32", "fp32": "f32", "int8": "f32", "fp16": "f16", "bf16": "bf16", "auto": None}


def _has_native_fp16(core, device: str) -> bool:
    try:
        return "FP16" in core.get_property(device.split(".")[0], "OPTIMIZATION_CAPABILITIES")
    except Exception:  # AUTO/MULTI have no such property: let the plugins choose
        return True


def check_file(path: str | os.PathLike, deep: bool = False) -> None:
    """Cheap structural checks; ``deep`` also parses the graph (a session always does, before compiling)."""
    p = check_exists(path, min_bytes=16)
    if p.suffix.lower() == ".xml":
        head = p.read_bytes()[:512].lstrip()
        if not (head.startswith((b"<?xml", b"<net"))):
            raise bad_file(p, "does not start like an OpenVINO IR (.xml)")
        weights = weights_path(p)
        if not weights.is_file():
            raise bad_file(p, f"has no weights file {weights.name!r} beside it")
    if deep:
        _read(p)


def shared_weights(xml_path: str | os.PathLike) -> dict | None:
    """{"file", "sha256", "size"} of the shared weights an IR points into (from its rt_info), or None."""
    p = Path(xml_path)
    pattern = re.compile("<" + re.escape(SHARED_KEY) + r' value="([^"]*)"')
    with open(p, "rb") as f:
        f.seek(max(0, p.stat().st_size - _TAIL_BYTES))
        m = pattern.search(f.read().decode("utf-8", errors="replace"))
        if m is None and not p.with_suffix(".bin").is_file():  # a long rt_info after ours (NNCF's)
            f.seek(0)
            m = pattern.search(f.read().decode("utf-8", errors="replace"))
    if m is None:
        return None
    try:
        rec = json.loads(html.unescape(m.group(1)))
        if not isinstance(rec, dict) or not {"file", "size", "sha256"} <= set(rec):
            raise ValueError(rec)
        if Path(str(rec["file"])).name != rec["file"] or rec["file"] in (".", ".."):
            raise ValueError(rec["file"])
    except ValueError:
        raise bad_file(p, f"has an unreadable {SHARED_KEY} record in its rt_info") from None
    return rec


def weights_path(xml_path: str | os.PathLike) -> Path:
    """The weights file of an IR: the shared one its rt_info names, else ``<stem>.bin``."""
    p = Path(xml_path)
    rec = shared_weights(p) if p.suffix.lower() == ".xml" else None
    return p.with_name(rec["file"]) if rec else p.with_suffix(".bin")


def _read(p: Path):
    ov = require("openvino")
    rec = shared_weights(p) if p.suffix.lower() == ".xml" else None
    if rec is not None:
        try:
            check_shared_file(p, rec)
        except IntegrityError as e:
            raise ModelFileError(str(e)) from None
    try:
        if p.suffix.lower() == ".xml":
            return ov.Core().read_model(str(p), str(weights_path(p)))
        return ov.Core().read_model(str(p))
    except Exception as e:  # RuntimeError from the IR/ONNX frontends
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise bad_file(p, f"could not be read by OpenVINO ({first[:300]})") from None


def _dtype(port) -> str:
    return np.dtype(port.get_element_type().to_dtype()).name


def _shape(port) -> tuple:
    ps = port.get_partial_shape()
    out = []
    for i, d in enumerate(ps):
        out.append(d.get_length() if d.is_static else ("batch" if i == 0 else f"d{i}"))
    return tuple(out)


def _name(port, preferred: set[str]) -> str:
    """A port's name; OpenVINO keeps several per tensor, so prefer one the caller knows (ONNX names)."""
    names = port.get_names()
    hit = sorted(names & preferred)
    return hit[0] if hit else port.get_any_name()


class OpenVinoSession(BaseSession):
    backend = "openvino"

    def __init__(
        self,
        path: Path,
        choice: Resolution,
        allow_fallback: bool = False,
        precision: str | None = None,
        threads: int | None = None,
        config: dict | None = None,
        names: list[str] | None = None,
    ):
        ov = require("openvino")
        self.path = Path(path)
        model = _read(self.path)
        cfg = {"PERFORMANCE_HINT": "LATENCY"}
        if precision not in _PRECISION_HINT:
            raise ValueError(
                f"precision must be one of {[k for k in _PRECISION_HINT if k]}, got {precision!r}"
            )
        core = ov.Core()
        hint = _PRECISION_HINT[precision]
        if hint == "f16" and not _has_native_fp16(core, choice.name):
            hint = "f32"
        if hint:
            cfg["INFERENCE_PRECISION_HINT"] = hint
        if threads:
            cfg["INFERENCE_NUM_THREADS"] = int(threads)
        cfg.update(config or {})
        try:
            self._compiled = core.compile_model(model, choice.name, cfg)
        except Exception as e:
            msg = str(e).strip().splitlines()[0][:300] if str(e).strip() else type(e).__name__
            if not allow_fallback or choice.name == "CPU":
                raise DeviceUnavailable(
                    f"OpenVINO could not compile {self.path.name} for {choice.name}: {msg}. "
                    + (f"To use it: {choice.target.hint}. " if choice.target.hint else "")
                    + ("Or pass allow_fallback=True" if choice.name != "CPU" else "")
                ) from None
            self._compiled = core.compile_model(model, "CPU", cfg)
            self.reason = (
                f"{choice.reason}; compiling for {choice.name} failed ({msg[:120]}); fell back to CPU"
            )
        else:
            self.reason = choice.reason
        try:
            actual = list(self._compiled.get_property("EXECUTION_DEVICES"))
        except Exception:
            actual = [choice.name]
        self.device = ",".join(actual)
        preferred = set(names or ())
        self._in_ports = [(_name(p, preferred), p) for p in self._compiled.inputs]
        self._out_ports = [(_name(p, preferred), p) for p in self._compiled.outputs]
        self.inputs = tuple(TensorInfo(n, _shape(p), _dtype(p)) for n, p in self._in_ports)
        self.outputs = tuple(TensorInfo(n, _shape(p), _dtype(p)) for n, p in self._out_ports)
        self._request = self._compiled.create_infer_request()

    def _run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        res = self._request.infer({p: feeds[n] for n, p in self._in_ports})
        # results live in the request's buffers, which the next call overwrites: copy them out
        return {n: np.array(res[p], copy=True) for n, p in self._out_ports}

    def close(self) -> None:
        self._request = None
        self._compiled = None


def open_session(
    path: str | os.PathLike, choice: Resolution, allow_fallback: bool = False, **options
) -> OpenVinoSession:
    return OpenVinoSession(Path(path), choice, allow_fallback, **options)

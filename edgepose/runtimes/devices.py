"""Device resolution: ONE table from (backend, cpu|gpu|npu) to the backend's own names.

``resolve(backend, device)`` checks what is actually present here (ONNX
Runtime's providers, OpenVINO's devices, loadable LiteRT delegates, Core ML on
macOS, torch's CUDA/MPS) and returns the choice with a sentence saying why.
Asking for an absent device is an error naming what to install or enable,
unless ``allow_fallback`` is set, in which case the reason says what it fell
back to. ``device`` may also be a backend's own name (``"CUDAExecutionProvider"``,
``"GPU.1"``, ``"AUTO"``, ``"CPU_AND_NE"``, ``"cuda:1"``) to pin one exactly.

Presence is necessary, not sufficient: an ONNX Runtime GPU build lists
TensorRT even without the TensorRT libraries. Sessions therefore report the
device they actually got, and treat a silent downgrade as a fallback too.
"""

from __future__ import annotations

import ctypes
import functools
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from .base import DeviceUnavailable
from .registry import get_backend, require

KINDS = ("cpu", "gpu", "npu")
AUTO_ORDER = ("gpu", "npu", "cpu")  # "auto" takes the first kind with a present target


@dataclass(frozen=True)
class Target:
    """One concrete way to run on a device kind: a provider, device, delegate library or compute units."""

    name: str
    hint: str = ""  # what to install/enable when it is absent
    options: Mapping[str, str] = field(default_factory=dict, hash=False)


_QNN_HTP = "QnnHtp.dll" if sys.platform == "win32" else "libQnnHtp.so"
_ORT_GPU = (
    "pip install onnxruntime-gpu (CUDA 12 + cuDNN 9; on Jetson, NVIDIA's JetPack onnxruntime-gpu wheel)"
)
_TFLITE_GPU_ENV = "EDGEPOSE_TFLITE_GPU_DELEGATE"
_TFLITE_NPU_ENV = "EDGEPOSE_TFLITE_NPU_DELEGATE"
MACOS_ONLY = (
    "Core ML runs on macOS only (this is {platform}): open this bundle on a Mac; here use "
    "edgepose.runtimes.coreml.inspect(path) to check its structure, or run the ONNX/OpenVINO/TFLite bundle"
)

# (backend, kind) -> targets in preference order.
DEVICE_TABLE: dict[str, dict[str, tuple[Target, ...]]] = {
    "onnxruntime": {
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
    },
    "openvino": {
        "cpu": (Target("CPU"),),
        "gpu": (
            Target(
                "GPU", "Intel GPU compute runtime (intel-opencl-icd / Level Zero) and the openvino GPU plugin"
            ),
        ),
        "npu": (Target("NPU", "an Intel Core Ultra NPU with the Intel NPU driver (linux-npu-driver)"),),
    },
    "tflite": {
        "cpu": (Target("XNNPACK"),),  # built into the interpreter; the default
        "gpu": (
            Target(
                "libtensorflowlite_gpu_delegate.so",
                f"build the TFLite GPU delegate (OpenCL) and put it on the library path, or set {_TFLITE_GPU_ENV}",
            ),
        ),
        "npu": (
            Target(
                "libQnnTFLiteDelegate.so",
                "Qualcomm AI Engine Direct (QNN) SDK's TFLite delegate",
                {"backend_type": "htp"},
            ),
            Target("libvx_delegate.so", f"NXP i.MX tflite-vx-delegate, or set {_TFLITE_NPU_ENV}"),
        ),
    },
    "coreml": {
        "cpu": (Target("CPU_ONLY", "macOS"),),
        "gpu": (Target("CPU_AND_GPU", "macOS"),),
        "npu": (Target("CPU_AND_NE", "macOS on Apple silicon (the Neural Engine)"),),
    },
    "torch": {
        "cpu": (Target("cpu"),),
        "gpu": (
            Target("cuda", "a CUDA build of torch and an NVIDIA driver"),
            Target("mps", "macOS on Apple silicon"),
        ),
        "npu": (),
    },
}

# Backends whose own "let the runtime decide" beats our ordering for device="auto".
AUTO_NATIVE: dict[str, Target] = {"coreml": Target("ALL", "macOS")}

# Names a backend accepts that are not devices of their own (OpenVINO's virtual devices).
_VIRTUAL_PREFIXES = {"openvino": ("AUTO", "MULTI", "HETERO", "BATCH")}


def _env_targets(backend: str, kind: str) -> tuple[Target, ...]:
    """A delegate named by environment variable comes first (a custom build on a board)."""
    env = {("tflite", "gpu"): _TFLITE_GPU_ENV, ("tflite", "npu"): _TFLITE_NPU_ENV}.get((backend, kind))
    if env and os.environ.get(env):
        return (Target(os.environ[env], f"the library named by ${env}"),)
    return ()


def targets(backend: str, kind: str) -> tuple[Target, ...]:
    table = DEVICE_TABLE[get_backend(backend).name]
    if kind not in table:
        raise ValueError(f"device kind must be one of {KINDS} or 'auto', got {kind!r}")
    return _env_targets(backend, kind) + table[kind]


# ---------------------------------------------------------------- what is present (cached per process)


def _probe_onnxruntime() -> tuple[set[str], str]:
    ort = require("onnxruntime")
    return set(ort.get_available_providers()), ""


def _probe_openvino() -> tuple[set[str], str]:
    ov = require("openvino")
    devs = set(ov.Core().available_devices)
    return devs | {d.split(".")[0] for d in devs}, ""  # "GPU.0" also answers to "GPU"


def _library_loads(name: str) -> bool:
    try:
        ctypes.CDLL(name)
        return True
    except OSError:
        return False


def _probe_tflite() -> tuple[set[str], str]:
    require("tflite")
    libs = {t.name for kind in ("gpu", "npu") for t in targets("tflite", kind)}
    return {"XNNPACK"} | {lib for lib in libs if _library_loads(lib)}, ""


def _probe_coreml() -> tuple[set[str], str]:
    if sys.platform != "darwin":
        return set(), MACOS_ONLY.format(platform=sys.platform)
    require("coreml")
    return {"CPU_ONLY", "CPU_AND_GPU", "CPU_AND_NE", "ALL"}, ""


def _probe_torch() -> tuple[set[str], str]:
    torch = require("torch")
    present = {"cpu"}
    if torch.cuda.is_available():
        present.add("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        present.add("mps")
    return present, ""


PROBES: dict[str, Callable[[], tuple[set[str], str]]] = {
    "onnxruntime": _probe_onnxruntime,
    "openvino": _probe_openvino,
    "tflite": _probe_tflite,
    "coreml": _probe_coreml,
    "torch": _probe_torch,
}


@functools.cache
def _present(backend: str) -> tuple[frozenset[str], str]:
    found, note = PROBES[backend]()
    return frozenset(found), note


def present(backend: str) -> tuple[frozenset[str], str]:
    """(names present here, a note when the whole backend cannot run here)."""
    return _present(get_backend(backend).name)


def clear_cache() -> None:
    _present.cache_clear()


# ---------------------------------------------------------------- resolution


@dataclass(frozen=True)
class Resolution:
    backend: str
    kind: str  # cpu | gpu | npu | auto (native auto) | the kind a pinned name belongs to
    target: Target
    reason: str
    fell_back: bool = False
    requested: str = "auto"

    @property
    def name(self) -> str:
        return self.target.name

    @property
    def options(self) -> dict:
        return dict(self.target.options)


def _kind_of(backend: str, name: str) -> str | None:
    base = _base_name(backend, name).split(".")[0].lower()
    for kind in KINDS:
        if any(t.name.lower() == base for t in targets(backend, kind)):
            return kind
    return None


def _describe(backend: str, kind: str) -> str:
    ts = targets(backend, kind)
    return ", ".join(t.name for t in ts) if ts else "nothing"


def _absent_hint(backend: str, kind: str) -> str:
    ts = targets(backend, kind)
    if not ts:
        return f"{backend} has no {kind} target; export to a format whose runtime drives a {kind}"
    return "; ".join(f"{t.name}: {t.hint}" for t in ts if t.hint) or "no known way"


def _first_present(backend: str, kind: str, found: frozenset[str]) -> Target | None:
    return next((t for t in targets(backend, kind) if t.name in found), None)


def _cpu_fallback(backend: str, found: frozenset[str], note: str, why: str, requested: str) -> Resolution:
    cpu = _first_present(backend, "cpu", found)
    if cpu is None:
        raise DeviceUnavailable(f"{why}; no CPU fallback either" + (f": {note}" if note else ""))
    return Resolution(backend, "cpu", cpu, f"{why}; fell back to {cpu.name} (cpu)", True, requested)


def resolve(backend: str, device: str = "auto", allow_fallback: bool = False) -> Resolution:
    """Pick the concrete target for ``device`` ("auto", "cpu", "gpu", "npu" or a backend's own name)."""
    backend = get_backend(backend).name
    found, note = present(backend)
    requested = device
    if not isinstance(device, str) or not device:
        raise ValueError(
            f"device must be 'auto', 'cpu', 'gpu', 'npu' or a {backend} device name, got {device!r}"
        )
    if note and not found:
        raise DeviceUnavailable(f"backend {backend!r} cannot run here: {note}")

    dev = device.lower() if device.lower() in (*KINDS, "auto") else device
    if device == "AUTO" and backend in _VIRTUAL_PREFIXES:
        dev = device  # OpenVINO's own AUTO device, not our resolution
    if dev == "auto":
        if backend in AUTO_NATIVE:
            t = AUTO_NATIVE[backend]
            return Resolution(
                backend,
                "auto",
                t,
                f"auto: {t.name} lets {backend} choose among its devices",
                False,
                requested,
            )
        skipped = []
        for kind in AUTO_ORDER:
            t = _first_present(backend, kind, found)
            if t is not None:
                why = f"auto: {t.name} ({kind})"
                if skipped:
                    why += (
                        "; no " + " or ".join(f"{k} ({_describe(backend, k)})" for k in skipped) + " present"
                    )
                return Resolution(backend, kind, t, why, False, requested)
            if targets(backend, kind):
                skipped.append(kind)
        raise DeviceUnavailable(f"backend {backend!r}: nothing to run on; present: {sorted(found)}")

    if dev in KINDS:
        t = _first_present(backend, dev, found)
        if t is not None:
            return Resolution(backend, dev, t, f"{dev} requested: {t.name} is present", False, requested)
        why = f"{backend} has no {dev} here (looked for {_describe(backend, dev)}; present: {sorted(found)})"
        if allow_fallback and dev != "cpu":
            return _cpu_fallback(backend, found, note, why, requested)
        raise DeviceUnavailable(
            f"{why}. To use the {dev}: {_absent_hint(backend, dev)}. "
            "Or ask for device='cpu' / 'auto', or pass allow_fallback=True"
        )

    # A backend's own name, pinned exactly ("CUDAExecutionProvider", "GPU.1", "AUTO", "cuda:1", ...).
    virtual = any(device.upper().startswith(p) for p in _VIRTUAL_PREFIXES.get(backend, ()))
    match = next((n for n in found if n.lower() == _base_name(backend, device).lower()), None)
    known = _known_target(backend, device)
    if match is not None or virtual:
        name = device if virtual or backend == "torch" else match
        if backend == "openvino" and match is not None:
            name = device.upper()
        t = Target(name, known.hint if known else "", known.options if known else {})
        kind = "auto" if virtual else (_kind_of(backend, device) or "pinned")
        return Resolution(backend, kind, t, f"{device} requested and present", False, requested)
    why = f"{backend} has no {device!r} here (present: {sorted(found)})"
    if allow_fallback:
        return _cpu_fallback(backend, found, note, why, requested)
    hint = f". To get it: {known.hint}" if known is not None and known.hint else ""
    raise DeviceUnavailable(why + hint + ". Or pass allow_fallback=True")


def _base_name(backend: str, name: str) -> str:
    """'cuda:1' -> 'cuda' for torch; OpenVINO's 'GPU.1' stays (it is listed as such when present)."""
    return name.split(":")[0] if backend == "torch" else name


def _known_target(backend: str, name: str) -> Target | None:
    base = _base_name(backend, name).split(".")[0].lower()
    return next((t for k in KINDS for t in targets(backend, k) if t.name.lower() == base), None)


def device_table() -> list[dict]:
    """The table as rows (for `edgepose` CLI listings and the README)."""
    rows = []
    for backend, kinds in DEVICE_TABLE.items():
        for kind, ts in kinds.items():
            for rank, t in enumerate(ts):
                rows.append(
                    {
                        "backend": backend,
                        "kind": kind,
                        "rank": rank,
                        "name": t.name,
                        "options": dict(t.options),
                        "hint": t.hint,
                    }
                )
    return rows

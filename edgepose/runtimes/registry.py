"""The table of backends: name, module, file suffixes, Python package, pip extra.

Adding a backend is one row here, one row per device kind in ``devices.py``
and one module exposing ``check_file(path)`` and ``open_session(path, choice,
allow_fallback, **options) -> Session``. Backend packages are imported only
when a backend is used, so ``import edgepose.runtimes`` stays cheap and
torch-free.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from .base import BackendUnavailable


@dataclass(frozen=True)
class BackendInfo:
    name: str
    module: str  # our module implementing it
    suffixes: tuple[str, ...]  # files this backend is the default for
    reads: tuple[str, ...]  # every suffix it can open (OpenVINO also reads .onnx)
    packages: tuple[str, ...]  # importable packages, in preference order (any one suffices)
    pip: str  # what to pip install
    extra: str | None  # edgepose's pip extra holding it


BACKENDS: tuple[BackendInfo, ...] = (
    BackendInfo(
        "onnxruntime",
        "edgepose.runtimes.onnxruntime",
        (".onnx",),
        (".onnx",),
        ("onnxruntime",),
        "onnxruntime (or onnxruntime-gpu / -openvino / -qnn / -directml)",
        "onnx",
    ),
    BackendInfo(
        "openvino",
        "edgepose.runtimes.openvino",
        (".xml",),
        (".xml", ".onnx"),
        ("openvino",),
        "openvino",
        "openvino",
    ),
    BackendInfo(
        "tflite",
        "edgepose.runtimes.tflite",
        (".tflite",),
        (".tflite",),
        ("ai_edge_litert", "tflite_runtime"),
        "ai-edge-litert (or tflite-runtime, which needs numpy<2)",
        "tflite",
    ),
    BackendInfo(
        "coreml",
        "edgepose.runtimes.coreml",
        (".mlpackage", ".mlmodel"),
        (".mlpackage", ".mlmodel"),
        ("coremltools",),
        "coremltools",
        "coreml",
    ),
    BackendInfo(
        "torch",
        "edgepose.runtimes.torch_backend",
        (".pt2", ".pt", ".pth"),
        (".pt2", ".pt", ".pth"),
        ("torch",),
        "torch (a CPU wheel: --index-url https://download.pytorch.org/whl/cpu)",
        None,
    ),
)

_BY_NAME = {b.name: b for b in BACKENDS}
ALIASES = {
    "ort": "onnxruntime",
    "onnx": "onnxruntime",
    "ov": "openvino",
    "litert": "tflite",
    "pytorch": "torch",
}


def get_backend(name: str) -> BackendInfo:
    key = ALIASES.get(name.lower(), name.lower())
    if key not in _BY_NAME:
        raise ValueError(f"unknown backend {name!r}; backends: {list(_BY_NAME)}")
    return _BY_NAME[key]


def install_hint(info: BackendInfo) -> str:
    extra = f"pip install 'edgepose[{info.extra}]'" if info.extra else None
    return " or ".join(x for x in (extra, f"pip install {info.pip}") if x)


def require(name: str) -> ModuleType:
    """Import the backend's package (the first of its alternatives that imports) or say what to install."""
    info = get_backend(name)
    errors = []
    for pkg in info.packages:
        try:
            return importlib.import_module(pkg)
        except ImportError as e:  # absent, or present but broken (e.g. built for another numpy)
            errors.append(f"{pkg}: {e}")
    raise BackendUnavailable(
        f"backend {info.name!r} needs the Python package {info.pip.split(' ')[0]}, which could not be imported "
        f"({'; '.join(errors)}). Install it: {install_hint(info)}"
    )


def backend_module(name: str) -> ModuleType:
    return importlib.import_module(get_backend(name).module)


def backend_for_path(path: str | os.PathLike) -> BackendInfo:
    """The default backend for a model file, from its suffix."""
    suffix = Path(path).suffix.lower()
    for info in BACKENDS:
        if suffix in info.suffixes:
            return info
    known = {s: b.name for b in BACKENDS for s in b.suffixes}
    raise ValueError(
        f"cannot tell the backend of {str(path)!r} from its suffix {suffix or '(none)'!r}; "
        f"known suffixes: {known}. Pass backend=... explicitly."
    )


def is_installed(name: str) -> bool:
    """Whether one of the backend's packages is installed (found, not imported: importing is slow)."""
    return any(importlib.util.find_spec(p) is not None for p in get_backend(name).packages)


def available_backends() -> list[str]:
    """Backends whose package is installed here."""
    return [b.name for b in BACKENDS if is_installed(b.name)]

"""The one table of formats, precisions and runtimes. Torch-free (numpy only), read everywhere.

Who reads it: the manifest (which ``format`` values it accepts), the bundle loader (which runtime
opens a format, in which order a ``--format all`` root is tried, what session options a bundle
implies), the exporter (converter module, suffixes, layout, batch, versions to record), the int8
hook (each format's quantiser module), the parity checks (each precision's comparison) and the
benchmarks (the runtime's display name). No other module lists format or runtime names.

Adding a format is one ``Format`` row (``register_format``) and one converter module exposing
``convert(job) -> Artifact`` and ``read_metadata(path) -> dict``; for int8 a quantiser module
(``Format.int8``) exposing ``int8_before``/``int8_after`` (see ``edgepose.quantization.hook``).
A format without ``converter`` is one bundles can hold but ``export`` does not write (``torch``).

Adding a runtime is one ``Runtime`` row (``register_runtime``) and one module exposing
``check_file(path)``, ``open_session(path, choice, allow_fallback, **options) -> Session``,
``TARGETS`` ({"cpu"|"gpu"|"npu": (Target, ...)}) and ``probe() -> (names present, note)``;
optionally ``session_options(manifest, stage)``, ``env_targets(kind)``, ``AUTO_TARGET``,
``VIRTUAL_PREFIXES``, ``base_name(name)`` and ``pinned_name(requested, match)``
(``edgepose.runtimes.devices`` reads them). Rows hold module *names*: nothing here imports a
converter, quantiser or runtime package.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np


class ExportError(RuntimeError):
    """An export that cannot be done or did not pass its checks; the message says what to do."""


class ConverterUnavailable(ExportError):
    """A converter's Python package is missing; the message names the pip extra."""


# ----------------------------------------------------------------------------- precisions


@dataclass(frozen=True)
class Tolerance:
    """Parity bounds against PyTorch for one precision.

    An output passes when ``max|runtime - torch| <= atol + rtol * max|torch|`` (outputs of
    random-init models can be tiny or large, so the bound scales with the output); a binary
    output (a 0/1 mask) passes when at most ``flip_fraction`` of its elements differ; decoded
    keypoints pass when they lie within ``keypoint_px`` crop pixels of PyTorch's. Precisions
    compared by RMS (int8) read ``rtol`` as the bound on the RMS error relative to the output's RMS.
    """

    atol: float
    rtol: float
    keypoint_px: float
    flip_fraction: float


def _binary(ref: np.ndarray, got: np.ndarray, tol: Tolerance) -> dict | None:
    if ref.size > 1 and np.all((ref == 0) | (ref == 1)):  # a 0/1 mask: thresholds flip at the noise level
        flips = float(np.mean(np.abs(ref - got) > 0.5))
        return {
            "kind": "binary",
            "flips": flips,
            "bound": tol.flip_fraction,
            "passed": flips <= tol.flip_fraction,
        }
    return None


def compare_max_abs(ref: np.ndarray, got: np.ndarray, tol: Tolerance) -> dict[str, Any]:
    """fp32/fp16: max abs error against ``atol + rtol * max|ref|``; 0/1 masks by flipped elements."""
    ref = np.asarray(ref, dtype=np.float64)
    got = np.asarray(got, dtype=np.float64)
    if ref.shape != got.shape:
        return {
            "passed": False,
            "problem": f"shape {list(got.shape)} != PyTorch's {list(ref.shape)}",
            "max_abs": float("inf"),
            "bound": 0.0,
        }
    if not np.all(np.isfinite(got)):
        return {"passed": False, "problem": "non-finite values", "max_abs": float("inf"), "bound": 0.0}
    err = float(np.abs(ref - got).max()) if ref.size else 0.0
    scale = float(np.abs(ref).max()) if ref.size else 0.0
    mask = _binary(ref, got, tol)
    if mask is not None:
        return {**mask, "max_abs": err}
    bound = tol.atol + tol.rtol * scale
    return {"kind": "float", "max_abs": err, "scale": scale, "bound": bound, "passed": err <= bound}


def compare_rms(ref: np.ndarray, got: np.ndarray, tol: Tolerance) -> dict[str, Any]:
    """int8: RMS error at most ``rtol`` of the output's RMS (a max-abs bound would be decided by the
    one element at the edge of a quantisation range); 0/1 masks by flipped elements."""
    ref = np.asarray(ref, np.float64)
    got = np.asarray(got, np.float64)
    failed = {
        "kind": "float",
        "max_abs": float("inf"),
        "rel_rms": float("inf"),
        "bound": tol.rtol,
        "passed": False,
    }
    if ref.shape != got.shape:
        return {**failed, "problem": f"shape {list(got.shape)} != PyTorch's {list(ref.shape)}"}
    if not np.all(np.isfinite(got)):
        return {**failed, "problem": "non-finite values"}
    mask = _binary(ref, got, tol)
    if mask is not None:
        return {**mask, "flips": round(mask["flips"], 5)}
    err = got - ref
    rms_ref = float(np.sqrt(np.mean(ref**2))) if ref.size else 0.0
    rel = float(np.sqrt(np.mean(err**2))) / max(rms_ref, 1e-12)
    return {
        "kind": "float",
        "max_abs": float(np.abs(err).max()),
        "rel_rms": round(rel, 5),
        "bound": tol.rtol,
        "passed": rel <= tol.rtol,
    }


@dataclass(frozen=True)
class Precision:
    name: str
    tolerance: Tolerance
    description: str
    needs_hook: bool = False  # int8: needs a quantisation hook and calibration data
    compare: Callable[[np.ndarray, np.ndarray, Tolerance], dict] = compare_max_abs
    itemsize: int = 4  # bytes per weight, for size checks


PRECISIONS: dict[str, Precision] = {
    p.name: p
    for p in (
        Precision(
            "fp32",
            Tolerance(atol=1e-9, rtol=1e-3, keypoint_px=0.5, flip_fraction=0.002),
            "float32 weights and compute",
        ),
        Precision(
            "fp16",
            Tolerance(atol=1e-2, rtol=3e-2, keypoint_px=2.0, flip_fraction=0.02),
            "float16 weights (and compute where the runtime does it); float32 I/O",
            itemsize=2,
        ),
        # int8: ``rtol`` bounds the RMS error relative to each output's RMS (not max abs). Measured on
        # DSTA's trained frame tokens: 0.14-0.17 on real crops and up to 0.28 on verify's random images;
        # decoded outputs < 0.01; a broken graph gives >= 1. Keypoints: the quantiser checks the 90th
        # percentile on real crops, verify the max.
        Precision(
            "int8",
            Tolerance(atol=1e-2, rtol=0.35, keypoint_px=4.0, flip_fraction=0.10),
            "int8 weights and activations where the quantiser put them (per format; see "
            "docs/quantization.md); float32 or int8 I/O as the manifest records",
            needs_hook=True,
            compare=compare_rms,
            itemsize=1,
        ),
    )
}


# ----------------------------------------------------------------------------- formats


@dataclass(frozen=True)
class Format:
    """One bundle format.

    ``suffix`` names each stage's graph file (``<stage><suffix>``); ``companions`` are the
    files that travel with it (OpenVINO's ``.bin``). ``converter``: the module exporting to it
    (None: bundles may hold it, ``export`` does not write it). ``packages`` must import for the
    converter, ``extra`` is edgepose's pip extra holding them, ``versions`` the distributions whose
    versions the manifest records. ``backend`` is the runtime (a ``RUNTIMES`` row) that verifies
    and later runs it. ``dynamic_batch``: whether the converter can leave the batch axis symbolic
    (otherwise the default batch is 1). ``layout``: axis order of image inputs in the graph.
    ``numeric_platforms``: where the runtime can execute (None: everywhere); elsewhere the check
    is structural and the reason is recorded. ``int8``: the module quantising it for int8.
    ``preference``: {platform or "*": rank} for picking one bundle from an ``--format all`` root
    (lower first; a platform not listed and no "*": never picked automatically).
    """

    name: str
    suffix: str
    converter: str | None
    backend: str
    packages: tuple[str, ...] = ()
    extra: str = ""
    precisions: tuple[str, ...] = ("fp32",)
    dynamic_batch: bool = True
    layout: str = "NCHW"
    companions: tuple[str, ...] = ()
    numeric_platforms: tuple[str, ...] | None = None
    description: str = ""
    versions: tuple[str, ...] = ()
    int8: str | None = None
    preference: Mapping[str, int] = field(default_factory=dict, hash=False)

    @property
    def exportable(self) -> bool:
        return self.converter is not None

    def stage_files(self, stage: str) -> tuple[str, ...]:
        return (f"{stage}{self.suffix}", *(f"{stage}{c}" for c in self.companions))

    def module(self):
        if self.converter is None:
            raise ExportError(f"format {self.name} has no converter: edgepose does not export to it")
        return importlib.import_module(self.converter)

    def missing_packages(self) -> list[str]:
        return [p for p in self.packages if importlib.util.find_spec(p) is None]

    def require(self) -> None:
        missing = self.missing_packages()
        if missing:
            raise ConverterUnavailable(
                f"exporting to {self.name} needs the Python package(s) {', '.join(missing)}: "
                f"pip install 'edgepose[{self.extra}]'"
            )

    def numeric_check_reason(self) -> str | None:
        """None when the runtime can run here; else why the check is structural only."""
        if self.numeric_platforms is None or sys.platform in self.numeric_platforms:
            return None
        return (
            f"{self.name} runs on {'/'.join(self.numeric_platforms)} only (this is {sys.platform}): "
            "checked structurally (spec, I/O names and shapes, operations, size) instead of numerically"
        )

    def rank(self, platform: str = sys.platform) -> int | None:
        return self.preference.get(platform, self.preference.get("*"))


FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        Format(
            "onnx",
            ".onnx",
            "edgepose.export.to_onnx",
            "onnxruntime",
            ("onnx", "onnxscript", "onnxruntime"),
            "onnx",
            ("fp32", "fp16", "int8"),
            dynamic_batch=True,
            description="torch.onnx dynamo exporter, opset 18, weights in the file; fp16 keeps float32 I/O",
            versions=("onnx", "onnxscript", "onnxruntime"),
            int8="edgepose.quantization.onnx_ptq",
            preference={"*": 0, "darwin": 2},
        ),
        Format(
            "openvino",
            ".xml",
            "edgepose.export.to_openvino",
            "openvino",
            ("openvino", "onnx", "onnxscript"),
            "openvino",
            ("fp32", "fp16", "int8"),
            dynamic_batch=True,
            companions=(".bin",),
            description="OpenVINO IR converted from the fp32 ONNX graph; fp16 compresses weights",
            versions=("openvino",),
            int8="edgepose.quantization.openvino_ptq",
            preference={"*": 1},
        ),
        Format(
            "tflite",
            ".tflite",
            "edgepose.export.to_tflite",
            "tflite",
            ("litert_torch", "ai_edge_litert"),
            "tflite",
            ("fp32", "fp16", "int8"),
            dynamic_batch=False,
            layout="NHWC",
            description="litert-torch (no TensorFlow), NHWC image input, static batch; fp16 weights via "
            "ai-edge-quantizer",
            versions=("litert-torch", "ai-edge-litert", "ai-edge-quantizer"),
            int8="edgepose.quantization.tflite_ptq",
            preference={"*": 2, "darwin": 3},
        ),
        Format(
            "coreml",
            ".mlpackage",
            "edgepose.export.to_coreml",
            "coreml",
            ("coremltools",),
            "coreml",
            ("fp32", "fp16", "int8"),
            dynamic_batch=True,
            numeric_platforms=("darwin",),
            description="coremltools ML program (iOS 17+), float32 I/O; fp16 compute precision",
            versions=("coremltools",),
            int8="edgepose.quantization.coreml_int8",
            preference={"darwin": 0},
        ),
        Format(
            "torch",
            ".pt2",
            None,
            "torch",
            description="a PyTorch checkpoint opened by the torch runtime (not an export target)",
        ),
    )
}


DEFAULT_FORMAT = "onnx"  # what ``export`` writes when no format is named


# ----------------------------------------------------------------------------- runtimes


@dataclass(frozen=True)
class Runtime:
    """One runtime (a backend that opens stage graphs as Sessions).

    ``module``: our module implementing it; ``suffixes``: files it is the default for;
    ``reads``: every suffix it can open (OpenVINO also reads .onnx); ``packages``: importable
    packages in preference order (any one suffices); ``pip``: what to pip install; ``extra``:
    edgepose's pip extra holding it; ``label``: its name in tables; ``aliases``: other names
    ``backend=`` accepts.
    """

    name: str
    module: str
    suffixes: tuple[str, ...]
    reads: tuple[str, ...]
    packages: tuple[str, ...]
    pip: str
    extra: str | None
    label: str = ""
    aliases: tuple[str, ...] = ()

    @property
    def display(self) -> str:
        return self.label or self.name


RUNTIMES: dict[str, Runtime] = {
    r.name: r
    for r in (
        Runtime(
            "onnxruntime",
            "edgepose.runtimes.onnxruntime",
            (".onnx",),
            (".onnx",),
            ("onnxruntime",),
            "onnxruntime (or onnxruntime-gpu / -openvino / -qnn / -directml)",
            "onnx",
            aliases=("ort", "onnx"),
        ),
        Runtime(
            "openvino",
            "edgepose.runtimes.openvino",
            (".xml",),
            (".xml", ".onnx"),
            ("openvino",),
            "openvino",
            "openvino",
            aliases=("ov",),
        ),
        Runtime(
            "tflite",
            "edgepose.runtimes.tflite",
            (".tflite",),
            (".tflite",),
            ("ai_edge_litert", "tflite_runtime"),
            "ai-edge-litert (or tflite-runtime, which needs numpy<2)",
            "tflite",
            label="LiteRT",
            aliases=("litert",),
        ),
        Runtime(
            "coreml",
            "edgepose.runtimes.coreml",
            (".mlpackage", ".mlmodel"),
            (".mlpackage", ".mlmodel"),
            ("coremltools",),
            "coremltools",
            "coreml",
        ),
        Runtime(
            "torch",
            "edgepose.runtimes.torch_backend",
            (".pt2", ".pt", ".pth"),
            (".pt2", ".pt", ".pth"),
            ("torch",),
            "torch (a CPU wheel: --index-url https://download.pytorch.org/whl/cpu)",
            None,
            aliases=("pytorch",),
        ),
        # ONNX Runtime's TensorRT execution provider on an ONNX bundle: never the default for a file,
        # only when asked for (backend="tensorrt"); refuses where the provider is absent.
        Runtime(
            "tensorrt",
            "edgepose.runtimes.tensorrt",
            (),
            (".onnx",),
            ("onnxruntime",),
            "onnxruntime-gpu (with the TensorRT 10 libraries on the library path)",
            None,
            label="TensorRT",
            aliases=("trt",),
        ),
    )
}


# ----------------------------------------------------------------------------- lookups and registration


def register_format(fmt: Format) -> Format:
    """Add (or replace) a format row; returns it."""
    FORMATS[fmt.name] = fmt
    return fmt


def register_runtime(runtime: Runtime) -> Runtime:
    """Add (or replace) a runtime row; returns it."""
    RUNTIMES[runtime.name] = runtime
    return runtime


def format_names(exportable: bool = False) -> list[str]:
    return [f.name for f in FORMATS.values() if f.exportable or not exportable]


def runtime_of(fmt: str) -> str:
    """The runtime that opens bundles of format ``fmt``."""
    if fmt not in FORMATS:
        raise KeyError(f"unknown format {fmt!r}; formats: {list(FORMATS)}")
    return FORMATS[fmt].backend


def load_preference(platform: str = sys.platform) -> tuple[str, ...]:
    """Formats in the order ``load`` tries them in a ``--format all`` root on ``platform``."""
    ranked = [
        (f.rank(platform), i, f.name) for i, f in enumerate(FORMATS.values()) if f.rank(platform) is not None
    ]
    return tuple(name for _, _, name in sorted(ranked))


class FormatBackends(Mapping):
    """{format: runtime}, read live from ``FORMATS`` (so a registered format shows up)."""

    def __getitem__(self, key: str) -> str:
        return FORMATS[key].backend

    def __iter__(self):
        return iter(FORMATS)

    def __len__(self) -> int:
        return len(FORMATS)


FORMAT_BACKENDS = FormatBackends()

__all__ = [
    "DEFAULT_FORMAT",
    "FORMATS",
    "FORMAT_BACKENDS",
    "PRECISIONS",
    "RUNTIMES",
    "ConverterUnavailable",
    "ExportError",
    "Format",
    "Precision",
    "Runtime",
    "Tolerance",
    "compare_max_abs",
    "compare_rms",
    "format_names",
    "load_preference",
    "register_format",
    "register_runtime",
    "runtime_of",
]

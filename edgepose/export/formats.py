"""The table of export formats: one row drives the CLI choices, file suffixes, converters and checks.

Adding a format is one row here and one ``to_<format>.py`` module exposing
``convert(job) -> Artifact`` and ``read_metadata(path) -> dict``. Precisions
are a second table: a precision a converter does not list is refused before
anything is built, naming the formats that have it. INT8 is the row with
``needs_hook=True``: its quantiser (``edgepose.quantization``) is handed to the
converters as ``StageJob.hook`` (see ``stages.QuantizationHook``), so the
format rows and converters need no new arguments for it.

Torch-free: the CLI reads this table for its help text without importing torch.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from dataclasses import dataclass


class ExportError(RuntimeError):
    """An export that cannot be done or did not pass its checks; the message says what to do."""


class ConverterUnavailable(ExportError):
    """A converter's Python package is missing; the message names the pip extra."""


@dataclass(frozen=True)
class Tolerance:
    """Parity bounds against PyTorch for one precision.

    An output passes when ``max|runtime - torch| <= atol + rtol * max|torch|`` (outputs of
    random-init models can be tiny or large, so the bound scales with the output); a binary
    output (a 0/1 mask) passes when at most ``flip_fraction`` of its elements differ; decoded
    keypoints pass when they lie within ``keypoint_px`` crop pixels of PyTorch's.
    """

    atol: float
    rtol: float
    keypoint_px: float
    flip_fraction: float


@dataclass(frozen=True)
class Precision:
    name: str
    tolerance: Tolerance
    description: str
    needs_hook: bool = False  # int8: needs a quantisation hook and calibration data


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
        ),
        # int8 (edgepose.quantization.check): ``rtol`` bounds the RMS error relative to each output's
        # RMS (not max abs). Measured on DSTA's trained frame tokens: 0.14-0.17 on real crops and up
        # to 0.28 on verify's random images; decoded outputs < 0.01; a broken graph gives >= 1.
        # Keypoints: the quantiser checks the 90th percentile on real crops, verify the max.
        Precision(
            "int8",
            Tolerance(atol=1e-2, rtol=0.35, keypoint_px=4.0, flip_fraction=0.10),
            "int8 weights and activations where the quantiser put them (per format; see "
            "docs/quantization.md); float32 or int8 I/O as the manifest records",
            needs_hook=True,
        ),
    )
}


@dataclass(frozen=True)
class Format:
    """One export format.

    ``suffix`` names each stage's graph file (``<stage><suffix>``); ``companions`` are the
    files that travel with it (OpenVINO's ``.bin``). ``packages`` must import for the
    converter, ``extra`` is edgepose's pip extra holding them. ``backend`` is the runtime
    (``edgepose.runtimes``) that verifies and later runs it. ``dynamic_batch``: whether the
    converter can leave the batch axis symbolic (otherwise the default batch is 1).
    ``layout``: axis order of image inputs in the graph (other tensors keep PyTorch's order).
    ``numeric_platforms``: where the runtime can execute (None: everywhere); elsewhere the
    check is structural and the reason is recorded.
    """

    name: str
    suffix: str
    converter: str
    backend: str
    packages: tuple[str, ...]
    extra: str
    precisions: tuple[str, ...]
    dynamic_batch: bool
    layout: str = "NCHW"
    companions: tuple[str, ...] = ()
    numeric_platforms: tuple[str, ...] | None = None
    description: str = ""

    def stage_files(self, stage: str) -> tuple[str, ...]:
        return (f"{stage}{self.suffix}", *(f"{stage}{c}" for c in self.companions))

    def module(self):
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
        ),
    )
}

ALL = "all"


def get_format(name: str) -> Format:
    if name not in FORMATS:
        raise ExportError(f"unknown format {name!r}; formats: {', '.join(FORMATS)} (or '{ALL}')")
    return FORMATS[name]


def resolve_formats(names: str | list[str] | tuple[str, ...]) -> list[Format]:
    """``"all"``, a name, a comma list or a list of names -> Format rows (order kept, duplicates dropped)."""
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    out: list[Format] = []
    for n in names:
        for f in FORMATS.values() if n == ALL else (get_format(n),):
            if f not in out:
                out.append(f)
    if not out:
        raise ExportError(f"no format given; formats: {', '.join(FORMATS)} (or '{ALL}')")
    return out


def check_combination(fmt: Format, precision: str, batch: int | None) -> None:
    """Refuse precision/batch choices a format cannot make, before any model is built."""
    if precision not in PRECISIONS:
        raise ExportError(f"unknown precision {precision!r}; precisions: {', '.join(PRECISIONS)}")
    if precision not in fmt.precisions:
        have = [f.name for f in FORMATS.values() if precision in f.precisions]
        raise ExportError(
            f"format {fmt.name} does not support precision {precision}; formats that do: {have}"
        )
    if batch is None and not fmt.dynamic_batch:
        raise ExportError(
            f"format {fmt.name} has no dynamic batch here (its converter fixes the batch axis): "
            "pass --batch N (the runtime runs larger batches as N-sized pieces)"
        )
    if batch is not None and batch < 1:
        raise ExportError(f"--batch must be >= 1 or 'dynamic', got {batch}")


MAX_STATIC_BATCH = 256  # export traces an example batch of this size: memory grows with it


def parse_batch(value: str | int | None) -> int | None:
    """'dynamic' / None -> None (symbolic), '4' / 4 -> 4 (at most ``MAX_STATIC_BATCH``)."""
    if value is None or value == "dynamic":
        return None
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise ExportError(f"--batch must be a positive integer or 'dynamic', got {value!r}") from None
    if n < 1:
        raise ExportError(f"--batch must be a positive integer or 'dynamic', got {value!r}")
    if n > MAX_STATIC_BATCH:
        raise ExportError(
            f"--batch {n} is above {MAX_STATIC_BATCH}: the export builds and runs an example batch of that "
            "size (its memory grows with it: --batch 100000 grew to 18 GB and was killed). A static batch is "
            "for NPUs and fixed-shape runtimes (1-64 is usual); use --batch dynamic for a batch chosen at "
            "run time"
        )
    return n


def default_batch(fmt: Format, batch: int | None | str) -> int | None:
    """The batch a format gets when the caller asked for none ('auto'): dynamic where it can be."""
    if batch == "auto":
        return None if fmt.dynamic_batch else 1
    return batch  # type: ignore[return-value]

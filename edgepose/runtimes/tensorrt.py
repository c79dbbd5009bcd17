"""TensorRT runtime: an ONNX bundle on ONNX Runtime's ``TensorrtExecutionProvider``, asked for by name.

    bundle = edgepose.load("out/dsta", backend="tensorrt")   # an ONNX bundle
    print(bundle.sessions["frame"].device, bundle.sessions["frame"].reason)

TensorRT builds an engine per graph on first use (minutes on a Jetson), so engines are cached
under ``$EDGEPOSE_TRT_CACHE`` (default ``~/.cache/edgepose/tensorrt``) in a directory keyed by
the bundle's hash (its graphs' sha256 from the sealed manifest): a re-exported bundle never
picks up a stale engine. The bundle's precision sets TensorRT's: fp16 enables fp16 kernels,
int8 (a QDQ graph from ``edgepose quantize``) enables int8 and fp16 kernels.

Never a silent fall back: where ONNX Runtime has no TensorRT provider (a CPU wheel, or a GPU
wheel without the TensorRT libraries, which ONNX Runtime drops with a log line), opening a
session refuses with one line saying what to install, even with ``allow_fallback``: ask for
``backend="onnxruntime"`` to run the same bundle elsewhere. The session reports what it got
(``device``: TensorRT, ``reason``: precision, engine cache, and where the nodes TensorRT does
not take run).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from .base import DeviceUnavailable
from .devices import Resolution, Target
from .onnxruntime import OrtSession, check_file  # check_file: the same .onnx files
from .registry import require

PROVIDER = "TensorrtExecutionProvider"
HINT = (
    "pip install onnxruntime-gpu and put the TensorRT 10 libraries (libnvinfer) on the library path "
    "(on Jetson: NVIDIA's JetPack onnxruntime-gpu wheel)"
)
CACHE_ENV = "EDGEPOSE_TRT_CACHE"

TARGETS: dict[str, tuple[Target, ...]] = {"cpu": (), "gpu": (Target(PROVIDER, HINT),), "npu": ()}


__all__ = ["TARGETS", "TensorrtSession", "check_file", "open_session", "probe", "session_options"]


def probe() -> tuple[set[str], str]:
    providers = list(require("onnxruntime").get_available_providers())
    if PROVIDER in providers:
        return {PROVIDER}, ""
    return set(), (
        f"this onnxruntime has no {PROVIDER} (providers: {', '.join(providers)}): {HINT}; "
        "or open the bundle with backend='onnxruntime'"
    )


def bundle_hash(manifest) -> str:
    """A short key for the bundle's graphs: their sha256s as the sealed manifest records them."""
    files = getattr(manifest, "files", None) or {}
    if files:
        text = "\n".join(f"{k}:{v['sha256']}" for k, v in sorted(files.items()))
    else:
        text = manifest.digest or f"{manifest.model}:{manifest.format}:{manifest.precision}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def session_options(manifest, stage: str) -> dict:
    return {"precision": manifest.precision, "cache_key": bundle_hash(manifest)}


def cache_dir(key: str, root: str | os.PathLike | None = None) -> Path:
    base = Path(root or os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "edgepose" / "tensorrt")
    return base / key


def trt_options(precision: str | None, engine_dir: Path) -> dict[str, str]:
    """TensorRT provider options for a bundle precision (fp16 / int8 kernels) and an engine cache."""
    return {
        "trt_engine_cache_enable": "True",
        "trt_engine_cache_path": str(engine_dir),
        "trt_timing_cache_enable": "True",
        "trt_timing_cache_path": str(engine_dir),
        "trt_fp16_enable": str(precision in ("fp16", "int8")),
        "trt_int8_enable": str(precision == "int8"),
    }


class TensorrtSession(OrtSession):
    backend = "tensorrt"

    def __init__(
        self,
        path: Path,
        choice: Resolution,
        precision: str | None = None,
        cache_key: str | None = None,
        engine_cache: str | os.PathLike | None = None,
        threads: int | None = None,
        provider_options: dict | None = None,
    ):
        path = Path(path)
        key = cache_key or hashlib.sha256(path.read_bytes()).hexdigest()[:16]
        engines = cache_dir(key, engine_cache)
        engines.mkdir(parents=True, exist_ok=True)
        opts = {**trt_options(precision, engines), **(provider_options or {})}
        # allow_fallback=False: a dropped TensorRT provider is refused, never run on CPU instead
        super().__init__(
            path, choice, False, threads=threads, provider_options=opts, then=("CUDAExecutionProvider",)
        )
        rest = self._sess.get_providers()[1:]
        self.reason = (
            f"{choice.reason}; TensorRT {'fp16+int8' if precision == 'int8' else precision or 'fp32'} kernels, "
            f"engines cached in {engines}"
            + (f"; nodes TensorRT does not take run on {', '.join(rest)}" if rest else "")
        )


def open_session(
    path: str | os.PathLike, choice: Resolution, allow_fallback: bool = False, **options
) -> TensorrtSession:
    if choice.name != PROVIDER:  # resolve() only offers TensorRT; a pinned other name is not this runtime
        raise DeviceUnavailable(f"the tensorrt runtime runs on {PROVIDER} only, not {choice.name}")
    return TensorrtSession(Path(path), choice, **options)

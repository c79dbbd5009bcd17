"""The Session protocol every backend implements, the errors they raise, and shared I/O checks.

A Session is one stage graph opened on one device: ``run({name: array}) ->
{name: array}``. Float tensors cross the boundary as float32 whatever the
graph stores: float16 inputs/outputs are cast, and int8 I/O is (de)quantised
with the tensor's scale/zero-point, so pre/post-processing is written once for
all backends. Axis order (NCHW/NHWC) is the caller's business, per the manifest.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from ..core.manifest import TensorInfo


class BackendUnavailable(ImportError):
    """The backend's Python package is not installed (the message names the pip extra)."""


class DeviceUnavailable(RuntimeError):
    """The requested device/provider/delegate is absent (the message says what to install or enable)."""


class ModelFileError(ValueError):
    """A model file that is missing, corrupt or truncated; rejected before anything runs."""


class SessionInputError(ValueError):
    """``Session.run`` was given missing, unknown or mis-shaped inputs."""


@runtime_checkable
class Session(Protocol):
    backend: str
    device: str  # what was actually chosen, e.g. "CPUExecutionProvider", "CPU", "XNNPACK"
    reason: str  # why that device (and what it fell back from, if it did)
    path: Path
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    def close(self) -> None: ...


def bad_file(path: str | os.PathLike, problem: str) -> ModelFileError:
    return ModelFileError(
        f"model file {str(path)!r} {problem}; the file is corrupt or truncated: re-export it "
        "(`edgepose export ...`) or copy the bundle again"
    )


def check_exists(path: str | os.PathLike, min_bytes: int = 1, directory: bool = False) -> Path:
    """Fail early, naming the file, when it is absent, the wrong kind, or too small to be a model."""
    p = Path(path)
    if not p.exists():
        raise ModelFileError(f"model file {str(p)!r} does not exist")
    if directory:
        if not p.is_dir():
            raise bad_file(p, "should be a directory (a package) but is a file")
        return p
    if not p.is_file():
        raise bad_file(p, "is not a regular file")
    size = p.stat().st_size
    if size < min_bytes:
        raise bad_file(p, f"has {size} bytes, too few for a model")
    return p


def numpy_dtype(name: str) -> np.dtype:
    return np.dtype(name)


def quantize(x: np.ndarray, info: TensorInfo) -> np.ndarray:
    """float -> integer storage with the tensor's scale/zero-point (round half to even, clipped)."""
    dt = np.dtype(info.dtype)
    lim = np.iinfo(dt)
    q = np.rint(np.asarray(x, dtype=np.float32) / np.float32(info.scale)) + info.zero_point
    return np.clip(q, lim.min, lim.max).astype(dt)


def dequantize(q: np.ndarray, info: TensorInfo) -> np.ndarray:
    return ((q.astype(np.float32) - np.float32(info.zero_point)) * np.float32(info.scale)).astype(np.float32)


def _shape_ok(shape: tuple[int, ...], spec: tuple | None) -> bool:
    if spec is None:
        return True
    if len(shape) != len(spec):
        return False
    return all(isinstance(d, str) or d < 0 or d == s for s, d in zip(shape, spec))


class BaseSession:
    """Shared behaviour: input checking and casting, output casting, context manager, repr.

    Subclasses set ``backend``, ``device``, ``reason``, ``path``, ``inputs``,
    ``outputs`` and implement ``_run(prepared_feeds) -> {name: raw array}``.
    """

    backend: str = ""
    device: str = ""
    reason: str = ""
    path: Path
    inputs: tuple[TensorInfo, ...] = ()
    outputs: tuple[TensorInfo, ...] = ()
    check_shapes: bool = True

    @property
    def input_names(self) -> list[str]:
        return [t.name for t in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [t.name for t in self.outputs]

    def prepare(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Check names and ranks, then cast each input to the graph's storage dtype."""
        if not isinstance(feeds, Mapping):
            raise SessionInputError(
                f"{self.backend} session expects a dict {{input name: array}}, got {type(feeds)}"
            )
        names = self.input_names
        missing = [n for n in names if n not in feeds]
        unknown = [n for n in feeds if n not in names]
        if missing or unknown:
            raise SessionInputError(
                f"{self.path.name}: inputs {names} expected; "
                + (f"missing {missing}" if missing else "")
                + ("; " if missing and unknown else "")
                + (f"unknown {unknown}" if unknown else "")
            )
        out = {}
        for info in self.inputs:
            x = np.asarray(feeds[info.name])
            if self.check_shapes and not _shape_ok(x.shape, info.shape):
                raise SessionInputError(
                    f"{self.path.name}: input {info.name!r} has shape {tuple(x.shape)}, expected {list(info.shape)} "
                    "(strings are dynamic axes)"
                )
            if info.is_quantized:
                x = quantize(x, info)
            elif x.dtype != np.dtype(info.dtype):
                x = x.astype(info.dtype)
            out[info.name] = np.ascontiguousarray(x)
        return out

    def finish(self, raw: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Dequantise int8 outputs and widen float16 ones, in the declared output order."""
        out = {}
        infos = {t.name: t for t in self.outputs}
        for name, y in raw.items():
            info = infos.get(name)
            y = np.asarray(y)
            if info is not None and info.is_quantized:
                y = dequantize(y, info)
            elif y.dtype == np.float16:
                y = y.astype(np.float32)
            out[name] = y
        return out

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self.finish(self._run(self.prepare(feeds)))

    def _run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:  # pragma: no cover - abstract
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self) -> str:
        ins = ", ".join(f"{t.name}{list(t.shape) if t.shape is not None else ''}" for t in self.inputs)
        outs = ", ".join(t.name for t in self.outputs)
        return (
            f"<{type(self).__name__} {self.path.name} on {self.backend}/{self.device}: ({ins}) -> ({outs})>"
        )


def dims(shape: Sequence | None, names: Sequence[str] | None = None) -> tuple[int | str, ...] | None:
    """Normalise a runtime's shape: None/-1/'?' become symbolic names (``names`` by axis, else 'd<i>')."""
    if shape is None:
        return None
    out: list[int | str] = []
    for i, d in enumerate(shape):
        if isinstance(d, str) and d and d != "?":
            out.append(d)
        elif d is None or (isinstance(d, str)) or (isinstance(d, (int, np.integer)) and d < 0):
            out.append(
                names[i] if names and i < len(names) and names[i] else ("batch" if i == 0 else f"d{i}")
            )
        else:
            out.append(int(d))
    return tuple(out)

"""Runtimes: open one stage graph on one device as a ``Session``.

    from edgepose.runtimes import open_session
    with open_session("bundle/frame.onnx", device="auto") as s:
        print(s.device, s.reason)
        out = s.run({"image": crops})

The backend comes from the file suffix unless given; the device from
``devices.resolve``. Each step fails with a message saying what to do: a
missing package names the pip extra, an absent device what to install, a
corrupt file which file to re-export. Torch-free at import.
"""

from __future__ import annotations

import os
from pathlib import Path

from .base import (
    BackendUnavailable,
    BaseSession,
    DeviceUnavailable,
    ModelFileError,
    Session,
    SessionInputError,
)
from .devices import DEVICE_TABLE, KINDS, Resolution, resolve
from .registry import BACKENDS, available_backends, backend_for_path, backend_module, get_backend, require


def open_session(
    path: str | os.PathLike,
    backend: str | None = None,
    device: str = "auto",
    allow_fallback: bool = False,
    **options,
) -> Session:
    """Open ``path`` with ``backend`` (default: from the suffix) on ``device`` (auto|cpu|gpu|npu|a backend name).

    ``options`` go to the backend's session (``threads`` everywhere; ``precision``
    and ``config`` for OpenVINO; ``signature`` for TFLite; ``stage``/``model``/
    ``entry`` for torch checkpoints; ``provider_options`` for ONNX Runtime).
    """
    p = Path(path)
    info = get_backend(backend) if backend else backend_for_path(p)
    if p.suffix.lower() not in info.reads:
        raise ValueError(
            f"backend {info.name!r} does not read {p.suffix or 'suffix-less'} files ({p.name}); "
            f"it reads {list(info.reads)}"
        )
    require(info.name)
    mod = backend_module(info.name)
    mod.check_file(p)
    choice = resolve(info.name, device, allow_fallback)
    return mod.open_session(p, choice, allow_fallback, **options)


__all__ = [
    "BACKENDS",
    "DEVICE_TABLE",
    "KINDS",
    "BackendUnavailable",
    "BaseSession",
    "DeviceUnavailable",
    "ModelFileError",
    "Resolution",
    "Session",
    "SessionInputError",
    "available_backends",
    "backend_for_path",
    "get_backend",
    "open_session",
    "resolve",
]

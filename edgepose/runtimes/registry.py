"""Runtime lookups over the runtime rows of ``edgepose.core.formats.RUNTIMES``.

Adding a backend is one ``Runtime`` row there and one module here exposing
``check_file(path)``, ``open_session(path, choice, allow_fallback, **options) ->
Session``, ``TARGETS`` and ``probe()`` (devices and probes live in each backend's
module; ``devices.py`` reads them). Backend packages are imported only when a
backend is used, so ``import edgepose.runtimes`` stays cheap and torch-free.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from ..core.formats import RUNTIMES, Runtime
from .base import BackendUnavailable

BackendInfo = Runtime  # the row type under its older name


class _Backends(Sequence):
    """The runtime rows in table order, read live (a registered runtime shows up)."""

    def __getitem__(self, i):
        return list(RUNTIMES.values())[i]

    def __len__(self) -> int:
        return len(RUNTIMES)


BACKENDS: Sequence[Runtime] = _Backends()


def _aliases() -> dict[str, str]:
    return {a: r.name for r in RUNTIMES.values() for a in r.aliases}


def get_backend(name: str) -> Runtime:
    key = _aliases().get(name.lower(), name.lower())
    if key not in RUNTIMES:
        raise ValueError(f"unknown backend {name!r}; backends: {list(RUNTIMES)}")
    return RUNTIMES[key]


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

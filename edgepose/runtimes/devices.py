"""Device resolution: (backend, cpu|gpu|npu) -> the backend's own names, from each backend module's ``TARGETS``.

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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from .base import DeviceUnavailable
from .registry import BACKENDS, backend_module, get_backend

KINDS = ("cpu", "gpu", "npu")
AUTO_ORDER = ("gpu", "npu", "cpu")  # "auto" takes the first kind with a present target


@dataclass(frozen=True)
class Target:
    """One concrete way to run on a device kind: a provider, device, delegate library or compute units."""

    name: str
    hint: str = ""  # what to install/enable when it is absent
    options: Mapping[str, str] = field(default_factory=dict, hash=False)


def library_loads(name: str) -> bool:
    """Whether a shared library (a delegate) can be loaded here."""
    try:
        ctypes.CDLL(name)
        return True
    except OSError:
        return False


# ---------------------------------------------------------------- each backend's targets and probe


def _module(backend: str):
    return backend_module(backend)


class _DeviceTable(Mapping):
    """{backend: {kind: (Target, ...)}}, read from each backend module's ``TARGETS``."""

    def __getitem__(self, backend: str) -> dict[str, tuple[Target, ...]]:
        return dict(_module(backend).TARGETS)

    def __iter__(self):
        return (r.name for r in BACKENDS)

    def __len__(self) -> int:
        return len(BACKENDS)


DEVICE_TABLE: Mapping[str, dict[str, tuple[Target, ...]]] = _DeviceTable()


def targets(backend: str, kind: str) -> tuple[Target, ...]:
    name = get_backend(backend).name
    mod = _module(name)
    if kind not in KINDS:
        raise ValueError(f"device kind must be one of {KINDS} or 'auto', got {kind!r}")
    env = getattr(mod, "env_targets", None)  # a delegate named by environment variable comes first
    return (env(kind) if env else ()) + tuple(mod.TARGETS.get(kind, ()))


# ---------------------------------------------------------------- what is present (cached per process)

# Probe overrides by backend (tests pretend a provider is listed); otherwise each module's ``probe()``.
PROBES: dict[str, Callable[[], tuple[set[str], str]]] = {}


@functools.cache
def _present(backend: str) -> tuple[frozenset[str], str]:
    probe = PROBES.get(backend) or _module(backend).probe
    found, note = probe()
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

    mod = _module(backend)
    virtual_prefixes = tuple(getattr(mod, "VIRTUAL_PREFIXES", ()))
    auto_native = getattr(mod, "AUTO_TARGET", None)
    dev = device.lower() if device.lower() in (*KINDS, "auto") else device
    if device == "AUTO" and virtual_prefixes:
        dev = device  # the backend's own AUTO device (OpenVINO's), not our resolution
    if dev == "auto":
        if auto_native is not None:
            t = auto_native
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
    virtual = any(device.upper().startswith(p) for p in virtual_prefixes)
    match = next((n for n in found if n.lower() == _base_name(backend, device).lower()), None)
    known = _known_target(backend, device)
    if match is not None or virtual:
        pinned = getattr(mod, "pinned_name", None)
        name = device if virtual else (pinned(device, match) if pinned else match)
        t = Target(name, known.hint if known else "", known.options if known else {})
        kind = "auto" if virtual else (_kind_of(backend, device) or "pinned")
        return Resolution(backend, kind, t, f"{device} requested and present", False, requested)
    why = f"{backend} has no {device!r} here (present: {sorted(found)})"
    if allow_fallback:
        return _cpu_fallback(backend, found, note, why, requested)
    hint = f". To get it: {known.hint}" if known is not None and known.hint else ""
    raise DeviceUnavailable(why + hint + ". Or pass allow_fallback=True")


def _base_name(backend: str, name: str) -> str:
    """A pinned name as the probe lists it (the backend module's ``base_name``: torch's 'cuda:1' ->
    'cuda'); OpenVINO's 'GPU.1' stays (it is listed as such when present)."""
    base = getattr(_module(backend), "base_name", None)
    return base(name) if base else name


def _known_target(backend: str, name: str) -> Target | None:
    base = _base_name(backend, name).split(".")[0].lower()
    return next((t for k in KINDS for t in targets(backend, k) if t.name.lower() == base), None)


def device_table() -> list[dict]:
    """The table as rows (for `edgepose` CLI listings and the README)."""
    rows = []
    for backend in DEVICE_TABLE:
        for kind in KINDS:
            ts = targets(backend, kind)
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

"""The bundle manifest: everything a runtime needs to run an exported bundle, nothing format-specific.

A bundle is a directory holding ``manifest.json`` and one graph file (or a few:
OpenVINO's ``.xml`` + ``.bin``) per stage. The SDK opens any bundle through its
manifest alone: which stages to run in which order, the tensors each takes and
gives (names, shapes with symbolic dims such as ``"batch"``, dtypes and the
scale/zero-point of int8 I/O), how to prepare crops (input size, mean/std,
colour order, NCHW/NHWC), how to decode (codec, keypoint layout), which frames
a temporal stage reads, and how the export was verified against PyTorch.

The schema is versioned (``SCHEMA_VERSION``). Reading validates every field and
names the bad one; a manifest from a newer edgepose is refused with a clear
message instead of being half-understood. Torch-free.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .atomic import atomic_file
from .codecs import CODEC_OUTPUTS
from .formats import FORMATS, PRECISIONS
from .integrity import IntegrityError, canonical_digest, check_files, record_files
from .keypoints import KeypointLayout, get_layout

SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest.json"

# FORMATS / PRECISIONS: the rows of the format table (edgepose.core.formats), read live
TENSOR_LAYOUTS = ("NCHW", "NHWC")
COLOR_ORDERS = ("RGB", "BGR")
DTYPES = ("float32", "float16", "float64", "int8", "uint8", "int16", "int32", "int64", "bool")
CODECS = tuple(CODEC_OUTPUTS)
# what a bundle's first stage consumes: "crop" (one person crop per detected person: top-down, the
# SDK needs a person detector) or "frame" (the whole frame, letterboxed: the model finds the people)
INPUT_KINDS = ("crop", "frame")

_FIX = "re-export the bundle with `edgepose export` (or correct the field by hand)"


class ManifestError(ValueError):
    """A manifest that cannot be read or does not follow the schema; the message names the field."""


class ManifestVersionError(ManifestError):
    """The manifest was written by a newer edgepose with a schema this version does not know."""


class BundleDamagedError(ManifestError):
    """A bundle file (graph, companion, or the manifest itself) is not what the export wrote."""


log = logging.getLogger("edgepose.bundle")
_WARNED_UNSEALED: set[str] = set()


def _edgepose_version() -> str:
    from .. import __version__

    return __version__


def _now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


# --------------------------------------------------------------------------- field checks
# Each checker takes (value, path) and returns the normalised value or raises ManifestError.


def _bad(path: str, expected: str, got: Any) -> ManifestError:
    shown = repr(got)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return ManifestError(f"manifest field '{path}' must be {expected}, got {shown}; {_FIX}")


def _str(value, path, choices: tuple[str, ...] | None = None, pattern: str | None = None):
    if not isinstance(value, str) or not value:
        raise _bad(path, "a non-empty string" if not choices else f"one of {list(choices)}", value)
    if choices is not None and value not in choices:
        raise _bad(path, f"one of {list(choices)}", value)
    if pattern is not None and not re.fullmatch(pattern, value):
        raise _bad(path, f"a string matching {pattern}", value)
    return value


def _int(value, path, minimum: int | None = None):
    if isinstance(value, bool) or not isinstance(value, int) or (minimum is not None and value < minimum):
        raise _bad(path, "an integer" + (f" >= {minimum}" if minimum is not None else ""), value)
    return value


def _float(value, path, minimum: float | None = None, positive: bool = False):
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok and minimum is not None and value < minimum:
        ok = False
    if ok and positive and value <= 0:
        ok = False
    if not ok:
        want = "a finite number" + (" > 0" if positive else f" >= {minimum}" if minimum is not None else "")
        raise _bad(path, want, value)
    return float(value)


def _opt(check: Callable, *args, **kw) -> Callable:
    return lambda v, p: None if v is None else check(v, p, *args, **kw)


def _list(value, path, item: Callable, length: int | None = None, nonempty: bool = False) -> list:
    if not isinstance(value, (list, tuple)):
        raise _bad(path, "a list", value)
    if length is not None and len(value) != length:
        raise _bad(path, f"a list of {length} items", value)
    if nonempty and not value:
        raise _bad(path, "a non-empty list", value)
    return [item(v, f"{path}[{i}]") for i, v in enumerate(value)]


def _dim(value, path):
    """A tensor dimension: a size >= 0, or a symbolic name such as "batch" for a dynamic axis."""
    if isinstance(value, str) and value:
        return value
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise _bad(path, 'a size >= 0 or a symbolic dimension name such as "batch"', value)


def _pair(value, path):
    return tuple(_list(value, path, lambda v, p: _int(v, p, 0), length=2))


def _timestamp(value, path):
    _str(value, path)
    try:
        datetime.fromisoformat(value)
    except ValueError:
        raise _bad(path, "an ISO 8601 time such as 2025-01-31T12:00:00+00:00", value) from None
    return value


def _json_value(value, path):
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise ManifestError(
            f"manifest field '{path}' must hold JSON values only (numbers, strings, lists, dicts): {e}; "
            "convert arrays with .tolist() and numpy scalars with .item()"
        ) from None
    return value


def _read(cls, data, path: str, checks: Mapping[str, tuple[Callable, bool]]) -> dict:
    """Check a JSON object against ``checks`` ({key: (checker, required)}); unknown keys are errors."""
    if not isinstance(data, Mapping):
        raise _bad(path or "<root>", f"an object ({cls.__name__})", data)
    unknown = sorted(set(data) - set(checks))
    if unknown:
        where = f"'{path}'" if path else "the manifest"
        raise ManifestError(
            f"unknown field(s) {unknown} in {where}; known fields: {sorted(checks)}. "
            "Put custom data under 'extra'; if this bundle came from a newer edgepose, upgrade edgepose."
        )
    out = {}
    for key, (check, required) in checks.items():
        sub = f"{path}.{key}" if path else key
        if key not in data:
            if required:
                raise ManifestError(f"manifest field '{sub}' is missing; {_FIX}")
            continue
        out[key] = check(data[key], sub)
    return out


def _asdict(obj) -> dict:
    out = {}
    for f in fields(obj):
        v = getattr(obj, f.name)
        if v is None and f.default is None:  # optional fields are left out when unset
            continue
        out[f.name] = _plain(v)
    return out


def _plain(v):
    if hasattr(v, "to_dict"):
        return v.to_dict()
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    # numpy scalars and arrays (e.g. in a quantisation report under `extra`) without importing numpy here
    if hasattr(v, "tolist") and type(v).__module__ == "numpy":
        return v.tolist()
    return v


# --------------------------------------------------------------------------- schema


@dataclass(frozen=True)
class TensorInfo:
    """One input or output of a stage graph.

    ``shape`` holds sizes and symbolic names (``"batch"``) for dynamic axes;
    ``None`` means unknown (a runtime session may not know an output's shape
    before it runs; a manifest always records one). ``scale``/``zero_point``
    are present for quantised (int8/uint8) I/O: ``real = scale * (q - zero_point)``.
    """

    name: str
    shape: tuple[int | str, ...] | None
    dtype: str = "float32"
    scale: float | None = None
    zero_point: int | None = None

    def __post_init__(self):
        if self.shape is not None:
            object.__setattr__(self, "shape", tuple(self.shape))

    @property
    def is_quantized(self) -> bool:
        return self.scale is not None

    @property
    def host_dtype(self) -> str:
        """The dtype callers exchange: float32 for quantised and float16 tensors, else ``dtype``."""
        return "float32" if self.is_quantized or self.dtype == "float16" else self.dtype

    @property
    def is_dynamic(self) -> bool:
        return self.shape is None or any(isinstance(d, str) for d in self.shape)

    def to_dict(self) -> dict:
        d = {
            "name": self.name,
            "shape": None if self.shape is None else list(self.shape),
            "dtype": self.dtype,
        }
        if self.scale is not None:
            d["scale"] = self.scale
            d["zero_point"] = self.zero_point
        return d

    @classmethod
    def from_dict(cls, data, path: str = "tensor") -> TensorInfo:
        v = _read(
            cls,
            data,
            path,
            {
                "name": (_str, True),
                "shape": (lambda x, p: _list(x, p, _dim), True),
                "dtype": (lambda x, p: _str(x, p, DTYPES), True),
                "scale": (_opt(_float, positive=True), False),
                "zero_point": (_opt(_int), False),
            },
        )
        if (v.get("scale") is None) != (v.get("zero_point") is None):
            raise ManifestError(
                f"manifest field '{path}' needs both 'scale' and 'zero_point' or neither; {_FIX}"
            )
        if v.get("scale") is not None and v["dtype"] not in ("int8", "uint8", "int16"):
            raise ManifestError(
                f"manifest field '{path}.scale' is set but dtype is {v['dtype']!r}; quantisation parameters "
                f"belong to int8/uint8/int16 tensors only; {_FIX}"
            )
        return cls(**v)


@dataclass(frozen=True)
class StageEntry:
    """One stage graph. ``files`` are relative to the bundle; the first is the one a runtime opens."""

    name: str
    files: tuple[str, ...]
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]

    def __post_init__(self):
        object.__setattr__(self, "files", tuple(self.files))
        object.__setattr__(self, "inputs", tuple(self.inputs))
        object.__setattr__(self, "outputs", tuple(self.outputs))

    @property
    def file(self) -> str:
        return self.files[0]

    @property
    def input_names(self) -> list[str]:
        return [t.name for t in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [t.name for t in self.outputs]

    def to_dict(self) -> dict:
        return _asdict(self)

    @classmethod
    def from_dict(cls, data, path: str = "stage") -> StageEntry:
        def rel_file(x, p):
            x = _str(x, p)
            if os.path.isabs(x) or ".." in Path(x).parts:
                raise _bad(p, "a path relative to the bundle directory, inside it", x)
            return x

        def tensors(x, p):
            ts = _list(x, p, lambda t, q: TensorInfo.from_dict(t, q), nonempty=True)
            _unique([t.name for t in ts], p)
            return ts

        v = _read(
            cls,
            data,
            path,
            {
                "name": (_str, True),
                "files": (lambda x, p: _list(x, p, rel_file, nonempty=True), True),
                "inputs": (tensors, True),
                "outputs": (tensors, True),
            },
        )
        for t in (*v["inputs"], *v["outputs"]):
            if t.shape is None:
                raise ManifestError(f"manifest stage '{v['name']}' tensor {t.name!r} has no shape; {_FIX}")
        return cls(**v)


@dataclass(frozen=True)
class Verification:
    """How one stage was checked against PyTorch in its runtime.

    ``passed`` is None when the check was skipped (``reason`` says why, e.g.
    "Core ML predict needs macOS"); a failed check keeps its reason too.
    ``keypoint_error_px`` is the decoded keypoints' max distance in crop pixels.
    """

    stage: str
    passed: bool | None
    max_abs_error: float | None = None
    keypoint_error_px: float | None = None
    tolerance: float | None = None
    inputs: str | None = None
    backend: str | None = None
    device: str | None = None
    reason: str | None = None

    @property
    def skipped(self) -> bool:
        return self.passed is None

    def to_dict(self) -> dict:
        return _asdict(self)  # `passed` has no default, so it is always written (null when skipped)

    @classmethod
    def from_dict(cls, data, path: str = "verification") -> Verification:
        def passed(x, p):
            if x is not None and not isinstance(x, bool):
                raise _bad(p, "true, false, or null (skipped)", x)
            return x

        v = _read(
            cls,
            data,
            path,
            {
                "stage": (_str, True),
                "passed": (passed, True),
                "max_abs_error": (_opt(_float, minimum=0.0), False),
                "keypoint_error_px": (_opt(_float, minimum=0.0), False),
                "tolerance": (_opt(_float, minimum=0.0), False),
                "inputs": (_opt(_str), False),
                "backend": (_opt(_str), False),
                "device": (_opt(_str), False),
                "reason": (_opt(_str), False),
            },
        )
        if v["passed"] is None and not v.get("reason"):
            raise ManifestError(f"manifest field '{path}.reason' must say why the check was skipped; {_FIX}")
        return cls(**v)


@dataclass(frozen=True)
class KeypointInfo:
    """The keypoint layout, written out in full so a runtime needs no layout table of its own."""

    name: str
    names: tuple[str, ...]
    skeleton: tuple[tuple[int, int], ...]
    flip_pairs: tuple[tuple[int, int], ...]
    empty: tuple[str, ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "names", tuple(self.names))
        object.__setattr__(self, "skeleton", tuple(tuple(e) for e in self.skeleton))
        object.__setattr__(self, "flip_pairs", tuple(tuple(e) for e in self.flip_pairs))
        object.__setattr__(self, "empty", tuple(self.empty))

    @classmethod
    def from_layout(cls, layout: KeypointLayout | str) -> KeypointInfo:
        lay = get_layout(layout) if isinstance(layout, str) else layout
        d = lay.to_dict()
        return cls(d["name"], d["names"], d["skeleton"], d["flip_pairs"], d["empty"])

    @property
    def num_joints(self) -> int:
        return len(self.names)

    def to_dict(self) -> dict:
        return _asdict(self)

    @classmethod
    def from_dict(cls, data, path: str = "keypoints") -> KeypointInfo:
        v = _read(
            cls,
            data,
            path,
            {
                "name": (_str, True),
                "names": (lambda x, p: _list(x, p, _str, nonempty=True), True),
                "skeleton": (lambda x, p: _list(x, p, _pair), True),
                "flip_pairs": (lambda x, p: _list(x, p, _pair), True),
                "empty": (lambda x, p: _list(x, p, _str), False),
            },
        )
        _unique(v["names"], f"{path}.names")
        n = len(v["names"])
        for key in ("skeleton", "flip_pairs"):
            for i, (a, b) in enumerate(v[key]):
                if a >= n or b >= n:
                    raise _bad(f"{path}.{key}[{i}]", f"joint indices below {n} (the number of names)", [a, b])
        for i, e in enumerate(v.get("empty", ())):
            if e not in v["names"]:
                raise _bad(f"{path}.empty[{i}]", f"one of the joint names {v['names']}", e)
        return cls(**v)


def _unique(names: list[str], path: str) -> None:
    seen = set()
    for n in names:
        if n in seen:
            raise ManifestError(f"manifest field '{path}' names {n!r} twice; names must be unique; {_FIX}")
        seen.add(n)


@dataclass(frozen=True)
class Manifest:
    """The whole manifest. ``stages`` are in run order; ``extra`` is free JSON (quality threshold,
    batch mode static/dynamic, quantisation report, ...)."""

    model: str
    family: str
    format: str
    precision: str
    keypoints: KeypointInfo
    input_size: tuple[int, int]  # (H, W)
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    codec: str
    stages: tuple[StageEntry, ...]
    color: str = "RGB"
    layout: str = "NCHW"
    frame_offsets: tuple[int, ...] = (0,)
    weights_sha256: str | None = None
    verification: tuple[Verification, ...] = ()
    extra: dict = field(default_factory=dict)
    created: str = field(default_factory=_now)
    edgepose_version: str = field(default_factory=_edgepose_version)
    schema_version: int = SCHEMA_VERSION
    # {relative path: {"sha256", "size"}} of every bundle file but the manifest (``sealed``);
    # None in bundles exported before edgepose recorded them
    files: dict | None = None
    digest: str | None = None  # sha256 of this manifest's canonical JSON without it; set on writing
    # "crop" (top-down: person crops) or "frame" (whole frames); bundles from before the field are "crop"
    input_kind: str = "crop"
    # how stages chain: {stage: {input: {"stage": earlier stage, "output": its output, "window": bool}}};
    # "window": the input is that output stacked over the frame window (B, T, ...). Inputs not listed
    # are the image or derived (extra["derived_inputs"]). Derived from the stages' I/O when not given.
    chain: dict | None = None

    def __post_init__(self):
        if isinstance(self.keypoints, (str, KeypointLayout)):
            object.__setattr__(self, "keypoints", KeypointInfo.from_layout(self.keypoints))
        for name in ("input_size", "mean", "std", "frame_offsets", "stages", "verification"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        object.__setattr__(self, "extra", dict(self.extra))
        if self.chain is None:
            object.__setattr__(self, "chain", derive_chain(self.stages))

    # ---- convenience for runtimes
    @property
    def stage_names(self) -> list[str]:
        return [s.name for s in self.stages]

    @property
    def is_temporal(self) -> bool:
        return len(self.frame_offsets) > 1

    @property
    def is_whole_frame(self) -> bool:
        """The model takes whole frames and finds the people itself (no person detector)."""
        return self.input_kind == "frame"

    def stage_feeds(self, stage: str) -> dict[str, dict]:
        """``{input: {"stage", "output", "window"}}``: which earlier stage output feeds each input of ``stage``."""
        return dict((self.chain or {}).get(stage, {}))

    def stage(self, name: str) -> StageEntry:
        for s in self.stages:
            if s.name == name:
                return s
        raise KeyError(f"bundle of {self.model!r} has no stage {name!r}; stages: {self.stage_names}")

    def verification_for(self, stage: str) -> Verification | None:
        return next((v for v in self.verification if v.stage == stage), None)

    @property
    def verified(self) -> bool:
        """True when every stage has a passing check (skipped checks do not count as passing)."""
        return bool(self.verification) and all(
            (v := self.verification_for(s)) is not None and v.passed is True for s in self.stage_names
        )

    def sealed(self, bundle_dir: str | os.PathLike) -> Manifest:
        """This manifest with the size and sha256 of every file in ``bundle_dir`` (but the manifest)."""
        return self.replace(files=record_files(bundle_dir), digest=None)

    # ---- serialisation
    def to_dict(self) -> dict:
        """The JSON object; a sealed manifest (``files`` set) gets its ``digest`` computed here."""
        d = {"schema_version": self.schema_version, "edgepose_version": self.edgepose_version}
        for f in fields(self):
            if f.name not in d and f.name not in ("files", "digest"):
                v = getattr(self, f.name)
                d[f.name] = None if v is None else _plain(v)
        if self.files is not None:
            d["files"] = {k: dict(v) for k, v in sorted(self.files.items())}
            d["digest"] = canonical_digest(d)
        return d

    def to_json(self, indent: int = 2) -> str:
        """Validated JSON text (serialising round-trips through ``from_dict`` so a bad field fails here)."""
        d = self.to_dict()
        for key, value in d.items():
            _json_value(value, key)
        text = json.dumps(d, indent=indent, allow_nan=False)
        type(self).from_dict(json.loads(text))
        return text + "\n"

    @classmethod
    def from_json(cls, text: str | bytes, source: str = "manifest") -> Manifest:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ManifestError(
                f"{source} is not valid JSON (line {e.lineno}, column {e.colno}: {e.msg}); {_FIX}"
            ) from None
        try:
            return cls.from_dict(data)
        except ManifestError as e:
            if source == "manifest":
                raise
            raise type(e)(f"{source}: {e}") from None

    @classmethod
    def from_dict(cls, data) -> Manifest:
        if not isinstance(data, Mapping):
            raise ManifestError(f"a manifest is a JSON object, got {type(data).__name__}; {_FIX}")
        if "schema_version" not in data:
            raise ManifestError(
                "manifest has no 'schema_version': it is not an edgepose bundle manifest; "
                "export the model with `edgepose export`"
            )
        version = _int(data["schema_version"], "schema_version", 1)
        if version > SCHEMA_VERSION:
            raise ManifestVersionError(
                f"this bundle's manifest uses schema version {version} (written by edgepose "
                f"{data.get('edgepose_version', '?')}), but edgepose {_edgepose_version()} reads up to version "
                f"{SCHEMA_VERSION}: upgrade edgepose (pip install -U edgepose) or re-export the bundle "
                "with this version"
            )

        def stages(x, p):
            st = _list(x, p, lambda s, q: StageEntry.from_dict(s, q), nonempty=True)
            _unique([s.name for s in st], p)
            return st

        def floats3(x, p, positive=False):
            return _list(x, p, lambda v, q: _float(v, q, positive=positive), length=3)

        def offsets(x, p):
            offs = _list(x, p, _int, nonempty=True)
            if 0 not in offs or sorted(set(offs)) != offs:
                raise _bad(p, "distinct offsets in ascending order including 0 (the current frame)", x)
            return offs

        def extra(x, p):
            if not isinstance(x, Mapping):
                raise _bad(p, "an object", x)
            return dict(_json_value(x, p))

        def files(x, p):
            if not isinstance(x, Mapping):
                raise _bad(p, "an object {relative path: {sha256, size}}", x)
            out = {}
            for rel, rec in x.items():
                if os.path.isabs(rel) or ".." in Path(rel).parts or not rel:
                    raise _bad(f"{p}[{rel!r}]", "a path relative to the bundle directory, inside it", rel)
                q = f"{p}[{rel!r}]"
                if not isinstance(rec, Mapping) or set(rec) != {"sha256", "size"}:
                    raise _bad(q, 'an object {"sha256": hex, "size": bytes}', rec)
                out[rel] = {
                    "sha256": _str(rec["sha256"], f"{q}.sha256", pattern=r"[0-9a-f]{64}"),
                    "size": _int(rec["size"], f"{q}.size", 0),
                }
            return out

        v = _read(
            cls,
            data,
            "",
            {
                "schema_version": (lambda x, p: x, True),
                "edgepose_version": (_str, True),
                "model": (_str, True),
                "family": (_str, True),
                "format": (lambda x, p: _str(x, p, FORMATS), True),
                "precision": (lambda x, p: _str(x, p, PRECISIONS), True),
                "keypoints": (lambda x, p: KeypointInfo.from_dict(x, p), True),
                "input_size": (lambda x, p: _list(x, p, lambda d, q: _int(d, q, 1), length=2), True),
                "mean": (floats3, True),
                "std": (lambda x, p: floats3(x, p, positive=True), True),
                "color": (lambda x, p: _str(x, p, COLOR_ORDERS), True),
                "layout": (lambda x, p: _str(x, p, TENSOR_LAYOUTS), True),
                "frame_offsets": (offsets, True),
                "codec": (lambda x, p: _str(x, p, CODECS), True),
                "stages": (stages, True),
                "weights_sha256": (_opt(_str, pattern=r"[0-9a-f]{64}"), False),
                "created": (_timestamp, True),
                "verification": (
                    lambda x, p: _list(x, p, lambda s, q: Verification.from_dict(s, q)),
                    False,
                ),
                "extra": (extra, False),
                "files": (_opt(files), False),
                "digest": (_opt(_str, pattern=r"[0-9a-f]{64}"), False),
                "input_kind": (lambda x, p: _str(x, p, INPUT_KINDS), False),
                "chain": (_opt(_chain), False),
            },
        )
        if v.get("files") is not None:
            if v.get("digest") is None:
                raise BundleDamagedError(
                    "manifest has file hashes ('files') but no 'digest': it was edited after export; "
                    "re-export the bundle with `edgepose export`"
                )
            if canonical_digest(data) != v["digest"]:
                raise BundleDamagedError(
                    "manifest was changed after export (its content no longer matches its 'digest'): "
                    "a field was edited or the file is damaged; re-export the bundle with `edgepose export`"
                )
        elif v.get("digest") is not None:
            raise BundleDamagedError(
                "manifest has a 'digest' but no file hashes ('files'): it was edited after export; "
                "re-export the bundle with `edgepose export`"
            )
        names = [s.name for s in v["stages"]]
        if v.get("chain") is not None:
            _check_chain(v["chain"], v["stages"])
        for i, ver in enumerate(v.get("verification", ())):
            if ver.stage not in names:
                raise _bad(f"verification[{i}].stage", f"one of the stage names {names}", ver.stage)
        return cls(**v)

    def replace(self, **changes) -> Manifest:
        from dataclasses import replace

        if "stages" in changes and "chain" not in changes:
            changes["chain"] = None  # re-derived from the new stages
        return replace(self, **changes)


# --------------------------------------------------------------------------- stage chaining


def derive_chain(stages) -> dict:
    """How stages chain, read off their I/O: an input of a later stage takes the earlier stage's output
    of the same name, or of its name without ``_window`` (``memory_window`` <- ``memory``); it is a
    window of that output when it has one more axis (B, T, ...). Never raises (old or odd bundles give
    an empty or partial chain)."""
    chain: dict[str, dict] = {}
    try:
        for i, st in enumerate(stages):
            feeds = {}
            for t in st.inputs:
                for src in reversed(stages[:i]):
                    by_name = {o.name: o for o in src.outputs}
                    base = t.name[: -len("_window")] if t.name.endswith("_window") else None
                    out = by_name.get(t.name) or (by_name.get(base) if base else None)
                    if out is None:
                        continue
                    window = t.shape is not None and out.shape is not None
                    window = window and len(t.shape) == len(out.shape) + 1
                    feeds[t.name] = {"stage": src.name, "output": out.name, "window": bool(window)}
                    break
            if feeds:
                chain[st.name] = feeds
    except (AttributeError, TypeError):
        return {}
    return chain


def _chain(value, path):
    if not isinstance(value, Mapping):
        raise _bad(path, "an object {stage: {input: {stage, output, window}}}", value)
    out = {}
    for stage, feeds in value.items():
        q = f"{path}.{stage}"
        if not isinstance(feeds, Mapping):
            raise _bad(q, "an object {input: {stage, output, window}}", feeds)
        out[stage] = {}
        for name, rec in feeds.items():
            r = f"{q}.{name}"
            if not isinstance(rec, Mapping) or set(rec) != {"stage", "output", "window"}:
                raise _bad(r, 'an object {"stage": name, "output": name, "window": bool}', rec)
            if not isinstance(rec["window"], bool):
                raise _bad(f"{r}.window", "true or false", rec["window"])
            out[stage][name] = {
                "stage": _str(rec["stage"], f"{r}.stage"),
                "output": _str(rec["output"], f"{r}.output"),
                "window": rec["window"],
            }
    return out


def _check_chain(chain: dict, stages) -> None:
    """Every chained input exists and is fed by an output of a stage that runs before it."""
    order = [s.name for s in stages]
    for stage, feeds in chain.items():
        if stage not in order:
            raise _bad(f"chain.{stage}", f"a stage name ({order})", stage)
        entry = stages[order.index(stage)]
        for name, rec in feeds.items():
            if name not in entry.input_names:
                raise _bad(
                    f"chain.{stage}.{name}", f"an input of stage {stage!r} ({entry.input_names})", name
                )
            src = rec["stage"]
            if src not in order[: order.index(stage)]:
                raise _bad(f"chain.{stage}.{name}.stage", f"a stage that runs before {stage!r}", src)
            outs = stages[order.index(src)].output_names
            if rec["output"] not in outs:
                raise _bad(
                    f"chain.{stage}.{name}.output", f"an output of stage {src!r} ({outs})", rec["output"]
                )


# --------------------------------------------------------------------------- files


def manifest_path(bundle: str | os.PathLike) -> Path:
    p = Path(bundle)
    return p if p.name == MANIFEST_NAME or p.suffix == ".json" else p / MANIFEST_NAME


def read_manifest(bundle: str | os.PathLike, check_files: bool = True) -> Manifest:
    """Read and validate ``bundle/manifest.json`` (``bundle`` may also be the manifest's path).

    With ``check_files`` every stage file must exist, so a copied-in-part bundle fails here,
    naming the missing file, rather than deep inside a runtime.
    """
    path = manifest_path(bundle)
    try:
        path.stat()
    except PermissionError:
        raise ManifestError(
            f"cannot reach {str(path)!r}: permission denied; give read access to the bundle "
            f"(chmod -R u+rX {str(path.parent)!r})"
        ) from None
    except OSError:
        pass
    if not path.is_file():
        where = path.parent
        raise ManifestError(
            f"no {MANIFEST_NAME} in {str(where)!r}: is this an edgepose bundle? "
            "Create one with `edgepose export <model> --format onnx --out DIR`"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ManifestError(f"could not read {str(path)!r}: {e}; {_FIX}") from None
    m = Manifest.from_json(text, source=str(path))
    if check_files:
        for st in m.stages:
            for f in st.files:
                if not (path.parent / f).exists():
                    raise ManifestError(
                        f"{str(path)!r}: stage {st.name!r} needs file {f!r}, which is not in the bundle "
                        f"{str(path.parent)!r}; copy the whole bundle directory or {_FIX}"
                    )
        check_integrity(path.parent, m)
    return m


def check_integrity(bundle_dir: str | os.PathLike, manifest: Manifest) -> None:
    """Every recorded file present with its size and sha256, and every stage file recorded.

    A manifest from before file hashes were recorded passes with one warning line per bundle.
    """
    root = Path(bundle_dir)
    if manifest.files is None:
        key = str(root.resolve())
        if key not in _WARNED_UNSEALED:
            _WARNED_UNSEALED.add(key)
            log.warning(
                "warning: bundle %s was exported before edgepose recorded file hashes (edgepose %s): damaged "
                "graph files cannot be detected before they run; re-export it to add them",
                str(root),
                manifest.edgepose_version,
            )
        return
    for st in manifest.stages:
        for f in st.files:
            covered = f in manifest.files or any(k.startswith(f.rstrip("/") + "/") for k in manifest.files)
            if not covered:
                raise BundleDamagedError(
                    f"{str(root / MANIFEST_NAME)!r}: stage {st.name!r} file {f!r} has no recorded hash; "
                    "the manifest was edited: re-export the bundle with `edgepose export`"
                )
    try:
        check_files(root, manifest.files)
    except IntegrityError as e:
        raise BundleDamagedError(str(e)) from None


def write_manifest(bundle: str | os.PathLike, manifest: Manifest, seal: bool = False) -> Path:
    """Validate and write ``bundle/manifest.json`` atomically: on any failure the old file stays.

    ``seal``: record the size and sha256 of every file of the bundle directory first (exports do).
    """
    path = manifest_path(bundle)
    if seal:
        manifest = manifest.sealed(path.parent)
    text = manifest.to_json()  # validates and serialises before the file is touched
    with atomic_file(path, "w") as f:
        f.write(text)
    return path


__all__ = [
    "BundleDamagedError",
    "CODECS",
    "COLOR_ORDERS",
    "DTYPES",
    "FORMATS",
    "INPUT_KINDS",
    "MANIFEST_NAME",
    "PRECISIONS",
    "SCHEMA_VERSION",
    "TENSOR_LAYOUTS",
    "KeypointInfo",
    "Manifest",
    "ManifestError",
    "ManifestVersionError",
    "StageEntry",
    "TensorInfo",
    "Verification",
    "check_integrity",
    "derive_chain",
    "manifest_path",
    "read_manifest",
    "write_manifest",
]

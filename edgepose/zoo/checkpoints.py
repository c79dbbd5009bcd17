"""Checkpoints: our own format and the official repositories' layouts.

Our format is a dict ``{"format": "edgepose-checkpoint", "version", "model",
"config", "state_dict", "meta"}`` written atomically. Official checkpoints
(DSTA ``{'state_dict'}``, TAR-ViTPose ``{'model_state_dict'}``, mmpose
``{'state_dict'}`` with ``backbone.*``/``keypoint_head.*``) are mapped onto our
key names by the model's ``convert_official_state``. Every load uses
``torch.load(weights_only=True)`` and fails loudly, naming the keys, when the
checkpoint does not fit the model.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch

from ..core.atomic import atomic_file

FORMAT = "edgepose-checkpoint"
VERSION = 1
_CONTAINER_KEYS = ("state_dict", "model_state_dict", "model", "module")


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not fit the model."""


@dataclass
class LoadReport:
    source: str  # "edgepose" or "official"
    model: str | None
    loaded: int
    ignored: list[str] = field(default_factory=list)  # training-only keys dropped on purpose
    meta: dict[str, Any] = field(default_factory=dict)


def _family(name: str | None) -> str | None:
    return name[: -len("_tiny")] if name and name.endswith("_tiny") else name


def save_checkpoint(model, path: str | os.PathLike, meta: Mapping[str, Any] | None = None, **extra) -> Path:
    """Write ``model`` (and any extra picklable-by-torch entries) atomically."""
    obj = {
        "format": FORMAT,
        "version": VERSION,
        "model": getattr(model, "spec_name", None),
        "config": getattr(model, "config", {}),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "meta": dict(meta or {}),
        **extra,
    }
    path = Path(path)
    with atomic_file(path) as f:
        torch.save(obj, f)
    return path


def read_checkpoint(path: str | os.PathLike) -> dict:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle errors, truncated zip, foreign objects
        raise CheckpointError(
            f"could not read checkpoint {str(path)!r} with weights_only=True: {type(e).__name__}: {e}. "
            "Checkpoints must hold tensors and plain containers only; a truncated file must be re-downloaded."
        ) from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"checkpoint {str(path)!r} holds a {type(obj).__name__}, not a dict of tensors")
    return obj


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _unwrap(obj: dict) -> dict[str, torch.Tensor]:
    for key in _CONTAINER_KEYS:
        if isinstance(obj.get(key), dict):
            return obj[key]
    if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return obj
    raise CheckpointError(
        f"no state dict found in checkpoint: looked for {list(_CONTAINER_KEYS)} or a flat dict of tensors; "
        f"top-level keys are {list(obj)[:10]}"
    )


def _strip_prefix(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    if state and all(k.startswith(prefix) for k in state):
        return {k[len(prefix) :]: v for k, v in state.items()}
    return state


def few_keys(keys, n: int = 8) -> str:
    """Sorted, at most ``n`` of them, with the total when some are left out: for error messages."""
    keys = sorted(keys)
    return ", ".join(keys[:n]) + (f", ... ({len(keys)} in all)" if len(keys) > n else "")


def check_state(model, state: Mapping[str, torch.Tensor], what: str) -> None:
    """Raise a CheckpointError naming missing, unexpected and mis-shaped keys."""
    own = model.state_dict()
    missing = set(own) - set(state)
    unexpected = set(state) - set(own)
    shapes = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in sorted(set(own) & set(state))
        if tuple(state[k].shape) != tuple(own[k].shape)
    ]
    problems = []
    if missing:
        problems.append(f"missing keys: {few_keys(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {few_keys(unexpected)}")
    if shapes:
        problems.append("mis-shaped keys: " + "; ".join(shapes[:6]) + (" ..." if len(shapes) > 6 else ""))
    if problems:
        name = getattr(model, "spec_name", type(model).__name__)
        raise CheckpointError(f"{what} does not fit model {name}: " + " | ".join(problems))


def load_weights(model, source: str | os.PathLike | Mapping, strict: bool = True) -> LoadReport:
    """Load our checkpoints or an official repository's checkpoint into ``model``.

    ``source`` is a path or an already-loaded dict. Official layouts are
    recognised by the model's ``convert_official_state``; keys the official
    repositories keep for training only (e.g. DSTA's RealNVP flow) are dropped
    and listed in the report.
    """
    what = f"checkpoint {str(source)!r}" if not isinstance(source, Mapping) else "checkpoint"
    obj = read_checkpoint(source) if not isinstance(source, Mapping) else dict(source)
    name = getattr(model, "spec_name", None)
    if obj.get("format") == FORMAT:
        ck_model = obj.get("model")
        if ck_model and name and _family(ck_model) != _family(name):
            raise CheckpointError(f"{what} is for model {ck_model!r}, not {name!r}")
        state, report = obj["state_dict"], LoadReport("edgepose", ck_model, 0, meta=obj.get("meta", {}))
    else:
        state = _strip_prefix(_unwrap(obj), "module.")
        own = set(model.state_dict())
        if set(state) == own:
            report = LoadReport("edgepose", None, 0)
        else:
            converted = model.convert_official_state(state)
            state, ignored = converted if isinstance(converted, tuple) else (converted, [])
            report = LoadReport("official", name, 0, ignored=list(ignored))
    if strict:
        check_state(model, state, what)
    result = model.load_state_dict(state, strict=strict)
    report.loaded = len(state) - len(getattr(result, "unexpected_keys", []))
    return report

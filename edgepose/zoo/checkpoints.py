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
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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


def state_sha256(state: Mapping[str, torch.Tensor]) -> str:
    """A hash of a state dict's keys, dtypes, shapes and bytes (independent of the file's layout)."""
    h = hashlib.sha256()
    for k, v in sorted(state.items()):
        h.update(k.encode())
        t = v.detach().cpu().contiguous()
        h.update(str(t.dtype).encode() + str(tuple(t.shape)).encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def save_checkpoint(model, path: str | os.PathLike, meta: Mapping[str, Any] | None = None, **extra) -> Path:
    """Write ``model`` (and any extra picklable-by-torch entries) atomically.

    The state dict's hash goes in too (``state_sha256``), so a later read detects damaged tensor data.
    """
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    obj = {
        "format": FORMAT,
        "version": VERSION,
        "model": getattr(model, "spec_name", None),
        "config": getattr(model, "config", {}),
        "state_dict": state,
        "state_sha256": state_sha256(state),
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
            f"could not read checkpoint {str(path)!r} with weights_only=True: {type(e).__name__}: {_gist(e)}. "
            "Checkpoints must hold tensors and plain containers only; a truncated file must be re-downloaded."
        ) from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"checkpoint {str(path)!r} holds a {type(obj).__name__}, not a dict of tensors")
    if obj.get("format") == FORMAT:
        _check_own(obj, f"checkpoint {str(path)!r}")
    return obj


def _check_own(obj: dict, what: str) -> None:
    """Our format's fields: a state dict of tensors, finite, matching its recorded hash."""
    state = obj.get("state_dict")
    if not isinstance(state, dict) or not state:
        raise CheckpointError(
            f"{what} is an edgepose checkpoint without a state dict ('state_dict' is "
            f"{type(state).__name__ if state is not None else 'missing'}): the file is damaged; use another checkpoint"
        )
    _check_tensors(state, what)
    recorded = obj.get("state_sha256")
    if isinstance(recorded, str) and recorded != state_sha256(state):
        raise CheckpointError(
            f"{what} is damaged: its tensor data no longer matches the hash written with it "
            "(a bit flip or a partial overwrite); use an earlier checkpoint (e.g. best.pt) or re-train"
        )


def _check_tensors(state: Mapping, what: str) -> None:
    """Every value a tensor; every floating tensor finite and of plausible size (a bit flip in an exponent
    makes values of 1e17 and more; trained weights stay far below 1e15)."""
    bad_type = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad_type:
        raise CheckpointError(
            f"{what}: state dict entries that are not tensors: {few_keys(map(str, bad_type), 4)}; "
            "the file is damaged or not a model checkpoint"
        )
    nonfinite, huge = [], []
    for k, v in state.items():
        if v.is_floating_point() and v.numel():
            finite = torch.isfinite(v)
            if not bool(finite.all()):
                nonfinite.append(k)
            elif float(v.abs().max()) > 1e15:
                huge.append(k)
    if nonfinite:
        raise CheckpointError(
            f"{what} holds NaN/Inf values in {len(nonfinite)} tensor(s) ({few_keys(nonfinite, 3)}): it is damaged "
            "or from a diverged run; use an earlier checkpoint or re-train with a lower --lr"
        )
    if huge:
        raise CheckpointError(
            f"{what} holds values above 1e15 in {len(huge)} tensor(s) ({few_keys(huge, 3)}): the data is "
            "damaged (flipped exponent bits); use another copy or an earlier checkpoint"
        )


def _params(state: Mapping) -> str:
    n = sum(v.numel() for v in state.values() if isinstance(v, torch.Tensor) and v.is_floating_point())
    return f"{n / 1e6:.2f} M" if n >= 1e5 else f"{n / 1e3:.1f} k"


def _gist(e: Exception) -> str:
    """One line of torch's multi-line load errors: the unpickler's own reason where it gives one."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    for i, ln in enumerate(lines):
        if "WeightsUnpickler error" in ln:
            rest = ln.split("WeightsUnpickler error:", 1)[-1].strip() or (
                lines[i + 1] if i + 1 < len(lines) else ""
            )
            return f"not a weights-only file ({rest[:200]})"
    return (lines[0] if lines else type(e).__name__)[:300]


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


def check_model_name(obj: Mapping, name: str, what: str = "checkpoint", model=None) -> None:
    """Refuse an edgepose checkpoint of another model before anything is built from its config;
    the tiny test variant and its full model are told apart with both sizes named."""
    ck_model = obj.get("model") if obj.get("format") == FORMAT else None
    if not ck_model or ck_model == name:
        return
    if _family(ck_model) != _family(name):
        raise CheckpointError(f"{what} is for model {ck_model!r}, not {name!r}")
    if model is None:
        from .registry import create_model

        model = create_model(name)
    state = obj.get("state_dict") if isinstance(obj.get("state_dict"), dict) else {}
    raise CheckpointError(
        f"{what} is for {ck_model} ({_params(state)} parameters), not {name} "
        f"({_params(model.state_dict())} parameters): use a {name} checkpoint, or name {ck_model} as the model"
    )


def load_weights(
    model, source: str | os.PathLike | Mapping, strict: bool = True, label: str | None = None
) -> LoadReport:
    """Load our checkpoints or an official repository's checkpoint into ``model``.

    ``source`` is a path or an already-loaded dict (``label`` names it in errors). Official layouts are
    recognised by the model's ``convert_official_state``; keys the official
    repositories keep for training only (e.g. DSTA's RealNVP flow) are dropped
    and listed in the report.
    """
    what = label or (f"checkpoint {str(source)!r}" if not isinstance(source, Mapping) else "checkpoint")
    obj = read_checkpoint(source) if not isinstance(source, Mapping) else dict(source)
    name = getattr(model, "spec_name", None)
    if obj.get("format") == FORMAT:
        if isinstance(source, Mapping):
            _check_own(obj, what)
        ck_model = obj.get("model")
        if name:
            check_model_name(obj, name, what, model)
        state, report = obj["state_dict"], LoadReport("edgepose", ck_model, 0, meta=obj.get("meta", {}))
    else:
        state = _strip_prefix(_unwrap(obj), "module.")
        _check_tensors(state, what)
        own = set(model.state_dict())
        if set(state) == own:
            report = LoadReport("edgepose", None, 0)
        else:
            converted = model.convert_official_state(state)
            state, ignored = converted if isinstance(converted, tuple) else (converted, [])
            report = LoadReport("official", name, 0, ignored=list(ignored))
    if strict:
        check_state(model, state, what)
    else:  # missing and unused keys are allowed; a key of the wrong size is never (load_state_dict raises)
        own = model.state_dict()
        shapes = [
            f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
            for k in sorted(set(own) & set(state))
            if tuple(state[k].shape) != tuple(own[k].shape)
        ]
        if shapes:
            raise CheckpointError(
                f"{what} does not fit model {name or type(model).__name__} ({_params(own)} parameters; the "
                f"checkpoint has {_params(state)}): {len(shapes)} mis-shaped key(s): " + "; ".join(shapes[:3])
            )
    result = model.load_state_dict(state, strict=strict)
    report.loaded = len(state) - len(getattr(result, "unexpected_keys", []))
    return report

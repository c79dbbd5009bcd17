"""The PyTorch model an export starts from, and how to rebuild it later for ``edgepose verify``.

A bundle records its source in the manifest: the checkpoint's path and sha256,
or, for an export without weights (tests, benchmarks), the seed that
initialised it. Either way ``state_sha256`` (a hash of the state dict) lets a
later verification prove it rebuilt the very same weights.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..zoo import create_model, get_spec, list_models
from ..zoo.checkpoints import FORMAT as CHECKPOINT_FORMAT
from ..zoo.checkpoints import check_model_name, file_sha256, load_weights, read_checkpoint
from ..zoo.checkpoints import state_sha256 as checkpoint_state_sha256
from ..zoo.pretrained import load_pretrained
from .formats import ExportError

DEFAULT_INIT_SEED = 0


@dataclass
class Source:
    model: Any  # PoseModel, in eval mode
    name: str
    config: dict[str, Any]
    weights: Path | None = None
    weights_sha256: str | None = None
    init_seed: int | None = None
    state_sha256: str = ""
    notes: list[str] = field(default_factory=list)

    def to_manifest(self) -> dict[str, Any]:
        return {
            "weights": str(self.weights) if self.weights else None,
            "weights_sha256": self.weights_sha256,
            "init_seed": self.init_seed,
            "state_sha256": self.state_sha256,
            "config": _jsonable(self.config),
        }

    def describe(self) -> str:
        if self.weights:
            return f"weights {self.weights}"
        if self.init_seed is None:  # a model instance handed in: its weights are whatever it holds
            pretrained = getattr(self.model, "pretrained", None)
            held = (
                f"shipped weights {pretrained['file']}" if isinstance(pretrained, dict) else "its own weights"
            )
            return f"the given model instance ({held}, state sha256 {self.state_sha256[:12]})"
        return (
            f"random init (seed {self.init_seed}): no --weights given; fine for testing the export path only"
        )


def _jsonable(v):
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return v


def state_sha256(model) -> str:
    return checkpoint_state_sha256(model.state_dict())


PRETRAINED = "pretrained"


def adopt_pretrained(model: str | Any, weights, frames: int | None = None):
    """``weights="pretrained"``: the shipped weights (``edgepose.load_pretrained``) as a built model,
    returned as ``(model, None)``, so export, quantize, eval, cached bundles and every CLI ``--weights``
    mean the same thing by the word (and build the crop size and window the weights were trained
    for). Other weights pass through unchanged."""
    if weights is None or os.fspath(weights) != PRETRAINED:
        return model, weights
    if not isinstance(model, str):
        raise ExportError("weights='pretrained' needs a model name (e.g. 'dsta_mnv2'), not a built model")

    net = load_pretrained(model)
    if frames is not None and frames != len(net.frame_offsets):
        raise ExportError(
            f"the shipped {model} weights are a {len(net.frame_offsets)}-frame build; --frames {frames} "
            "needs weights trained for it (a checkpoint)"
        )
    return net, None


def build(
    model: str | Any,
    weights: str | os.PathLike | None = None,
    frames: int | None = None,
    init_seed: int = DEFAULT_INIT_SEED,
    config: dict[str, Any] | None = None,
) -> Source:
    """Build (or adopt) the model to export; ``frames`` only for temporal models; ``weights`` a
    checkpoint or ``"pretrained"`` (the shipped weights)."""
    if weights is not None and os.fspath(weights) == PRETRAINED:
        model, weights = adopt_pretrained(model, weights, frames)
        frames = None  # checked against the shipped build's window
    if not isinstance(model, str):  # an already-built PoseModel
        if frames is not None or weights is not None:
            raise ExportError("pass frames/weights with a model name, not with a model instance")
        name = getattr(model, "spec_name", None)
        if not name:
            raise ExportError(
                "a model instance needs .spec_name (models from edgepose.zoo.create_model have it)"
            )
        model.eval()
        return Source(model, name, dict(getattr(model, "config", {})), state_sha256=state_sha256(model))
    spec = get_spec(model)
    overrides = dict(config or {})
    if frames is not None:
        if not spec.is_temporal:
            temporal = [n for n in _temporal_models()]
            raise ExportError(
                f"--frames applies to temporal models ({', '.join(temporal)}); {model} is single-frame"
            )
        overrides["frames"] = int(frames)
    ckpt = None
    if weights is not None:
        ckpt = read_checkpoint(weights)
        check_model_name(ckpt, model, f"checkpoint {str(weights)!r}")
        if ckpt.get("format") == CHECKPOINT_FORMAT and isinstance(ckpt.get("config"), dict):
            saved = {k: v for k, v in ckpt["config"].items() if k in spec.config}
            overrides = {**saved, **overrides}
    if ckpt is None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(init_seed)
            net = create_model(model, **overrides)
    else:
        net = create_model(model, **overrides)
        load_weights(net, ckpt, label=f"checkpoint {str(weights)!r}")
    net.eval()
    src = Source(net, model, dict(net.config), state_sha256=state_sha256(net))
    if weights is not None:
        src.weights = Path(weights).resolve()
        src.weights_sha256 = file_sha256(weights)
    else:
        src.init_seed = init_seed
    return src


def _temporal_models() -> list[str]:
    return [n for n in list_models() if get_spec(n).is_temporal]


def from_manifest(manifest, weights: str | os.PathLike | None = None) -> tuple[Source, str]:
    """Rebuild a bundle's source model; returns it and a sentence saying where the weights came from."""
    rec = manifest.extra.get("source") or {}
    config = rec.get("config") or {}
    spec = get_spec(manifest.model)
    config = {k: (tuple(v) if isinstance(v, list) else v) for k, v in config.items() if k in spec.config}
    if weights is not None:
        src = build(manifest.model, weights, config=config)
        how = f"weights given with --weights: {src.weights}"
        if manifest.weights_sha256 and src.weights_sha256 != manifest.weights_sha256:
            how += f" (sha256 {src.weights_sha256[:12]} != exported {manifest.weights_sha256[:12]})"
    elif rec.get("weights"):
        path = Path(rec["weights"])
        if not path.is_file():
            raise ExportError(
                f"the bundle was exported from weights {str(path)!r}, which are not on this machine: "
                "pass --weights PATH"
            )
        src = build(manifest.model, path, config=config)
        if manifest.weights_sha256 and src.weights_sha256 != manifest.weights_sha256:
            raise ExportError(
                f"weights {str(path)!r} changed since the export (sha256 differs): pass --weights PATH "
                "with the exported checkpoint"
            )
        how = f"weights recorded in the manifest: {path} (sha256 matches)"
    elif rec.get("init_seed") is not None:
        src = build(manifest.model, None, init_seed=int(rec["init_seed"]), config=config)
        how = f"random init with the manifest's seed {rec['init_seed']} (no weights were exported)"
    else:
        raise ExportError("the manifest records no source weights: pass --weights PATH")
    if rec.get("state_sha256") and rec["state_sha256"] != src.state_sha256:
        if weights is None:
            raise ExportError(
                "rebuilt model's weights differ from the exported ones (state sha256 mismatch); "
                "pass --weights PATH with the exported checkpoint"
            )
        how += "; note: these weights are not the exported ones (state sha256 differs), so parity will fail"
    return src, how

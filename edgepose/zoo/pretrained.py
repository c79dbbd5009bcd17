"""Small trained weights shipped with the package: ``load_pretrained(name)`` and ``--weights pretrained``.

**Real-footage weights** (``dsta_mnv2_coco``): DSTA-MNv2 at the paper's size (256x192, COCO-17
joints) distilled from MoveNet Thunder + BlazePose labels on real video, with MoveNet Lightning's
trunk (``benchmarks/distil_real.py``; ``benchmarks/ship_real.py`` ships a new checkpoint, measured as
it ships). The index records what they were trained on, their held-out AP on
real frames, and how their default int8 build scored (``record_int8``), which ``--precision auto``
reads.

**Synthetic demo weights** (``dsta_mnv2``, ``distilpose_s``, ``tar_vitpose_s``): reduced builds
(64x48 crops, narrower and shallower than the papers'; each checkpoint records its ``config``)
trained for minutes on edgepose's synthetic video benchmark only (``benchmarks/train_synthetic.py
--ship-weights``). They find synthetic people's joints (the index records their held-out PCK) and
serve the SDK's loops, export checks and tests; they have never seen a real person.

Storage: tensors in fp16 in our checkpoint format (``edgepose.zoo.checkpoints``), restored to
fp32 on load; ``index.json`` beside them lists each file's sha256, so a damaged install fails
with a clear error instead of producing silently wrong poses. Every load uses
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ..core.atomic import atomic_file
from .checkpoints import FORMAT, VERSION, CheckpointError, file_sha256, load_weights, read_checkpoint
from .registry import create_model, get_spec

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "assets" / "weights"
INDEX = "index.json"


class PretrainedError(CheckpointError):
    """Shipped weights that are missing, damaged or unknown."""


def _dir(directory: str | os.PathLike | None) -> Path:
    return Path(directory) if directory is not None else WEIGHTS_DIR


def _index(directory: str | os.PathLike | None = None) -> dict[str, dict]:
    path = _dir(directory) / INDEX
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise PretrainedError(
            f"the pretrained weights index {path} is unreadable ({e}); reinstall edgepose"
        ) from None


def list_pretrained(directory: str | os.PathLike | None = None) -> list[str]:
    """Model names that have shipped weights (e.g. ``['distilpose_s', 'dsta_mnv2', ...]``)."""
    return sorted(_index(directory))


def pretrained_info(name: str, directory: str | os.PathLike | None = None) -> dict[str, Any]:
    """The index entry of ``name``: file, sha256, config overrides, input size, offsets, layout,
    what it was trained on and its held-out metrics."""
    index = _index(directory)
    if name not in index:
        known = ", ".join(sorted(index)) or "none"
        raise PretrainedError(f"no pretrained weights for {name!r}; shipped: {known}")
    return dict(index[name])


def load_pretrained(name: str, directory: str | os.PathLike | None = None, check: bool = True):
    """Build ``name`` from its shipped checkpoint's recorded config and load the weights (fp32, eval
    mode). The model's ``input_size`` and ``frame_offsets`` (not the registry spec's) are the crop
    size and window it was trained for (``model_spec(model)`` gives the matching spec);
    ``model.pretrained`` holds the index entry."""
    info = pretrained_info(name, directory)
    path = _dir(directory) / info["file"]
    hint = "reinstall edgepose (or re-create them with benchmarks/train_synthetic.py --ship-weights)"
    if not path.is_file():
        raise PretrainedError(f"pretrained weights file {path} for {name!r} is missing; {hint}")
    if check:
        digest = file_sha256(path)
        if digest != info["sha256"]:
            raise PretrainedError(
                f"pretrained weights file {path} for {name!r} is damaged: sha256 {digest[:16]}... does not "
                f"match the index's {info['sha256'][:16]}...; {hint}"
            )
    try:
        obj = read_checkpoint(path)
    except CheckpointError as e:
        raise PretrainedError(f"{e}; {hint}") from None
    if obj.get("format") != FORMAT or obj.get("model") != name:
        raise PretrainedError(
            f"{path} is not an edgepose checkpoint of {name!r} (model {obj.get('model')!r}); {hint}"
        )
    spec = get_spec(name)
    config = obj.get("config") or {}
    overrides = {k: v for k, v in config.items() if k in spec.config and v != spec.config[k]}
    model = create_model(name, **overrides)
    state = {k: v.float() if v.is_floating_point() else v for k, v in obj["state_dict"].items()}
    load_weights(model, {**obj, "state_dict": state})
    model.pretrained = info
    return model.eval()


def model_spec(model):
    """The registry spec of a built model with *its* crop size and window (a reduced build, such as
    the shipped weights, differs from the registry's full-size spec there)."""
    import dataclasses

    spec = get_spec(model.spec_name)
    return dataclasses.replace(
        spec, input_size=tuple(model.input_size), frame_offsets=tuple(model.frame_offsets)
    )


def write_pretrained(
    model,
    directory: str | os.PathLike,
    trained_on: str,
    metrics: Mapping[str, Any] | None = None,
    note: str = "",
    task_state: Mapping[str, torch.Tensor] | None = None,
) -> Path:
    """Write ``model`` as ``<name>.pt`` with fp16 tensors and add it to the directory's index.
    ``task_state``: the training run's training-only parameters (RLE's flow; a few KB, kept in fp32
    under ``train.task`` as a run's checkpoint has them), so ``edgepose train --weights`` on the shipped
    file continues with the flow it was trained with (``edgepose.training.task_state``)."""
    from .. import __version__

    name = getattr(model, "spec_name", None)
    if not name:
        raise ValueError("the model has no spec_name: build it with edgepose.zoo.create_model")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {
        k: (v.detach().cpu().half() if v.is_floating_point() else v.detach().cpu())
        for k, v in model.state_dict().items()
    }
    meta = {
        "dtype": "float16",
        "trained_on": trained_on,
        "metrics": dict(metrics or {}),
        "note": note,
        "edgepose": __version__,
    }
    obj = {
        "format": FORMAT,
        "version": VERSION,
        "model": name,
        "config": dict(model.config),
        "state_dict": state,
        "meta": meta,
    }
    if task_state:
        obj["train"] = {"task": {k: v.detach().cpu() for k, v in task_state.items()}}
    path = directory / f"{name}.pt"
    with atomic_file(path) as f:
        torch.save(obj, f)
    spec = get_spec(name)
    overrides = {k: v for k, v in model.config.items() if k in spec.config and v != spec.config[k]}
    index = _index(directory)
    index[name] = {
        "file": path.name,
        "sha256": file_sha256(path),
        "bytes": path.stat().st_size,
        "model": name,
        "overrides": _plain(overrides),
        "input_size": list(model.input_size),
        "frame_offsets": list(model.frame_offsets),
        "layout": spec.layout,
        "codec": spec.codec,
        "params": sum(p.numel() for p in model.parameters()),
        **meta,
    }
    with atomic_file(directory / INDEX, "w") as f:
        json.dump(dict(sorted(index.items())), f, indent=1)
        f.write("\n")
    return path


def _shipped(name: str, directory: str | os.PathLike | None) -> dict[str, dict]:
    """The index, which must hold ``name``: a measurement needs the weights it measured."""
    index = _index(directory)
    if name not in index:
        raise PretrainedError(f"no pretrained weights for {name!r} in {_dir(directory)}: write them first")
    return index


def _record(name: str, key: str, value: Any, directory: str | os.PathLike | None) -> dict[str, Any]:
    """Write ``value`` under ``key`` of ``name``'s index entry (a measurement about the shipped file:
    the ``.pt`` and its sha256 stay as they are)."""
    directory = _dir(directory)
    index = _shipped(name, directory)
    index[name][key] = value
    with atomic_file(directory / INDEX, "w") as f:
        json.dump(dict(sorted(index.items())), f, indent=1)
        f.write("\n")
    return index[name]


def record_int8(
    name: str,
    fmt: str,
    ap: float,
    fp32_ap: float,
    how: str,
    directory: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Record in the index how the int8 build of ``fmt`` scored against fp32 for the shipped ``name``;
    ``edgepose run --precision auto`` picks int8 only where this says it is within 1 AP. The record is
    about the build, not the weights, so it lives in the index (the ``.pt`` and its sha256 stay)."""
    entry = _shipped(name, directory)[name]
    builds = dict(entry.get("int8") or {})
    builds[fmt] = {
        "ap": round(ap, 3),
        "fp32_ap": round(fp32_ap, 3),
        "how": how,
        "settings": int8_settings(entry["model"]),
    }
    return _record(name, "int8", builds, directory)


def record_person_score(
    name: str, measured: Mapping[str, Any], directory: str | os.PathLike | None = None
) -> dict[str, Any]:
    """Record the stills path's person judge for the shipped ``name``: ``measured["min_pose_score"]``,
    the mean keypoint confidence a box's pose needs to count as a person, measured on these weights
    (``edgepose.bench.person_judge``: each file has its own confidence scale). Exports of the weights
    carry it in the bundle manifest (``extra["min_pose_score"]``)."""
    if not 0.0 < float(measured.get("min_pose_score", -1)) < 1.0:
        raise ValueError(f"min_pose_score must be in (0, 1), got {measured.get('min_pose_score')!r}")
    return _record(name, "person_score", dict(measured), directory)


def person_score(info: Mapping | None) -> float | None:
    """The measured person threshold of an index entry (``model.pretrained``), if it has one."""
    rec = (info or {}).get("person_score") or {}
    return float(rec["min_pose_score"]) if "min_pose_score" in rec else None


def int8_settings(model) -> str:
    """The digest of the int8 defaults of ``model``'s family (a zoo name or a built model):
    ``scopes.settings_digest``, which keys cached int8 builds and dates int8 records."""
    from ..quantization.scopes import settings_digest

    return settings_digest(get_spec(model if isinstance(model, str) else model.spec_name).family)


def int8_record(info: Mapping, fmt: str) -> dict | None:
    """The index's int8 measurement of ``fmt`` for these weights, if it measured the build that the
    family's current int8 defaults make (same ``settings`` digest); a record of other settings says
    nothing about today's build, so it counts as none."""
    measured = (info.get("int8") or {}).get(fmt)
    if not measured or measured.get("settings") != int8_settings(info["model"]):
        return None
    return measured


def _plain(d: Mapping) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


__all__ = [
    "PretrainedError",
    "WEIGHTS_DIR",
    "int8_record",
    "int8_settings",
    "list_pretrained",
    "load_pretrained",
    "model_spec",
    "person_score",
    "pretrained_info",
    "record_int8",
    "record_person_score",
    "write_pretrained",
]

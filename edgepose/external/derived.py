"""Files made locally from a checked third-party model: a free-input-size graph and its int8 PTQ.

They are built on first use next to their source (never committed, never downloaded) and recorded
in ``derived.json`` beside it: the derived file's sha256, the source's sha256 it was made from, and
the recipe. Before a derived file runs, its source passes its own check (``check.verified_path``, or
this one for a file derived from a derived file) and the derived
file must have the recorded hash and come from that source; otherwise it is refused (a file that
changed after it was made is not silently rebuilt over: it may be someone's experiment).

* ``free_input``: the converted NanoDet fixes its input at 1x3x416x416, although every operator in
  it follows the input size (its resizes are by scale, its reshapes to ``-1``); naming the two
  spatial dims symbolic is the whole change (outputs at 416 equal the fixed graph's, max |diff| 7e-7).
* ``int8``: ONNX Runtime PTQ (``quantization.onnx_ptq.quantize_file``: Conv and clamps in int8,
  the sigmoid/reshape decode tail float) calibrated on the detector's own input from the training
  part of vtest (frames before the held-out 30%), never on the held-out frames. NanoDet's is made
  from the fixed graph and freed afterwards: ORT's symbolic shape inference cannot follow the free
  one, and its failed attempt left a temporary graph and 15 MB of weights in the working directory.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from ..core.assets import asset_path, missing_reason
from ..core.atomic import atomic_file
from .check import ExternalModelError, file_sha256

RECORD = "derived.json"
HELD_OUT = 0.3  # the last 30% of vtest.avi is held out (bench/detectors.py); calibration stays before it
CALIBRATION_FRAMES = 32


def _record(folder: Path) -> dict:
    try:
        return json.loads((folder / RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _write_record(folder: Path, name: str, entry: dict) -> None:
    rec = _record(folder)
    rec[name] = entry
    with atomic_file(folder / RECORD, "w") as f:
        f.write(json.dumps(rec, indent=2, sort_keys=True) + "\n")


def checked(path: Path, source: Path) -> Path:
    """``path`` if ``derived.json`` records its hash and its source's; else ExternalModelError."""
    entry = _record(path.parent).get(path.name)
    fix = f"delete {path} (it is rebuilt on next use)"
    if not entry:
        raise ExternalModelError(f"{path} is not recorded in {path.parent / RECORD}: {fix}")
    if file_sha256(path) != entry.get("sha256"):
        raise ExternalModelError(
            f"{path} changed since it was derived (sha256 differs from the record): {fix}"
        )
    if entry.get("from_sha256") != file_sha256(source):
        raise ExternalModelError(f"{path} was derived from another {source.name} than the one checked: {fix}")
    return path


def derived_path(name: str, source: Path, build: Callable[[Path, Path], dict]) -> Path:
    """The derived file ``name`` of ``source`` (already checked: ``check.verified_path`` or this
    function): built and recorded beside it if absent, checked if present.

    ``build(source, dest) -> recipe facts`` writes ``dest`` (a temporary that replaces ``name`` only
    when the build succeeds).
    """
    path = source.parent / name
    if path.is_file():
        return checked(path, source)
    with tempfile.TemporaryDirectory(prefix="edgepose-derive-", dir=source.parent) as tmp:
        dest = Path(tmp) / name
        facts = build(source, dest)
        with atomic_file(path) as f:
            f.write(dest.read_bytes())
    entry = {"from": source.name, "from_sha256": file_sha256(source), "sha256": file_sha256(path), **facts}
    _write_record(source.parent, name, entry)
    return path


def free_input(src: Path, dest: Path, names: tuple[str, str] = ("height", "width")) -> dict:
    """Copy ``src`` with its image input's two spatial dims (NCHW: 2, 3) made symbolic.

    Shapes inferred at the fixed size (``value_info``, output dims: a quantised graph has them) are
    dropped, or ONNX Runtime checks every other size against them."""
    import onnx  # lazy: onnx

    model = onnx.load(str(src))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    fixed = [d.dim_value for d in dims]
    for d, n in zip(dims[2:4], names):
        d.ClearField("dim_value")
        d.dim_param = n
    del model.graph.value_info[:]
    for out in model.graph.output:
        for d in out.type.tensor_type.shape.dim:
            d.Clear()  # unknown
    onnx.save(model, str(dest))
    onnx.checker.check_model(str(dest))
    return {"recipe": f"input {model.graph.input[0].name} {fixed} -> [.., .., {names[0]}, {names[1]}]"}


def training_frames(count: int = CALIBRATION_FRAMES) -> tuple[list[np.ndarray], list[int]]:
    """``count`` frames evenly spread over vtest's training part (before the held-out 30%)."""
    path = asset_path("vtest.avi")
    if path is None:
        raise ExternalModelError(f"int8 calibration needs {missing_reason('vtest.avi')}")
    cap = cv2.VideoCapture(str(path))
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    first_held = total - round(HELD_OUT * total)
    wanted = set(np.linspace(0, first_held - 1, count).round().astype(int).tolist())
    frames, index = [], []
    for i in range(first_held):
        ok, img = cap.read()
        if not ok:
            break
        if i in wanted:
            frames.append(img)
            index.append(i)
    cap.release()
    if not frames:
        raise ExternalModelError(f"{path}: no frames read for int8 calibration")
    return frames, index


def int8(src: Path, dest: Path, feeds: Callable[[np.ndarray], dict], about: str) -> dict:
    """PTQ of ``src`` into ``dest``, calibrated on ``feeds(frame)`` of vtest's training frames."""
    from ..quantization.onnx_ptq import quantize_file  # lazy: onnxruntime

    frames, index = training_frames()
    info = quantize_file(src, dest, (feeds(f) for f in frames))
    return {
        **info,
        "calibration": f"{len(frames)} vtest.avi frames {index[0]}-{index[-1]} (training part), {about}",
    }


__all__ = ["RECORD", "checked", "derived_path", "free_input", "int8", "training_frames"]

"""The pretrained third-party models edgepose runs: pose teachers and person detectors, one table.

A row names the model, what it is for, the asset file it runs from (checked by
``check.verified_path`` before a session opens) and how to wrap the session. Adding a model is a
module with its wrapper plus one row here.

* teachers: ``teacher(image_bgr, boxes) -> (N, 17, 3)`` COCO-17 x, y, score in frame pixels.
* detectors: ``detector(image_bgr, frame_index) -> Detections``.

A detector with ``variants`` runs at other precisions or input sizes from files derived locally from
its checked file (``derived``): ``load_detector("nanodet", precision="int8", size=320)``, or the
SDK's ``--detector nanodet:int8,320`` (``variant_options``).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from .check import ExternalModelError, available, describe, verified_path


@dataclass(frozen=True)
class External:
    name: str
    file: str
    wrap: str  # "module:Class" of the wrapper, (session, **options) -> teacher or detector; imported
    # on load, so the table can be read (by the SDK's detector table) without importing the SDK
    about: str
    input: str  # what one call consumes, for tables
    variants: str | None = None  # "module:function" (checked path, precision=, size=) -> the graph to
    # open, where the model also runs from derived files; None: only its own file, as it is


TEACHERS: dict[str, External] = {
    e.name: e
    for e in (
        External(
            "movenet_lightning",
            "movenet-lightning.onnx",
            "movenet:MoveNetSingle",
            "MoveNet SinglePose Lightning v4 (Google)",
            "192x192 crop",
        ),
        External(
            "movenet_thunder",
            "movenet-thunder.onnx",
            "movenet:MoveNetSingle",
            "MoveNet SinglePose Thunder v4 (Google)",
            "256x256 crop",
        ),
        External(
            "blazepose_lite",
            "pose_landmark_lite.tflite",
            "blazepose:BlazePose",
            "MediaPipe BlazePose GHUM lite",
            "256x256 crop",
        ),
        External(
            "blazepose_full",
            "pose_landmark_full.tflite",
            "blazepose:BlazePose",
            "MediaPipe BlazePose GHUM full",
            "256x256 crop",
        ),
        External(
            "blazepose_heavy",
            "pose_landmark_heavy.tflite",
            "blazepose:BlazePose",
            "MediaPipe BlazePose GHUM heavy",
            "256x256 crop",
        ),
    )
}

DETECTORS: dict[str, External] = {
    e.name: e
    for e in (
        External(
            "nanodet",
            "nanodet.onnx",
            "nanodet:NanoDet",
            "NanoDet COCO-80, person class, square tiles on wide frames; fp32|int8, input size",
            "416x416 per tile",
            "nanodet:model_file",
        ),
        External(
            "centernet",
            "centernet.onnx",
            "centernet:CenterNet",
            "MobileNetV3-CenterNet COCO-80, person class",
            "512x512",
        ),
        External(
            "movenet_multipose",
            "movenet-multipose.onnx",
            "movenet:MoveNetMulti",
            "MoveNet MultiPose Lightning: boxes with COCO-17 poses",
            "384x512 letterbox",
        ),
    )
}


def _entry(name: str, table: dict[str, External], kind: str) -> External:
    if name not in table:
        raise ValueError(f"unknown {kind} {name!r}: use one of {sorted(table)}")
    return table[name]


def _attr(ref: str):
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(f"{__package__}.{module}"), name)


VARIANT_OPTIONS = ("precision", "size")


def variant_options(name: str, arg: str | None) -> dict:
    """``precision`` and ``size`` from the ARG of ``KIND:ARG``: ``int8``, ``320``, ``int8,320``."""
    if not arg:
        return {}
    entry = _entry(name, DETECTORS, "detector")
    if entry.variants is None:
        raise ValueError(f"detector {name!r} takes no argument (got {arg!r})")
    out: dict = {}
    for tok in (t.strip().lower() for t in arg.split(",")):
        key = "size" if tok.isdigit() else "precision" if tok in ("fp32", "int8") else None
        if key is None or key in out:
            raise ValueError(
                f"detector {name!r}: {arg!r} is not PRECISION,SIZE (e.g. 'int8', '320', 'int8,320')"
            )
        out[key] = int(tok) if key == "size" else tok
    return out


def _open(entry: External, device: str, threads: int | None, **options):
    from ..runtimes import open_session  # lazy: the runtime stacks are optional

    path = verified_path(entry.file)
    if entry.variants is not None:
        path = _attr(entry.variants)(path, **{k: options[k] for k in VARIANT_OPTIONS if k in options})
    wrap = _attr(entry.wrap)
    opts = {"threads": threads} if threads else {}
    return wrap(open_session(path, device=device, allow_fallback=True, **opts), **options)


def load_teacher(name: str, device: str = "cpu", threads: int | None = None, **options):
    """A pose teacher by name; ExternalModelError (one line) when its file is missing or damaged."""
    return _open(_entry(name, TEACHERS, "teacher"), device, threads, **options)


def load_detector(name: str, device: str = "cpu", threads: int | None = None, **options):
    """A person detector by name; ExternalModelError (one line) when its file is missing or damaged."""
    return _open(_entry(name, DETECTORS, "detector"), device, threads, **options)


def table() -> list[dict]:
    """One row per teacher and detector: kind, name, input, file, present, source, licence."""
    rows = []
    for kind, tab in (("teacher", TEACHERS), ("detector", DETECTORS)):
        for e in tab.values():
            d = describe(e.file)
            rows.append(
                {
                    "kind": kind,
                    "name": e.name,
                    "about": e.about,
                    "input": e.input,
                    "file": e.file,
                    "present": available(e.file),
                    "source": d.get("source", ""),
                    "licence": d.get("licence", ""),
                }
            )
    return rows


__all__ = [
    "DETECTORS",
    "TEACHERS",
    "ExternalModelError",
    "load_detector",
    "load_teacher",
    "table",
    "variant_options",
]

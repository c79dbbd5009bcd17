"""The pretrained third-party models edgepose runs: pose teachers and person detectors, one table.

A row names the model, what it is for, the asset file it runs from (checked by
``check.verified_path`` before a session opens) and how to wrap the session. Adding a model is a
module with its wrapper plus one row here.

* teachers: ``teacher(image_bgr, boxes) -> (N, 17, 3)`` COCO-17 x, y, score in frame pixels.
* detectors: ``detector(image_bgr, frame_index) -> Detections``.
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
            "NanoDet COCO-80, person class, square tiles on wide frames",
            "416x416 per tile",
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


def _open(entry: External, device: str, threads: int | None, **options):
    from ..runtimes import open_session  # lazy: the runtime stacks are optional

    path = verified_path(entry.file)
    module, _, cls = entry.wrap.partition(":")
    wrap = getattr(importlib.import_module(f"{__package__}.{module}"), cls)
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


__all__ = ["DETECTORS", "TEACHERS", "ExternalModelError", "load_detector", "load_teacher", "table"]

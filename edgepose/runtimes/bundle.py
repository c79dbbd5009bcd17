"""Open an exported bundle by its manifest alone: ``edgepose.load(DIR)``. Torch-free (device side).

    bundle = edgepose.load("out/dsta")            # format read from manifest.json
    feats = bundle.run_stage("frame", {"image": crops})
    pose = bundle.run_stage("temporal", {"tokens": window})

``DIR`` is a bundle (``manifest.json`` + one graph per stage) or the root an
``export --format all`` wrote (one bundle per format in ``DIR/<format>/``);
for a root, ``format`` picks one, else the first whose runtime is installed
here, in ``PREFERENCE`` order, is opened and ``Bundle.reason`` says why.
Inputs go in the graph's layout (``manifest.layout`` for image inputs:
``Bundle.to_graph_layout`` converts NCHW crops).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Mapping

import numpy as np

from ..core.manifest import MANIFEST_NAME, Manifest, ManifestError, read_manifest

# format -> runtime backend (the `backend` column of edgepose.export.formats.FORMATS, which a test
# keeps in step; repeated so a device install needs no export package)
FORMAT_BACKENDS = {
    "onnx": "onnxruntime",
    "openvino": "openvino",
    "tflite": "tflite",
    "coreml": "coreml",
    "torch": "torch",
}
PREFERENCE = (
    ("coreml", "openvino", "onnx", "tflite") if sys.platform == "darwin" else ("onnx", "openvino", "tflite")
)
IMAGE_INPUTS = ("image",)


def is_bundle(path: str | os.PathLike) -> bool:
    return (Path(path) / MANIFEST_NAME).is_file()


def bundle_root_formats(path: str | os.PathLike) -> dict[str, Path]:
    """{format: bundle dir} for a root written by ``export --format all`` (empty if it is not one)."""
    p = Path(path)
    if not p.is_dir() or is_bundle(p):
        return {}
    return {
        d.name: d for d in sorted(p.iterdir()) if d.is_dir() and not d.name.startswith(".") and is_bundle(d)
    }


def session_options(manifest: Manifest, stage: str) -> dict:
    """Backend-specific session options a bundle implies (OpenVINO: exact precision hint, ONNX I/O names)."""
    if manifest.format == "openvino":
        entry = manifest.stage(stage)
        return {"precision": manifest.precision, "names": [*entry.input_names, *entry.output_names]}
    return {}


class Bundle:
    """A bundle's manifest and one runtime Session per stage."""

    def __init__(self, path: Path, manifest: Manifest, sessions: dict, reason: str = ""):
        self.path = path
        self.manifest = manifest
        self.sessions = sessions
        self.reason = reason

    @property
    def format(self) -> str:
        return self.manifest.format

    @property
    def stage_names(self) -> list[str]:
        return self.manifest.stage_names

    def run_stage(self, name: str, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if name not in self.sessions:
            raise KeyError(f"bundle {str(self.path)!r} has no stage {name!r}; stages: {self.stage_names}")
        return self.sessions[name].run(inputs)

    def to_graph_layout(self, image_nchw: np.ndarray) -> np.ndarray:
        """NCHW image batch -> the layout this bundle's image inputs take."""
        x = np.asarray(image_nchw)
        return np.ascontiguousarray(x.transpose(0, 2, 3, 1)) if self.manifest.layout == "NHWC" else x

    def close(self) -> None:
        for s in self.sessions.values():
            s.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self) -> str:
        devs = {n: f"{s.backend}/{s.device}" for n, s in self.sessions.items()}
        return (
            f"<Bundle {self.manifest.model} {self.format} {self.manifest.precision} at {self.path}: {devs}>"
        )


def _pick(root: Path, formats: dict[str, Path], fmt: str | None) -> tuple[Path, str]:
    if fmt is not None:
        if fmt not in formats:
            raise ManifestError(f"{str(root)!r} holds bundles for {list(formats)}, not {fmt!r}")
        return formats[fmt], f"format {fmt} as asked"
    from .registry import is_installed

    for name in PREFERENCE:
        if name in formats and is_installed(FORMAT_BACKENDS[name]):
            return formats[
                name
            ], f"{name}: the first of {list(PREFERENCE)} present in the root with its runtime installed"
    raise ManifestError(
        f"{str(root)!r} holds bundles for {list(formats)} but none of their runtimes is installed here; "
        "install one (e.g. pip install 'edgepose[onnx]')"
    )


def load(
    path: str | os.PathLike,
    device: str = "auto",
    format: str | None = None,  # noqa: A002 - the user-facing word
    allow_fallback: bool = False,
    stages: list[str] | None = None,
    **options,
) -> Bundle:
    """Open a bundle (or pick one from an ``--format all`` root) with one Session per stage."""
    from . import open_session

    root = Path(path)
    reason = ""
    if not is_bundle(root):
        formats = bundle_root_formats(root)
        if not formats:
            read_manifest(root)  # raises the manifest module's "no manifest.json ... is this a bundle?" error
        root, reason = _pick(root, formats, format)
    manifest = read_manifest(root)
    if format is not None and manifest.format != format:
        raise ManifestError(f"{str(root)!r} is a {manifest.format} bundle, not {format}")
    backend = FORMAT_BACKENDS[manifest.format]
    sessions = {}
    try:
        for entry in manifest.stages:
            if stages is not None and entry.name not in stages:
                continue
            opts = {**session_options(manifest, entry.name), **options}
            sessions[entry.name] = open_session(
                root / entry.file, backend=backend, device=device, allow_fallback=allow_fallback, **opts
            )
    except BaseException:
        for s in sessions.values():
            s.close()
        raise
    return Bundle(root, manifest, sessions, reason)

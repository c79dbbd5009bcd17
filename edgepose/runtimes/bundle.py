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
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ..core.codecs import CODEC_OUTPUTS
from ..core.formats import FORMAT_BACKENDS, load_preference
from ..core.manifest import MANIFEST_NAME, BundleDamagedError, Manifest, ManifestError, read_manifest
from . import open_session
from .registry import backend_module, is_installed

# {format: runtime} and the order a ``--format all`` root is tried in: the format table's rows
PREFERENCE = load_preference()
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


def session_options(manifest: Manifest, stage: str, backend: str | None = None) -> dict:
    """Backend-specific session options a bundle implies: the backend module's ``session_options``
    (OpenVINO: exact precision hint and I/O names; TensorRT: precision and engine cache key)."""
    opts = getattr(backend_module(backend or FORMAT_BACKENDS[manifest.format]), "session_options", None)
    return opts(manifest, stage) if opts else {}


def io_problems(manifest: Manifest, stage: str, inputs, outputs) -> list[str]:
    """Runtime-reported I/O of one stage against the manifest: names, ranks and fixed sizes."""
    entry = manifest.stage(stage)
    problems = []
    for what, want, have in (("inputs", entry.inputs, inputs), ("outputs", entry.outputs, outputs)):
        have = {t.name: t for t in have}
        if set(have) != {t.name for t in want}:
            problems.append(f"{what} {sorted(have)} != manifest {sorted(t.name for t in want)}")
            continue
        for t in want:
            got = have[t.name].shape
            if got is None:
                continue
            if len(got) != len(t.shape):
                problems.append(f"{t.name} rank {len(got)} != manifest {len(t.shape)}")
                continue
            for a, b in zip(got, t.shape):
                if isinstance(a, int) and isinstance(b, int) and a != b:
                    problems.append(f"{t.name} shape {list(got)} != manifest {list(t.shape)}")
                    break
    return problems


def _fixed(d) -> bool:
    return isinstance(d, int) and not isinstance(d, bool)


def consistency_problems(manifest: Manifest) -> list[str]:
    """The manifest's own fields against its stages' I/O: the codec's outputs exist in the last stage
    with one row per joint (a whole-frame model's poses and scores instead), image inputs have
    ``input_size`` in ``layout``, a temporal stage's window axis holds one slot per frame offset."""
    m = manifest
    problems = []
    last = m.stages[-1]
    outs = {t.name: t for t in last.outputs}
    j = m.keypoints.num_joints
    if m.is_whole_frame:  # no codec to decode: people (B, M, K, 3) and their scores (B, M) come out whole
        need = ()
        p, s = outs.get("poses"), outs.get("scores")
        if p is None or s is None:
            problems.append(
                f"a whole-frame model's last stage {last.name!r} gives {sorted(outs)}, not poses and scores"
            )
        elif (
            len(p.shape) != 4
            or (_fixed(p.shape[2]) and p.shape[2] != j)
            or (_fixed(p.shape[3]) and p.shape[3] != 3)
        ):
            problems.append(f"output 'poses' shape {list(p.shape)} is not (batch, people, {j} joints, 3)")
        elif len(s.shape) != 2:
            problems.append(f"output 'scores' shape {list(s.shape)} is not (batch, people)")
    else:
        need = CODEC_OUTPUTS[m.codec]
    missing = [n for n in need if n not in outs]
    if missing:
        problems.append(
            f"codec {m.codec!r} decodes outputs {list(need)} but the last stage {last.name!r} gives "
            f"{sorted(outs)}"
        )
    for n in need:
        t = outs.get(n)
        if t is not None and (len(t.shape) < 2 or (_fixed(t.shape[1]) and t.shape[1] != j)):
            problems.append(
                f"output {n!r} shape {list(t.shape)} has no axis of {j} joints (the keypoint layout)"
            )
    if m.codec == "regression" and "coords" in outs and (outs["coords"].shape or (None,))[-1] != 2:
        problems.append(f"output 'coords' shape {list(outs['coords'].shape)} does not end in 2 (x, y)")
    images = set(m.extra.get("image_inputs", IMAGE_INPUTS))
    h, w = m.input_size
    for st in m.stages:
        for t in st.inputs:
            if t.name in images and len(t.shape) == 4:
                hw = t.shape[2:4] if m.layout == "NCHW" else t.shape[1:3]
                ch = t.shape[1] if m.layout == "NCHW" else t.shape[3]
                if all(_fixed(d) for d in hw) and tuple(hw) != (h, w):
                    problems.append(
                        f"stage {st.name!r} input {t.name!r} is {list(t.shape)} ({m.layout}), but input_size "
                        f"is {[h, w]}"
                    )
                if _fixed(ch) and ch != 3:
                    problems.append(
                        f"stage {st.name!r} input {t.name!r} is {list(t.shape)}: not 3 colour channels in "
                        f"layout {m.layout}"
                    )
    if "temporal" in m.stage_names:
        window = len(m.frame_offsets)
        for t in m.stage("temporal").inputs:
            if len(t.shape) >= 2 and _fixed(t.shape[1]) and t.shape[1] != window:
                problems.append(
                    f"temporal input {t.name!r} holds {t.shape[1]} frames (shape {list(t.shape)}) but "
                    f"frame_offsets {list(m.frame_offsets)} name {window}"
                )
    elif m.is_temporal:
        problems.append(f"frame_offsets {list(m.frame_offsets)} name a window but no stage is 'temporal'")
    return problems


def check_sessions(path: Path, manifest: Manifest, sessions: Mapping) -> None:
    """Raise BundleDamagedError (one line) when the manifest disagrees with itself or with the graphs."""
    problems = consistency_problems(manifest)
    for name, sess in sessions.items():
        problems += [f"stage {name!r}: {p}" for p in io_problems(manifest, name, sess.inputs, sess.outputs)]
    if problems:
        raise BundleDamagedError(
            f"bundle {str(path)!r} does not match its manifest: "
            + "; ".join(problems[:4])
            + (f" (and {len(problems) - 4} more)" if len(problems) > 4 else "")
            + "; re-export it with `edgepose export`"
        )


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
    order = load_preference()
    for name in order:
        if name in formats and is_installed(FORMAT_BACKENDS[name]):
            return formats[
                name
            ], f"{name}: the first of {list(order)} present in the root with its runtime installed"
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
    backend: str | None = None,
    **options,
) -> Bundle:
    """Open a bundle (or pick one from an ``--format all`` root) with one Session per stage.

    ``backend``: a runtime other than the format's own that reads its files (OpenVINO reads ONNX
    bundles); open_session refuses one that cannot, naming what it reads.
    """
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
    backend = backend or FORMAT_BACKENDS[manifest.format]
    sessions = {}
    try:
        for entry in manifest.stages:
            if stages is not None and entry.name not in stages:
                continue
            opts = {**session_options(manifest, entry.name, backend), **options}
            sessions[entry.name] = open_session(
                root / entry.file, backend=backend, device=device, allow_fallback=allow_fallback, **opts
            )
        check_sessions(root, manifest, sessions)
    except BaseException:
        for s in sessions.values():
            s.close()
        raise
    return Bundle(root, manifest, sessions, reason)

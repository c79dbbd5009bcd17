"""PoseEstimator: a bundle's stages on person crops, with numpy pre- and post-processing.

Everything a model needs comes from the bundle's manifest: input size,
mean/std, colour order, graph layout, codec, keypoint layout, frame offsets.
How the stages are chained depends only on their names, by the table
``STAGE_PLANS``:

* ``model``: one stage, image -> codec outputs (DistilPose).
* ``frame`` + ``temporal``: the frame stage runs once per person-frame; the
  temporal stage takes each frame output stacked over the window (B, T, ...)
  (DSTA, TAR-ViTPose). The window itself is the caller's (``VideoPipeline``
  keeps per-track ring buffers); ``__call__`` on a single image repeats the
  current frame over the window, as a clip of one frame clamps.
* ``coarse`` + ``fine``: the coarse stage scores each crop's quality; crops
  at or above the manifest's ``quality_threshold`` keep the coarse heatmaps, the
  rest run the fine stage with the top-k most relevant patches (SHaRPose).

Stages with a static batch (some NPU or TFLite exports) get fixed-size chunks,
the last padded by repeating its final row. Torch-free.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from ..core.codecs import decode
from ..core.keypoints import LAYOUTS, KeypointLayout
from ..core.transforms import box_to_center_size, crop_matrix, invert_affine, transform_points, warp
from .results import Results, image_files, read_image
from .types import Pose


@dataclass
class Crops:
    """Model inputs for N people: ``images`` (N, 3, H, W) normalised, ``matrices`` (N, 2, 3) frame -> crop."""

    images: np.ndarray
    matrices: np.ndarray

    def __len__(self) -> int:
        return len(self.images)


def layout_from_manifest(info) -> KeypointLayout:
    """The manifest's keypoint layout: the known layout of that name if it matches, else built from it."""
    known = LAYOUTS.get(info.name)
    if known is not None and tuple(known.names) == tuple(info.names):
        return known
    names = tuple(info.names)
    return KeypointLayout(
        name=info.name,
        names=names,
        edges=tuple((names[a], names[b]) for a, b in info.skeleton),
        empty=frozenset(info.empty),
    )


def _single(est: PoseEstimator, crops: Crops) -> dict[str, np.ndarray]:
    return est.run_stage("model", {"image": crops.images})


def _temporal_one_frame(est: PoseEstimator, crops: Crops) -> dict[str, np.ndarray]:
    feats = est.run_stage("frame", {"image": crops.images})
    t = len(est.offsets)
    windows = {k: np.repeat(v[:, None], t, axis=1) for k, v in feats.items()}
    return est.run_temporal(windows)


def _coarse_fine(est: PoseEstimator, crops: Crops) -> dict[str, np.ndarray]:
    coarse = est.run_stage("coarse", {"image": crops.images})
    heatmaps = coarse["heatmaps"].copy()
    quality = np.asarray(coarse["quality"]).reshape(-1)
    refine = np.flatnonzero(quality < est.quality_threshold)
    if len(refine):
        k = est.fine_patches
        rel = np.asarray(coarse["relevance"])[refine]
        index = np.argsort(-rel, axis=1, kind="stable")[:, :k].astype(np.int64)  # top-k, most relevant first
        fine = est.run_stage(
            "fine",
            {"image": crops.images[refine], "patch_index": index, "features": coarse["features"][refine]},
        )
        heatmaps[refine] = fine["heatmaps"]
    return {"heatmaps": heatmaps, "quality": quality, "refined": np.isin(np.arange(len(quality)), refine)}


# stage names (run order) -> how to turn crops into codec outputs for one image
STAGE_PLANS: dict[tuple[str, ...], Callable[[PoseEstimator, Crops], dict[str, np.ndarray]]] = {
    ("model",): _single,
    ("frame", "temporal"): _temporal_one_frame,
    ("coarse", "fine"): _coarse_fine,
}


class PoseEstimator:
    """Top-down pose estimation with an exported bundle (see the module docstring).

    ``bundle``: a bundle directory (opened with ``edgepose.load``) or an open
    ``Bundle``. ``refine``: heatmap refinement (``dark``, ``shift``, ``none``).
    ``quality_threshold`` overrides the manifest's SHaRPose gate. ``detector``: what finds the people
    when ``est(image)`` is called without boxes (``KIND[:ARG]`` of ``edgepose.sdk.DETECTORS`` or a
    callable); made on first use, so callers that always pass boxes never load one.
    """

    def __init__(
        self,
        bundle,
        device: str = "auto",
        refine: str = "dark",
        quality_threshold: float | None = None,
        max_batch: int | None = None,
        detector="auto",
        **load_options,
    ):
        if isinstance(bundle, (str, os.PathLike)):
            from ..runtimes.bundle import load

            bundle = load(bundle, device=device, **load_options)
        self.bundle = bundle
        m = bundle.manifest
        self.manifest = m
        plan = STAGE_PLANS.get(tuple(m.stage_names))
        if plan is None:
            raise ValueError(
                f"bundle {m.model!r} has stages {m.stage_names}; PoseEstimator knows the stage sets "
                f"{[list(k) for k in STAGE_PLANS]}"
            )
        self._plan = plan
        self.input_size = tuple(int(v) for v in m.input_size)  # (H, W)
        self.mean = np.asarray(m.mean, np.float32)
        self.std = np.asarray(m.std, np.float32)
        self.offsets = tuple(m.frame_offsets)
        self.layout = layout_from_manifest(m.keypoints)
        self.refine = refine
        self.max_batch = max_batch
        self.image_inputs = set(m.extra.get("image_inputs", ("image",)))
        self.quality_threshold = float(
            quality_threshold if quality_threshold is not None else m.extra.get("quality_threshold", 1.0)
        )
        self.detector_spec = detector
        self._detector = None
        self.fine_patches = None
        if "fine" in m.stage_names:
            shape = next(t.shape for t in m.stage("fine").inputs if t.name == "patch_index")
            self.fine_patches = int(shape[-1])

    # -- properties ------------------------------------------------------------------------------
    @property
    def is_temporal(self) -> bool:
        return tuple(self.manifest.stage_names) == ("frame", "temporal")

    @property
    def name(self) -> str:
        return self.manifest.model

    def __repr__(self) -> str:
        return f"<PoseEstimator {self.bundle!r}>"

    @property
    def detector(self):
        """The person detector for calls without boxes (``detector=`` of the constructor), made lazily."""
        if self._detector is None:
            from .detectors import make_detector

            self._detector = make_detector(self.detector_spec)
        return self._detector

    @detector.setter
    def detector(self, value) -> None:
        self.detector_spec, self._detector = value, None

    def close(self) -> None:
        self.bundle.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- pre-processing --------------------------------------------------------------------------
    def to_model_colour(self, image_bgr: np.ndarray) -> np.ndarray:
        return cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB) if self.manifest.color == "RGB" else image_bgr

    def prepare(self, image: np.ndarray, boxes: np.ndarray, colour_converted: bool = False) -> Crops:
        """Crops (N, 3, H, W) for xyxy ``boxes`` of a BGR frame (``colour_converted``: already RGB)."""
        img = image if colour_converted else self.to_model_colour(image)
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        h, w = self.input_size
        out = np.empty((len(boxes), 3, h, w), np.float32)
        mats = np.empty((len(boxes), 2, 3), np.float64)
        scale = np.float32(1.0 / 255.0)
        for i, b in enumerate(boxes):
            center, size = box_to_center_size(b, self.input_size)
            m = crop_matrix(center, size, self.input_size)
            crop = warp(img, m, self.input_size).astype(np.float32) * scale
            out[i] = ((crop - self.mean) / self.std).transpose(2, 0, 1)
            mats[i] = m
        return Crops(out, mats)

    # -- running stages --------------------------------------------------------------------------
    def run_stage(self, stage: str, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one stage on N rows, in chunks when its batch is static or ``max_batch`` is set."""
        entry = self.manifest.stage(stage)
        feeds = {
            k: self.bundle.to_graph_layout(v) if k in self.image_inputs and np.ndim(v) == 4 else v
            for k, v in feeds.items()
        }
        n = len(next(iter(feeds.values())))
        dim0 = entry.inputs[0].shape[0]
        static = isinstance(dim0, int)
        chunk = int(dim0) if static else (self.max_batch or n)
        if n == 0:
            return self._empty_outputs(stage)
        if n <= chunk and not (static and n != chunk):
            return self.bundle.run_stage(stage, feeds)
        parts: list[dict[str, np.ndarray]] = []
        for s in range(0, n, chunk):
            part = {k: v[s : s + chunk] for k, v in feeds.items()}
            got = len(next(iter(part.values())))
            if static and got < chunk:
                part = {
                    k: np.concatenate([v, np.repeat(v[-1:], chunk - got, axis=0)]) for k, v in part.items()
                }
            out = self.bundle.run_stage(stage, part)
            parts.append({k: v[:got] for k, v in out.items()})
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    def _empty_outputs(self, stage: str) -> dict[str, np.ndarray]:
        out = {}
        for t in self.manifest.stage(stage).outputs:
            shape = [0] + [d if isinstance(d, int) else 0 for d in t.shape[1:]]
            dtype = np.float32 if t.is_quantized or t.dtype == "float16" else np.dtype(t.dtype)
            out[t.name] = np.zeros(shape, dtype)
        return out

    def run_frame(self, crops: Crops) -> dict[str, np.ndarray]:
        """The frame stage of a temporal model: {name: (N, ...)} per-person features."""
        if not self.is_temporal:
            raise ValueError(f"{self.name} has no frame stage (stages: {self.manifest.stage_names})")
        return self.run_stage("frame", {"image": crops.images})

    def run_temporal(self, windows: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The temporal stage on {name: (N, T, ...)} windows of frame-stage outputs."""
        t = len(self.offsets)
        for k, v in windows.items():
            if np.ndim(v) < 2 or np.shape(v)[1] != t:
                raise ValueError(
                    f"window {k!r} has shape {np.shape(v)}; expected (N, {t}, ...) for offsets {self.offsets}"
                )
        return self.run_stage("temporal", windows)

    def run_crops(self, crops: Crops) -> dict[str, np.ndarray]:
        """Codec outputs for crops of one image (temporal models: a one-frame clip)."""
        return self._plan(self, crops)

    # -- post-processing -------------------------------------------------------------------------
    def decode(
        self, outputs: Mapping[str, np.ndarray], matrices: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Keypoints (N, J, 2) in frame pixels and scores (N, J) from codec outputs and crop matrices."""
        kp, scores = decode(dict(outputs), self.manifest.codec, self.input_size, self.refine)
        frame_kp = np.empty(kp.shape, np.float32)
        for i, m in enumerate(np.asarray(matrices).reshape(-1, 2, 3)):
            frame_kp[i] = transform_points(kp[i], invert_affine(m))
        scores = np.clip(np.nan_to_num(np.asarray(scores, np.float32)), 0.0, 1.0)
        # a joint the model gave NaN/Inf for keeps its non-finite coordinates (Pose.nonfinite_joints and
        # the JSON flag it) but no confidence, so drawing, tracking and smoothing leave it out
        scores[~np.isfinite(frame_kp).all(axis=-1)] = 0.0
        return frame_kp, scores

    def __call__(
        self,
        image: np.ndarray,
        boxes: np.ndarray | None = None,
        box_scores: Sequence[float] | None = None,
        track_ids: Sequence[int] | None = None,
    ) -> Results:
        """Poses of the people in one BGR image: in ``boxes`` (xyxy, frame pixels), or, without boxes,
        wherever the detector finds people. A temporal model sees a one-frame clip (its window clamps
        as at a clip edge). Returns ``Results``, a ``list[Pose]`` that can ``plot()`` and ``save()``."""
        if image is None or np.ndim(image) != 3 or np.shape(image)[2] != 3:
            got = "None (did cv2.imread fail?)" if image is None else np.shape(image)
            raise ValueError(f"expected a BGR image (H, W, 3), got {got}")
        if boxes is None:
            det = self.detector(image, 0)
            boxes, box_scores = det.boxes, det.scores if box_scores is None else box_scores
        boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
        if len(boxes) == 0:
            return Results([], image, layout=self.layout)
        crops = self.prepare(image, boxes)
        kp, sc = self.decode(self.run_crops(crops), crops.matrices)
        ids = list(track_ids) if track_ids is not None else [-1] * len(boxes)
        bs = list(box_scores) if box_scores is not None else [1.0] * len(boxes)
        poses = [Pose(boxes[i], kp[i], sc[i], int(ids[i]), float(bs[i]), layout=self.layout)
                 for i in range(len(boxes))]
        return Results(poses, image, layout=self.layout)

    def predict(self, source) -> list[Results]:
        """``Results`` for each image of ``source``: an image file, a folder of images, a BGR array, or a
        list of files and arrays. People are found by the detector (see ``detector``)."""
        if isinstance(source, (str, os.PathLike)):
            path = os.fspath(source)
            items = image_files(path) if os.path.isdir(path) else [path]
        elif isinstance(source, np.ndarray):
            items = [source]
        else:
            items = list(source)
        out = []
        for item in items:
            if isinstance(item, np.ndarray):
                out.append(self(item))
            else:
                res = self(read_image(item))
                res.path = os.fspath(item)
                out.append(res)
        return out

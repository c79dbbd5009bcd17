"""PoseEstimator: a bundle's stages on person crops or whole frames, with numpy pre- and post-processing.

``PoseEstimator(bundle)`` gives the estimator the bundle's manifest asks for (``input_kind``):

* ``TopDownEstimator`` (``"crop"``, every bundle before whole-frame models): a person detector finds
  the people, each box is cropped and run through the stages (below).
* ``WholeFrameEstimator`` (``"frame"``, e.g. PAVE-Net): the frame is letterboxed to the model's input
  size, its ``frame`` stage runs once per frame (``image`` -> ``memory``), the ``temporal`` stage reads
  a window of memories and gives ``poses`` (B, M, K, 3: x, y in input pixels, joint score) and
  ``scores`` (B, M); people at or above ``score_threshold`` are mapped back through the letterbox.
  No person detector is ever made.

Both return the same ``Results`` of ``Pose`` and take a BGR image; ``isinstance(est, PoseEstimator)``
holds for both.

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
from ..core.transforms import (
    box_to_center_size,
    crop_matrix,
    invert_affine,
    letterbox_matrix,
    transform_points,
    warp,
)
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


def _peek_input_kind(path: str | os.PathLike) -> str:
    """A bundle directory's ``input_kind`` from its manifest JSON (a multi-format root: any of its
    bundles; every format of one export consumes the same input), without opening a runtime."""
    import json
    from pathlib import Path

    from ..core.manifest import MANIFEST_NAME

    root = Path(path)
    candidates = [root / MANIFEST_NAME]
    if root.is_dir():
        candidates += sorted(p / MANIFEST_NAME for p in root.iterdir() if p.is_dir())
    for c in candidates:
        try:
            data = json.loads(c.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict):
            kind = data.get("input_kind", "crop")
            return kind if isinstance(kind, str) else "crop"
    return "crop"  # let load() say what is wrong with the path


class PoseEstimator:
    """Pose estimation with an exported bundle (see the module docstring).

    ``PoseEstimator(bundle, ...)`` returns a ``TopDownEstimator`` or a ``WholeFrameEstimator`` by the
    manifest's ``input_kind``. ``bundle``: a bundle directory (opened with ``edgepose.load``) or an
    open ``Bundle``. Top-down options: ``refine`` (heatmap refinement: ``dark``, ``shift``, ``none``),
    ``quality_threshold`` (overrides the manifest's SHaRPose gate), ``min_pose_score`` (the mean
    keypoint confidence a box's pose needs to count as a person on a photo; default the manifest's
    ``extra["min_pose_score"]``, measured for the shipped weights, else ``StillRefine``'s),
    ``detector`` (what finds the people when ``est(image)`` is called without boxes: ``KIND[:ARG]`` of ``edgepose.sdk.DETECTORS`` or a
    callable; made on first use). Whole-frame option: ``score_threshold`` (people kept; default the
    manifest's ``extra["score_threshold"]``, else 0.5); a whole-frame estimator ignores ``detector``.
    ``workers``: CPU sessions a stage call's rows are split over (the bundle's own plus ``workers - 1``
    one-thread copies); for two or more people per frame on a CPU with a core to spare.
    """

    input_kind = "crop"
    needs_detector = True

    def __new__(cls, bundle=None, *args, **kwargs):
        if cls is PoseEstimator:
            if isinstance(bundle, (str, os.PathLike)):
                kind = _peek_input_kind(bundle)
            else:
                kind = getattr(getattr(bundle, "manifest", None), "input_kind", "crop")
            return super().__new__(WholeFrameEstimator if kind == "frame" else TopDownEstimator)
        return super().__new__(cls)

    def __init__(
        self, bundle, device: str = "auto", max_batch: int | None = None, workers: int = 1, **load_options
    ):
        if isinstance(bundle, (str, os.PathLike)):
            from ..runtimes.bundle import load

            bundle = load(bundle, device=device, **load_options)
        self.bundle = bundle
        self.workers = int(workers)
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self._replicas: list = []  # workers > 1: more sessions of the same bundle, one per extra worker
        self._pool = None
        if self.workers > 1:
            from concurrent.futures import ThreadPoolExecutor

            from ..runtimes.bundle import load

            self._replicas = [
                load(bundle.path, device="cpu", format=bundle.format, threads=1)
                for _ in range(self.workers - 1)
            ]
            self._pool = ThreadPoolExecutor(self.workers - 1, thread_name_prefix="edgepose-pose")
        m = bundle.manifest
        self.manifest = m
        self.input_size = tuple(int(v) for v in m.input_size)  # (H, W)
        self.mean = np.asarray(m.mean, np.float32)
        self.std = np.asarray(m.std, np.float32)
        self.offsets = tuple(m.frame_offsets)
        self.layout = layout_from_manifest(m.keypoints)
        self.max_batch = max_batch
        self.image_inputs = set(m.extra.get("image_inputs", ("image",)))

    # -- properties ------------------------------------------------------------------------------
    @property
    def is_temporal(self) -> bool:
        return tuple(self.manifest.stage_names) == ("frame", "temporal")

    @property
    def is_whole_frame(self) -> bool:
        return self.input_kind == "frame"

    @property
    def name(self) -> str:
        return self.manifest.model

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.bundle!r}>"

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        for b in self._replicas:
            b.close()
        self._replicas = []
        self.bundle.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- pre-processing --------------------------------------------------------------------------
    def to_model_colour(self, image_bgr: np.ndarray) -> np.ndarray:
        return cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB) if self.manifest.color == "RGB" else image_bgr

    @staticmethod
    def _check_image(image) -> None:
        if image is None or np.ndim(image) != 3 or np.shape(image)[2] != 3:
            got = "None (did cv2.imread fail?)" if image is None else np.shape(image)
            raise ValueError(f"expected a BGR image (H, W, 3), got {got}")

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
            return self._run_split(stage, feeds, n)
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

    def _run_split(self, stage: str, feeds: Mapping[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
        """One call of a dynamic-batch stage; with ``workers`` > 1 a stage that takes images (the heavy
        one) has its rows split into contiguous parts that run at once, one per session (the main
        thread runs the first). Runtimes release the GIL while they compute, so with a free core the
        parts overlap, and each session keeps one thread: no per-operator hand-off between threads as
        in one session's intra-op pool (benchmarks/results/loop_configs.md compares the two)."""
        if self._pool is None or n < 2 or not self.image_inputs & feeds.keys():
            return self.bundle.run_stage(stage, feeds)
        bounds = np.linspace(0, n, min(self.workers, n) + 1).astype(int)
        parts = [{k: v[a:b] for k, v in feeds.items()} for a, b in zip(bounds[:-1], bounds[1:])]
        futures = [
            self._pool.submit(replica.run_stage, stage, part)
            for replica, part in zip(self._replicas, parts[1:])
        ]
        first = self.bundle.run_stage(stage, parts[0])
        outs = [first] + [f.result() for f in futures]
        return {k: np.concatenate([o[k] for o in outs]) for k in first}

    def _empty_outputs(self, stage: str) -> dict[str, np.ndarray]:
        out = {}
        for t in self.manifest.stage(stage).outputs:
            shape = [0] + [d if isinstance(d, int) else 0 for d in t.shape[1:]]
            dtype = np.float32 if t.is_quantized or t.dtype == "float16" else np.dtype(t.dtype)
            out[t.name] = np.zeros(shape, dtype)
        return out

    def window_feeds(
        self, windows: Mapping[str, np.ndarray], stage: str = "temporal"
    ) -> dict[str, np.ndarray]:
        """``{frame-stage output: (N, T, ...)}`` windows as ``stage``'s inputs, renamed by the manifest's
        chain (``memory`` -> ``memory_window``); windows already named after the inputs pass through."""
        feeds = self.manifest.stage_feeds(stage)
        rename = {rec["output"]: name for name, rec in feeds.items() if rec["window"]}
        return {rename.get(k, k): v for k, v in windows.items()}

    def run_temporal(self, windows: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The temporal stage on {name: (N, T, ...)} windows of frame-stage outputs."""
        t = len(self.offsets)
        for k, v in windows.items():
            if np.ndim(v) < 2 or np.shape(v)[1] != t:
                raise ValueError(
                    f"window {k!r} has shape {np.shape(v)}; expected (N, {t}, ...) for offsets {self.offsets}"
                )
        return self.run_stage("temporal", self.window_feeds(windows))

    def __call__(self, image: np.ndarray, *args, **kwargs) -> Results:  # pragma: no cover - subclasses
        raise NotImplementedError

    def on_still(self, image: np.ndarray) -> Results:
        """The people in one photo, found as a photo deserves (``edgepose.sdk.stills``: top-down
        models pool the fetched detectors when ``detector`` is ``auto`` and let the pose model settle
        split and empty boxes); whole-frame models answer as they do for a frame."""
        return self(image)

    def predict(self, source) -> list[Results]:
        """``Results`` for each image of ``source``: an image file, a folder of images, a BGR array, or a
        list of files and arrays. People are found by the detector (top-down, see ``detector`` and
        :meth:`on_still`) or by the model itself (whole-frame)."""
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
                out.append(self.on_still(item))
            else:
                res = self.on_still(read_image(item))
                res.path = os.fspath(item)
                out.append(res)
        return out


class TopDownEstimator(PoseEstimator):
    """Top-down: a bundle whose stages take person crops (``input_kind == "crop"``)."""

    input_kind = "crop"
    needs_detector = True

    def __init__(
        self,
        bundle,
        device: str = "auto",
        refine: str = "dark",
        quality_threshold: float | None = None,
        max_batch: int | None = None,
        detector="auto",
        min_pose_score: float | None = None,
        **load_options,
    ):
        from .stills import StillRefine

        super().__init__(bundle, device, max_batch, **load_options)
        m = self.manifest
        plan = STAGE_PLANS.get(tuple(m.stage_names))
        if plan is None:
            raise ValueError(
                f"bundle {m.model!r} has stages {m.stage_names}; PoseEstimator knows the stage sets "
                f"{[list(k) for k in STAGE_PLANS]}"
            )
        self._plan = plan
        self.refine = refine
        self.quality_threshold = float(
            quality_threshold if quality_threshold is not None else m.extra.get("quality_threshold", 1.0)
        )
        judge = min_pose_score if min_pose_score is not None else m.extra.get("min_pose_score")
        self.still_refine = StillRefine() if judge is None else StillRefine(min_pose_score=float(judge))
        self.detector_spec = detector
        self._detector = None
        self._still_detector = None  # detector "auto" on a photo: every fetched detector pooled
        self._buffers: dict[str, np.ndarray] = {}  # prepare()'s crops, kept across frames
        self._tables: dict[bool, np.ndarray] = {}  # prepare()'s normalising tables, by colour swap
        self.fine_patches = None
        if "fine" in m.stage_names:
            shape = next(t.shape for t in m.stage("fine").inputs if t.name == "patch_index")
            self.fine_patches = int(shape[-1])

    @property
    def detector(self):
        """The person detector for calls without boxes (``detector=`` of the constructor), made lazily."""
        if self._detector is None:
            from .detectors import make_detector

            self._detector = make_detector(self.detector_spec)
        return self._detector

    @detector.setter
    def detector(self, value) -> None:
        self.detector_spec, self._detector, self._still_detector = value, None, None

    def on_still(self, image: np.ndarray) -> Results:
        from .stills import poses_on_still, still_detector

        if isinstance(self.detector_spec, str) and self.detector_spec == "auto":
            if self._still_detector is None:
                self._still_detector = still_detector("auto")
            return poses_on_still(self, image, self._still_detector, self.still_refine)
        return poses_on_still(self, image, refine=self.still_refine)

    # -- pre-processing --------------------------------------------------------------------------
    def prepare(
        self, image: np.ndarray, boxes: np.ndarray, colour_converted: bool = False, reuse: bool = False
    ) -> Crops:
        """Crops (N, 3, H, W) for xyxy ``boxes`` of a BGR frame (``colour_converted``: already RGB).

        Each box is warped into one preallocated uint8 batch and the whole batch is normalised by a
        256-entry table per channel (``cv2.LUT``; the same float32 arithmetic as ``(x / 255 - mean) /
        std``, so bit for bit the same values) with the colour swap folded into the NCHW copy: at 20
        people this took a tenth of the per-person arithmetic's time. ``reuse``: the images are a view
        of a buffer the next ``prepare(..., reuse=True)`` overwrites (the pipeline's hot path, which
        feeds them to the frame stage at once); otherwise they are the caller's own array."""
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        n, (h, w) = len(boxes), self.input_size
        swap = self.manifest.color == "RGB" and not colour_converted
        mats = np.empty((n, 2, 3), np.float64)
        if image.dtype != np.uint8:  # float frames: no table to look values up in
            img = self.to_model_colour(image) if swap else image
            out = np.empty((n, 3, h, w), np.float32)
            for i, b in enumerate(boxes):
                mats[i] = crop_matrix(*box_to_center_size(b, self.input_size), self.input_size)
                crop = warp(img, mats[i], self.input_size).astype(np.float32) * np.float32(1.0 / 255.0)
                out[i] = ((crop - self.mean) / self.std).transpose(2, 0, 1)
            return Crops(out, mats)
        pixels = self._buffer("pixels", (n, h, w, 3), np.uint8)
        for i, b in enumerate(boxes):
            mats[i] = crop_matrix(*box_to_center_size(b, self.input_size), self.input_size)
            cv2.warpAffine(
                image,
                mats[i],
                (w, h),
                dst=pixels[i],
                flags=cv2.INTER_LINEAR,
                borderMode=cv2.BORDER_CONSTANT,
                borderValue=0,
            )
        out = (
            self._buffer("images", (n, 3, h, w), np.float32) if reuse else np.empty((n, 3, h, w), np.float32)
        )
        if n:
            values = self._buffer("values", (n * h, w, 3), np.float32)
            cv2.LUT(pixels.reshape(n * h, w, 3), self._table(swap), dst=values)
            chw = values.reshape(n, h, w, 3).transpose(0, 3, 1, 2)
            np.copyto(out, chw[:, ::-1] if swap else chw)
        return Crops(out, mats)

    def _table(self, swap: bool) -> np.ndarray:
        """(256, 1, 3) float32: pixel value -> normalised value per channel of the frame's order."""
        table = self._tables.get(swap)
        if table is None:
            v = np.arange(256, dtype=np.float32)[:, None] * np.float32(1.0 / 255.0)
            table = (v - self.mean) / self.std  # (256, 3) in the model's channel order
            table = np.ascontiguousarray(table[:, ::-1] if swap else table, np.float32).reshape(256, 1, 3)
            self._tables[swap] = table
        return table

    def _buffer(self, name: str, shape: tuple[int, ...], dtype) -> np.ndarray:
        """A C-contiguous ``shape`` view of a buffer kept across calls, grown along the first axis when
        a frame has more people than any before (the hot path allocates nothing per frame)."""
        buf = self._buffers.get(name)
        if buf is None or buf.shape[1:] != shape[1:] or len(buf) < shape[0]:
            buf = np.empty((max(shape[0], 1), *shape[1:]), dtype)
            self._buffers[name] = buf
        return buf[: shape[0]]

    # -- running stages --------------------------------------------------------------------------
    def run_frame(self, crops: Crops) -> dict[str, np.ndarray]:
        """The frame stage of a temporal model: {name: (N, ...)} per-person features."""
        if not self.is_temporal:
            raise ValueError(f"{self.name} has no frame stage (stages: {self.manifest.stage_names})")
        return self.run_stage("frame", {"image": crops.images})

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
        self._check_image(image)
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
        poses = [
            Pose(boxes[i], kp[i], sc[i], int(ids[i]), float(bs[i]), layout=self.layout)
            for i in range(len(boxes))
        ]
        return Results(poses, image, layout=self.layout)


# --------------------------------------------------------------------------- whole-frame models


@dataclass
class FrameInput:
    """One letterboxed frame: ``image`` (1, 3, H, W) normalised, ``matrix`` (2, 3) frame -> model input."""

    image: np.ndarray
    matrix: np.ndarray


def _person_boxes(kp: np.ndarray, sc: np.ndarray, min_score: float = 0.3) -> np.ndarray:
    """(N, 4) xyxy around each person's joints at ``min_score`` (all finite joints when none is)."""
    boxes = np.zeros((len(kp), 4), np.float32)
    for i in range(len(kp)):
        finite = np.isfinite(kp[i]).all(axis=-1)
        use = finite & (sc[i] >= min_score)
        if not use.any():
            use = finite
        if use.any():
            pts = kp[i][use]
            boxes[i] = (*pts.min(axis=0), *pts.max(axis=0))
    return boxes


@dataclass
class FramePoses:
    """The people a whole-frame model found in one frame, in frame pixels, best first."""

    keypoints: np.ndarray  # (N, K, 2)
    scores: np.ndarray  # (N, K) joint scores in [0, 1]
    person_scores: np.ndarray  # (N,)
    boxes: np.ndarray  # (N, 4) xyxy around the confident joints

    def __len__(self) -> int:
        return len(self.person_scores)


class WholeFrameEstimator(PoseEstimator):
    """A bundle whose model takes whole frames and finds every person itself (``input_kind == "frame"``).

    Stages ``frame`` (``image`` (B, 3, H, W) -> ``memory``) and ``temporal`` (the memories of a window,
    (B, T, ...) in offset order -> ``poses`` (B, M, K, 3), ``scores`` (B, M)). ``est(image)`` runs one
    frame as a one-frame clip (its window clamps); ``VideoPipeline`` keeps a per-stream ring buffer
    of memories so each frame's ``frame`` stage runs once. No person detector is made.
    """

    input_kind = "frame"
    needs_detector = False

    def __init__(
        self,
        bundle,
        device: str = "auto",
        score_threshold: float | None = None,
        max_batch: int | None = None,
        detector=None,
        box_min_score: float = 0.3,
        **load_options,
    ):
        load_options.pop("refine", None)  # top-down options a generic caller may pass: not used here
        load_options.pop("quality_threshold", None)
        load_options.pop("min_pose_score", None)
        super().__init__(bundle, device, max_batch, **load_options)
        m = self.manifest
        if tuple(m.stage_names) != ("frame", "temporal"):
            raise ValueError(
                f"whole-frame bundle {m.model!r} has stages {m.stage_names}; a whole-frame model has the "
                "stages ['frame', 'temporal']"
            )
        outs = m.stage("temporal").output_names
        if not {"poses", "scores"} <= set(outs):
            raise ValueError(
                f"whole-frame bundle {m.model!r}: its temporal stage gives {outs}, "
                "expected 'poses' and 'scores'"
            )
        self.score_threshold = float(
            score_threshold if score_threshold is not None else m.extra.get("score_threshold", 0.5)
        )
        self.box_min_score = float(box_min_score)
        self.detector_spec = None  # a whole-frame model needs none; a passed detector is ignored

    @property
    def detector(self):
        """None: a whole-frame model finds the people itself."""
        return None

    @detector.setter
    def detector(self, value) -> None:
        pass  # nothing to make: the model finds the people (kept settable for callers of either kind)

    @property
    def memory_names(self) -> tuple[str, ...]:
        return tuple(self.manifest.stage("frame").output_names)

    # -- pre-processing --------------------------------------------------------------------------
    def prepare_frame(self, image: np.ndarray, colour_converted: bool = False) -> FrameInput:
        """The letterboxed, normalised model input (1, 3, H, W) of a BGR frame and its frame -> input
        affine."""
        self._check_image(image)
        img = image if colour_converted else self.to_model_colour(image)
        h, w = self.input_size
        m, (nw, nh) = letterbox_matrix(img.shape[:2], self.input_size)
        interp = cv2.INTER_AREA if nw < img.shape[1] else cv2.INTER_LINEAR
        resized = cv2.resize(img, (nw, nh), interpolation=interp).astype(np.float32)
        resized *= np.float32(1.0 / 255.0)
        px, py = (w - nw) // 2, (h - nh) // 2
        out = np.zeros((1, 3, h, w), np.float32)  # the padding is the mean colour (0 after normalising)
        out[0, :, py : py + nh, px : px + nw] = ((resized - self.mean) / self.std).transpose(2, 0, 1)
        return FrameInput(out, m)

    # -- running stages --------------------------------------------------------------------------
    def run_frame(self, frame: FrameInput | np.ndarray) -> dict[str, np.ndarray]:
        """The frame stage: {name: (B, ...)} memories of letterboxed frames (``FrameInput`` or
        (B, 3, H, W))."""
        images = frame.image if isinstance(frame, FrameInput) else np.asarray(frame, np.float32)
        return self.run_stage("frame", {"image": images})

    # -- post-processing -------------------------------------------------------------------------
    def decode_people(
        self,
        outputs: Mapping[str, np.ndarray],
        matrix: np.ndarray,
        row: int = 0,
        score_threshold: float | None = None,
    ) -> FramePoses:
        """Row ``row`` of the temporal outputs: the people at or above the score threshold, best first,
        mapped from model-input pixels to the frame through the letterbox ``matrix``."""
        thr = self.score_threshold if score_threshold is None else float(score_threshold)
        poses = np.asarray(outputs["poses"], np.float32)[row]  # (M, K, 3)
        person = np.asarray(outputs["scores"], np.float32)
        person = np.nan_to_num(person.reshape(len(person), -1)[row])
        keep = np.flatnonzero(person >= thr)
        keep = keep[np.argsort(-person[keep], kind="stable")]
        inv = invert_affine(matrix)
        n, k = len(keep), poses.shape[1]  # explicit sizes: no one above the threshold is an empty frame
        kp = transform_points(poses[keep, :, :2].reshape(-1, 2), inv).astype(np.float32).reshape(n, k, 2)
        sc = np.clip(np.nan_to_num(poses[keep, :, 2]), 0.0, 1.0).astype(np.float32).reshape(n, k)
        sc[~np.isfinite(kp).all(axis=-1)] = 0.0  # as top-down: a non-finite joint keeps no confidence
        ps = np.clip(person[keep], 0.0, 1.0).astype(np.float32)
        return FramePoses(kp, sc, ps, _person_boxes(kp, sc, self.box_min_score))

    def poses(self, found: FramePoses, track_ids: Sequence[int] | None = None) -> list[Pose]:
        ids = list(track_ids) if track_ids is not None else [-1] * len(found)
        return [
            Pose(
                found.boxes[i],
                found.keypoints[i],
                found.scores[i],
                int(ids[i]),
                float(found.person_scores[i]),
                layout=self.layout,
            )
            for i in range(len(found))
        ]

    def __call__(
        self,
        image: np.ndarray,
        boxes: np.ndarray | None = None,
        box_scores: Sequence[float] | None = None,
        track_ids: Sequence[int] | None = None,
    ) -> Results:
        """Poses of every person the model finds in one BGR image (a one-frame clip: the window repeats
        the frame, as a clip of one frame clamps). ``boxes`` cannot be given: the model finds people."""
        if boxes is not None:
            raise ValueError(
                f"{self.name} is a whole-frame model: it finds the people itself and takes no boxes "
                "(call est(image))"
            )
        self._check_image(image)
        inp = self.prepare_frame(image)
        mem = self.run_frame(inp)
        t = len(self.offsets)
        windows = {k: np.repeat(v[:, None], t, axis=1) for k, v in mem.items()}
        found = self.decode_people(self.run_temporal(windows), inp.matrix)
        return Results(self.poses(found), image, layout=self.layout)

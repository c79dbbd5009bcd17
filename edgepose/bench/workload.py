"""What the benchmarks run: a clip with N people, the SDK loop, the recompute baseline, and timing.

* ``make_clip``: frames with ``persons`` boxes per frame (a grid of people-sized boxes drifting
  sideways over a textured background). Latency does not depend on image content, except
  SHaRPose's quality gate, which the persons table reports.
* ``run_sdk``: the real ``VideoPipeline`` (given boxes, tracker, ring buffers, offline mode,
  smoothing off so the model path is what is timed).
* ``run_recompute``: what the official DSTA / TAR-ViTPose demos do: for every frame and person,
  crop all T frames of the window again and run the frame stage on each, then the temporal
  stage. Same crops, same clamping at the clip edges, so its poses equal the ring buffer's.
* ``CountingSession``: counts the rows a stage session runs (frame-stage calls).
* ``interleave``: runs variants in alternating rounds; per-round ratios cancel slow drifts of a
  shared machine better than comparing two separate runs.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import cv2
import numpy as np

from ..sdk.detectors import GivenBoxes
from ..sdk.estimator import PoseEstimator
from ..sdk.pipeline import VideoPipeline
from ..sdk.timing import StageTimer
from ..sdk.types import Frame


class TotalsTimer(StageTimer):
    """A ``StageTimer`` that also keeps each stage's total ms and call count (for summaries)."""

    def __init__(self, smoothing: float = 0.9):
        super().__init__(smoothing)
        self.total_ms: dict[str, float] = {}
        self.calls: dict[str, int] = {}

    def add(self, name: str, ms: float) -> None:
        super().add(name, ms)
        self.total_ms[name] = self.total_ms.get(name, 0.0) + ms
        self.calls[name] = self.calls.get(name, 0) + 1


@dataclass
class Clip:
    frames: list[np.ndarray]  # BGR uint8
    boxes: list[np.ndarray]  # per frame (P, 4) xyxy, person p in row p on every frame

    @property
    def persons(self) -> int:
        return len(self.boxes[0]) if self.boxes else 0

    def __len__(self) -> int:
        return len(self.frames)


def make_clip(persons: int, frames: int = 12, size: tuple[int, int] = (720, 1280), seed: int = 0) -> Clip:
    """``frames`` frames of ``size`` (H, W) with ``persons`` boxes (~1:2.4, up to 10 per row)."""
    rng = np.random.default_rng(seed)
    h, w = size
    base = cv2.GaussianBlur(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), (0, 0), 3)
    cols = min(max(persons, 1), 10)
    rows = max(1, -(-persons // cols))
    bw = min(w / cols * 0.7, 160.0)
    bh = min(h / rows * 0.8, bw * 2.4)
    imgs, boxes = [], []
    for t in range(frames):
        img = np.roll(base, 3 * t, axis=1)
        bs = []
        for p in range(persons):
            r, c = divmod(p, cols)
            x1 = (c + 0.15) * w / cols + 2.0 * t
            y1 = (r + 0.1) * h / rows
            b = [x1, y1, x1 + bw, y1 + bh]
            bs.append(b)
            x, y = int(x1 + bw / 2), int(y1 + bh / 2)
            cv2.ellipse(
                img, (x, y), (int(bw / 3), int(bh / 2.5)), 0, 0, 360, (60 + 30 * p % 180, 90, 160), -1
            )
            cv2.circle(img, (x, int(y1 + bh * 0.12)), int(bw / 5), (140, 170, 210), -1)
        imgs.append(img)
        boxes.append(np.asarray(bs, np.float32).reshape(-1, 4))
    return Clip(imgs, boxes)


class CountingSession:
    """Wraps a Session and counts the rows (persons x frames) it runs and the calls."""

    def __init__(self, session):
        self._session = session
        self.rows = 0
        self.calls = 0

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.calls += 1
        self.rows += len(next(iter(feeds.values())))
        return self._session.run(feeds)

    def reset(self) -> None:
        self.rows = self.calls = 0

    def __getattr__(self, name):
        return getattr(self._session, name)


def count_stage(est: PoseEstimator, stage: str) -> CountingSession:
    """Install (once) and return a counter on ``stage`` of ``est``'s bundle."""
    sessions = est.bundle.sessions
    if not isinstance(sessions[stage], CountingSession):
        sessions[stage] = CountingSession(sessions[stage])
    return sessions[stage]


@dataclass
class RunResult:
    seconds: float
    frames: int
    keypoints: dict[tuple[int, int], np.ndarray] = field(default_factory=dict)  # (frame, person) -> (J, 2)
    stage_ms: dict[str, float] = field(default_factory=dict)  # total ms per pipeline stage (SDK loop)

    @property
    def ms_per_frame(self) -> float:
        return 1e3 * self.seconds / max(self.frames, 1)


def _person_of(box: np.ndarray, boxes: np.ndarray) -> int:
    return int(np.argmin(np.abs(boxes - box[None]).sum(1)))


def run_sdk(est: PoseEstimator, clip: Clip, keep: bool = False) -> RunResult:
    """The SDK loop over the clip (offline, given boxes, no smoothing); timed from first frame to flush."""
    pipe = VideoPipeline(est, detector=GivenBoxes(clip.boxes), mode="offline", smoothing=False)
    pipe.reset("offline")
    pipe.timer = TotalsTimer()
    out: dict[tuple[int, int], np.ndarray] = {}
    t0 = time.perf_counter()
    results = []
    for i, img in enumerate(clip.frames):
        results += pipe.process(Frame(i, img, i / 25.0))
    results += pipe.flush()
    dt = time.perf_counter() - t0
    if keep:
        for r in results:
            for p in r.poses:
                out[(r.index, _person_of(p.box, clip.boxes[r.index]))] = p.keypoints
    return RunResult(dt, len(clip), out, dict(pipe.timer.total_ms))


def run_recompute(est: PoseEstimator, clip: Clip, keep: bool = False) -> RunResult:
    """The official demos' way: every frame, the whole window of every person through the frame stage."""
    if not est.is_temporal:
        raise ValueError(f"{est.name} has no temporal stage: nothing to recompute")
    offsets = est.offsets
    n, t_len = len(clip), len(offsets)
    out: dict[tuple[int, int], np.ndarray] = {}
    t0 = time.perf_counter()
    rgb_cache: dict[int, np.ndarray] = {}
    for t in range(n):
        p = clip.persons
        idx = [min(max(t + o, 0), n - 1) for o in offsets]  # offline window, clamped at the clip edges
        rgb_cache = {
            j: rgb_cache.get(j) if j in rgb_cache else est.to_model_colour(clip.frames[j]) for j in idx
        }
        images, mats = [], None
        for k, j in enumerate(idx):
            crops = est.prepare(rgb_cache[j], clip.boxes[j], colour_converted=True)
            images.append(crops.images)
            if offsets[k] == 0:
                mats = crops.matrices
        stacked = np.stack(images, axis=1).reshape(p * t_len, *images[0].shape[1:])  # person-major
        feats = est.run_stage("frame", {"image": stacked})
        windows = {k: v.reshape(p, t_len, *v.shape[1:]) for k, v in feats.items()}
        outputs = est.run_temporal(windows)
        kp, _ = est.decode(outputs, mats)
        if keep:
            for i in range(p):
                out[(t, i)] = kp[i]
    return RunResult(time.perf_counter() - t0, n, out)


ENGINES: dict[str, Callable[[PoseEstimator, Clip, bool], RunResult]] = {
    "ring buffer": run_sdk,
    "recompute window": run_recompute,
}


def interleave(
    variants: Mapping[str, Callable[[], float]], rounds: int, warmup: int = 1, budget_s: float | None = None
) -> dict[str, list[float]]:
    """Run each variant once per round, in rotating order; returns {name: [value per round]}.

    Each callable returns its own measurement (e.g. ms per frame). ``budget_s`` stops early
    (after at least 2 rounds) once that much time has passed.
    """
    names = list(variants)
    for _ in range(warmup):
        for n in names:
            variants[n]()
    got: dict[str, list[float]] = {n: [] for n in names}
    start = time.perf_counter()
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for n in order:
            got[n].append(float(variants[n]()))
        if budget_s is not None and r >= 1 and time.perf_counter() - start > budget_s:
            break
    return got


def median(xs) -> float:
    xs = [x for x in xs if not math.isnan(x)]
    return statistics.median(xs) if xs else float("nan")


def paired_ratio(num: list[float], den: list[float]) -> float:
    """Median of per-round ratios num/den (rounds run back to back, so drift cancels)."""
    return median([a / b for a, b in zip(num, den) if b > 0])


def time_call(fn: Callable[[], object], min_runs: int = 5, budget_s: float = 1.0) -> float:
    """Median ms of ``fn`` after one warm-up call: at least ``min_runs`` runs, more within ``budget_s``."""
    fn()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < min_runs or (time.perf_counter() - start < budget_s and len(times) < 200):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def open_estimator(
    model: str, settings, frames: int | None = None, format: str = "onnx", precision: str = "fp32"
) -> PoseEstimator:
    """A PoseEstimator on the cached bundle of ``model`` (exported on first use), on the settings' device."""
    from .bundles import cached_bundle

    path = cached_bundle(
        model,
        frames=frames,
        format=format,
        precision=precision,
        init_seed=settings.init_seed,
        progress=settings.progress,
    )
    opts = {"threads": settings.threads} if settings.threads else {}
    return PoseEstimator(path, device=settings.device, **opts)

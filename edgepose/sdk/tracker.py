"""Multi-person tracker: stable ids so each person's ring buffer and smoother follow them.

Detections are matched to tracks by IoU of boxes (against each track's
constant-velocity prediction, which keeps ids apart when people cross) and,
when both sides carry keypoints, by OKS as well: the similarity is then the
mean of IoU and OKS. The assignment is optimal (Hungarian, via scipy's
``linear_sum_assignment``) when scipy is installed and greedy (best pair
first) otherwise. A track is born tentative and confirmed after ``min_hits``
matched frames; a tentative track missed once is discarded; a confirmed track
dies after ``max_age`` consecutive misses.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

_UNSET = object()
_hungarian_fn = _UNSET


def _hungarian():
    """scipy's ``linear_sum_assignment``, imported on first use (scipy.optimize costs ~0.5 s to import,
    which every ``edgepose --help`` would pay), or None where scipy is absent (a phone-side install)."""
    global _hungarian_fn
    if _hungarian_fn is _UNSET:
        try:
            from scipy.optimize import linear_sum_assignment as fn
        except ImportError:  # pragma: no cover - exercised by forcing method="greedy"
            fn = None
        _hungarian_fn = fn
    return _hungarian_fn


TENTATIVE, CONFIRMED = "tentative", "confirmed"


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of xyxy boxes: (N, 4) x (M, 4) -> (N, M)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def inside_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The share of each box of ``a`` that lies inside each box of ``b``: (N, 4) x (M, 4) -> (N, M);
    0 for a box of no area. Not symmetric: a part inside a whole is 1, the whole inside its part less."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    iw = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    ih = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    area = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    return np.where(area[:, None] > 0, iw * ih / np.maximum(area[:, None], 1e-12), 0.0)


def oks_matrix(
    a: np.ndarray,
    b: np.ndarray,
    sigmas: np.ndarray,
    areas: np.ndarray,
    min_score: float = 0.2,
) -> np.ndarray:
    """Pairwise object keypoint similarity: (N, J, 3) x (M, J, 3) -> (N, M).

    ``areas`` (M,) are the scales of ``b`` (box areas); joints count when both
    sides score at least ``min_score``. A pair with no such joint scores 0.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    var = (2.0 * np.asarray(sigmas, dtype=np.float64)) ** 2  # (J,)
    d2 = ((a[:, None, :, :2] - b[None, :, :, :2]) ** 2).sum(-1)  # (N, M, J)
    s = np.maximum(np.asarray(areas, dtype=np.float64), 1.0)[None, :, None]
    e = np.exp(-d2 / (2.0 * s * var[None, None, :]))
    vis = (a[:, None, :, 2] >= min_score) & (b[None, :, :, 2] >= min_score)
    n = vis.sum(-1)
    return np.where(n > 0, (e * vis).sum(-1) / np.maximum(n, 1), 0.0)


def assign(similarity: np.ndarray, threshold: float, method: str = "auto") -> list[tuple[int, int]]:
    """Pairs (row, col) maximising total similarity, each pair at least ``threshold``.

    ``method``: ``hungarian`` (needs scipy), ``greedy`` or ``auto`` (Hungarian when scipy is present).
    """
    sim = np.asarray(similarity, dtype=np.float64)
    if sim.size == 0:
        return []
    if method == "auto":
        method = "hungarian" if _hungarian() is not None else "greedy"
    if method == "hungarian":
        if _hungarian() is None:
            raise ImportError("method='hungarian' needs scipy (pip install scipy); use method='greedy'")
        # Pairs below the threshold must not displace valid ones: price them out.
        cost = np.where(sim >= threshold, 1.0 - sim, 1e6)
        rows, cols = _hungarian()(cost)
        return [(int(r), int(c)) for r, c in zip(rows, cols) if sim[r, c] >= threshold]
    if method == "greedy":
        order = np.argsort(-sim, axis=None, kind="stable")
        used_r, used_c, pairs = set(), set(), []
        for flat in order:
            r, c = divmod(int(flat), sim.shape[1])
            if sim[r, c] < threshold:
                break
            if r in used_r or c in used_c:
                continue
            used_r.add(r)
            used_c.add(c)
            pairs.append((r, c))
        return pairs
    raise ValueError(f"unknown assignment method {method!r}; use 'auto', 'hungarian' or 'greedy'")


@dataclass
class Track:
    """One tracked person: ``box`` is the last matched box, ``det_index`` this frame's detection (or -1)."""

    id: int
    box: np.ndarray
    score: float
    first_frame: int
    last_frame: int
    keypoints: np.ndarray | None = None  # (J, 3) last known x, y, score
    keypoints_frame: int = -1  # the frame those keypoints belong to
    hits: int = 1
    misses: int = 0  # consecutive frames without a match
    state: str = TENTATIVE
    det_index: int = -1
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(4))

    @property
    def confirmed(self) -> bool:
        return self.state == CONFIRMED

    def predicted_box(self, frame: int, max_extrapolate: int = 10) -> np.ndarray:
        """The box moved on by its velocity since the last match (at most ``max_extrapolate`` frames)."""
        return self.box + self.velocity * min(frame - self.last_frame, max_extrapolate)


class Tracker:
    """Associates each frame's detections with tracks; see the module docstring for the rules.

    ``update`` returns the confirmed tracks matched in this frame (each with
    ``det_index``); ``dead`` lists the ids that ended in that update, so their
    buffers and filters can be freed.
    """

    def __init__(
        self,
        match_threshold: float = 0.2,
        min_hits: int = 3,
        max_age: int = 30,
        sigmas: np.ndarray | None = None,
        velocity_smoothing: float = 0.5,
        max_extrapolate: int = 10,
        method: str = "auto",
    ):
        if min_hits < 1 or max_age < 0:
            raise ValueError(f"need min_hits >= 1 and max_age >= 0, got {min_hits}, {max_age}")
        self.match_threshold = float(match_threshold)
        self.max_extrapolate = int(max_extrapolate)
        self.min_hits = int(min_hits)
        self.max_age = int(max_age)
        self.sigmas = None if sigmas is None else np.asarray(sigmas, dtype=np.float64)
        self.velocity_smoothing = float(velocity_smoothing)
        self.method = method
        self.tracks: list[Track] = []
        self.dead: list[int] = []
        self.frame = -1
        self._next_id = 1

    def reset(self) -> None:
        self.tracks, self.dead, self.frame, self._next_id = [], [], -1, 1

    def similarity(self, boxes: np.ndarray, keypoints: np.ndarray | None, frame: int) -> np.ndarray:
        """(tracks, detections) similarity: IoU, averaged with OKS where both sides have keypoints."""
        if not self.tracks:
            return np.zeros((0, len(boxes)))
        pred = np.stack([t.predicted_box(frame, self.max_extrapolate) for t in self.tracks])
        sim = iou_matrix(pred, boxes)
        if keypoints is None:
            return sim
        has = np.array([t.keypoints is not None for t in self.tracks])
        if not has.any():
            return sim
        sigmas = self.sigmas if self.sigmas is not None else np.full(keypoints.shape[1], 0.07)
        if len(sigmas) != keypoints.shape[1]:
            raise ValueError(
                f"tracker has {len(sigmas)} OKS sigmas, detections have {keypoints.shape[1]} joints"
            )
        areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        idx = np.flatnonzero(has)
        track_kp = np.stack([self.tracks[i].keypoints for i in idx])
        if track_kp.shape[1] != keypoints.shape[1]:
            raise ValueError(f"tracks have {track_kp.shape[1]} joints, detections {keypoints.shape[1]}")
        gap = frame - np.array([self.tracks[i].keypoints_frame for i in idx])
        shift = np.minimum(gap, self.max_extrapolate)[:, None, None]
        vel = np.stack([self.tracks[i].velocity for i in idx])  # move keypoints with their box
        moved = track_kp.copy()
        moved[..., 0] += (0.5 * (vel[:, 0] + vel[:, 2]))[:, None] * shift[:, :, 0]
        moved[..., 1] += (0.5 * (vel[:, 1] + vel[:, 3]))[:, None] * shift[:, :, 0]
        sim[idx] = 0.5 * (sim[idx] + oks_matrix(moved, keypoints, sigmas, areas))
        return sim

    def update(
        self,
        boxes: np.ndarray,
        scores: np.ndarray | None = None,
        keypoints: np.ndarray | None = None,
        frame: int | None = None,
    ) -> list[Track]:
        """Match this frame's detections; returns the confirmed tracks matched now."""
        frame = self.frame + 1 if frame is None else int(frame)
        if frame <= self.frame:
            raise ValueError(f"frame {frame} after frame {self.frame}: frames must increase")
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        scores = np.ones(len(boxes)) if scores is None else np.asarray(scores, dtype=np.float64).reshape(-1)
        if keypoints is not None:
            keypoints = np.asarray(keypoints, dtype=np.float64)
            if keypoints.ndim != 3 or keypoints.shape[0] != len(boxes) or keypoints.shape[2] < 3:
                raise ValueError(f"keypoints must be (N, J, 3) for {len(boxes)} boxes, got {keypoints.shape}")
        self.dead = []

        sim = self.similarity(boxes, keypoints, frame)
        pairs = assign(sim, self.match_threshold, self.method)
        matched_t = {r for r, _ in pairs}
        matched_d = {c for _, c in pairs}
        for t in self.tracks:
            t.det_index = -1
        for r, c in pairs:
            self._match(
                self.tracks[r], boxes[c], scores[c], None if keypoints is None else keypoints[c], frame, c
            )

        survivors = []
        for i, t in enumerate(self.tracks):
            if i not in matched_t:
                t.misses += 1
                if t.state == TENTATIVE or t.misses > self.max_age:
                    self.dead.append(t.id)
                    continue
            survivors.append(t)
        for c in range(len(boxes)):
            if c not in matched_d:
                survivors.append(
                    self._birth(boxes[c], scores[c], None if keypoints is None else keypoints[c], frame, c)
                )
        self.tracks = survivors
        self.frame = frame
        return [t for t in self.tracks if t.confirmed and t.det_index >= 0]

    def _match(self, t: Track, box, score, kp, frame: int, det: int) -> None:
        dt = frame - t.last_frame
        v = (box - t.box) / max(dt, 1)
        a = self.velocity_smoothing
        t.velocity = v if t.hits == 1 else a * t.velocity + (1 - a) * v
        t.box = box.copy()
        t.score = float(score)
        if kp is not None:
            t.keypoints = kp[:, :3].copy()
            t.keypoints_frame = frame
        t.last_frame = frame
        t.hits += 1
        t.misses = 0
        t.det_index = det
        if t.state == TENTATIVE and t.hits >= self.min_hits:
            t.state = CONFIRMED

    def _birth(self, box, score, kp, frame: int, det: int) -> Track:
        t = Track(
            id=self._next_id,
            box=box.copy(),
            score=float(score),
            first_frame=frame,
            last_frame=frame,
            keypoints=None if kp is None else kp[:, :3].copy(),
            keypoints_frame=frame,
            det_index=det,
        )
        if self.min_hits <= 1:
            t.state = CONFIRMED
        self._next_id += 1
        return t

    def set_keypoints(self, track_id: int, keypoints: np.ndarray, frame: int | None = None) -> None:
        """Attach a track's estimated pose (J, 3) for OKS matching; ``frame`` it belongs to (default: the
        last update's). Offline pipelines pass older frames: the keypoints are moved on by the velocity."""
        for t in self.tracks:
            if t.id == track_id:
                t.keypoints = np.asarray(keypoints, dtype=np.float64)[:, :3].copy()
                t.keypoints_frame = self.frame if frame is None else int(frame)
                return
        raise KeyError(f"no live track {track_id}; live: {[t.id for t in self.tracks]}")

    @property
    def confirmed(self) -> list[Track]:
        return [t for t in self.tracks if t.confirmed]

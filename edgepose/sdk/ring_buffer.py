"""Ring buffers of frame-stage outputs: per track (top-down: the frame stage runs once per person per
frame) or per stream (whole-frame models: once per frame, ``StreamBuffer``).

A temporal model's frame stage (the backbone) turns one person crop into named
features; its temporal stage reads those features for a window of frames
(``offsets``, e.g. -1, 0, +1). Keeping each track's recent features in a ring
means the backbone never re-runs for a frame it has already seen, which is the
point of splitting the model into stages.

Two modes:

* ``offline`` (files): the window looks ahead, so frame ``t`` can be finished
  once frame ``t + max(offsets)`` is pushed; the ring holds ``max - min + 1``
  frames (2T+1 for symmetric offsets -T..T).
* ``online`` (cameras, causal): frame ``t`` is finished when it arrives;
  offsets after 0 repeat the current frame, so a model trained with a symmetric
  window still sees its current frame at index T//2. The ring holds
  ``-min(offsets) + 1`` frames.

Clip edges clamp as the papers' data pipelines do: an offset before the first
(after the last) stored frame takes the first (last) stored frame. A frame
missing inside the window (the track was not detected then) takes the nearest
stored frame on the way towards ``t``.

Storage is preallocated on the first push (one array per output name with the
ring's capacity on axis 0) and windows are gathered into reused scratch arrays,
so memory stays flat over any video length.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence

import numpy as np

MODES = ("online", "offline")


def _check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    return mode


def _check_offsets(offsets: Sequence[int]) -> tuple[int, ...]:
    offs = tuple(int(o) for o in offsets)
    if not offs:
        raise ValueError("offsets must not be empty")
    if 0 not in offs:
        raise ValueError(f"offsets {offs} must contain 0 (the current frame)")
    if list(offs) != sorted(set(offs)):
        raise ValueError(f"offsets {offs} must be strictly ascending (the temporal stage's time order)")
    return offs


def capacity_for(offsets: Sequence[int], mode: str = "offline") -> int:
    """Ring slots needed to build every window of ``offsets`` in ``mode``."""
    offs = _check_offsets(offsets)
    lo = min(offs)
    if _check_mode(mode) == "online":
        return -lo + 1
    return max(offs) - lo + 1


def delay_for(offsets: Sequence[int], mode: str = "offline") -> int:
    """Frames a result lags its input: ``max(offsets)`` offline, 0 online."""
    offs = _check_offsets(offsets)
    return max(offs) if _check_mode(mode) == "offline" else 0


class RingBuffer:
    """One track's recent frame-stage outputs, indexed by frame number.

    ``push(t, {name: array})`` stores one person-frame (arrays without the batch
    axis); ``window(t)`` returns ``{name: (T, ...)}`` in offset order. Frame
    numbers must increase; gaps are allowed (frames where the track was missed).
    """

    def __init__(self, offsets: Sequence[int], mode: str = "offline", capacity: int | None = None):
        self.offsets = _check_offsets(offsets)
        self.mode = _check_mode(mode)
        need = capacity_for(self.offsets, self.mode)
        if capacity is not None and capacity < need:
            raise ValueError(
                f"capacity {capacity} is too small for offsets {self.offsets} in {mode} mode ({need})"
            )
        self.capacity = int(capacity or need)
        self._frames = np.full(self.capacity, -1, dtype=np.int64)  # frame number held by each slot
        self._store: dict[str, np.ndarray] | None = None
        self._scratch: dict[int, dict[str, np.ndarray]] = {}  # window length -> {name: (T, ...)}
        self._latest = -1

    # -- storage -----------------------------------------------------------------------------------
    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._store) if self._store is not None else ()

    @property
    def latest(self) -> int:
        """The newest stored frame number (-1 when empty)."""
        return self._latest

    @property
    def nbytes(self) -> int:
        if self._store is None:
            return 0
        scratch = sum(a.nbytes for s in self._scratch.values() for a in s.values())
        return sum(a.nbytes for a in self._store.values()) + scratch

    def __len__(self) -> int:
        return int((self._frames >= 0).sum())

    def frames(self) -> list[int]:
        """Stored frame numbers, oldest first."""
        return sorted(int(f) for f in self._frames if f >= 0)

    def has(self, t: int) -> bool:
        return t >= 0 and self._frames[t % self.capacity] == t

    def _allocate(self, outputs: Mapping[str, np.ndarray]) -> None:
        self._store = {}
        for name, a in outputs.items():
            a = np.asarray(a)
            self._store[name] = np.zeros((self.capacity, *a.shape), dtype=a.dtype)

    def push(self, t: int, outputs: Mapping[str, np.ndarray]) -> None:
        """Store the frame-stage outputs of frame ``t`` (one person, no batch axis)."""
        t = int(t)
        if t < 0:
            raise ValueError(f"frame numbers start at 0, got {t}")
        if t <= self._latest:
            raise ValueError(f"frame {t} pushed after frame {self._latest}: frames must increase")
        if self._store is None:
            self._allocate(outputs)
        store = self._store
        if set(outputs) != set(store):
            raise ValueError(f"frame {t} has outputs {sorted(outputs)}, the buffer holds {sorted(store)}")
        slot = t % self.capacity
        for name, a in outputs.items():
            dst = store[name]
            a = np.asarray(a)
            if a.shape != dst.shape[1:]:
                raise ValueError(
                    f"output {name!r} of frame {t} has shape {a.shape}, expected {dst.shape[1:]}"
                )
            dst[slot] = a  # casts to the stored dtype; no new allocation
        self._frames[slot] = t
        self._latest = t

    def get(self, t: int) -> dict[str, np.ndarray]:
        """Views of frame ``t``'s stored outputs (valid until the slot is overwritten)."""
        if not self.has(t):
            raise KeyError(f"frame {t} is not in the buffer (stored: {self.frames()})")
        slot = t % self.capacity
        return {name: a[slot] for name, a in self._store.items()}

    def clear(self) -> None:
        """Forget every frame; keep the allocation for reuse by another track."""
        self._frames.fill(-1)
        self._latest = -1

    # -- windows -----------------------------------------------------------------------------------
    def source_frames(
        self, t: int, offsets: Sequence[int] | None = None, mode: str | None = None
    ) -> list[int]:
        """The stored frame used for each offset of ``t``'s window, after clamping."""
        offs = self.offsets if offsets is None else _check_offsets(offsets)
        mode = self.mode if mode is None else _check_mode(mode)
        t = int(t)
        if not self.has(t):
            raise KeyError(f"the window's current frame {t} is not in the buffer (stored: {self.frames()})")
        out = []
        for o in offs:
            if mode == "online" and o > 0:
                out.append(t)
                continue
            f = t + o
            step = 1 if o < 0 else -1
            while not self.has(f):  # terminates at t, which is stored
                f += step
            out.append(f)
        return out

    def window(
        self,
        t: int,
        offsets: Sequence[int] | None = None,
        mode: str | None = None,
        names: Iterable[str] | None = None,
        out: Mapping[str, np.ndarray] | None = None,
    ) -> dict[str, np.ndarray]:
        """``{name: (T, ...)}`` for frame ``t``; stacked in offset order, current frame at offset 0.

        Without ``out`` the arrays are scratch owned by the buffer and are
        overwritten by its next ``window`` call: copy them to keep them.
        """
        if self._store is None:
            raise KeyError(f"the buffer is empty; frame {t} was never pushed")
        frames = self.source_frames(t, offsets, mode)
        slots = np.asarray(frames, dtype=np.int64) % self.capacity
        names = tuple(self._store) if names is None else tuple(names)
        if out is None:
            out = self._scratch_for(len(slots))
        result = {}
        for name in names:
            if name not in self._store:
                raise KeyError(f"no output named {name!r}; the buffer holds {list(self._store)}")
            np.take(self._store[name], slots, axis=0, out=out[name])
            result[name] = out[name]
        return result

    def _scratch_for(self, length: int) -> dict[str, np.ndarray]:
        s = self._scratch.get(length)
        if s is None:
            s = {n: np.zeros((length, *a.shape[1:]), dtype=a.dtype) for n, a in self._store.items()}
            self._scratch[length] = s
        return s

    def specs(self) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
        """Per-frame shape and dtype of each stored output."""
        return {n: (a.shape[1:], a.dtype) for n, a in (self._store or {}).items()}


class TrackBuffers:
    """One ``RingBuffer`` per live track; a dead track's buffer is released (``drop``/``retain``).

    Released buffers are kept in a small pool and handed to new tracks, so
    people entering and leaving the scene do not grow memory.
    ``window_batch`` gathers several tracks' windows into one ``(B, T, ...)``
    batch for a single temporal-stage call.
    """

    def __init__(self, offsets: Sequence[int], mode: str = "offline", pool_size: int = 8):
        self.offsets = _check_offsets(offsets)
        self.mode = _check_mode(mode)
        self.capacity = capacity_for(self.offsets, self.mode)
        self.delay = delay_for(self.offsets, self.mode)
        self.pool_size = int(pool_size)
        self._buffers: dict[Hashable, RingBuffer] = {}
        self._pool: list[RingBuffer] = []
        self._batch: dict[str, np.ndarray] = {}

    def __contains__(self, track_id: Hashable) -> bool:
        return track_id in self._buffers

    def __len__(self) -> int:
        return len(self._buffers)

    @property
    def track_ids(self) -> list:
        return list(self._buffers)

    @property
    def nbytes(self) -> int:
        """Bytes held by live and pooled buffers and the batch scratch."""
        live = sum(b.nbytes for b in self._buffers.values()) + sum(b.nbytes for b in self._pool)
        return live + sum(a.nbytes for a in self._batch.values())

    def buffer(self, track_id: Hashable) -> RingBuffer:
        try:
            return self._buffers[track_id]
        except KeyError:
            raise KeyError(f"no buffer for track {track_id!r}; live tracks: {self.track_ids}") from None

    def push(self, track_id: Hashable, t: int, outputs: Mapping[str, np.ndarray]) -> None:
        buf = self._buffers.get(track_id)
        if buf is None:
            buf = self._take_from_pool(outputs)
            self._buffers[track_id] = buf
        buf.push(t, outputs)

    def _take_from_pool(self, outputs: Mapping[str, np.ndarray]) -> RingBuffer:
        want = {n: (np.shape(a), np.asarray(a).dtype) for n, a in outputs.items()}
        for i, buf in enumerate(self._pool):
            if buf.specs() == want:
                return self._pool.pop(i)
        return RingBuffer(self.offsets, self.mode, self.capacity)

    def window(self, track_id: Hashable, t: int, **kw) -> dict[str, np.ndarray]:
        return self.buffer(track_id).window(t, **kw)

    def window_batch(
        self, requests: Sequence[tuple[Hashable, int]], names: Iterable[str] | None = None
    ) -> dict[str, np.ndarray]:
        """``{name: (B, T, ...)}`` for ``[(track_id, t), ...]``; scratch reused across calls."""
        if not requests:
            raise ValueError("window_batch needs at least one (track_id, frame) request")
        bufs = [self.buffer(tid) for tid, _ in requests]
        specs = bufs[0].specs()
        names = tuple(specs) if names is None else tuple(names)
        n, length = len(requests), len(self.offsets)
        views = {}
        for name in names:
            shape, dtype = specs[name]
            cur = self._batch.get(name)
            if cur is None or cur.shape[0] < n or cur.shape[2:] != shape or cur.dtype != dtype:
                rows = max(n, cur.shape[0] if cur is not None else 0)
                cur = np.zeros((rows, length, *shape), dtype=dtype)
                self._batch[name] = cur
            views[name] = cur[:n]
        for b, ((_, t), buf) in enumerate(zip(requests, bufs)):
            buf.window(t, names=names, out={name: views[name][b] for name in names})
        return views

    def drop(self, track_id: Hashable) -> bool:
        """Release a dead track's buffer; True if it existed."""
        buf = self._buffers.pop(track_id, None)
        if buf is None:
            return False
        buf.clear()
        if len(self._pool) < self.pool_size:
            self._pool.append(buf)
        return True

    def retain(self, alive: Iterable[Hashable]) -> list:
        """Drop every buffer whose track is not in ``alive``; returns the dropped ids."""
        keep = set(alive)
        dead = [tid for tid in self._buffers if tid not in keep]
        for tid in dead:
            self.drop(tid)
        return dead

    def clear(self) -> None:
        for tid in list(self._buffers):
            self.drop(tid)


class StreamBuffer(RingBuffer):
    """A whole-frame model's ring: one entry per frame of one video stream (not per person).

    A whole-frame model (``input_kind == "frame"``, e.g. PAVE-Net) runs its frame stage once on the
    letterboxed frame; the memory waits here and every later frame's temporal stage whose window
    covers it reads it, so no frame's encoder runs twice. Windows clamp at the stream's start (and,
    offline, at its end) exactly as a track's ring does at its clip edges; ``online`` repeats the
    current frame for look-ahead offsets. ``pushes`` counts the frames stored (one frame stage each).
    """

    def __init__(self, offsets: Sequence[int], mode: str = "offline", capacity: int | None = None):
        super().__init__(offsets, mode, capacity)
        self.delay = delay_for(self.offsets, self.mode)
        self.pushes = 0
        self._batch: dict[str, np.ndarray] = {}

    def push(self, t: int, outputs: Mapping[str, np.ndarray]) -> None:
        super().push(t, outputs)
        self.pushes += 1

    def window_batch(
        self, frames: Sequence[int], names: Iterable[str] | None = None
    ) -> dict[str, np.ndarray]:
        """``{name: (B, T, ...)}`` for frames ``[t, ...]`` of this stream; scratch reused across calls."""
        frames = [int(t) for t in frames]
        if not frames:
            raise ValueError("window_batch needs at least one frame")
        if self._store is None:
            raise KeyError(f"the stream buffer is empty; frame {frames[0]} was never pushed")
        specs = self.specs()
        names = tuple(specs) if names is None else tuple(names)
        n, length = len(frames), len(self.offsets)
        views = {}
        for name in names:
            shape, dtype = specs[name]
            cur = self._batch.get(name)
            if cur is None or cur.shape[0] < n or cur.shape[2:] != shape or cur.dtype != dtype:
                cur = np.zeros((max(n, 0 if cur is None else cur.shape[0]), length, *shape), dtype=dtype)
                self._batch[name] = cur
            views[name] = cur[:n]
        for b, t in enumerate(frames):
            self.window(t, names=names, out={name: views[name][b] for name in names})
        return views

    def reset(self) -> None:
        """A new stream: forget every frame (the allocation is kept)."""
        self.clear()
        self.pushes = 0

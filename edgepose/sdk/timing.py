"""Throughput and per-stage timing for overlays and benchmarks (monotonic clock, smoothed)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator


class FpsMeter:
    """Frames per second from the intervals between ``tick()`` calls, exponentially smoothed."""

    def __init__(self, smoothing: float = 0.9):
        self.smoothing = float(smoothing)
        self._last: float | None = None
        self._interval: float | None = None

    def tick(self, now: float | None = None) -> float:
        now = time.perf_counter() if now is None else now
        if self._last is not None:
            dt = max(now - self._last, 1e-9)
            a = self.smoothing
            self._interval = dt if self._interval is None else a * self._interval + (1 - a) * dt
        self._last = now
        return self.fps

    @property
    def fps(self) -> float:
        return 0.0 if not self._interval else 1.0 / self._interval


class StageTimer:
    """Smoothed milliseconds per named stage: ``with timer("detect"): ...``."""

    def __init__(self, smoothing: float = 0.9):
        self.smoothing = float(smoothing)
        self.ms: dict[str, float] = {}
        self.last_ms: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, (time.perf_counter() - t0) * 1e3)

    def add(self, name: str, ms: float) -> None:
        self.last_ms[name] = ms
        prev = self.ms.get(name)
        self.ms[name] = ms if prev is None else self.smoothing * prev + (1 - self.smoothing) * ms

"""Benchmark settings: one dataclass; a quick preset (``edgepose bench``), a full one (``benchmarks/``)."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass, field

FULL_MODELS = ("dsta_mnv2", "tar_vitpose_s", "distilpose_s", "sharpose_s")
TEMPORAL_MODELS = ("dsta_mnv2", "tar_vitpose_s")


@dataclass
class Settings:
    models: tuple[str, ...] = FULL_MODELS
    frames: tuple[int, ...] = (3, 5)  # temporal windows for the ring-buffer table
    persons: tuple[int, ...] = (1, 3, 5, 10, 20)  # columns of the persons table (PAVE-Net Table 2)
    ring_persons: int = 3  # people per frame in the ring-buffer table
    clip_frames: int = 10  # frames per timed clip
    rounds: int = 5  # interleaved rounds per measurement
    budget_s: float = 60.0  # per measurement group: stop adding rounds (>= 2) after this long
    formats: tuple[str, ...] = ("onnx", "openvino", "tflite")
    precisions: tuple[str, ...] | None = None  # None: every precision the export table knows
    threads: int | None = field(default_factory=lambda: os.cpu_count() or 1)
    device: str = "cpu"
    init_seed: int = 0
    progress: Callable[[str], None] | None = field(default=None, repr=False, compare=False)

    def say(self, msg: str) -> None:
        if self.progress is not None:
            self.progress(msg)

    def replace(self, **kw) -> Settings:
        return dataclasses.replace(self, **kw)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d.pop("progress", None)
        return d

    @property
    def temporal_models(self) -> tuple[str, ...]:
        from ..zoo import get_spec

        return tuple(m for m in self.models if get_spec(m).is_temporal)


def quick(**kw) -> Settings:
    """Seconds to a minute once the bundles are cached: DSTA-MNv2 only, few people, short clips."""
    base = dict(
        models=("dsta_mnv2",),
        frames=(3, 5),
        persons=(1, 3, 5),
        ring_persons=3,
        clip_frames=5,
        rounds=2,
        budget_s=6.0,
    )
    return Settings(**{**base, **kw})


def full(**kw) -> Settings:
    return Settings(**kw)

"""ModelSpec: what the registry knows about a model before it is built.

A spec is data: the builder, its config, and the facts a runtime or a model
card needs (layout, input size, normalisation, frame offsets, stages, codec,
the paper's numbers). Variants such as ``*_tiny`` are separate specs sharing a
builder, so tests exercise the same code at small dims.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

CODECS = ("regression", "heatmap")


@dataclass(frozen=True)
class PaperNumbers:
    """Figures reported by the paper, printed beside ours by ``edgepose models``.

    ``gflops`` follows the papers' convention (multiply-accumulates counted as
    one FLOP, as mmcv's counter does). Keys are stage names or ``total``.
    """

    params_m: float | None = None
    gflops: dict[str, float] = field(default_factory=dict)
    accuracy: str = ""
    note: str = ""


@dataclass(frozen=True)
class ModelSpec:
    name: str
    family: str
    builder: Callable[..., Any]
    config: dict[str, Any]
    layout: str
    input_size: tuple[int, int]  # (H, W)
    stages: tuple[str, ...]
    codec: str
    frame_offsets: tuple[int, ...] = (0,)
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    color: str = "RGB"
    paper: PaperNumbers = field(default_factory=PaperNumbers)
    summary: str = ""
    variant_of: str | None = None  # e.g. "dsta_mnv2" for "dsta_mnv2_tiny"
    input_kind: str = "crop"  # what the first stage consumes: "crop" (person crops) or "frame" (whole frames)

    def __post_init__(self):
        if self.codec not in CODECS:
            raise ValueError(f"{self.name}: codec must be one of {CODECS}, got {self.codec!r}")
        if 0 not in self.frame_offsets:
            raise ValueError(f"{self.name}: frame_offsets must contain 0 (the current frame)")

    @property
    def is_temporal(self) -> bool:
        return len(self.frame_offsets) > 1

    def build(self, **overrides):
        cfg = {**self.config, **overrides}
        return self.builder(**cfg)

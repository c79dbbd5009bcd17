"""ModelSpec: what the registry knows about a model before it is built.

A spec is data: the builder, its config, and the facts a runtime or a model
card needs (layout, input size, normalisation, frame offsets, stages, codec,
the paper's numbers). Variants such as ``*_tiny`` are separate specs sharing a
builder, so tests exercise the same code at small dims.

When the builder is a :class:`~.base.PoseModel` class, the facts the model itself decides (stages,
codec, input kind, input size, frame offsets, and the layout when the class takes one) are read
from the class and the config instead of restated, so spec and model cannot disagree. A spec may
still name them: stand-ins whose builder is not a model class, and ``dataclasses.replace`` copies
that deliberately differ (a single-frame view of a video model).
"""

from __future__ import annotations

import inspect
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


# The facts a model class decides; a spec leaves them None to have them read from the class.
DERIVED = ("layout", "input_size", "stages", "codec", "frame_offsets", "input_kind")


def model_facts(builder, config: dict[str, Any]) -> dict[str, Any]:
    """What a ``builder`` class built with ``config`` will be: the derived fields of its spec.

    Read without building (a full PAVE-Net is 50M parameters): stages, codec and input kind from
    the class, input size, layout and frames from the config over the constructor's defaults.
    Empty when the builder is not a model class.
    """
    if not (isinstance(builder, type) and hasattr(builder, "STAGES")):
        return {}
    defaults = {
        k: p.default for k, p in inspect.signature(builder).parameters.items() if p.default is not p.empty
    }
    cfg = {**defaults, **config}
    facts = {
        "stages": tuple(builder.STAGES),
        "codec": builder.codec,
        "input_kind": builder.input_kind,
        "input_size": tuple(int(v) for v in cfg["input_size"]),
        "frame_offsets": builder.frame_offsets_for(cfg.get("frames", 1)),
    }
    if "layout" in cfg:
        facts["layout"] = cfg["layout"]
    return facts


@dataclass(frozen=True)
class ModelSpec:
    name: str
    family: str
    builder: Callable[..., Any]
    config: dict[str, Any]
    layout: str | None = None  # None: the config's (when the class takes a layout)
    input_size: tuple[int, int] | None = None  # (H, W); None: the config's
    stages: tuple[str, ...] | None = None  # None: the class's STAGES
    codec: str | None = None  # None: the class's
    frame_offsets: tuple[int, ...] | None = None  # None: the class's window for the config's frames
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    color: str = "RGB"
    paper: PaperNumbers = field(default_factory=PaperNumbers)
    summary: str = ""
    variant_of: str | None = None  # e.g. "dsta_mnv2" for "dsta_mnv2_tiny"
    input_kind: str | None = None  # "crop" (person crops) or "frame" (whole frames); None: the class's

    def __post_init__(self):
        facts = {"frame_offsets": (0,), "input_kind": "crop", **model_facts(self.builder, self.config)}
        for key in DERIVED:
            if getattr(self, key) is None:
                if key not in facts:
                    raise ValueError(
                        f"{self.name}: name its {key} (its builder is not a model class that decides it)"
                    )
                object.__setattr__(self, key, facts[key])
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

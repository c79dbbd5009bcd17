"""The stage contract every zoo model follows.

A model is a composition of *stages*, each an exportable graph with named
tensor inputs and outputs: ``frame``/``temporal`` for the video models (the
frame stage runs once per person per frame, its outputs go into a ring buffer,
the temporal stage reads a window of them), ``coarse``/``fine`` for SHaRPose,
a single ``model`` stage otherwise. A model's ``forward`` must be exactly the
composition of its stages; tests hold every model to that.

Subclasses declare ``STAGES = {name: (input_names, output_names)}`` and
implement ``forward_<name>(**inputs) -> dict`` for each stage, plus
``example_inputs``.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn


class Stage(nn.Module):
    """One stage of a model as a plain module: positional tensors in, a tuple out.

    This is the form exporters want (ONNX, Core ML, TFLite all trace a module
    whose inputs and outputs are flat tensors).
    """

    def __init__(self, model: PoseModel, name: str):
        super().__init__()
        if name not in model.STAGES:
            raise KeyError(f"{type(model).__name__} has no stage {name!r}; stages: {list(model.STAGES)}")
        self.model = model
        self.name = name
        self.input_names, self.output_names = model.STAGES[name]

    def forward(self, *args: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = getattr(self.model, f"forward_{self.name}")(**dict(zip(self.input_names, args)))
        return tuple(out[k] for k in self.output_names)


class PoseModel(nn.Module):
    """Base class: stage bookkeeping shared by every zoo model."""

    STAGES: ClassVar[dict[str, tuple[tuple[str, ...], tuple[str, ...]]]] = {}
    codec: ClassVar[str] = "heatmap"  # or "regression"
    input_kind: ClassVar[str] = "crop"  # "crop": person crops (top-down); "frame": whole frames (PAVE-Net)

    def __init__(self, num_joints: int, input_size: tuple[int, int], frame_offsets: tuple[int, ...] = (0,)):
        super().__init__()
        self.num_joints = int(num_joints)
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.frame_offsets = tuple(int(o) for o in frame_offsets)

    @classmethod
    def frame_offsets_for(cls, frames: int) -> tuple[int, ...]:
        """The window a build with ``frames`` reads; one place for the model and its ModelSpec."""
        return (0,)

    @property
    def stage_names(self) -> tuple[str, ...]:
        return tuple(self.STAGES)

    @property
    def num_frames(self) -> int:
        return len(self.frame_offsets)

    def stage(self, name: str) -> Stage:
        return Stage(self, name)

    def stage_io(self, name: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
        if name not in self.STAGES:
            raise KeyError(f"{type(self).__name__} has no stage {name!r}; stages: {list(self.STAGES)}")
        return self.STAGES[name]

    def run_stage(self, name: str, **inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        self.stage_io(name)
        return getattr(self, f"forward_{name}")(**inputs)

    def example_inputs(self, stage: str, batch: int = 2, seed: int = 0) -> dict[str, torch.Tensor]:
        """Inputs for ``stage`` with a leading batch axis, e.g. for tracing or export."""
        raise NotImplementedError

    def convert_official_state(self, state: dict[str, torch.Tensor]):
        """Map an official repository's state dict onto our keys.

        Returns the converted dict, or ``(converted, ignored_keys)`` when some
        official keys are training-only. Raises ``CheckpointError`` when
        ``state`` is not this model's official layout, naming what it expected.
        """
        from .checkpoints import CheckpointError

        raise CheckpointError(
            f"{type(self).__name__} does not know an official checkpoint layout and the keys do not match ours; "
            f"first keys: {list(state)[:6]}"
        )

    def example_image(self, batch: int = 2, seed: int = 0) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        return torch.randn(batch, 3, *self.input_size, generator=g)

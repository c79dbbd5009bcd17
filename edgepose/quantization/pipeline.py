"""Running a model's stages in order, the way ``model.forward`` composes them, on any backend.

One composition serves three callers, so they all feed each stage the same way:

* calibration: PyTorch fp32 stages on real crops, keeping every stage's *inputs* (a
  temporal stage's calibration set is the fp32 frame-stage outputs of real windows);
* QAT: the PT2E fake-quantised stage graphs, composed for the training loss;
* evaluation: an exported bundle's runtime sessions (numpy in, numpy out).

The rules are the stage contract's: the first stage takes the crops (a temporal model's
window is flattened into the batch, ``(B*T, 3, H, W)``, and its outputs are stacked back
on axis 1 for the next stage); a later stage of a single-frame model takes, by name, the
crops and the earlier stage's outputs; an input no stage outputs is made as the family object
says (``Family.derived_inputs``: SHaRPose's ``patch_index`` is the top-k of the coarse
``relevance``, k being the width of the fine stage's input). SHaRPose's fine stage
always runs here, as ``model.forward`` does (the runtime's quality gate is a speed choice,
not part of the accuracy comparison).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..families import derived_inputs, model_family

IMAGE = "image"


@dataclass(frozen=True)
class StagePlan:
    """The stages of a model in order, their I/O names, the window length and derived inputs' widths."""

    stages: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...]
    frames: int = 1  # T: >1 for temporal models (the first stage runs on every frame of the window)
    derived: tuple[
        tuple[str, int], ...
    ] = ()  # (input name, width) made from earlier outputs (patch_index, k)
    family: str | None = None  # whose ``derived_inputs`` make them

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(s[0] for s in self.stages)

    def io(self, stage: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
        for name, ins, outs in self.stages:
            if name == stage:
                return ins, outs
        raise KeyError(f"no stage {stage!r}; stages: {list(self.names)}")

    @classmethod
    def from_model(cls, model) -> StagePlan:
        stages = tuple((s, *map(tuple, model.stage_io(s))) for s in model.stage_names)
        family = model_family(model)
        known = derived_inputs(family)
        derived = []
        for s, ins, _ in stages[1:]:
            ex = model.example_inputs(s, 1)
            derived += [(n, int(ex[n].shape[1])) for n in ins if n in known]
        return cls(stages, len(model.frame_offsets), tuple(derived), family)

    @classmethod
    def from_manifest(cls, manifest) -> StagePlan:
        stages = tuple((e.name, tuple(e.input_names), tuple(e.output_names)) for e in manifest.stages)
        known = derived_inputs(manifest.family)
        derived = []
        for e in manifest.stages[1:]:
            derived += [(t.name, int(t.shape[1])) for t in e.inputs if t.name in known]
        return cls(stages, len(manifest.frame_offsets), tuple(derived), manifest.family)


def run_pipeline(
    plan: StagePlan, run_stage: Callable[[str, dict], dict], x
) -> tuple[dict[str, dict], dict[str, dict]]:
    """Compose the stages on ``x`` ((B, T, 3, H, W) for temporal models, else (B, 3, H, W)).

    ``run_stage(stage, feeds) -> outputs`` runs one stage (torch modules or runtime sessions).
    Returns ``(feeds, outputs)``, each ``{stage: {name: array}}``: every stage's inputs as fed
    and its outputs. The model's result is ``outputs[plan.names[-1]]``.
    """
    t = plan.frames
    b = x.shape[0]
    first, first_in, _ = plan.stages[0]
    image = x.reshape(b * t, *x.shape[2:]) if t > 1 else x
    if len(first_in) != 1:
        raise ValueError(f"the first stage {first!r} takes {list(first_in)}; expected the crops alone")
    feeds = {first: {first_in[0]: image}}
    outs = {first: dict(run_stage(first, feeds[first]))}
    widths = dict(plan.derived)
    makers = derived_inputs(plan.family) if widths else {}
    for (prev, _, _), (stage, ins, _) in zip(plan.stages, plan.stages[1:]):
        if t > 1:
            source = {k: v.reshape(b, t, *v.shape[1:]) for k, v in outs[prev].items()}
        else:
            source = {**feeds[prev], **outs[prev]}
        f = {}
        for n in ins:
            if n in source:
                f[n] = source[n]
            elif n in widths:
                f[n] = makers[n].make(source, widths[n])
            else:
                raise KeyError(f"stage {stage!r} input {n!r} is neither an earlier output nor derivable")
        feeds[stage] = f
        outs[stage] = dict(run_stage(stage, f))
    return feeds, outs


def torch_stage_runner(model) -> Callable[[str, dict], dict]:
    """``run_stage`` for a PyTorch PoseModel (call inside ``torch.no_grad()`` when not training)."""

    def run(stage: str, feeds: dict) -> dict:
        return model.run_stage(stage, **feeds)

    return run


def session_stage_runner(sessions: Mapping[str, Any], layout: str = "NCHW") -> Callable[[str, dict], dict]:
    """``run_stage`` for runtime sessions (a bundle's); NCHW crops are moved to NHWC where the graph wants."""

    def run(stage: str, feeds: dict) -> dict:
        arrays = {}
        for n, v in feeds.items():
            v = np.asarray(v)
            if n == IMAGE and layout == "NHWC" and v.ndim == 4:
                v = np.ascontiguousarray(v.transpose(0, 2, 3, 1))
            arrays[n] = v
        return sessions[stage].run(arrays)

    return run

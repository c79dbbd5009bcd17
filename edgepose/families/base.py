"""``Family``: what training, int8 and the CLI need to know about one zoo model family.

Each zoo family has one module in this package holding one ``FAMILY``; everything that used to
be a per-family table or a branch on the family name elsewhere is a field here, so adding a model
is its zoo module, its family module and one line in :mod:`.registry`. Stages, codec and input size
stay on the model (and its ``ModelSpec``): a family does not restate them.

This module imports nothing heavy, so the registry can be imported anywhere; the family modules
import the training tasks (torch) they name and are loaded on the first lookup.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..quantization.scopes import ScopeChoice


@dataclass(frozen=True)
class TeacherReader:
    """How a DistilPose student reads a teacher of this family.

    ``read(model, image, frames) -> (heatmaps, kpt tokens or None, vis tokens or None)`` runs the
    teacher once; ``tokens(model) -> TokenInfo`` gives its tokens' width and visual grid.
    """

    read: Callable[..., tuple]
    tokens: Callable[[Any], Any]


@dataclass(frozen=True)
class DerivedInput:
    """A stage input that no earlier stage outputs under its name, made from the earlier outputs.

    Verification, calibration and evaluation all feed a later stage the same way through it.
    ``make(source, width)`` builds it from the earlier stage's inputs and outputs (numpy arrays or
    torch tensors; it returns the same kind), ``width`` being the input's size on axis 1.
    ``manifest`` tells a runtime how, under the bundle's ``extra["derived_inputs"]``.
    """

    make: Callable[[Mapping[str, Any], int], Any]
    manifest: dict


def last_stage(outs: dict[str, dict]) -> dict:
    """QAT: the last stage's outputs are what the task's loss reads (most families)."""
    return dict(list(outs.values())[-1])


@dataclass(frozen=True)
class Family:
    """One model family. ``name``, ``title`` and ``recipe`` are required; the rest default to "none"."""

    name: str  # ModelSpec.family
    title: str  # as its paper writes it, for messages
    recipe: str  # default recipe in training.recipes.RECIPES (its "_synthetic" variant for the synthetic set)
    task: type | None = None  # training task class; None: the codec's (regression -> RLE, heatmap -> MSE)
    layer_rule: tuple[str, str] | None = None  # layer-wise lr decay: (block-index regex, embedding regex)
    teacher_reader: TeacherReader | None = None  # None: as a teacher it gives heatmaps only
    float_scopes: ScopeChoice | None = None  # int8: modules kept in float (None: quantise everything)
    qat_outputs: Callable[[dict[str, dict]], dict] = last_stage  # stage outputs -> what task.loss reads
    qat_options: dict = field(default_factory=dict)  # task options QAT fine-tunes with
    qat_data_options: dict = field(default_factory=dict)  # task options sizing QAT's heatmap targets
    accepts_teacher: bool = False  # whether `edgepose train --teacher` applies
    derived_inputs: dict[str, DerivedInput] = field(
        default_factory=dict
    )  # export: inputs made between stages
    manifest_config: tuple[str, ...] = ()  # export: config entries a runtime reads, copied to manifest extra

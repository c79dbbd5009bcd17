"""DistilPose: a regression student distilled from a heatmap teacher (``edgepose train --teacher``).

QAT reads the clamped ``scores`` as the raw score (the raw score is not a stage output) and trains
on the regression loss only (``gt_teacher=False``): the Simulated-Heatmap and confidence losses
would first train heads a regression-only model never trained, dragging its shared tokens (one
QAT epoch of the shipped DistilPose-S: -10.3 COCO AP with them, -4.0 without; PTQ loses nothing,
so prefer PTQ for it: benchmarks/results/int8_report.md). QAT's training set still carries the
ground-truth heatmaps the default task (``gt_teacher=True``) asks for, as before.
"""

from ..quantization.scopes import Scope, ScopeChoice
from ..training.tasks import DistilPoseTask
from .base import Family


def qat_outputs(outs: dict[str, dict]) -> dict:
    last = list(outs.values())[-1]
    return {**last, "score_raw": last["scores"]}


FAMILY = Family(
    name="distilpose",
    title="DistilPose",
    recipe="distilpose",
    task=DistilPoseTask,
    float_scopes=ScopeChoice(
        candidates={
            "head": (Scope("head", why="LayerNorm+Linear -> coords, score, sigma"),),
            "patch_embed": (Scope("tde.patch_embed", why="4x3 patch embedding of the stem features"),),
            "attention_scores": (Scope("tde.blocks.*.attn", direct=True, why="q@k^T and attn@v"),),
        },
        chosen=("head",),
    ),
    qat_outputs=qat_outputs,
    qat_options={"gt_teacher": False},
    qat_data_options={"gt_teacher": True},
    accepts_teacher=True,
)

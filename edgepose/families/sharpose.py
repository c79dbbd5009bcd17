"""SHaRPose: one ViT run coarse then fine; heatmap task with the quality loss, ViTPose layer decay.

As a teacher its tokens are the fine pass's final keypoint tokens and the coarse pass's final patch
tokens (a regular grid; the fine pass's mixed-resolution tokens are not one).
"""

import numpy as np
import torch

from ..quantization.scopes import Scope, ScopeChoice
from ..training.tasks import SHaRPoseTask
from ..training.teacher import Capture, TokenInfo
from .base import DerivedInput, Family, TeacherReader


def read_teacher(model, image, frames):
    j = model.num_joints
    with Capture(model.norm) as cap:  # called by the coarse pass, then the fine pass
        out = model(image)
    coarse, fine = cap.values[0], cap.values[-1]
    return out["heatmaps"], fine[:, :j], coarse[:, 1 + j :]


def qat_outputs(outs: dict[str, dict]) -> dict:
    """The loss supervises both passes and the quality head, which the coarse stage outputs."""
    return {
        "heatmaps": list(outs.values())[-1]["heatmaps"],
        "coarse_heatmaps": outs["coarse"]["heatmaps"],
        "quality": outs["coarse"]["quality"],
    }


def patch_index(source, k: int):
    """The fine stage's patches: the k most relevant of the coarse pass, in ``torch.topk``'s order
    (numpy: a stable sort, so ties go by index) for torch tensors and runtime arrays alike."""
    rel = source["relevance"]
    if isinstance(rel, np.ndarray):
        return np.argsort(-rel, axis=1, kind="stable")[:, :k].astype(np.int64)
    return torch.topk(rel, k, dim=1).indices


PATCH_INDEX = DerivedInput(
    patch_index,
    manifest={
        "op": "topk",
        "of": "relevance",
        "axis": 1,
        "note": "indices of the k most relevant patches (k = the input's last dim), from the coarse stage",
    },
)


FAMILY = Family(
    name="sharpose",
    title="SHaRPose",
    recipe="sharpose",
    task=SHaRPoseTask,
    layer_rule=(r"^blocks\.(\d+)\.", r"^(patch_embed|pos_embed_|keypoint_tokens|quality_token)"),
    teacher_reader=TeacherReader(read_teacher, lambda m: TokenInfo(m.dim, tuple(m.coarse_grid))),
    float_scopes=ScopeChoice(
        candidates={
            "head": (Scope("head", why="token -> heatmap decoder (both passes)"),),
            "quality": (Scope("quality_predictor", why="predicted OKS: gates the fine pass"),),
            "relevance": (
                Scope("blocks.*.attn", direct=True, why="attention probabilities rank the patches"),
            ),
            "reuse": (Scope("reuse_block", why="MLP seeding the refined patches"),),
        },
        chosen=("head", "quality", "relevance"),
    ),
    qat_outputs=qat_outputs,
    derived_inputs={"patch_index": PATCH_INDEX},
    manifest_config=("quality_threshold",),  # the runtime gates the fine stage on coarse quality
)

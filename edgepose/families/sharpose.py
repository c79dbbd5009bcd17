"""SHaRPose: one ViT run coarse then fine; heatmap task with the quality loss, ViTPose layer decay.

As a teacher its tokens are the fine pass's final keypoint tokens and the coarse pass's final patch
tokens (a regular grid; the fine pass's mixed-resolution tokens are not one).
"""

from ..quantization.scopes import Scope, ScopeChoice
from ..training.tasks import SHaRPoseTask
from ..training.teacher import Capture, TokenInfo
from .base import Family, TeacherReader


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
)

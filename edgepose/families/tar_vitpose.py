"""TAR-ViTPose: ViTPose with temporal modules; heatmap task, ViTPose layer decay (its COCO stage).

As a teacher its tokens are the joint queries after JTA (read at GRA's input) and the current
frame's encoder token map.
"""

from ..quantization.scopes import Scope, ScopeChoice
from ..training.tasks import HeatmapTask
from ..training.teacher import Capture, TokenInfo, teacher_clip
from .base import Family, TeacherReader


def read_teacher(model, image, frames):
    clip = teacher_clip(model, image, frames)
    b, t = clip.shape[:2]
    with Capture(model.cross_attention, arg=1) as queries, Capture(model.backbone) as maps:
        out = model(clip)  # GRA's context = the joint queries; the encoder runs once over all frames
    features = maps.values[0].reshape(b, t, *maps.values[0].shape[1:])[:, t // 2]  # current frame
    return out["heatmaps"], queries.values[-1], features.flatten(2).transpose(1, 2)


FAMILY = Family(
    name="tar_vitpose",
    title="TAR-ViTPose",
    recipe="tar_vitpose",
    task=HeatmapTask,
    layer_rule=(r"^backbone\.layers\.(\d+)\.", r"^backbone\.(patch_embed|pos_embed)"),
    teacher_reader=TeacherReader(read_teacher, lambda m: TokenInfo(m.embed_dim, tuple(m.grid))),
    float_scopes=ScopeChoice(
        candidates={
            "mask_head": (
                Scope(
                    "heatmap_head",
                    why="frame-stage decoder whose heatmaps feed the 0.2 mask threshold",
                    stages=("frame",),
                ),
            ),
            "decoder": (
                Scope(
                    "heatmap_head",
                    why="temporal-stage decoder giving the final heatmaps",
                    stages=("temporal",),
                ),
            ),
            "jta_cross": (Scope("masked_attention_layers", why="masked feature-to-joint attention"),),
            "gra": (Scope("cross_attention", why="restore: current tokens attend to the joint queries"),),
        },
        chosen=("decoder",),
    ),
)

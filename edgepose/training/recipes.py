"""The papers' optimisers and schedules as named recipes, plus short ``*_synthetic`` variants.

Paper recipes (batch = total over GPUs; milestones in epochs, scaled with ``--epochs``):

================  =======  ======  =====  =====  ======  ===============  ===========  =========================
recipe            optim    lr      wd     batch  epochs  lr steps (x g)   layer decay  source
================  =======  ======  =====  =====  ======  ===============  ===========  =========================
dsta              AdamW    2e-4    0.01   32     40      20, 30 (x0.1)    -            DSTA appendix A; batch:
                                                                                       official config (1 GPU x 32)
distilpose        Adam     1e-3    0      512    300     200, 260 (x0.1)  -            DistilPose 4.1.2, S config
                                                                                       (8 x 64; warm-up 500 its)
sharpose          AdamW    5e-4    0.1    512    210     170, 200 (x0.1)  0.8 / 12     SHaRPose 4.1, small config
                                                                                       (4 x 128; warm-up 500 its;
                                                                                       quality loss from 180)
tar_vitpose       AdamW    5e-6    0.1    16     30      every 5 (x0.5)   -            TAR paper A + official
                                                                                       config: fine-tunes a COCO
                                                                                       ViTPose (--weights)
vitpose_s         AdamW    5e-4    0.1    512    210     170, 200 (x0.1)  0.8 / 12     ViTPose-S mmpose config
                                                                                       (clip 1.0, warm-up 500):
                                                                                       TAR's COCO stage: trains
                                                                                       its ViTPose on stills
pave              AdamW    2e-5    1e-4   8      50      40 (x0.1)        -            PAVE-Net official config
                                                                                       res50_num_frames_3_
                                                                                       posetrack17.py (clip 0.1;
                                                                                       fine-tunes COCO PETR)
================  =======  ======  =====  =====  ======  ===============  ===========  =========================

DSTA and TAR-ViTPose also weight joints as their PoseTrack loaders do (HRNet's weights: elbows
and knees 1.2, wrists and ankles 1.5); TAR's heatmap targets use sigma 3 (its official config).

The official DSTA config file differs from its paper (lr 5e-5, 20 epochs, steps 10/15): we
follow the paper. TAR-ViTPose trains in the paper's two stages: ``vitpose_s`` trains its
ViTPose (encoder + decoder, no temporal modules; ``single_frame``) on still crops, then
``tar_vitpose`` trains the whole model on video from it (``--weights``), with no layer-wise
decay (one lr for the ViT and the temporal modules, as the official config).

``*_synthetic`` variants are what the synthetic benchmark uses (``edgepose train --data
synthetic`` picks them): the paper's optimiser, schedule shape (milestones at the same
fractions of training), weight decay and layer decay, with batch 32, 30 epochs, one epoch of
linear warm-up, and the learning rate of the stage that trains from random initialisation:
DSTA 1e-3 (the paper's 2e-4 fine-tunes a COCO RLE model), TAR-ViTPose the ``vitpose_s`` stage's
5e-4 with layer decay (the paper's 5e-6 fine-tunes), DistilPose and SHaRPose their papers' lr
(they train from scratch, SHaRPose from MAE weights we do not ship). ``vitpose_s_synthetic``
and ``tar_vitpose_finetune_synthetic`` are TAR's two stages at that scale, the second at the
paper's ratio of fine-tune to ViTPose lr per sample (1.6e-4).

PAVE-Net (``pave``, whole-frame windows, :class:`~.pave_task.SetPredictionTask`): the official
config's AdamW, weight decay, gradient clipping (max norm 0.1) and step at 40 of 50 epochs; its
batch is one frame window per GPU accumulated over 8 iterations (``cumulative_iters=8``), taken
here as a batch of 8 on one GPU. Not carried over: its lr multipliers (0.1 for the backbone,
the deformable sampling offsets and reference points), which the trainer's recipes have no rule
for, and its frozen first ResNet stage with frozen BatchNorm (they keep a COCO PETR backbone as
pretrained). ``pave_synthetic`` trains from random initialisation, so it takes PETR's COCO lr
(2e-4, ``petr_r50_16x2_100e_coco.py``, which trains the transformer from scratch) instead of the
2e-5 that fine-tunes, and a batch of 8 frame windows (a whole frame costs far more than a crop).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from ..families import families, get_family
from .trainer import TrainConfig


@dataclass(frozen=True)
class Recipe:
    name: str
    family: str
    source: str
    optimizer: str
    lr: float
    weight_decay: float
    batch_size: int
    epochs: int
    milestones: tuple[float, ...] = ()  # epochs of the recipe's own length
    gamma: float = 0.1
    schedule: str = "step"
    warmup_steps: int = 0
    warmup_epochs: float = 0.0
    grad_clip: float | None = None
    layer_decay: float | None = None
    task_options: dict = field(default_factory=dict)
    data_options: dict = field(default_factory=dict)  # TopDownDataset options (joint weights, heatmap sigma)
    single_frame: bool = False  # trains the model's single-frame part on still crops (see trained_part)

    def dataset_options(self, layout: str) -> dict:
        """``data_options`` for a TopDownDataset in ``layout`` (joint weights by name -> per slot)."""
        from ..core.keypoints import get_layout

        opts = dict(self.data_options)
        if "joint_weights" in opts:
            named = opts["joint_weights"]
            opts["joint_weights"] = [float(named.get(n, 1.0)) for n in get_layout(layout).names]
        return opts

    def config(
        self,
        epochs: int | None = None,
        batch_size: int | None = None,
        lr: float | None = None,
        steps_per_epoch: int | None = None,
        **overrides,
    ) -> TrainConfig:
        """A TrainConfig; milestones become fractions of training so they scale with ``epochs``."""
        warmup = self.warmup_steps
        if self.warmup_epochs and steps_per_epoch:
            warmup = max(warmup, round(self.warmup_epochs * steps_per_epoch))
        return TrainConfig(
            epochs=int(epochs or self.epochs),
            batch_size=int(batch_size or self.batch_size),
            optimizer=self.optimizer,
            lr=float(lr if lr is not None else self.lr),
            weight_decay=self.weight_decay,
            schedule=self.schedule,
            milestones=tuple(m / self.epochs for m in self.milestones),
            gamma=self.gamma,
            warmup_steps=int(warmup),
            grad_clip=self.grad_clip,
            **overrides,
        )

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _synthetic(paper: Recipe, **changes) -> Recipe:
    epochs = 30
    base = dict(
        name=f"{paper.name}_synthetic",
        source=f"short variant of {paper.name} for the synthetic benchmark",
        batch_size=32,
        epochs=epochs,
        milestones=tuple(m * epochs / paper.epochs for m in paper.milestones),
        warmup_steps=0,
        warmup_epochs=1.0,
    )
    return dataclasses.replace(paper, **{**base, **changes})


# HRNet's per-joint loss weights, which DSTA's and TAR-ViTPose's PoseTrack loaders apply
# (USE_DIFFERENT_JOINTS_WEIGHT = True in both); their heatmap sigma is 3 (DCPose lineage).
HRNET_JOINT_WEIGHTS = {
    "left_elbow": 1.2,
    "right_elbow": 1.2,
    "left_wrist": 1.5,
    "right_wrist": 1.5,
    "left_knee": 1.2,
    "right_knee": 1.2,
    "left_ankle": 1.5,
    "right_ankle": 1.5,
}

_DSTA = Recipe(
    "dsta",
    "dsta",
    "DSTA appendix A (AdamW, betas 0.9/0.999, wd 0.01); batch: official config",
    "adamw",
    2e-4,
    0.01,
    32,
    40,
    (20, 30),
    0.1,
    data_options={"joint_weights": HRNET_JOINT_WEIGHTS},
)
_DISTILPOSE = Recipe(
    "distilpose",
    "distilpose",
    "DistilPose sec. 4.1.2 and DistilPose_S_coco_256x192.py",
    "adam",
    1e-3,
    0.0,
    512,
    300,
    (200, 260),
    0.1,
    warmup_steps=500,
)
_SHARPOSE = Recipe(
    "sharpose",
    "sharpose",
    "SHaRPose sec. 4.1 and sharpose_small_coco_256x192_4xb128_210e.py",
    "adamw",
    5e-4,
    0.1,
    512,
    210,
    (170, 200),
    0.1,
    warmup_steps=500,
    layer_decay=0.8,
    task_options={"quality_weight": 0.03, "quality_from": 180 / 210},
)
_TAR = Recipe(
    "tar_vitpose",
    "tar_vitpose",
    "TAR-ViTPose appendix A and configTARViTPoseVitB.yaml (fine-tunes COCO ViTPose)",
    "adamw",
    5e-6,
    0.1,
    16,
    30,
    (5, 10, 15, 20, 25),
    0.5,
    data_options={"joint_weights": HRNET_JOINT_WEIGHTS, "heatmap_sigma": 3.0},
)
_VITPOSE_S = Recipe(
    "vitpose_s",
    "tar_vitpose",
    "ViTPose-S mmpose config td-hm_ViTPose-small_8xb64-210e_coco-256x192.py",
    "adamw",
    5e-4,
    0.1,
    512,
    210,
    (170, 200),
    0.1,
    warmup_steps=500,
    grad_clip=1.0,
    layer_decay=0.8,
    single_frame=True,
)
# The paper's fine-tune lr per sample is a third of ViTPose-S's (5e-6 at batch 16 vs 5e-4 at 512):
# at the synthetic stage's lr (5e-4) and the benchmark's batch (16) that is 1.6e-4.
TAR_FINETUNE_SYNTHETIC_LR = (
    _VITPOSE_S.lr * (_TAR.lr / _TAR.batch_size) / (_VITPOSE_S.lr / _VITPOSE_S.batch_size)
)

_PAVE = Recipe(
    "pave",
    "pavenet",
    "PAVE-Net official configs/PAVE/res50_num_frames_3_posetrack17.py (AdamW, wd 1e-4, "
    "clip 0.1, step 40 of 50; fine-tunes a COCO PETR)",
    "adamw",
    2e-5,
    1e-4,
    8,
    50,
    (40,),
    0.1,
    grad_clip=0.1,
    task_options={"joint_weights": HRNET_JOINT_WEIGHTS},
)

RECIPES: dict[str, Recipe] = {
    r.name: r
    for r in (
        _DSTA,
        _synthetic(_DSTA, lr=1e-3),
        _DISTILPOSE,
        _synthetic(_DISTILPOSE),
        _SHARPOSE,
        _synthetic(_SHARPOSE),
        _TAR,
        _synthetic(
            _VITPOSE_S,
            name="tar_vitpose_synthetic",
            family="tar_vitpose",
            source="short variant of vitpose_s (TAR-ViTPose from scratch) for the synthetic benchmark",
            data_options=_TAR.data_options,
            single_frame=False,
        ),
        _synthetic(
            _TAR,
            name="tar_vitpose_finetune_synthetic",
            lr=TAR_FINETUNE_SYNTHETIC_LR,
            source="short variant of tar_vitpose (fine-tunes a ViTPose-S trained with "
            "vitpose_s_synthetic) for the synthetic benchmark",
        ),
        _VITPOSE_S,
        _synthetic(_VITPOSE_S, data_options=_TAR.data_options),
        _PAVE,
        _synthetic(_PAVE, lr=2e-4, batch_size=8),
    )
}


def trained_part(model, spec, recipe: Recipe):
    """The module ``recipe`` trains and the spec its data follow.

    Usually the model and its spec. A ``single_frame`` recipe trains the model's single-frame
    part (TAR-ViTPose's ViTPose: ``model.single_frame_model()``, which shares its parameters)
    on still crops: the stage the papers run on COCO before the video training.
    """
    if not recipe.single_frame:
        return model, spec
    make = getattr(model, "single_frame_model", None)
    if make is None:
        raise ValueError(
            f"recipe {recipe.name} trains a single-frame part, which {spec.name} does not have "
            f"(it is the ViTPose stage of TAR-ViTPose)"
        )
    return make(), dataclasses.replace(spec, frame_offsets=(0,))


def get_recipe(name: str) -> Recipe:
    if name not in RECIPES:
        raise KeyError(f"unknown recipe {name!r}; known: {', '.join(RECIPES)}")
    return RECIPES[name]


def recipe_for(spec, synthetic: bool = False) -> Recipe:
    """The paper recipe ``spec``'s family object names, or its synthetic variant."""
    name = get_family(spec).recipe
    return get_recipe(f"{name}_synthetic" if synthetic else name)


# Layer-wise lr decay (ViTPose/SHaRPose's LayerDecayOptimizerConstructor): embeddings are layer 0,
# block i is layer i + 1, everything after the blocks is the last layer (num_blocks + 1);
# lr scale = rate ** (num_blocks + 1 - layer). Which parameters are blocks and embeddings is the
# family object's ``layer_rule``.
def layer_decay(model, family: str, rate: float) -> Callable[[str], float]:
    """``name -> lr scale`` for the trainer; names prefixed ``task.`` (training-only) get 1."""
    rule = get_family(family).layer_rule
    if rule is None:
        known = sorted(n for n, f in families().items() if f.layer_rule is not None)
        raise KeyError(f"layer-wise lr decay has no layer rule for family {family!r}; known: {known}")
    block, embed = (re.compile(p) for p in rule)
    blocks = {int(m.group(1)) for n, _ in model.named_parameters() if (m := block.match(n))}
    if not blocks:
        raise ValueError(f"no transformer blocks matched {rule[0]!r} in the {family} model")
    top = max(blocks) + 2  # embeddings 0, blocks 1..n, the rest n + 1

    def scale(name: str) -> float:
        if name.startswith("task."):
            return 1.0
        if embed.match(name):
            layer = 0
        elif m := block.match(name):
            layer = int(m.group(1)) + 1
        else:
            layer = top
        return rate ** (top - layer)

    return scale

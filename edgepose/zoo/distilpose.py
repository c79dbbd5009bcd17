"""DistilPose-S (Ye et al., CVPR 2023): tokenized pose regression distilled from a heatmap teacher.

Architecture, read from the official code (yshMars/DistilPose:
``configs/.../distilpose/coco/DistilPose_S_coco_256x192.py``,
``distilpose/models/backbones/stemnet.py``,
``distilpose/models/heads/utils/tokenbase.py`` class ``DistilPose_base``):

    image (B,3,256,192) -> stemnet -> (B,256,64,48)
      -> 4x3 patches (16x16 grid) -> linear embedding to 192 + fixed sine position
      -> [17 keypoint tokens | 256 visual tokens]
      -> Token-distilling Encoder: 12 pre-norm layers, 8 heads, MLP 576, the
         position embedding re-added to the visual tokens before every layer
         after the first ('sine-full')
      -> keypoint tokens -> LayerNorm -> Linear(192, 5)
      -> coords = sigmoid(out[..., 0:2]) as (x/W, y/H)
         score_raw = out[..., 2]
         sigma = softplus(out[..., 3:5]) as (sigma_x, sigma_y)

Output semantics (official). ``sigma`` is in heatmap pixels of the 64x48 grid
(1/4 of input pixels): the Simulated-Heatmap loss draws a Gaussian centred at
``coords * (48, 64)`` with these sigmas. ``score_raw`` is *not* a logit: the
confidence loss is an L1 between it and the teacher heatmap's value at the
predicted location, and the official decoder writes it unchanged as the
keypoint confidence (and the paper's instance score is its mean times the box
score). So ``scores``, which our contract keeps in [0, 1], is
``clamp(score_raw, 0, 1)`` by default: identical to the official confidence
wherever the official one is a valid probability. ``score_activation="sigmoid"``
is offered for models trained with a logit loss; it changes the official
checkpoint's confidence scale, so it is not the default.

Training-only parts: none are stored in the student. The teacher (a TokenPose
with an HRNet-W48) is held by the official detector as a plain attribute and
is absent from its state dict; the token-distillation losses compare student
and teacher tokens directly (both 192-d), with no projection; the losses hold
no parameters. What those losses need (the encoder's final keypoint and visual
tokens, and ``score_raw``) comes from :meth:`DistilPoseS.forward_distill`,
which is not a stage, so it is never exported. The fixed sine table, stored in
official checkpoints as a frozen parameter ``pos_embedding``, is a
non-persistent buffer here, rebuilt from the config; conversion checks the
stored one equals it.

Not in the graph: flip test (the official evaluation averages coords of the
flipped crop, mirrored with ``x -> 1 - x`` and re-paired, and scores) is
pre/post-processing, as are crops and normalisation.
"""

from __future__ import annotations

import re

import torch
import torch.nn.functional as F
from torch import nn

from .base import PoseModel
from .checkpoints import CheckpointError
from .layers.sine_position import sine_position_embedding_2d
from .layers.stemnet import StemNet
from .spec import ModelSpec, PaperNumbers
from .vit_blocks import TOKENPOSE, Block, init_vit_weights

# score_raw -> scores in [0, 1]; see the module docstring for why clamp is the default.
SCORE_ACTIVATIONS = {
    "clamp": lambda s: s.clamp(0.0, 1.0),
    "sigmoid": torch.sigmoid,
}

# Position-embedding modes of the official TDE: added once, or ('sine-full') re-added before every layer.
POS_EMBEDDINGS = {"sine": False, "sine-full": True}

OFFICIAL_BACKBONE = "backbone."
OFFICIAL_HEAD = "keypoint_head.tokenhead."

# Official head keys (after OFFICIAL_HEAD) <-> ours, one table used both ways. In the official
# Transformer, layers.<i>.0 is Residual(PreNorm(Attention)) and layers.<i>.1 Residual(PreNorm(FeedForward));
# FeedForward.net is (Linear, GELU, Dropout, Linear, Dropout). The stemnet (backbone.*) keeps its names.
_HEAD_KEYS = (
    ("keypoint_token", "tde.keypoint_tokens"),
    ("patch_to_embedding.{p}", "tde.patch_embed.{p}"),
    ("transformer.layers.{i}.0.fn.norm.{p}", "tde.blocks.{i}.attn_norm.{p}"),
    ("transformer.layers.{i}.0.fn.fn.to_qkv.weight", "tde.blocks.{i}.attn.qkv.weight"),
    ("transformer.layers.{i}.0.fn.fn.to_out.0.{p}", "tde.blocks.{i}.attn.proj.{p}"),
    ("transformer.layers.{i}.1.fn.norm.{p}", "tde.blocks.{i}.mlp_norm.{p}"),
    ("transformer.layers.{i}.1.fn.fn.net.0.{p}", "tde.blocks.{i}.mlp.fc1.{p}"),
    ("transformer.layers.{i}.1.fn.fn.net.3.{p}", "tde.blocks.{i}.mlp.fc2.{p}"),
    ("mlp_head.{i}.{p}", "head.{i}.{p}"),
)
_FIELDS = {"i": r"(?P<i>\d+)", "p": r"(?P<p>weight|bias)"}


def _template_regex(template: str) -> re.Pattern:
    parts = re.split(r"\{(\w)\}", template)  # literal, field, literal, ...
    return re.compile("".join(re.escape(t) if n % 2 == 0 else _FIELDS[t] for n, t in enumerate(parts)) + "$")


_OFFICIAL_TO_OURS = tuple((_template_regex(off), ours) for off, ours in _HEAD_KEYS)
_OURS_TO_OFFICIAL = tuple((_template_regex(ours), off) for off, ours in _HEAD_KEYS)


def official_to_ours(key: str) -> str | None:
    """Our name for an official DistilPose key, or None when the key is not one we know."""
    if key.startswith(OFFICIAL_BACKBONE):
        return key
    if key.startswith(OFFICIAL_HEAD):
        rest = key[len(OFFICIAL_HEAD) :]
        for pattern, target in _OFFICIAL_TO_OURS:
            m = pattern.match(rest)
            if m:
                return target.format(**m.groupdict())
    return None


def ours_to_official(key: str) -> str:
    """The official name of one of our keys (the inverse of :func:`official_to_ours`)."""
    if key.startswith(OFFICIAL_BACKBONE):
        return key
    for pattern, target in _OURS_TO_OFFICIAL:
        m = pattern.match(key)
        if m:
            return OFFICIAL_HEAD + target.format(**m.groupdict())
    raise KeyError(f"{key!r} has no official DistilPose name")


def tokenpose_block(dim: int, heads: int, mlp_dim: int) -> Block:
    """TokenPose's pre-norm encoder layer: qkv without bias, output projection with one, logits
    scaled by ``head_dim ** -0.5`` (``scale_with_head=True``), exact GELU, LayerNorm eps 1e-5, no
    stochastic depth; our names ``attn_norm``/``attn``/``mlp_norm``/``mlp`` (``_HEAD_KEYS``)."""
    return Block(dim, heads, qkv_bias=False, eps=1e-5, mlp_hidden=mlp_dim, names=TOKENPOSE)


class TokenDistillingEncoder(nn.Module):
    """Feature map -> (keypoint tokens (B,K,D), visual tokens (B,P,D)) after the last layer.

    The official patch embedding is a Linear over each patch flattened in
    (row, col, channel) order; here it is the equivalent strided Conv2d (same
    maths, friendlier to exporters and int8), and conversion reshapes the
    Linear weight into the conv kernel.
    """

    def __init__(
        self,
        in_channels,
        feature_size,
        patch_size,
        num_keypoints,
        dim,
        depth,
        heads,
        mlp_dim,
        pos_every_layer,
    ):
        super().__init__()
        fh, fw = feature_size
        ph, pw = patch_size
        if fh % ph or fw % pw:
            raise ValueError(f"feature map {fh}x{fw} is not divisible by patch size {ph}x{pw}")
        self.grid = (fh // ph, fw // pw)
        self.num_keypoints = num_keypoints
        self.pos_every_layer = pos_every_layer
        self.patch_embed = nn.Conv2d(in_channels, dim, kernel_size=(ph, pw), stride=(ph, pw))
        self.keypoint_tokens = nn.Parameter(torch.zeros(1, num_keypoints, dim))
        self.register_buffer("pos", sine_position_embedding_2d(*self.grid, dim)[None], persistent=False)
        self.blocks = nn.ModuleList(tokenpose_block(dim, heads, mlp_dim) for _ in range(depth))

    def forward(self, feature: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        vis = self.patch_embed(feature).flatten(2).transpose(1, 2) + self.pos  # (B, P, D), row-major grid
        x = torch.cat([self.keypoint_tokens.expand(vis.shape[0], -1, -1), vis], dim=1)
        k = self.num_keypoints
        for i, block in enumerate(self.blocks):
            if i > 0 and self.pos_every_layer:
                x = torch.cat([x[:, :k], x[:, k:] + self.pos], dim=1)
            x = block(x)
        return x[:, :k], x[:, k:]


class DistilPoseS(PoseModel):
    """Stemnet + Token-distilling Encoder + per-keypoint regression head; one stage ``model``."""

    STAGES = {"model": (("image",), ("coords", "sigma", "scores"))}
    codec = "regression"

    def __init__(
        self,
        num_joints: int = 17,
        input_size: tuple[int, int] = (256, 192),
        stem_width: int = 64,
        stem_blocks: int = 4,
        patch_size: tuple[int, int] = (4, 3),
        dim: int = 192,
        depth: int = 12,
        heads: int = 8,
        mlp_ratio: int = 3,
        hidden_dim: int = 64,
        pos_embedding: str = "sine-full",
        score_activation: str = "clamp",
    ):
        super().__init__(num_joints, input_size)
        if score_activation not in SCORE_ACTIVATIONS:
            raise ValueError(
                f"score_activation must be one of {sorted(SCORE_ACTIVATIONS)}, got {score_activation!r}"
            )
        if pos_embedding not in POS_EMBEDDINGS:
            raise ValueError(f"pos_embedding must be one of {sorted(POS_EMBEDDINGS)}, got {pos_embedding!r}")
        h, w = self.input_size
        if h % 4 or w % 4:
            raise ValueError(f"input size {h}x{w} must be divisible by 4 (stemnet stride)")
        self.score_activation = score_activation
        self.backbone = StemNet(stem_width, stem_blocks)
        self.tde = TokenDistillingEncoder(
            self.backbone.out_channels,
            (h // 4, w // 4),
            tuple(patch_size),
            num_joints,
            dim,
            depth,
            heads,
            dim * mlp_ratio,
            POS_EMBEDDINGS[pos_embedding],
        )
        # Official rule: a two-layer head only when dim <= hidden_dim / 2 (never for DistilPose-S: 192 > 32).
        out_dim = 5  # x, y, score, sigma_x, sigma_y
        if dim <= hidden_dim * 0.5:
            self.head = nn.Sequential(
                nn.LayerNorm(dim),
                nn.Linear(dim, hidden_dim),
                nn.LayerNorm(hidden_dim),
                nn.Linear(hidden_dim, out_dim),
            )
        else:
            self.head = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, out_dim))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.backbone.reset_parameters()
        self.tde.apply(init_vit_weights)
        self.head.apply(init_vit_weights)
        nn.init.trunc_normal_(self.tde.keypoint_tokens, std=0.02)
        # The official patch embedding is a Linear (trunc-normal 0.02, bias 0); keep that for the conv form.
        nn.init.trunc_normal_(self.tde.patch_embed.weight, std=0.02)
        nn.init.zeros_(self.tde.patch_embed.bias)

    # -- forward paths -------------------------------------------------------------------------

    def forward_distill(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        """Everything training needs: the stage outputs plus ``score_raw`` (B,J), the official
        unbounded confidence, and the encoder's final ``kpt_tokens`` (B,J,D) and ``vis_tokens``
        (B,P,D) for the token-distillation losses. Not a stage: never exported."""
        kpt, vis = self.tde(self.backbone(image))
        out = self.head(kpt)
        raw = out[..., 2]
        return {
            "coords": out[..., 0:2].sigmoid(),
            "sigma": F.softplus(out[..., 3:5]),
            "scores": SCORE_ACTIVATIONS[self.score_activation](raw),
            "score_raw": raw,
            "kpt_tokens": kpt,
            "vis_tokens": vis,
        }

    def forward_model(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.forward_distill(image)
        return {k: out[k] for k in self.STAGES["model"][1]}

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.forward_model(image)

    def example_inputs(self, stage: str, batch: int = 2, seed: int = 0) -> dict[str, torch.Tensor]:
        self.stage_io(stage)
        return {"image": self.example_image(batch, seed)}

    # -- official checkpoints -------------------------------------------------------------------

    def convert_official_state(self, state: dict[str, torch.Tensor]):
        """Map an official mmpose DistilPose checkpoint (``backbone.*``, ``keypoint_head.tokenhead.*``).

        Keys with no counterpart in this model are passed through under their
        official names, so the strict check lists them as unexpected; missing
        keys are named by ours; mis-shaped keys raise here, named in both layouts.
        """
        if not any(k.startswith((OFFICIAL_BACKBONE, OFFICIAL_HEAD)) for k in state):
            prefixes = sorted({k.split(".")[0] + "." for k in state})
            raise CheckpointError(
                f"not an official DistilPose checkpoint: expected keys under {OFFICIAL_BACKBONE!r} and "
                f"{OFFICIAL_HEAD!r} (mmpose TopDownDistil with DistilPoseHead); found prefixes {prefixes[:8]}"
            )
        own = self.state_dict()
        converted, ignored, shape_errors = {}, [], []
        for key, value in state.items():
            if key == OFFICIAL_HEAD + "pos_embedding":
                self._check_official_pos_embedding(value)
                ignored.append(key)
                continue
            ours = official_to_ours(key)
            if ours not in own:  # unknown, or a part this config lacks (deeper encoder, 2-layer head)
                converted[key] = value
                continue
            if ours == "tde.patch_embed.weight" and value.dim() == 2:
                value = self._linear_to_patch_kernel(key, value, own[ours].shape, shape_errors)
                if value is None:
                    continue
            if tuple(value.shape) != tuple(own[ours].shape):
                shape_errors.append(
                    f"{key} (ours {ours}): checkpoint {tuple(value.shape)} vs model {tuple(own[ours].shape)}"
                )
            converted[ours] = value
        if shape_errors:
            raise CheckpointError(
                "official DistilPose checkpoint does not fit "
                f"{getattr(self, 'spec_name', type(self).__name__)}: "
                "mis-shaped keys: " + "; ".join(shape_errors[:6]) + (" ..." if len(shape_errors) > 6 else "")
            )
        return converted, ignored

    def to_official_state(self) -> dict[str, torch.Tensor]:
        """Our weights under the official names and shapes (the inverse of the conversion), including
        the frozen ``pos_embedding``: for tests, and for handing weights back to the official code."""
        official = {}
        for key, value in self.state_dict().items():
            if key == "tde.patch_embed.weight":
                d, c, ph, pw = value.shape
                value = value.permute(0, 2, 3, 1).reshape(d, ph * pw * c)  # Linear over (row, col, channel)
            official[ours_to_official(key)] = value.detach().clone()
        official[OFFICIAL_HEAD + "pos_embedding"] = self.tde.pos.detach().clone()
        return official

    def _linear_to_patch_kernel(self, key, weight, kernel_shape, errors):
        d, c, ph, pw = kernel_shape
        if tuple(weight.shape) != (d, ph * pw * c):
            errors.append(
                f"{key} (ours tde.patch_embed.weight): checkpoint {tuple(weight.shape)} vs official "
                f"Linear shape {(d, ph * pw * c)} for a {ph}x{pw} patch of {c} channels"
            )
            return None
        return weight.reshape(d, ph, pw, c).permute(0, 3, 1, 2).contiguous()

    def _check_official_pos_embedding(self, value: torch.Tensor) -> None:
        expected = self.tde.pos
        same_shape = tuple(value.shape) == tuple(expected.shape)
        if not same_shape or not torch.allclose(value.float(), expected, atol=1e-4):
            raise CheckpointError(
                f"{OFFICIAL_HEAD}pos_embedding {tuple(value.shape)} is not the fixed sine table "
                f"{tuple(expected.shape)} this model rebuilds; the checkpoint was trained with another "
                "token grid or a learnable embedding"
            )


_FULL_CONFIG = dict(
    num_joints=17,
    input_size=(256, 192),
    stem_width=64,
    stem_blocks=4,
    patch_size=(4, 3),
    dim=192,
    depth=12,
    heads=8,
    mlp_ratio=3,
    hidden_dim=64,
    pos_embedding="sine-full",
    score_activation="clamp",
)
_TINY_CONFIG = {
    **_FULL_CONFIG,
    "input_size": (64, 48),
    "stem_width": 16,
    "stem_blocks": 1,
    "dim": 32,
    "depth": 2,
    "heads": 4,
    "hidden_dim": 32,
}

SPECS = (
    ModelSpec(
        name="distilpose_s",
        family="distilpose",
        builder=DistilPoseS,
        config=_FULL_CONFIG,
        layout="coco17",
        summary=(
            "DistilPose-S: stemnet + 12-layer Token-distilling Encoder regressing coords, "
            "sigmas and confidence (COCO-17)"
        ),
        paper=PaperNumbers(
            params_m=5.36,
            gflops={"total": 2.38},
            accuracy="71.6 AP COCO val2017 (flip test, SimpleBaselines detections 56.4 AP)",
            note=(
                "Params match the official model exactly (5.364M; the frozen 49k-entry sine table is a "
                "buffer "
                "here and not counted, as in the paper). GFLOPs: the paper's 2.38 is mmcv's module counter, "
                "which counts Conv/Linear (and norm/activation elements) but not the attention matmuls the "
                "official code writes with torch.einsum; torch's counter also counts those "
                "(12 layers x 2 x 273^2 x 192 MACs = 0.34G), so we measure about 2.70."
            ),
        ),
    ),
    ModelSpec(
        name="distilpose_s_tiny",
        family="distilpose",
        builder=DistilPoseS,
        config=_TINY_CONFIG,
        layout="coco17",
        summary="DistilPose-S code at test size (64x48 input, 2 layers of dim 32)",
        variant_of="distilpose_s",
    ),
)

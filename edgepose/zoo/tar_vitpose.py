"""TAR-ViTPose (Temporal Aggregate-and-Restore ViTPose), ViT-S, split into frame and temporal stages.

Architecture (paper §3, official ``models/best/TAR_ViTPose.py``): a ViTPose encoder
turns every frame into a 16x12 token map; the classic decoder (two deconvolutions
and a 1x1 conv) turns each frame's tokens into heatmaps, from which per-joint masks
on the token grid are made (min-max normalised, bilinearly resized, kept where
>= 0.2). JTA: 17 learnable joint queries run 6 layers of mask-aware cross-attention
over the tokens of all frames, joint-to-joint self-attention and an FFN (all
post-norm, as the official code). GRA: the current frame's tokens cross-attend to
the joint queries once; the same decoder turns the result into the heatmaps.

Stages (the ring buffer stores what ``frame`` returns, so each frame is encoded once):

* ``frame``: ``image`` (B, 3, 256, 192) -> ``features`` (B, 384, 16, 12), the
  encoder's token map, and ``joint_masks`` (B, 17, 16, 12), 1.0 where the joint's
  query may attend. Both are per frame and computed in the graph from the frame's
  own decoder heatmaps, so the temporal stage never re-runs the encoder or the
  decoder on auxiliary frames; the heatmaps themselves (4x the masks' size per
  joint) are not kept because nothing downstream needs them.
* ``temporal``: ``features`` (B, T, 384, 16, 12), ``joint_masks`` (B, T, 17, 16, 12)
  stacked in time order -> ``heatmaps`` (B, 17, 64, 48) of the frame at T // 2.

``compat="official"`` reproduces two reshapes of the official forward that the
paper does not describe, so an official checkpoint gives the official outputs:

1. Tokens: the official code flattens the (C, 16, 12) map to (C, 192) and then
   *reshapes* it to (192, C) instead of transposing, so "token" i holds channels
   2i and 2i+1 at all positions (ViT-S); GRA's output is un-reshaped the same way.
2. Masks: the (T, J, N) mask stack is *viewed* as (J, T, N), so a joint's mask
   row is made of the masks of other (frame, joint) pairs.

The default ``compat="paper"`` uses real tokens (one per patch) and each joint's
own masks in every frame. In both modes a joint whose mask row is empty
everywhere attends to all tokens; the official code produces NaN there.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import PoseModel
from .checkpoints import CheckpointError
from .layers.deconv_head import DeconvHeatmapHead
from .layers.mmpretrain_vit import ViTEncoder
from .spec import ModelSpec, PaperNumbers
from .vit_blocks import Mlp, attend

COMPAT_MODES = ("paper", "official")
# Added to blocked logits. exp(-3e4) is exactly 0 in fp32 and fp16, so this equals -inf masking
# whenever a row keeps one token, while staying finite in fp16 (-1e9 would become -inf there and
# 0 * -inf = NaN for the kept tokens).
_MASK_BLOCK = -3.0e4


class _Attention(nn.Module):
    """Multi-head attention with ``nn.MultiheadAttention``'s parameters, written in plain ops.

    The official model uses ``nn.MultiheadAttention(batch_first=True)``; keeping its
    ``in_proj_weight``/``in_proj_bias``/``out_proj`` names keeps the checkpoint
    mapping an identity, while explicit matmuls export everywhere.
    """

    def __init__(self, dim: int, heads: int):
        super().__init__()
        if dim % heads:
            raise ValueError(f"attention dim {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * dim))
        self.out_proj = nn.Linear(dim, dim)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.out_proj.bias)

    def forward(self, query: torch.Tensor, context: torch.Tensor, bias: torch.Tensor | None = None):
        b, lq, c = query.shape
        lk = context.shape[1]
        w_q, w_k, w_v = self.in_proj_weight.chunk(3)
        b_q, b_k, b_v = self.in_proj_bias.chunk(3)
        d = c // self.heads
        q = F.linear(query, w_q, b_q).reshape(b, lq, self.heads, d).transpose(1, 2)
        k = F.linear(context, w_k, b_k).reshape(b, lk, self.heads, d).transpose(1, 2)
        v = F.linear(context, w_v, b_v).reshape(b, lk, self.heads, d).transpose(1, 2)
        bias = None if bias is None else bias.unsqueeze(1)  # same mask for every head
        return self.out_proj(attend(q, k, v, d**-0.5, scale_query=True, bias=bias)[0])


class _AttentionLayer(nn.Module):
    """``norm(query + attention(query, context))``: the official Cross/SelfAttention blocks."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.mha = _Attention(dim, heads)
        self.norm = nn.LayerNorm(dim)

    def forward(self, query, context=None, bias=None):
        return self.norm(query + self.mha(query, query if context is None else context, bias))


class _FFNLayer(Mlp):
    """``norm(x + fc2(gelu(fc1(x))))`` with a 2x hidden width, as the official FFNLayer (post-norm)."""

    def __init__(self, dim: int, hidden: int):
        super().__init__(dim, hidden)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x):
        return self.norm(x + super().forward(x))


class TARViTPose(PoseModel):
    STAGES = {
        "frame": (("image",), ("features", "joint_masks")),
        "temporal": (("features", "joint_masks"), ("heatmaps",)),
    }
    codec = "heatmap"

    @classmethod
    def frame_offsets_for(cls, frames: int) -> tuple[int, ...]:
        """A window centred on the current frame (``frames`` odd)."""
        return tuple(range(-(frames // 2), frames // 2 + 1))

    def __init__(
        self,
        num_joints: int = 17,
        input_size: tuple[int, int] = (256, 192),
        frames: int = 3,
        embed_dim: int = 384,
        depth: int = 12,
        vit_heads: int = 12,
        mlp_ratio: float = 4.0,
        patch_size: int = 16,
        patch_padding: int = 2,
        drop_path: float = 0.1,
        deconv_channels: tuple[int, ...] = (256, 256),
        jta_layers: int = 6,
        attn_heads: int = 4,
        ffn_ratio: int = 2,
        mask_threshold: float = 0.2,
        use_mask: bool = True,
        compat: str = "paper",
    ):
        if frames < 1 or frames % 2 == 0:
            raise ValueError(f"frames must be odd (a window centred on the current frame), got {frames}")
        if compat not in COMPAT_MODES:
            raise ValueError(f"compat must be one of {COMPAT_MODES}, got {compat!r}")
        super().__init__(num_joints, input_size, self.frame_offsets_for(frames))
        self.compat = compat
        self.mask_threshold = float(mask_threshold)
        self.use_mask = bool(use_mask)
        self.embed_dim = embed_dim
        self.backbone = ViTEncoder(
            input_size, patch_size, patch_padding, embed_dim, depth, vit_heads, mlp_ratio, drop_path
        )
        self.grid = self.backbone.grid
        self.heatmap_head = DeconvHeatmapHead(embed_dim, num_joints, tuple(deconv_channels))
        up = 2 ** len(deconv_channels)  # each deconvolution doubles the token map
        self.heatmap_size = (self.grid[0] * up, self.grid[1] * up)
        self.query_feat = nn.Embedding(num_joints, embed_dim)
        self.query_pe = nn.Embedding(num_joints, embed_dim)
        layers = range(jta_layers)
        self.masked_attention_layers = nn.ModuleList(_AttentionLayer(embed_dim, attn_heads) for _ in layers)
        self.self_attention_layers = nn.ModuleList(_AttentionLayer(embed_dim, attn_heads) for _ in layers)
        self.ffn_layers = nn.ModuleList(_FFNLayer(embed_dim, embed_dim * ffn_ratio) for _ in layers)
        self.cross_attention = _AttentionLayer(embed_dim, attn_heads)

    # -- stages -----------------------------------------------------------------
    def joint_masks(self, heatmaps: torch.Tensor) -> torch.Tensor:
        """Per-joint attention masks on the token grid (1 = attend), paper Eq. 3."""
        lo = heatmaps.amin(dim=(2, 3), keepdim=True)
        hi = heatmaps.amax(dim=(2, 3), keepdim=True)
        normed = (heatmaps - lo) / (hi - lo + 1e-6)
        small = F.interpolate(normed, size=self.grid, mode="bilinear", align_corners=False)
        return (small >= self.mask_threshold).to(heatmaps.dtype)

    def forward_frame(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.backbone(image)
        return {"features": features, "joint_masks": self.joint_masks(self.heatmap_head(features))}

    def forward_temporal(self, features: torch.Tensor, joint_masks: torch.Tensor) -> dict[str, torch.Tensor]:
        b, t, c, h, w = features.shape
        if t != self.num_frames:
            raise ValueError(f"temporal stage built for {self.num_frames} frames got a window of {t}")
        n, j = h * w, self.num_joints
        official = self.compat == "official"
        # (B, T, N, C) tokens; "official" reads the channel-major buffer as token-major.
        tokens = features.reshape(b, t, n, c) if official else features.flatten(3).transpose(2, 3)
        current = tokens[:, t // 2]
        memory = tokens.reshape(b, t * n, c)

        bias = None
        if self.use_mask:
            keep = joint_masks.reshape(b, t, j, n)
            keep = keep.reshape(b, j, t * n) if official else keep.transpose(1, 2).reshape(b, j, t * n)
            keep = torch.maximum(keep, 1.0 - keep.amax(dim=-1, keepdim=True))  # empty row: attend to all
            bias = (1.0 - keep) * _MASK_BLOCK

        queries = (self.query_feat.weight + self.query_pe.weight).unsqueeze(0).expand(b, -1, -1)
        jta = zip(self.masked_attention_layers, self.self_attention_layers, self.ffn_layers)
        for cross, self_attn, ffn in jta:  # feature-to-joint (masked), joint-to-joint, FFN
            queries = ffn(self_attn(cross(queries, memory, bias)))
        current = self.cross_attention(current, queries)  # GRA
        fmap = current.reshape(b, c, h, w) if official else current.transpose(1, 2).reshape(b, c, h, w)
        return {"heatmaps": self.heatmap_head(fmap)}

    def forward(self, frames: torch.Tensor) -> dict[str, torch.Tensor]:
        """frames (B, T, 3, H, W) in time order, current frame at T // 2 -> its heatmaps."""
        if frames.dim() != 5:
            raise ValueError(f"expected frames (B, T, 3, H, W), got shape {tuple(frames.shape)}")
        b, t = frames.shape[:2]
        per_frame = self.forward_frame(frames.flatten(0, 1))  # one encoder pass over all frames
        window = {k: v.reshape(b, t, *v.shape[1:]) for k, v in per_frame.items()}
        return self.forward_temporal(**window)

    def single_frame_model(self) -> ViTPoseView:
        """This model's ViTPose (encoder + decoder, no temporal modules) as a single-frame model.

        The paper starts TAR-ViTPose from a ViTPose trained on COCO; training this view first is
        that stage, and it makes the joint masks (made from the decoder's heatmaps) meaningful
        before JTA learns behind them. The view shares this model's parameters.
        """
        return ViTPoseView(self)

    def example_inputs(self, stage: str, batch: int = 2, seed: int = 0) -> dict[str, torch.Tensor]:
        self.stage_io(stage)
        if stage == "frame":
            return {"image": self.example_image(batch, seed)}
        g = torch.Generator().manual_seed(seed)
        t = self.num_frames
        return {
            "features": torch.randn(batch, t, self.embed_dim, *self.grid, generator=g),
            "joint_masks": (torch.rand(batch, t, self.num_joints, *self.grid, generator=g) < 0.3).float(),
        }

    # -- official checkpoints ------------------------------------------------------
    def convert_official_state(self, state):
        return convert_official_state(self, state)


class ViTPoseView(nn.Module):
    """ViTPose on one frame: TAR-ViTPose's encoder and classic decoder, shared with the TAR model.

    ``forward(image)`` takes (B, 3, H, W) crops, or a window (B, T, 3, H, W) of which it reads the
    current frame (T // 2). Its ``state_dict`` holds only ``backbone.*`` and ``heatmap_head.*``: a
    checkpoint of it loads into TAR-ViTPose with ``strict=False`` (``edgepose train --weights``),
    the temporal modules staying as initialised, as the paper's start from a COCO ViTPose.
    """

    codec = "heatmap"

    def __init__(self, tar: TARViTPose):
        super().__init__()
        self.backbone = tar.backbone
        self.heatmap_head = tar.heatmap_head
        self.num_joints, self.input_size, self.heatmap_size = tar.num_joints, tar.input_size, tar.heatmap_size
        self.frame_offsets = (0,)
        for attr in ("spec_name", "config"):  # checkpoints name the TAR model they start
            if hasattr(tar, attr):
                setattr(self, attr, getattr(tar, attr))

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        if image.dim() == 5:
            image = image[:, image.shape[1] // 2]
        if image.dim() != 4:
            raise ValueError(
                f"expected an image (B, 3, H, W) or frames (B, T, 3, H, W), got {tuple(image.shape)}"
            )
        return {"heatmaps": self.heatmap_head(self.backbone(image))}


# Our prefix <- official prefixes, first present wins. The official module registers
# the mmpose estimator as ``model`` *and* its backbone/deconv/final layers again as
# ``backbone`` / ``heatmap_head`` (Sequential(deconv_layers, final_layer)), so its
# state dict holds every encoder/decoder tensor twice; ``head.*`` is a plain mmpose
# ViTPose checkpoint (the paper's COCO initialisation).
OFFICIAL_PREFIXES = (
    ("backbone.", ("backbone.", "model.backbone.")),
    ("heatmap_head.deconv_layers.", ("heatmap_head.0.", "model.head.deconv_layers.", "head.deconv_layers.")),
    ("heatmap_head.final_layer.", ("heatmap_head.1.", "model.head.final_layer.", "head.final_layer.")),
)
# Official temporal-module names equal ours (nn.MultiheadAttention's in_proj_*/out_proj).
OFFICIAL_TEMPORAL = (
    "query_feat",
    "query_pe",
    "masked_attention_layers.*",
    "self_attention_layers.*",
    "ffn_layers.*",
    "cross_attention.*",
)
_SIGNATURE = "patch_embed.projection.weight"


def convert_official_state(model: TARViTPose, state: dict[str, torch.Tensor]):
    """Map the official ``{'model_state_dict'}`` onto ours; returns (converted, ignored duplicate keys).

    A plain mmpose ViTPose checkpoint (``backbone.*``, ``head.*``) maps too and then
    lacks the temporal modules (load it with ``strict=False`` to initialise training).
    """
    if not any(k.endswith(_SIGNATURE) and "backbone." in k for k in state):
        found = sorted({k.split(".")[0] for k in state})
        raise CheckpointError(
            "not a TAR-ViTPose checkpoint: expected the official keys backbone.patch_embed.projection.* "
            f"(mmpretrain ViT), heatmap_head.0.*/1.* (or model.head.*), {', '.join(OFFICIAL_TEMPORAL)}; "
            f"found top-level prefixes {found[:12]}"
        )
    converted: dict[str, torch.Tensor] = {}
    ignored: list[str] = []
    claimed: set[str] = set()
    for ours, aliases in OFFICIAL_PREFIXES:
        present = [a for a in aliases if any(k.startswith(a) for k in state)]
        for i, alias in enumerate(present):
            keys = [k for k in state if k.startswith(alias)]
            claimed.update(keys)
            if i == 0:
                converted.update({ours + k[len(alias) :]: state[k] for k in keys})
            else:
                ignored.extend(keys)  # the same tensors under the estimator's own names
    for k, v in state.items():
        if k not in claimed:  # temporal modules keep their names; strays surface as unexpected keys
            converted[k] = v
    pos = converted.get("backbone.pos_embed")
    own = model.backbone.pos_embed
    if pos is not None and pos.dim() == 3 and pos.shape[1] == own.shape[1] + 1:
        converted["backbone.pos_embed"] = pos[:, 1:]  # drop the class-token slot, as mmpretrain's loader
    return converted, sorted(ignored)


_FULL = dict(
    num_joints=17,
    input_size=(256, 192),
    frames=3,
    embed_dim=384,
    depth=12,
    vit_heads=12,
    patch_size=16,
    patch_padding=2,
    drop_path=0.1,
    deconv_channels=(256, 256),
    jta_layers=6,
    attn_heads=4,
    mask_threshold=0.2,
    use_mask=True,
    compat="paper",
)
_TINY = dict(
    _FULL,
    input_size=(64, 48),
    embed_dim=32,
    depth=2,
    vit_heads=2,
    drop_path=0.0,
    deconv_channels=(16, 16),
    jta_layers=2,
    attn_heads=2,
)

_PAPER = PaperNumbers(
    params_m=35.6,
    gflops={},
    accuracy="81.5 mAP PoseTrack17 val with 2 aux frames (Table 3/14), 81.9 with 4 aux frames (Tables 1/2)",
    note=(
        "The paper gives no GFLOPs for ViT-S (Table 5's JTA 3.87 G / GRA 21 M are ViT-B, 5 frames). "
        "Measured (GMACs, batch 1): frame = ViTPose-S encoder + classic decoder 5.59 (24.29M params), "
        "once per frame with the ring buffer; temporal = JTA + GRA + a second decoder pass 2.40 at "
        "3 frames, 3.11 at 5 (the decoder alone is 1.12, the JTA key/value projections over all "
        "frames' tokens ~1.0). Steady state 8.0 per frame vs 19.2 when the whole window is "
        "re-encoded as the official demo does. Params 35.55M = ViTPose-S 24.29M + 6 JTA layers "
        "(cross-attn, self-attn, FFN 2x) 10.65M + GRA 0.59M + queries; JTA/GRA use 4 heads (official "
        "default), the ViT-S encoder 12 heads (mmpose's ViTPose-S config)."
    ),
)

_COMMON = dict(
    family="tar_vitpose",
    builder=TARViTPose,
    layout="posetrack17",  # the network has no layout of its own: the spec names it
)

SPECS = (
    ModelSpec(
        name="tar_vitpose_s",
        config=_FULL,
        paper=_PAPER,
        summary="TAR-ViTPose ViT-S: ViTPose-S per frame + joint-centric temporal aggregation and "
        "global restoring attention over a 3-frame window (frames=5 for -2..2); 64x48 heatmaps.",
        **_COMMON,
    ),
    ModelSpec(
        name="tar_vitpose_s_tiny",
        config=_TINY,
        summary="Test-size TAR-ViTPose (same code, tiny dims, 64x48 input).",
        variant_of="tar_vitpose_s",
        **_COMMON,
    ),
    # COCO-17 builds: the network has no layout of its own (17 joint queries, 17 heatmaps), so only the
    # names differ. Note that an official TAR checkpoint (PoseTrack-trained) is not refused here.
    ModelSpec(
        name="tar_vitpose_s_coco",
        config=_FULL,
        paper=_PAPER,
        summary="COCO-17 build of tar_vitpose_s (same network, COCO joint names), for weights from COCO "
        "ViTPose or COCO-17 teachers.",
        **{**_COMMON, "layout": "coco17"},
    ),
    ModelSpec(
        name="tar_vitpose_s_coco_tiny",
        config=_TINY,
        summary="Test-size COCO-17 TAR-ViTPose (same code, tiny dims, 64x48 input).",
        variant_of="tar_vitpose_s_coco",
        **{**_COMMON, "layout": "coco17"},
    ),
)

"""PAVE-Net (Pose-Aware Video transformEr, AAAI 2026): end-to-end multi-person video pose, no detector.

The paper (``shared/papers/pave-net.md``) and the official code (zgspose/PAVENet, an mmdet/"opera"
code base: ``VideoPoseV1`` + ``VideoPoseHeadMulFrames`` + ``VideoPoseTransformerMulFrames``; ResNet-50
config ``configs/videopose/2025-2-13/2025_2_13_res50_num_frames_3_posetrack17.py``):

1. **Backbone + input projection** (per frame): ResNet-50 C3, C4, C5 (strides 8, 16, 32) and an mmdet
   ``ChannelMapper`` (1x1 conv + GroupNorm(32) per level, plus a 3x3 stride-2 conv on C5 for a fourth
   level) to ``dim`` = 256 channels.
2. **Spatial encoder** (per frame): 6 post-norm layers of multi-scale deformable self-attention
   (8 heads, 4 levels, 4 points) + FFN (1024) over the tokens of all four levels, each token
   augmented with a sine position embedding (DETR's, offset -0.5) plus a learned level embedding.
3. **Initial poses** (current frame): every token of the current frame regresses a pose
   (``kpt_branches[-1]``: an MLP 256-512-512-512-2K, added to the token's own location in logit
   space) and a person logit (``cls_branches[-1]``); the ``queries`` = 300 best become the reference
   poses, and their (projected, normalised) tokens plus learned query embeddings the pose queries.
4. **Spatiotemporal pose decoder** (3 layers): self-attention among pose queries, then pose-aware
   deformable cross-attention over all frames of the window (one point per joint around the query's
   reference pose in that frame, offsets scaled by the pose's box, one offset/weight projection per
   frame, weights normalised over frames x levels x points), FFN. After each layer one MLP per frame
   (``pre_``/current/``next_kpt_branches``) moves that frame's reference pose (the paper's per-frame
   offsets, Eq. 6). The last layer's ``cls_branches`` logit scores each query.
5. **Spatiotemporal joint decoder** (2 layers in the official config; the paper's text says 3): the
   ``max_persons`` = 20 best queries (official ``test_cfg.max_per_img``) are refined joint by joint: K
   learned joint queries per person, self-attention among a person's joints, Deformable-DETR cross-
   attention (4 points per level) over every frame around that joint's reference point in the frame,
   per-frame 2-layer MLPs moving the points; a sigma head gives each joint's RLE sigma.
6. **Outputs** as the official ``_get_bboxes_single`` makes them: x, y in input pixels (clamped to the
   image), joint score = person score x ``0.7 (1 - e^(-0.2/sx)) (1 - e^(-0.2/sy))`` and the official
   shrink of coordinates by ``p^5 / (p^5 + 1e-10)`` (a no-op unless p is tiny). The official OKS-NMS
   (threshold 0.45) that follows is data-dependent post-processing and is left to the caller; the
   paper's claim is that the network needs none.

Stages (a whole-frame model; ``input_kind = "frame"``):

* ``frame``: ``image`` (B, 3, H, W) -> ``memory`` (B, S, C): steps 1-2, once per frame. S is the sum of
  the four levels' H*W (fixed by the input size) and C = ``dim``. The ring buffer keeps these tokens
  per stream, and each frame's tokens serve the T windows that contain it (the paper's point about
  SE reuse).
* ``temporal``: ``memory_window`` (B, T, S, C), frames in ``frame_offsets`` order (-1, 0, 1) ->
  ``poses`` (B, M, K, 3) (x, y in input pixels, per-joint score in [0, 1]) and ``scores`` (B, M) person
  scores in [0, 1], M = ``max_persons``, people sorted by score: steps 3-6.

Checkpoint layout: module names mirror the official model (``backbone.``, ``neck.``, ``bbox_head.``,
``bbox_head.transformer.{encoder,decoder,refine_decoder}.layers.<i>.{attentions,norms,ffns}``), so an
official checkpoint loads with its training-only keys dropped (``fc_hm``, the three RealNVP flows);
see ``convert_official_state``. The official code differs from this one only where the graph can be
simpler with the same numbers: the per-frame softmax re-weighted by ``sum(exp)`` is one joint softmax,
the joint decoder projects each frame's memory once instead of once per person, and values are not
masked (a fixed-size input has no padding). ``impl`` picks the deformable-attention kernel
(``grid_sample`` or ``gather``, see ``deform_attn.py``).

The edge build ``pave_mnv2`` puts the zoo's MobileNet-V2 (``layers/mobilenet_v2.py``, as DSTA uses)
under the same network: C3/C4/C5 are MobileNet-V2's stride-8/16/32 outputs (layer3, layer5, layer7;
32, 96, 320 channels; the 1280-channel 1x1 head conv is not built), at dim 128, 3 encoder layers,
100 queries, a 256-wide MLP, 384x640 input. No official checkpoint exists for it; ``pad="tf"`` builds its
trunk with TensorFlow's padding so that MoveNet Lightning's pose-trained trunk loads into it
(``edgepose train pave_mnv2 --weights movenet``, ``movenet_trunk.py``; ``trunk`` names the backbone for it).
"""

from __future__ import annotations

import math
from itertools import pairwise
from typing import ClassVar

import torch
from torch import nn

from ..core.keypoints import get_layout
from .base import PoseModel
from .deform_attn import FRAME_PREFIX, FrameDeformAttn, MSDeformAttn, PoseDeformAttn
from .layers.mobilenet_v2 import MobileNetV2, make_divisible
from .resnet import RESNET50_DEPTHS, ResNet
from .spec import ModelSpec, PaperNumbers

FRAME_OFFSETS = {3: (-1, 0, 1), 5: (-2, -1, 0, 1, 2)}
TRUNKS = ("r50", "mnv2")
OFFICIAL_LAYOUT = "posetrack15"
# Official keys kept for training only: the heatmap head (loss weight 0) and the RLE flows.
TRAINING_ONLY = ("bbox_head.fc_hm.", "bbox_head.enc_flow.", "bbox_head.dec_flow.", "bbox_head.flow.")
INVALID_PROPOSAL = 1e4  # the official code puts +inf at border tokens; both give sigmoid() == 1 in float32


def inverse_sigmoid(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """mmdet's: log(x / (1 - x)) with both clamped at ``eps``."""
    x = x.clamp(0, 1)
    return torch.log(x.clamp(min=eps) / (1 - x).clamp(min=eps))


def sine_embedding(
    h: int, w: int, dim: int, offset: float = -0.5, temperature: float = 10000.0
) -> torch.Tensor:
    """mmdet ``SinePositionalEncoding(num_feats=dim/2, normalize=True, offset)`` for an unpadded map: (h*w, dim),
    rows' half first, channel i of a half is sin (even i) / cos (odd i) of ``pos / temperature^(2 (i//2) / half)``."""
    half = dim // 2
    scale, eps = 2 * math.pi, 1e-6
    y = (torch.arange(1, h + 1, dtype=torch.float32) + offset) / (h + eps) * scale
    x = (torch.arange(1, w + 1, dtype=torch.float32) + offset) / (w + eps) * scale
    i = torch.arange(half, dtype=torch.float32)
    dim_t = temperature ** (2 * torch.div(i, 2, rounding_mode="floor") / half)

    def enc(p):
        a = p[:, None] / dim_t
        return torch.where(i.remainder(2) == 0, a.sin(), a.cos())

    ey, ex = enc(y), enc(x)  # (h, half), (w, half)
    return torch.cat([ey[:, None].expand(h, w, half), ex[None].expand(h, w, half)], -1).reshape(h * w, dim)


def _half(n: int) -> int:
    return (n + 1) // 2


class ConvGN(nn.Module):
    """mmcv ``ConvModule`` with GroupNorm and no activation (key names ``conv``, ``gn``)."""

    def __init__(self, cin, cout, kernel, stride, groups):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, bias=False)
        self.gn = nn.GroupNorm(groups, cout)
        nn.init.xavier_uniform_(self.conv.weight)

    def forward(self, x):
        return self.gn(self.conv(x))


class ChannelMapper(nn.Module):
    """mmdet ``ChannelMapper``: a 1x1 ConvGN per input level, then a 3x3 stride-2 ConvGN on the last input."""

    def __init__(self, in_channels, dim, groups, extra=1):
        super().__init__()
        self.convs = nn.ModuleList(ConvGN(c, dim, 1, 1, groups) for c in in_channels)
        self.extra_convs = nn.ModuleList(
            ConvGN(in_channels[-1] if i == 0 else dim, dim, 3, 2, groups) for i in range(extra)
        )

    def forward(self, feats):
        outs = [conv(f) for conv, f in zip(self.convs, feats)]
        for i, conv in enumerate(self.extra_convs):
            outs.append(conv(feats[-1] if i == 0 else outs[-1]))
        return outs


class MobileNetV2Pyramid(MobileNetV2):
    """The zoo's MobileNet-V2 returning its stride-8, 16 and 32 outputs (layer3, layer5, layer7); no head conv."""

    TAPS = ("layer3", "layer5", "layer7")

    def __init__(self, widen_factor: float = 1.0, pad: str = "torch", input_size=None):
        super().__init__(widen_factor, 64, pad, input_size)
        del self.conv2
        self.out_channels = tuple(make_divisible(c * widen_factor) for c in (32, 96, 320))

    @staticmethod
    def output_sizes(input_size):
        h, w = input_size
        sizes = []
        for stride_ix in range(5):  # conv1, layer2, layer3, layer4, layer6 halve the map
            h, w = _half(h), _half(w)
            if stride_ix in (2, 3, 4):
                sizes.append((h, w))
        return tuple(sizes)

    def forward(self, x):
        x = self.conv1(x)
        outs = []
        for name in self.stage_names:
            x = getattr(self, name)(x)
            if name in self.TAPS:
                outs.append(x)
        return tuple(outs)


class FFN(nn.Module):
    """mmcv ``FFN`` (key names ``layers.0.0``, ``layers.1``): x + W2 relu(W1 x), with dropout."""

    def __init__(self, dim, hidden, dropout):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout)),
            nn.Linear(hidden, dim),
            nn.Dropout(dropout),
        )

    def forward(self, x):
        return x + self.layers(x)


class SelfAttention(nn.Module):
    """mmcv ``MultiheadAttention`` (key names ``attn.in_proj_weight`` ...): q = k = x + pos, v = x; residual."""

    def __init__(self, dim, heads, dropout):
        super().__init__()
        self.attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.proj_drop = nn.Dropout(dropout)

    def forward(self, x, pos):
        q = x + pos
        return x + self.proj_drop(self.attn(q, q, x, need_weights=False)[0])


class EncoderLayer(nn.Module):
    """Post-norm deformable self-attention layer (``attentions.0``, ``norms.0/1``, ``ffns.0``)."""

    def __init__(self, dim, heads, shapes, points, ffn, dropout, impl):
        super().__init__()
        self.attentions = nn.ModuleList([MSDeformAttn(dim, heads, shapes, points, impl)])
        self.norms = nn.ModuleList([nn.LayerNorm(dim), nn.LayerNorm(dim)])
        self.ffns = nn.ModuleList([FFN(dim, ffn, dropout)])
        self.drop = nn.Dropout(dropout)

    def forward(self, x, pos, reference):
        x = self.norms[0](x + self.drop(self.attentions[0](x + pos, x, reference)))
        return self.norms[1](self.ffns[0](x))


class DecoderLayer(nn.Module):
    """Post-norm decoder layer: self-attention, window cross-attention, FFN (``attentions.0/1``, ``norms.0-2``)."""

    def __init__(self, dim, heads, cross: nn.Module, ffn, dropout):
        super().__init__()
        self.attentions = nn.ModuleList([SelfAttention(dim, heads, dropout), cross])
        self.norms = nn.ModuleList([nn.LayerNorm(dim) for _ in range(3)])
        self.ffns = nn.ModuleList([FFN(dim, ffn, dropout)])
        self.drop = nn.Dropout(dropout)

    def self_attend(self, x, pos):
        return self.norms[0](self.attentions[0](x, pos))

    def cross_attend(self, x, pos, value, reference):
        x = self.norms[1](x + self.drop(self.attentions[1](x + pos, value, reference)))
        return self.norms[2](self.ffns[0](x))


class LayerStack(nn.Module):
    """mmcv ``TransformerLayerSequence``: just ``layers``."""

    def __init__(self, layers):
        super().__init__()
        self.layers = nn.ModuleList(layers)


class LinearWithNorm(nn.Module):
    """The official ``Linear_with_norm(norm=False)``: a Linear stored under ``linear``."""

    def __init__(self, cin, cout):
        super().__init__()
        self.linear = nn.Linear(cin, cout)
        nn.init.xavier_uniform_(self.linear.weight, gain=0.01)

    def forward(self, x):
        return self.linear(x)


def _mlp(sizes, relu=True):
    """Linear layers (with ReLU between when ``relu``) in official Sequential index order."""
    mods = []
    for i, (a, b) in enumerate(pairwise(sizes)):
        mods.append(nn.Linear(a, b))
        if relu and i < len(sizes) - 2:
            mods.append(nn.ReLU())
    return nn.Sequential(*mods)


def _sigma_branch(dim, out, fcs):
    """The official sigma head: ``fcs`` Linear(dim, dim) with no activation, then Linear_with_norm."""
    return nn.Sequential(*[nn.Linear(dim, dim) for _ in range(fcs)], LinearWithNorm(dim, out))


class Transformer(nn.Module):
    """Official ``VideoPoseTransformerMulFrames`` parameters: encoder, decoder, refine decoder, level
    embeddings, the proposal projection and the joint queries."""

    def __init__(
        self,
        dim,
        heads,
        shapes,
        joints,
        frame_offsets,
        enc_layers,
        enc_points,
        dec_layers,
        refine_layers,
        refine_points,
        ffn,
        dropout,
        impl,
    ):
        super().__init__()
        levels = len(shapes)
        self.level_embeds = nn.Parameter(torch.empty(levels, dim))
        self.encoder = LayerStack(
            EncoderLayer(dim, heads, shapes, enc_points, ffn, dropout, impl) for _ in range(enc_layers)
        )
        self.decoder = LayerStack(
            DecoderLayer(
                dim, heads, PoseDeformAttn(dim, heads, shapes, joints, frame_offsets, impl), ffn, dropout
            )
            for _ in range(dec_layers)
        )
        self.refine_decoder = LayerStack(
            DecoderLayer(
                dim,
                heads,
                FrameDeformAttn(dim, heads, shapes, refine_points, frame_offsets, impl),
                ffn,
                dropout,
            )
            for _ in range(refine_layers)
        )
        self.enc_output = nn.Linear(dim, dim)
        self.enc_output_norm = nn.LayerNorm(dim)
        self.refine_query_embedding = nn.Embedding(joints, 2 * dim)
        nn.init.normal_(self.level_embeds)
        nn.init.normal_(self.refine_query_embedding.weight)
        nn.init.xavier_uniform_(self.enc_output.weight)
        nn.init.zeros_(self.enc_output.bias)


class Head(nn.Module):
    """Official ``VideoPoseHeadMulFrames`` parameters (``bbox_head.*``) minus the training-only ones."""

    def __init__(
        self,
        dim,
        joints,
        queries,
        frame_offsets,
        dec_layers,
        refine_layers,
        kpt_hidden,
        fcs,
        transformer: Transformer,
    ):
        super().__init__()
        k2 = 2 * joints
        self.transformer = transformer
        pose_mlp = [dim, kpt_hidden] + [kpt_hidden] * fcs + [k2]
        refine_mlp = [dim] * (fcs + 1) + [2]
        n = dec_layers + 1  # the last of each is the encoder's (initial poses)
        self.cls_branches = nn.ModuleList(nn.Linear(dim, 1) for _ in range(n))
        self.kpt_branches = nn.ModuleList(_mlp(pose_mlp) for _ in range(n))
        self.dec_fc_sigma_branches = nn.ModuleList(_sigma_branch(dim, k2, fcs) for _ in range(n))
        for o in frame_offsets:
            if o != 0:
                setattr(
                    self,
                    f"{FRAME_PREFIX[o]}kpt_branches",
                    nn.ModuleList(_mlp(pose_mlp) for _ in range(dec_layers)),
                )
        self.query_embedding = nn.Embedding(queries, 2 * dim)
        for o in frame_offsets:
            if o != 0:
                setattr(
                    self,
                    f"{FRAME_PREFIX[o]}refine_kpt_branches",
                    nn.ModuleList(_mlp(refine_mlp) for _ in range(refine_layers)),
                )
        self.refine_kpt_branches = nn.ModuleList(_mlp(refine_mlp) for _ in range(refine_layers))
        self.refine_fc_sigma_branches = nn.ModuleList(
            _sigma_branch(dim, 2, fcs) for _ in range(refine_layers)
        )
        prior = -math.log((1 - 0.01) / 0.01)  # bias_init_with_prob(0.01)
        for m in self.cls_branches:
            nn.init.constant_(m.bias, prior)
        for m in self.kpt_branches:
            nn.init.zeros_(m[-1].weight)
            nn.init.zeros_(m[-1].bias)


class PAVENet(PoseModel):
    """PAVE-Net; see the module docstring for stages, conventions and the checkpoint layout."""

    codec = "regression"
    input_kind: ClassVar[str] = "frame"
    # Parameters the forward's outputs give no gradient at the official init (fnmatch patterns): the pose
    # MLPs' hidden layers sit behind a zero-initialised last layer; zero offset/weight projections leave the
    # level embeddings inert; the last layer's other-frame poses reach the joint decoder only through the
    # official detach. All learn once training moves the zero layers.
    UNTRAINED_BY_FORWARD: ClassVar[tuple[str, ...]] = (
        "bbox_head.transformer.level_embeds",
        "bbox_head.kpt_branches.*.[024].*",
        "bbox_head.pre_*kpt_branches.*",
        "bbox_head.next_*kpt_branches.*",
    )
    STAGES: ClassVar[dict[str, tuple[tuple[str, ...], tuple[str, ...]]]] = {
        "frame": (("image",), ("memory",)),
        "temporal": (("memory_window",), ("poses", "scores")),
    }

    @classmethod
    def frame_offsets_for(cls, frames: int) -> tuple[int, ...]:
        return FRAME_OFFSETS[frames]

    def __init__(
        self,
        input_size: tuple[int, int] = (750, 1333),
        frames: int = 3,
        layout: str = OFFICIAL_LAYOUT,
        trunk: str = "r50",
        depths: tuple[int, ...] = RESNET50_DEPTHS,
        base_width: int = 64,
        width: float = 1.0,
        dim: int = 256,
        heads: int = 8,
        enc_layers: int = 6,
        enc_points: int = 4,
        dec_layers: int = 3,
        refine_layers: int = 2,
        refine_points: int = 4,
        ffn: int = 1024,
        queries: int = 300,
        max_persons: int = 20,
        kpt_hidden: int = 512,
        kpt_fcs: int = 2,
        gn_groups: int = 32,
        dropout: float = 0.1,
        impl: str = "grid_sample",
        pad: str = "torch",
    ):
        if frames not in FRAME_OFFSETS:
            raise ValueError(
                f"PAVE-Net supports frames in {sorted(FRAME_OFFSETS)} (window -T..T), got {frames}"
            )
        if trunk not in TRUNKS:
            raise ValueError(f"trunk must be one of {TRUNKS}, got {trunk!r}")
        if pad != "torch" and trunk != "mnv2":
            raise ValueError(f"pad={pad!r} applies to the MobileNet-V2 trunk only (trunk='mnv2')")
        lay = get_layout(layout)
        super().__init__(len(lay), input_size, self.frame_offsets_for(frames))
        self.layout, self.trunk_kind, self.dim = layout, trunk, dim
        self.current = self.frame_offsets.index(0)
        joints = self.num_joints
        if trunk == "r50":
            self.backbone = ResNet(tuple(depths), base_width, (1, 2, 3))
            sizes = ResNet.output_sizes(self.input_size)[1:]
        else:
            self.backbone = MobileNetV2Pyramid(width, pad, self.input_size)
            sizes = MobileNetV2Pyramid.output_sizes(self.input_size)
        shapes = tuple(sizes) + ((_half(sizes[-1][0]), _half(sizes[-1][1])),)
        self.shapes = shapes
        self.num_tokens = sum(h * w for h, w in shapes)
        if queries > self.num_tokens:
            raise ValueError(f"queries ({queries}) must not exceed the tokens of a frame ({self.num_tokens})")
        if max_persons > queries:
            raise ValueError(f"max_persons ({max_persons}) must not exceed queries ({queries})")
        self.queries, self.max_persons = queries, max_persons
        self.neck = ChannelMapper(self.backbone.out_channels, dim, min(gn_groups, dim))
        transformer = Transformer(
            dim,
            heads,
            shapes,
            joints,
            self.frame_offsets,
            enc_layers,
            enc_points,
            dec_layers,
            refine_layers,
            refine_points,
            ffn,
            dropout,
            impl,
        )
        self.bbox_head = Head(
            dim,
            joints,
            queries,
            self.frame_offsets,
            dec_layers,
            refine_layers,
            kpt_hidden,
            kpt_fcs,
            transformer,
        )

        # Constants of a fixed input size: position embeddings, token centres, level of each token.
        pos, centres, level = [], [], []
        for lvl, (h, w) in enumerate(shapes):
            pos.append(sine_embedding(h, w, dim))
            ys = (torch.arange(h, dtype=torch.float32) + 0.5) / h
            xs = (torch.arange(w, dtype=torch.float32) + 0.5) / w
            centres.append(torch.stack([xs[None].expand(h, w), ys[:, None].expand(h, w)], -1).reshape(-1, 2))
            level.append(torch.full((h * w,), lvl, dtype=torch.long))
        centres = torch.cat(centres)
        self.register_buffer("pos_sine", torch.cat(pos), persistent=False)
        self.register_buffer("token_level", torch.cat(level), persistent=False)
        self.register_buffer("centres", centres, persistent=False)
        valid = ((centres > 0.01) & (centres < 0.99)).all(-1, keepdim=True)
        logits = torch.log(centres / (1 - centres))
        self.register_buffer("proposal_valid", valid.float(), persistent=False)
        self.register_buffer(
            "proposals",
            torch.where(valid, logits, torch.full_like(logits, INVALID_PROPOSAL)),
            persistent=False,
        )
        self.register_buffer(
            "image_wh",
            torch.tensor([self.input_size[1], self.input_size[0]], dtype=torch.float32),
            persistent=False,
        )

    @property
    def trunk(self) -> nn.Module:
        """The backbone under the name the trunk starts use (``--weights movenet`` and its BN calibration)."""
        return self.backbone

    @property
    def transformer(self) -> Transformer:
        return self.bbox_head.transformer

    # ---- stages -------------------------------------------------------------------------------
    def forward_frame(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        feats = self.neck(self.backbone(image))
        x = torch.cat([f.flatten(2).transpose(1, 2) for f in feats], 1)  # (B, S, C)
        pos = (self.pos_sine + self.transformer.level_embeds[self.token_level])[None]
        ref = self.centres[None]
        for layer in self.transformer.encoder.layers:
            x = layer(x, pos, ref)
        return {"memory": x}

    def _branch(self, name: str, offset: int, i: int) -> nn.Module:
        return getattr(self.bbox_head, f"{FRAME_PREFIX[offset]}{name}")[i]

    def forward_temporal(self, memory_window: torch.Tensor, select=None) -> dict[str, torch.Tensor]:
        """``select`` (training only): ``aux -> (B, M)`` query indices the joint decoder refines instead of the
        top ``max_persons`` by score (the loss picks the matched queries, as the official training does)."""
        b, t, s, c = memory_window.shape
        if (t, s, c) != (self.num_frames, self.num_tokens, self.dim):
            raise ValueError(
                f"temporal stage expects memory_window (B, {self.num_frames}, {self.num_tokens}, {self.dim}), "
                f"got {tuple(memory_window.shape)}"
            )
        head, tr = self.bbox_head, self.transformer
        k, nd = self.num_joints, len(tr.decoder.layers)
        aux = {}

        # Initial poses: every token of the current frame proposes one; the best `queries` are the references.
        tokens = tr.enc_output_norm(tr.enc_output(memory_window[:, self.current] * self.proposal_valid))
        enc_logits = head.cls_branches[nd](tokens)[..., 0]  # (B, S)
        enc_kpts = head.kpt_branches[nd](tokens).view(b, s, k, 2) + self.proposals[None, :, None, :]
        top = torch.topk(enc_logits, self.queries, dim=1)[1]  # (B, Q)
        ref = torch.gather(enc_kpts, 1, top[:, :, None, None].expand(-1, -1, k, 2)).detach().sigmoid()
        tgt = torch.gather(tokens, 1, top[:, :, None].expand(-1, -1, c)).detach()
        # clone(): views of a parameter made under no_grad would reach modules as grad-less leaves
        query_pos, query = (e.clone() for e in head.query_embedding.weight.split(c, 1))
        x = tgt + query[None]
        query_pos = query_pos[None]
        if self.training:
            aux.update(
                enc_logits=enc_logits,
                enc_kpts=enc_kpts.sigmoid(),
                enc_sigma=head.dec_fc_sigma_branches[nd](tokens).sigmoid().view(b, s, k, 2),
            )

        # Spatiotemporal pose decoder: one reference pose per query and frame, moved after every layer.
        refs = [ref] * t
        dec_logits, dec_kpts, dec_sigma = [], [], []
        for i, layer in enumerate(tr.decoder.layers):
            x = layer.self_attend(x, query_pos)
            value = layer.attentions[1].project_value(memory_window)
            x = layer.cross_attend(x, query_pos, value, torch.stack(refs, 1))
            refs = [
                (self._branch("kpt_branches", o, i)(x).view(b, -1, k, 2) + inverse_sigmoid(r)).sigmoid()
                for o, r in zip(self.frame_offsets, refs)
            ]
            if self.training:
                dec_logits.append(head.cls_branches[i](x)[..., 0])
                dec_kpts.append(refs[self.current])
                dec_sigma.append(head.dec_fc_sigma_branches[i](x).sigmoid().view(b, -1, k, 2))
        person = head.cls_branches[nd - 1](x)[..., 0].sigmoid()  # (B, Q)
        if self.training:
            aux.update(
                dec_logits=torch.stack(dec_logits),
                dec_kpts=torch.stack(dec_kpts),
                dec_sigma=torch.stack(dec_sigma),
            )

        # The best `max_persons` queries go on to the joint decoder with their poses in every frame.
        scores, pick = torch.topk(person, self.max_persons, dim=1)  # (B, M)
        if self.training and select is not None:
            pick = select(aux).to(person.device)
            scores = torch.gather(person, 1, pick)
        if self.training:
            aux["pick"] = pick
        m = self.max_persons
        gidx = pick[:, :, None, None].expand(-1, -1, k, 2)
        prefs = [torch.gather(r, 1, gidx).reshape(b, m * k, 2).detach() for r in refs]

        # Spatiotemporal joint decoder: K joint queries per person.
        jpos, jquery = (e.clone() for e in tr.refine_query_embedding.weight.split(c, 1))
        y = jquery[None, None].expand(b, m, k, c).reshape(b, m * k, c)
        jpos_seq = jpos[None].expand(b * m, k, c)
        jpos_flat = jpos[None, None].expand(b, m, k, c).reshape(b, m * k, c)
        ref_sigma, ref_kpts = [], []
        for i, layer in enumerate(tr.refine_decoder.layers):
            y = layer.self_attend(y.reshape(b * m, k, c), jpos_seq).reshape(b, m * k, c)
            value = layer.attentions[1].project_value(memory_window)
            y = layer.cross_attend(y, jpos_flat, value, torch.stack(prefs, 1))
            prefs = [
                (self._branch("refine_kpt_branches", o, i)(y) + inverse_sigmoid(r)).sigmoid()
                for o, r in zip(self.frame_offsets, prefs)
            ]
            if self.training:
                ref_kpts.append(prefs[self.current].view(b, m, k, 2))
                ref_sigma.append(head.refine_fc_sigma_branches[i](y).sigmoid().view(b, m, k, 2))
        sigma = head.refine_fc_sigma_branches[-1](y).sigmoid().view(b, m, k, 2)
        if self.training:
            aux.update(refine_kpts=torch.stack(ref_kpts), refine_sigma=torch.stack(ref_sigma))

        # Official decoding: pixels, clamped; joint confidence from sigma times the person score.
        xy = prefs[self.current].view(b, m, k, 2) * self.image_wh
        xy = torch.minimum(xy.clamp(min=0), self.image_wh)
        q = 1 - torch.exp(-0.2 / sigma)
        p = q[..., 0:1] * q[..., 1:2] * 0.7  # (B, M, K, 1); a product of two slices: Core ML has no prod
        p5 = p**5
        xy = xy * p5 / (p5 + 1e-10)
        poses = torch.cat([xy, scores[:, :, None, None] * p], -1)
        return {"poses": poses, "scores": scores, **aux}

    def forward(self, image_window: torch.Tensor, select=None) -> dict[str, torch.Tensor]:
        """(B, T, 3, H, W) frames in ``frame_offsets`` order -> the people of the frame at offset 0.
        In training mode the outputs also hold every level's logits, poses and sigmas (and ``select``,
        see ``forward_temporal``, picks the joint decoder's queries)."""
        b, t = image_window.shape[:2]
        memory = self.forward_frame(image_window.flatten(0, 1))["memory"]
        return self.forward_temporal(memory.reshape(b, t, *memory.shape[1:]), select)

    def example_inputs(self, stage: str, batch: int = 2, seed: int = 0) -> dict[str, torch.Tensor]:
        self.stage_io(stage)
        g = torch.Generator().manual_seed(seed)
        if stage == "frame":
            return {"image": torch.randn(batch, 3, *self.input_size, generator=g)}
        return {"memory_window": torch.randn(batch, self.num_frames, self.num_tokens, self.dim, generator=g)}

    # ---- official checkpoints -----------------------------------------------------------------
    def convert_official_state(self, state):
        """An official PAVE-Net checkpoint (mmdet detector: ``backbone.``/``neck.``/``bbox_head.``) -> ours.

        Our keys are the official ones; the training-only heads (``bbox_head.fc_hm``, the RealNVP flows
        ``bbox_head.{enc_flow,dec_flow,flow}``) are returned as ignored.
        """
        from .checkpoints import CheckpointError, few_keys

        keys = list(state)
        if not any(k.startswith("bbox_head.transformer.") for k in keys):
            raise CheckpointError(
                "not an official PAVE-Net checkpoint: expected keys under backbone., neck., bbox_head.transformer. "
                f"and bbox_head.*_branches (zgspose/PAVENet); found {few_keys(keys, 6)}"
            )
        if self.trunk_kind != "r50":
            name = getattr(self, "spec_name", type(self).__name__)
            raise CheckpointError(
                f"official PAVE-Net checkpoints have a ResNet backbone; {name} is built on {self.trunk_kind}: "
                "load it into pave_r50"
            )
        ignored = sorted(k for k in keys if k.startswith(TRAINING_ONLY))
        own = self.state_dict()
        kept = {k: v for k, v in state.items() if k not in ignored}
        missing = sorted(set(own) - set(kept))
        unexpected = sorted(set(kept) - set(own))
        shapes = [
            f"{k}: checkpoint {tuple(kept[k].shape)} vs model {tuple(own[k].shape)}"
            for k in sorted(set(own) & set(kept))
            if tuple(kept[k].shape) != tuple(own[k].shape)
        ]
        problems = []
        if missing:
            problems.append(f"missing keys: {few_keys(missing, 6)}")
        if unexpected:
            hint = ""
            if any(k.startswith(("bbox_head.pre_pre_", "bbox_head.next_next_")) for k in unexpected):
                hint = " (a 5-frame checkpoint: build with frames=5)"
            problems.append(f"unexpected keys: {few_keys(unexpected, 6)}{hint}")
        if shapes:
            problems.append("mis-shaped keys: " + "; ".join(shapes[:6]))
        if problems:
            name = getattr(self, "spec_name", type(self).__name__)
            raise CheckpointError(
                f"official PAVE-Net checkpoint does not fit model {name}: " + " | ".join(problems)
            )
        return kept, ignored


_R50 = dict(  # noqa: C408 - a config reads best as keywords
    input_size=(750, 1333),
    frames=3,
    layout=OFFICIAL_LAYOUT,
    trunk="r50",
    depths=RESNET50_DEPTHS,
    base_width=64,
    width=1.0,
    dim=256,
    heads=8,
    enc_layers=6,
    enc_points=4,
    dec_layers=3,
    refine_layers=2,
    refine_points=4,
    ffn=1024,
    queries=300,
    max_persons=20,
    kpt_hidden=512,
    kpt_fcs=2,
    gn_groups=32,
    dropout=0.1,
    impl="grid_sample",
    pad="torch",
)
_R50_TINY = {
    **_R50,
    "input_size": (64, 96),
    "depths": (1, 1, 1, 1),
    "base_width": 8,
    "dim": 32,
    "heads": 4,
    "enc_layers": 1,
    "enc_points": 2,
    "dec_layers": 2,
    "refine_layers": 1,
    "refine_points": 2,
    "ffn": 64,
    "queries": 12,
    "max_persons": 4,
    "kpt_hidden": 32,
}
_MNV2 = {
    **_R50,
    "input_size": (384, 640),
    "trunk": "mnv2",
    "dim": 128,
    "enc_layers": 3,
    "ffn": 512,
    "queries": 100,
    "kpt_hidden": 256,
}
_MNV2_TINY = {**_R50_TINY, "trunk": "mnv2", "width": 0.25}

_PAPER = PaperNumbers(
    accuracy="77.7 mAP PoseTrack17 val (Table 1, ResNet-50, 2 auxiliary frames); 76.5 PoseTrack18, 76.2 PoseTrack21",
    note=(
        "The paper gives no whole-model size (ours: 50.79M, ResNet-50 23.51M) and no whole-model GFLOPs; Table 4 "
        "gives the STPD (12.34M params, 7.31 GFLOPs) and the STJD (5.43M, 9.72 GFLOPs) at an unstated input size "
        "and person count. Our pose decoder (its 3 layers, the query embeddings and the cls/pose/sigma branches "
        "of those layers) is 12.72M (12.30M without the sigma branches, which only train). Our joint decoder is "
        "3.50M with the official config's 2 layers; the paper's text says 3 layers, and refine_layers=3 gives "
        "5.25M (5.30M with its training-only flow), matching the paper's 5.43M within 3%, so the paper's "
        "figure is likely a 3-layer joint decoder. GFLOPs depend on the input size and, for the official joint "
        "decoder (which projects the memory once per person), on the person count, so none are keyed: at "
        "750x1333 our frame stage is 181.7 GMACs (ResNet-50 + 6 encoder layers on 20906 tokens) and our "
        "temporal stage 40.5 (20 people; the memory is projected once per frame, not per person)."
    ),
)
_SUMMARY = (
    "PAVE-Net end-to-end multi-person video pose (no detector): backbone + 6-layer deformable spatial "
    "encoder per frame (tokens into the ring buffer), pose-aware spatiotemporal pose decoder over the "
    "window from the current frame's top poses, spatiotemporal joint decoder, pose and score heads."
)


def _spec(name: str, config: dict, **kw) -> ModelSpec:
    """A PAVE-Net spec; stages, codec, input kind, size, layout and window are the class's for ``config``."""
    return ModelSpec(name=name, family="pavenet", builder=PAVENet, config=config, **kw)


SPECS = (
    _spec(
        "pave_r50",
        _R50,
        paper=_PAPER,
        summary=_SUMMARY
        + " ResNet-50, the official PoseTrack17 config (1920x1080 frames at its 1333x800 test scale).",
    ),
    _spec(
        "pave_r50_tiny",
        _R50_TINY,
        paper=PaperNumbers(note="Test variant: the same code with a 1-block-per-stage ResNet, dim 32, 64x96"),
        summary="Small PAVE-Net for tests: " + _SUMMARY,
        variant_of="pave_r50",
    ),
    _spec(
        "pave_mnv2",
        _MNV2,
        paper=PaperNumbers(
            note="Edge build (ours, no paper counterpart): MobileNet-V2 trunk, dim 128, 3 encoder "
            "layers, 100 queries, 384x640."
        ),
        summary=_SUMMARY + " Edge build on the zoo's MobileNet-V2 trunk.",
    ),
    _spec(
        "pave_mnv2_tiny",
        _MNV2_TINY,
        paper=PaperNumbers(note="Test variant of pave_mnv2: width 0.25, dim 32, 64x96"),
        summary="Small edge PAVE-Net for tests: " + _SUMMARY,
        variant_of="pave_mnv2",
    ),
)

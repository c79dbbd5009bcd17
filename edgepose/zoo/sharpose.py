"""SHaRPose (An et al., AAAI 2024): sparse high-resolution representation for pose.

One ViT (SHaRPose-S: dim 384, depth 12, 12 heads, patch 16) runs twice per crop:

* a **coarse** pass on the crop resampled to half size (128x96 -> N = 8x6 = 48
  patch tokens) together with 17 learnable keypoint tokens and a quality token.
  The shared MLP decoder turns the keypoint tokens into coarse heatmaps, an MLP
  turns the quality token into a predicted OKS, and an exponential moving
  average (beta 0.99) of the keypoint-token attention rows over the layers
  ``ema_from..depth-1`` ranks the coarse patches by relevance;
* a **fine** pass where the k = ceil(alpha * N) most relevant coarse patches
  (alpha 0.5 -> 24) are replaced by their 2x2 fine 16x16 patches of the full
  256x192 crop, each plus ``reuse_block(coarse output token of its parent)``;
  the other N - k patches keep their coarse input embedding. The same blocks
  and decoder give the fine heatmaps (17 + 4*24 + 24 = 137 tokens).

The data-dependent part (which crops to refine, which patches to split) does
not export, so the model is two stages with fixed shapes:

==========  =====================================  ==========================================
stage       inputs                                 outputs
==========  =====================================  ==========================================
``coarse``  ``image`` (B,3,H,W)                    ``heatmaps`` (B,J,h,w), ``quality`` (B,),
                                                   ``relevance`` (B,N), ``features`` (B,N,D)
``fine``    ``image`` (B,3,H,W), ``patch_index``   ``heatmaps`` (B,J,h,w)
            (B,k) int64, ``features`` (B,N,D)
==========  =====================================  ==========================================

``features`` are the coarse pass's final patch tokens: the fine pass seeds its
refined patches with them (the paper's Fig. 4 MLP), so it needs them as an
input unless it reran the coarse pass. ``patch_index`` holds k *distinct*
coarse patch indices (row-major over the coarse grid); the fine stage gathers
with it and finds the N - k others with a top-k over a scatter mask, so the
graph has no boolean indexing. ``quality`` is one score per crop, shape (B,):
the runtime skips the fine stage for crops with ``quality >= quality_threshold``
(the paper uses 0.95 for its COCO results; the official small config sets
0.99). ``forward(image)`` is exactly coarse -> ``torch.topk(relevance, k)``
(indices in descending relevance, like the official argsort) -> fine, and
returns the fine ``heatmaps`` plus ``coarse_heatmaps``, ``quality``,
``relevance`` and ``patch_index``; it never skips the fine pass (that choice is
the runtime's).

``compat`` (the default follows the paper):

* ``"paper"``: relevance is Eq. 7, the mean over heads and all J keypoint rows;
  the coarse input is a 2x2 (in general integer-factor) area average of the crop.
* ``"official"`` (AnxQ/sharpose ``models/sharpose.py``): relevance is the head
  mean summed over the attention rows of the first J-1 keypoint tokens only
  (the official slice ``[:, 1:num_keypoints]`` starts after the quality token,
  so it drops the last keypoint token); the coarse input is
  ``F.interpolate(bilinear, align_corners=False)`` to the coarse size. At the
  published exact 2x factor that bilinear resize averages 2x2 blocks too, so
  the two inputs differ only by float rounding (~1e-7); the ranking rows are
  what changes the selected patches.

Both modes follow the official code where the paper is silent or loose: the
attention EMA starts from zero at layer ``depth // 4`` (the official
``target_index``); k = ceil(alpha * N) (the paper writes floor; equal at
alpha * N = 24); the quality head ends in GELU (official ``qp_sigmoid=False``);
the fine pass re-initialises the keypoint tokens and carries no quality token.
Token order inside each pass mirrors the official code ([quality, keypoints,
patches]; [keypoints, fine children sub-position-major, the others]); attention
is permutation-equivariant, so the order only affects float rounding.

Official checkpoints are mmpose ``{'state_dict'}`` with ``backbone.*`` (the
SHaRPose backbone) and ``keypoint_head.heatmap_mlp.*`` (SHaRPoseQPHeatmapHead);
``convert_official_state`` maps them (table ``OFFICIAL_KEYS``). It also takes a
plain ViT encoder (MAE, ViTPose, TAR-ViTPose; table ``VIT_KEYS``) for the shared
blocks, which is how the paper starts training: load it with ``strict=False``.
Trained from scratch on the synthetic benchmark the model stayed at the mean pose.
"""

from __future__ import annotations

import math
import re
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from .base import PoseModel
from .layers.sine_position import sine_position_embedding_2d
from .spec import ModelSpec, PaperNumbers
from .vit_blocks import Attention, Block, Mlp, init_vit_weights

COMPAT = ("paper", "official")

# (official key or key prefix ending in ".", our key or prefix). Our module tree mirrors the official
# one except for the flattened heads, so the table is a prefix rename.
OFFICIAL_KEYS: tuple[tuple[str, str], ...] = (
    ("backbone.patch_embed.proj.", "patch_embed."),
    ("backbone.pos_embed_list.0", "pos_embed_coarse"),
    ("backbone.pos_embed_list.1", "pos_embed_fine"),
    ("backbone.keypoint_tokens", "keypoint_tokens"),
    ("backbone.quality_token", "quality_token"),
    ("backbone.blocks.", "blocks."),
    ("backbone.norm.", "norm."),
    ("backbone.reuse_block.", "reuse_block."),
    ("backbone.quality_predictor.norm.", "quality_predictor.norm."),
    ("backbone.quality_predictor.mlp.0.", "quality_predictor.fc1."),
    ("backbone.quality_predictor.mlp.3.", "quality_predictor.fc2."),
    ("backbone.quality_predictor.mlp.6.", "quality_predictor.fc3."),
    ("keypoint_head.heatmap_mlp.", "head."),
)
# Keys only a SHaRPose checkpoint has (a ViTPose mmpose checkpoint also has backbone./keypoint_head.).
_SIGNATURE = ("backbone.pos_embed_list.0", "backbone.reuse_block.0.weight", "backbone.quality_token")

# A plain ViT encoder as SHaRPose starts from (the paper: MAE ImageNet weights): timm/MAE names
# (``blocks.N.norm1``, ``mlp.fc1``) or mmpretrain names as in ViTPose/TAR-ViTPose backbones
# (``layers.N.ln1``, ``ffn.layers.0.0``), after an optional ``backbone.``. (pattern, our key); the
# position table and the patch kernel are resampled separately (see ``_convert_vit``).
VIT_KEYS: tuple[tuple[str, str], ...] = (
    (r"patch_embed\.proj(?:ection)?\.(weight|bias)", r"patch_embed.\1"),
    (r"(?:blocks|layers)\.(\d+)\.(?:norm1|ln1)\.(weight|bias)", r"blocks.\1.norm1.\2"),
    (r"(?:blocks|layers)\.(\d+)\.(?:norm2|ln2)\.(weight|bias)", r"blocks.\1.norm2.\2"),
    (r"(?:blocks|layers)\.(\d+)\.attn\.(qkv|proj)\.(weight|bias)", r"blocks.\1.attn.\2.\3"),
    (r"(?:blocks|layers)\.(\d+)\.(?:mlp\.fc1|ffn\.layers\.0\.0)\.(weight|bias)", r"blocks.\1.mlp.fc1.\2"),
    (r"(?:blocks|layers)\.(\d+)\.(?:mlp\.fc2|ffn\.layers\.1)\.(weight|bias)", r"blocks.\1.mlp.fc2.\2"),
    (r"(?:norm|ln1|last_norm)\.(weight|bias)", r"norm.\1"),
)


def _rename(key: str, table) -> str | None:
    for src, dst in table:
        if key == src or (src.endswith(".") and key.startswith(src)):
            return dst + key[len(src) :]
    return None


def to_official_key(key: str) -> str | None:
    """Our key -> the official key (the inverse of ``OFFICIAL_KEYS``)."""
    return _rename(key, [(d, s) for s, d in OFFICIAL_KEYS])


def _exporting() -> bool:
    is_exporting = getattr(torch.compiler, "is_exporting", lambda: False)
    return (
        torch.jit.is_tracing() or torch.jit.is_scripting() or torch.compiler.is_compiling() or is_exporting()
    )


def _gather_tokens(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """x (B, N, D), index (B, n) -> (B, n, D)."""
    return torch.gather(x, 1, index.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


class MapAttention(Attention):
    """The shared attention, returning ``(output, probabilities (B, heads, N, N))``: the coarse pass
    ranks patches by the keypoint tokens' attention rows."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.attend(x)


class AttentionMapBlock(Block):
    """timm's block (``norm1``, ``attn.qkv`` with bias, ``attn.proj``, ``norm2``, ``mlp.fc1/fc2``, the
    names of the timm-built official checkpoints; LayerNorm eps 1e-5) returning ``(x, attention)``."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, drop_path: float):
        super().__init__(dim, heads, mlp_ratio, True, drop_path, 1e-5, attn_layer=MapAttention)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y, attn = self.attn(self.norm1(x))
        x = x + self.drop_path(y)
        return x + self.drop_path(self.mlp(self.norm2(x))), attn


class QualityPredictor(nn.Module):
    """Predicted OKS of the coarse pose from the quality token: LN, then 3 Linear+GELU."""

    def __init__(self, dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, dim)
        self.fc2 = nn.Linear(dim, dim)
        self.fc3 = nn.Linear(dim, 1)
        self.act = nn.GELU()

    def forward(self, token: torch.Tensor) -> torch.Tensor:
        x = self.act(self.fc1(self.norm(token)))
        x = self.act(self.fc2(x))
        return self.act(self.fc3(x)).squeeze(-1)


def heatmap_decoder(dim: int, heatmap_dim: int) -> nn.Sequential:
    """The official rule: one Linear when dim >= heatmap_dim / 4, else a two-layer MLP.

    Layer indices match ``SHaRPoseQPHeatmapHead.heatmap_mlp`` (GELU at index 2).
    """
    if dim >= heatmap_dim // 4:
        return nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, heatmap_dim))
    hidden = heatmap_dim // 2
    return nn.Sequential(
        nn.LayerNorm(dim),
        nn.Linear(dim, hidden),
        nn.GELU(),
        nn.LayerNorm(hidden),
        nn.Linear(hidden, heatmap_dim),
    )


class SHaRPose(PoseModel):
    STAGES: ClassVar[dict[str, tuple[tuple[str, ...], tuple[str, ...]]]] = {
        "coarse": (("image",), ("heatmaps", "quality", "relevance", "features")),
        "fine": (("image", "patch_index", "features"), ("heatmaps",)),
    }
    codec = "heatmap"

    def __init__(
        self,
        num_joints: int = 17,
        input_size: tuple[int, int] = (256, 192),
        coarse_size: tuple[int, int] = (128, 96),
        patch_size: int = 16,
        dim: int = 384,
        depth: int = 12,
        heads: int = 12,
        mlp_ratio: float = 4.0,
        heatmap_size: tuple[int, int] = (64, 48),
        alpha: float = 0.5,
        beta: float = 0.99,
        ema_from: int | None = None,
        quality_threshold: float = 0.95,
        drop_path: float = 0.1,
        compat: str = "paper",
    ):
        super().__init__(num_joints, input_size)
        if compat not in COMPAT:
            raise ValueError(f"compat must be one of {COMPAT}, got {compat!r}")
        (h, w), (ch, cw), p = self.input_size, tuple(coarse_size), int(patch_size)
        if h % p or w % p or ch % p or cw % p:
            raise ValueError(
                f"input {h}x{w} and coarse size {ch}x{cw} must be multiples of the patch size {p}"
            )
        if h % ch or w % cw:
            raise ValueError(f"input {h}x{w} must be an integer multiple of the coarse size {ch}x{cw}")
        self.compat = compat
        self.coarse_size = (ch, cw)
        self.patch_size = p
        self.coarse_grid = (ch // p, cw // p)
        self.fine_grid = (h // p, w // p)
        self.split = (h // ch, w // cw)  # fine patches per coarse patch, per axis
        self.num_patches = self.coarse_grid[0] * self.coarse_grid[1]
        self.num_refined = math.ceil(alpha * self.num_patches)
        if not 1 <= self.num_refined < self.num_patches or self.num_patches < 2:
            raise ValueError(
                f"alpha={alpha} refines {self.num_refined} of {self.num_patches} coarse patches; "
                "need at least 2 patches and 1 <= k < N"
            )
        self.dim = dim
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.ema_from = depth // 4 if ema_from is None else int(ema_from)
        if not 0 <= self.ema_from < depth:
            raise ValueError(f"ema_from={self.ema_from} must name a layer in 0..{depth - 1}")
        self.quality_threshold = float(quality_threshold)
        self.heatmap_size = tuple(heatmap_size)

        self.patch_embed = nn.Conv2d(3, dim, kernel_size=p, stride=p)
        self.pos_embed_coarse = nn.Parameter(torch.zeros(1, self.num_patches, dim))
        self.pos_embed_fine = nn.Parameter(torch.zeros(1, self.fine_grid[0] * self.fine_grid[1], dim))
        self.keypoint_tokens = nn.Parameter(torch.zeros(1, num_joints, dim))
        self.quality_token = nn.Parameter(torch.zeros(1, 1, dim))
        rates = [drop_path * i / max(depth - 1, 1) for i in range(depth)]  # official linspace(0, rate, depth)
        self.blocks = nn.ModuleList(AttentionMapBlock(dim, heads, mlp_ratio, r) for r in rates)
        self.norm = nn.LayerNorm(dim)
        self.reuse_block = nn.Sequential(nn.LayerNorm(dim), Mlp(dim, int(mlp_ratio * dim), dim))
        self.quality_predictor = QualityPredictor(dim)
        self.head = heatmap_decoder(dim, self.heatmap_size[0] * self.heatmap_size[1])
        self.register_buffer("children_of", self._children_table(), persistent=False)

        self.apply(init_vit_weights)
        # The official code starts these at zero and loads MAE weights; a random model needs them distinct.
        for t in (self.keypoint_tokens, self.quality_token):
            nn.init.trunc_normal_(t, std=0.02)
        # Position tables as MAE's (a fixed 2-D sine layout) rather than random: from scratch, random
        # tables left SHaRPose at the mean pose. Positions are normalised per grid, so a fine patch's
        # code starts close to its coarse parent's.
        with torch.no_grad():
            self.pos_embed_coarse.copy_(sine_position_embedding_2d(*self.coarse_grid, dim)[None])
            self.pos_embed_fine.copy_(sine_position_embedding_2d(*self.fine_grid, dim)[None])

    def _children_table(self) -> torch.Tensor:
        """(N, sh*sw): fine patch indices under each coarse patch, sub-position (di, dj) row-major."""
        (gh, gw), fw, (sh, sw) = self.coarse_grid, self.fine_grid[1], self.split
        i = torch.arange(gh).repeat_interleave(gw)
        j = torch.arange(gw).repeat(gh)
        sub = torch.tensor([di * fw + dj for di in range(sh) for dj in range(sw)])
        return (i * sh * fw + j * sw)[:, None] + sub[None, :]

    # -- shared pieces -------------------------------------------------------------------------------
    def _patches(self, image: torch.Tensor) -> torch.Tensor:
        return self.patch_embed(image).flatten(2).transpose(1, 2)

    def _coarse_embedding(self, image: torch.Tensor) -> torch.Tensor:
        """Patch tokens of the half-size crop with their position embedding, (B, N, D)."""
        if self.compat == "official":
            small = F.interpolate(image, size=self.coarse_size, mode="bilinear", align_corners=False)
        else:
            small = F.avg_pool2d(image, kernel_size=self.split, stride=self.split)
        return self._patches(small) + self.pos_embed_coarse

    def _heatmaps(self, keypoint_tokens: torch.Tensor) -> torch.Tensor:
        b, j, _ = keypoint_tokens.shape
        return self.head(keypoint_tokens).reshape(b, j, *self.heatmap_size)

    def _relevance(self, ema: torch.Tensor) -> torch.Tensor:
        """ema (B, heads, J, N) keypoint-row attention -> (B, N) patch relevance."""
        per_joint = ema.mean(dim=1)
        if self.compat == "official":
            return per_joint[:, : self.num_joints - 1].sum(dim=1)
        return per_joint.mean(dim=1)

    def _check_patch_index(self, patch_index: torch.Tensor, batch: int) -> None:
        """Eager-mode validation; skipped while tracing/exporting, where the graph must stay data-free."""
        if _exporting():
            return
        if patch_index.dtype != torch.int64 or tuple(patch_index.shape) != (batch, self.num_refined):
            raise ValueError(
                f"patch_index must be int64 of shape ({batch}, {self.num_refined}) (k = ceil(alpha * N), "
                f"N = {self.num_patches}); got {patch_index.dtype} {tuple(patch_index.shape)}"
            )
        if bool(((patch_index < 0) | (patch_index >= self.num_patches)).any()):
            raise ValueError(f"patch_index values must lie in [0, {self.num_patches})")
        ordered = patch_index.sort(dim=1).values
        if bool((ordered[:, 1:] == ordered[:, :-1]).any()):
            raise ValueError(
                "patch_index rows must hold distinct patch indices (e.g. torch.topk(relevance, k))"
            )

    # -- stages --------------------------------------------------------------------------------------
    def forward_coarse(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        b, j = image.shape[0], self.num_joints
        x = torch.cat(
            (
                self.quality_token.expand(b, -1, -1),
                self.keypoint_tokens.expand(b, -1, -1),
                self._coarse_embedding(image),
            ),
            dim=1,
        )
        ema = None
        for layer, block in enumerate(self.blocks):
            x, attn = block(x)
            if layer >= self.ema_from:
                rows = attn[:, :, 1 : 1 + j, 1 + j :]  # keypoint queries x patch keys
                ema = (1 - self.beta) * rows if ema is None else self.beta * ema + (1 - self.beta) * rows
        x = self.norm(x)
        return {
            "heatmaps": self._heatmaps(x[:, 1 : 1 + j]),
            "quality": self.quality_predictor(x[:, 0]),
            "relevance": self._relevance(ema),
            "features": x[:, 1 + j :],
        }

    def forward_fine(
        self, image: torch.Tensor, patch_index: torch.Tensor, features: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        b, n, k = image.shape[0], self.num_patches, self.num_refined
        self._check_patch_index(patch_index, b)
        # Fine tokens of the chosen patches, ordered (sub-position, rank) as the official get_index.
        children = self.children_of.index_select(0, patch_index.reshape(-1)).reshape(b, k, -1)
        children = children.transpose(1, 2).reshape(b, -1)
        fine = _gather_tokens(self._patches(image) + self.pos_embed_fine, children)
        seed = self.reuse_block(_gather_tokens(features, patch_index))
        fine = fine + seed.repeat(1, self.split[0] * self.split[1], 1)
        # The other N - k patches keep their coarse input embedding. Unchosen patches get keys
        # 2N - i > 0 and chosen ones -i <= 0, so a top-(N - k) returns the unchosen in ascending order.
        chosen = torch.zeros(b, n, dtype=image.dtype, device=image.device)
        chosen = chosen.scatter(1, patch_index, torch.ones_like(patch_index, dtype=image.dtype))
        order = torch.arange(n, dtype=image.dtype, device=image.device)
        others = torch.topk((1 - chosen) * (2 * n) - order, n - k, dim=1).indices
        coarse = _gather_tokens(self._coarse_embedding(image), others)
        x = torch.cat((self.keypoint_tokens.expand(b, -1, -1), fine, coarse), dim=1)
        for block in self.blocks:
            x, _ = block(x)
        x = self.norm(x)
        return {"heatmaps": self._heatmaps(x[:, : self.num_joints])}

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        coarse = self.forward_coarse(image)
        index = torch.topk(coarse["relevance"], self.num_refined, dim=1).indices
        fine = self.forward_fine(image, index, coarse["features"])
        return {
            "heatmaps": fine["heatmaps"],
            "coarse_heatmaps": coarse["heatmaps"],
            "quality": coarse["quality"],
            "relevance": coarse["relevance"],
            "patch_index": index,
        }

    # -- contract helpers ----------------------------------------------------------------------------
    def example_inputs(self, stage: str, batch: int = 2, seed: int = 0) -> dict[str, torch.Tensor]:
        self.stage_io(stage)
        image = self.example_image(batch, seed)
        if stage == "coarse":
            return {"image": image}
        g = torch.Generator().manual_seed(seed + 1)
        index = torch.stack(
            [torch.randperm(self.num_patches, generator=g)[: self.num_refined] for _ in range(batch)]
        )
        features = torch.randn(batch, self.num_patches, self.dim, generator=g)
        return {"image": image, "patch_index": index, "features": features}

    def convert_official_state(self, state):
        from .checkpoints import CheckpointError, few_keys

        if not any(k in state for k in _SIGNATURE) and _is_plain_vit(state):
            return self._convert_vit(state)
        if not any(k in state for k in _SIGNATURE):
            prefixes = sorted({".".join(k.split(".")[:2]) for k in state})
            raise CheckpointError(
                "not an official SHaRPose checkpoint: expected mmpose keys 'backbone.{patch_embed, "
                "pos_embed_list, keypoint_tokens, quality_token, blocks, norm, reuse_block, "
                "quality_predictor}.*' and 'keypoint_head.heatmap_mlp.*' "
                f"(e.g. {', '.join(_SIGNATURE)}); found prefixes: "
                f"{', '.join(prefixes[:12])}{' ...' if len(prefixes) > 12 else ''}"
            )
        own = self.state_dict()
        converted, unexpected, shapes = {}, [], []
        for key, value in state.items():
            ours = _rename(key, OFFICIAL_KEYS)
            if ours is None or ours not in own:
                unexpected.append(key)
            elif tuple(value.shape) != tuple(own[ours].shape):
                shapes.append(f"{key}: checkpoint {tuple(value.shape)} vs model {tuple(own[ours].shape)}")
            else:
                converted[ours] = value
        missing = sorted(
            to_official_key(k) or k for k in own if k not in converted and not _shape_listed(k, shapes)
        )
        problems = []
        if missing:
            problems.append(f"missing keys: {few_keys(missing)}")
        if unexpected:
            problems.append(f"unexpected keys: {few_keys(unexpected)}")
        if shapes:
            problems.append("mis-shaped keys: " + "; ".join(shapes[:6]) + (" ..." if len(shapes) > 6 else ""))
        if problems:
            name = getattr(self, "spec_name", type(self).__name__)
            raise CheckpointError(
                f"official SHaRPose checkpoint does not fit model {name}: " + " | ".join(problems)
            )
        return converted, []

    def _convert_vit(self, state) -> tuple[dict[str, torch.Tensor], list[str]]:
        """The shared encoder from a plain ViT (MAE, ViTPose or TAR-ViTPose backbone); the rest stays.

        As the official loader: the position table loses its class token and is resampled (bicubic)
        to the coarse and the fine grid. A different patch size resamples the kernel so that a
        smooth image gives the same embedding (area/bicubic resize times the area ratio). Keypoint
        tokens, quality token and predictor, reuse MLP and heatmap decoder keep their init, so load
        non-strictly (``load_weights(..., strict=False)``, ``edgepose train --weights``).
        """
        from .checkpoints import CheckpointError

        state = _without_backbone_prefix(state)
        own = self.state_dict()
        out, ignored, shapes = {}, [], []
        for key, value in state.items():
            ours = next((re.sub(f"^{p}$", r, key) for p, r in VIT_KEYS if re.fullmatch(p, key)), None)
            if ours is None or ours not in own:
                ignored.append(key)  # class token, MAE decoder, heads, depth beyond ours...
                continue
            if ours == "patch_embed.weight" and value.shape[-1] != self.patch_size:
                value = _resize_kernel(value, self.patch_size)
            if tuple(value.shape) != tuple(own[ours].shape):
                shapes.append(f"{key}: {tuple(value.shape)} vs {ours} {tuple(own[ours].shape)}")
            out[ours] = value
        blocks = {int(k.split(".")[1]) for k in out if k.startswith("blocks.")}
        if shapes or len(blocks) != len(self.blocks):
            raise CheckpointError(
                f"ViT encoder does not fit {getattr(self, 'spec_name', 'this SHaRPose')} (dim {self.dim}, "
                f"{len(self.blocks)} blocks, patch {self.patch_size}): it has {len(blocks)} blocks"
                + ("; mis-shaped: " + "; ".join(shapes[:4]) if shapes else "")
                + ". Build the model with the encoder's width, heads and depth."
            )
        pos = state["pos_embed"]
        out["pos_embed_coarse"] = _resample_positions(pos, self.coarse_grid)
        out["pos_embed_fine"] = _resample_positions(pos, self.fine_grid)
        ignored.remove("pos_embed")
        return out, ignored


def _without_backbone_prefix(state: dict) -> dict:
    return {k.removeprefix("backbone."): v for k, v in state.items()}


def _is_plain_vit(state) -> bool:
    keys = _without_backbone_prefix(state)
    qkv = re.compile(r"(?:blocks|layers)\.\d+\.attn\.qkv\.weight")
    return "pos_embed" in keys and any(qkv.fullmatch(k) for k in keys)


def _resize_kernel(weight: torch.Tensor, size: int) -> torch.Tensor:
    """Patch-embedding kernel (D, 3, p, p) -> (D, 3, size, size), same response to a flat patch."""
    p = weight.shape[-1]
    mode = "area" if size < p else "bicubic"
    return F.interpolate(weight.float(), size=(size, size), mode=mode) * (p / size) ** 2


def _resample_positions(pos: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """(1, [1 +] h*w, D) position table -> (1, grid h * grid w, D).

    The source grid is square or has the target's aspect; a leading class-token entry is added to
    every position (ViTPose's use of it; MAE's is zero) and dropped.
    """
    from .checkpoints import CheckpointError

    pos = pos.float().reshape(1, -1, pos.shape[-1])
    # the target's aspect first (ViTPose, TAR), then square (MAE): 7x7 = 49 is also 1 + 8x6
    for aspect, extra in ((grid[0] / grid[1], 0), (grid[0] / grid[1], 1), (1.0, 1), (1.0, 0)):
        n = pos.shape[1] - extra
        h = round(math.sqrt(n * aspect))
        if h > 0 and n % h == 0 and math.isclose(h / (n // h), aspect):
            table = pos[:, extra:] + (pos[:, :1] if extra else 0)
            table = table.reshape(1, h, n // h, -1).permute(0, 3, 1, 2)
            if (h, n // h) != tuple(grid):
                table = F.interpolate(table, size=grid, mode="bicubic", align_corners=False)
            return table.flatten(2).transpose(1, 2).contiguous()
    raise CheckpointError(
        f"position table of {pos.shape[1]} entries is neither a square grid nor a {grid[0]}:{grid[1]} one "
        "(with or without a class token)"
    )


def _shape_listed(our_key: str, shapes: list[str]) -> bool:
    official = to_official_key(our_key)
    return any(s.startswith(f"{official}:") for s in shapes)


_S = {
    "num_joints": 17,
    "input_size": (256, 192),
    "coarse_size": (128, 96),
    "patch_size": 16,
    "dim": 384,
    "depth": 12,
    "heads": 12,
    "mlp_ratio": 4.0,
    "heatmap_size": (64, 48),
    "alpha": 0.5,
    "beta": 0.99,
    "ema_from": 3,
    "quality_threshold": 0.95,
    "drop_path": 0.1,
    "compat": "paper",
}
# 64x48 crop, patch 8: coarse 32x24 -> N = 4x3 = 12 patches, k = 6, fine grid 8x6; heatmap 16x12 keeps
# the full model's two-layer decoder (dim 32 < 192 / 4).
_TINY = {
    **_S,
    "input_size": (64, 48),
    "coarse_size": (32, 24),
    "patch_size": 8,
    "dim": 32,
    "depth": 4,
    "heads": 2,
    "heatmap_size": (16, 12),
    "ema_from": 1,
}

_PAPER = PaperNumbers(
    params_m=28.4,
    gflops={"total": 4.9},
    accuracy="74.2 AP COCO val2017 (256x192, alpha 0.5, detector boxes of 56 AP, UDP)",
    note=(
        "Paper Tables 2/3/7: 28.4M params, 4.9 GFLOPs (MACs) for SHaRPose-S at 256x192, alpha 0.5. "
        "The paper counts one crop through both passes, the fine pass included for every crop (its "
        "Table 8 for the Base model: coarse only 5.7, coarse + selected fine 17.1; the quality gate only "
        "lowers the average cost), so 'total' here is coarse + fine stage: ours 1.55 + 3.27 = 4.82 "
        "(coarse 66 tokens, fine 17 + 4*24 + 24 = 137 tokens). Our count includes the attention "
        "matmuls (0.21 GFLOPs; 4.61 without them); the official repo does not ship its FLOP counter. "
        "The official forward also runs reuse_block on all 48 coarse tokens (ours: on the 24 chosen) "
        "and our fine stage re-embeds the coarse crop (+0.01): both under 1%. Params 28.48M: the "
        "official modules one for one (ViT-S 21.3M, two-layer heatmap MLP 384->1536->3072 5.3M, reuse "
        "MLP 1.2M, quality MLP 0.3M, patch embedding and position embeddings 0.4M)."
    ),
)

SPECS = (
    ModelSpec(
        name="sharpose_s",
        family="sharpose",
        builder=SHaRPose,
        config=_S,
        layout="coco17",
        paper=_PAPER,
        summary="SHaRPose-S: a ViT-S coarse pass at 128x96 ranks patches; a fine pass refines the top half "
        "at 256x192.",
    ),
    ModelSpec(
        name="sharpose_s_tiny",
        family="sharpose",
        builder=SHaRPose,
        config=_TINY,
        layout="coco17",
        summary="Test-sized SHaRPose (dim 32, depth 4, 64x48, N = 12 coarse patches, k = 6).",
        variant_of="sharpose_s",
    ),
)

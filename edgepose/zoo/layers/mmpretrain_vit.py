"""A plain ViT encoder with the parameter names of mmpretrain's ``VisionTransformer``.

mmpose 1.x builds ViTPose's backbone from ``mmpretrain.VisionTransformer`` with
``with_cls_token=False, out_type='featmap'``; models trained on it (ViTPose,
TAR-ViTPose) store keys such as ``patch_embed.projection.weight``,
``layers.3.attn.qkv.weight``, ``layers.3.ffn.layers.0.0.weight`` and a final
norm ``ln1``. Mirroring those names makes loading their checkpoints a prefix
rename. The blocks are :class:`edgepose.zoo.vit_blocks.Block` with mmpretrain's names
(``ln1``, ``attn``, ``ln2``, ``ffn``) and its numerics (queries scaled before ``q @ k^T``).
"""

from __future__ import annotations

import torch
from torch import nn

from ..vit_blocks import MMPRETRAIN, Block, MmcvFFN
from .sine_position import sine_position_embedding_2d


class PatchEmbed(nn.Module):
    """Non-overlapping patches by a strided conv (ViTPose pads by 2: 256x192 -> 16x12)."""

    def __init__(self, in_chans: int, dim: int, patch: int, padding: int):
        super().__init__()
        self.projection = nn.Conv2d(in_chans, dim, kernel_size=patch, stride=patch, padding=padding)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        x = self.projection(x)
        hw = (x.shape[2], x.shape[3])
        return x.flatten(2).transpose(1, 2), hw


def encoder_layer(dim: int, heads: int, mlp_ratio: float, drop_path: float, eps: float) -> Block:
    """mmpretrain's ``TransformerEncoderLayer``: pre-norm (``ln1`` -> attention, ``ln2`` -> FFN)."""
    return Block(
        dim, heads, mlp_ratio, True, drop_path, eps, names=MMPRETRAIN, scale_query=True, mlp_layer=MmcvFFN
    )


class ViTEncoder(nn.Module):
    """Image (B, 3, H, W) -> patch-token feature map (B, C, H/p, W/p); no class token.

    ``input_size`` fixes the learned position embedding's grid, as in ViTPose;
    other input sizes are rejected rather than silently interpolated.
    """

    def __init__(
        self,
        input_size: tuple[int, int] = (256, 192),
        patch_size: int = 16,
        patch_padding: int = 2,
        dim: int = 384,
        depth: int = 12,
        heads: int = 12,
        mlp_ratio: float = 4.0,
        drop_path: float = 0.0,
        eps: float = 1e-6,
        in_chans: int = 3,
    ):
        super().__init__()
        self.patch_embed = PatchEmbed(in_chans, dim, patch_size, patch_padding)
        gh = (input_size[0] + 2 * patch_padding - patch_size) // patch_size + 1
        gw = (input_size[1] + 2 * patch_padding - patch_size) // patch_size + 1
        self.grid = (gh, gw)
        self.dim = dim
        self.pos_embed = nn.Parameter(torch.zeros(1, gh * gw, dim))
        rates = torch.linspace(0, drop_path, depth).tolist() if depth > 1 else [drop_path]
        self.layers = nn.ModuleList(encoder_layer(dim, heads, mlp_ratio, r, eps) for r in rates)
        self.ln1 = nn.LayerNorm(dim, eps=eps)
        # Trained from scratch, a random position table leaves the encoder without a layout to start
        # from (TAR-ViTPose sat near the mean pose); the papers start from MAE weights, whose position
        # table is a fixed 2-D sine layout, so a random model starts from one too.
        with torch.no_grad():
            self.pos_embed.copy_(sine_position_embedding_2d(gh, gw, dim)[None])
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens, hw = self.patch_embed(x)
        if hw != self.grid:
            raise ValueError(
                f"ViT encoder built for a {self.grid} patch grid got {hw} (input {tuple(x.shape[2:])}); "
                "build the model with the input size you feed it"
            )
        tokens = tokens + self.pos_embed
        for layer in self.layers:
            tokens = layer(tokens)
        tokens = self.ln1(tokens)
        return tokens.transpose(1, 2).reshape(x.shape[0], self.dim, *hw)

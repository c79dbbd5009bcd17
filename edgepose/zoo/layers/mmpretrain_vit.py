"""A plain ViT encoder with the parameter names of mmpretrain's ``VisionTransformer``.

mmpose 1.x builds ViTPose's backbone from ``mmpretrain.VisionTransformer`` with
``with_cls_token=False, out_type='featmap'``; models trained on it (ViTPose,
TAR-ViTPose) store keys such as ``patch_embed.projection.weight``,
``layers.3.attn.qkv.weight``, ``layers.3.ffn.layers.0.0.weight`` and a final
norm ``ln1``. Mirroring those names makes loading their checkpoints a prefix
rename. Attention is written out (matmul, softmax) rather than fused so every
exporter sees plain ops.
"""

from __future__ import annotations

import torch
from torch import nn
from .sine_position import sine_position_embedding_2d


class DropPath(nn.Module):
    """Stochastic depth: drops a whole residual branch per sample while training."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask / keep


class PatchEmbed(nn.Module):
    """Non-overlapping patches by a strided conv (ViTPose pads by 2: 256x192 -> 16x12)."""

    def __init__(self, in_chans: int, dim: int, patch: int, padding: int):
        super().__init__()
        self.projection = nn.Conv2d(in_chans, dim, kernel_size=patch, stride=patch, padding=padding)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        x = self.projection(x)
        hw = (x.shape[2], x.shape[3])
        return x.flatten(2).transpose(1, 2), hw


class SelfAttention(nn.Module):
    """Multi-head self-attention with a fused ``qkv`` projection and output ``proj``."""

    def __init__(self, dim: int, heads: int, qkv_bias: bool = True):
        super().__init__()
        if dim % heads:
            raise ValueError(f"embedding dim {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = ((q * self.scale) @ k.transpose(-2, -1)).softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, c))


class FFN(nn.Module):
    """Linear-GELU-Linear; the nesting reproduces mmcv's ``ffn.layers.0.0`` / ``ffn.layers.1`` names."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.layers = nn.Sequential(nn.Sequential(nn.Linear(dim, hidden), nn.GELU()), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class EncoderLayer(nn.Module):
    """Pre-norm transformer block (``ln1`` -> attention, ``ln2`` -> FFN)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, drop_path: float, eps: float):
        super().__init__()
        self.ln1 = nn.LayerNorm(dim, eps=eps)
        self.attn = SelfAttention(dim, heads)
        self.ln2 = nn.LayerNorm(dim, eps=eps)
        self.ffn = FFN(dim, int(dim * mlp_ratio))
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.ln1(x)))
        return x + self.drop_path(self.ffn(self.ln2(x)))


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
        self.layers = nn.ModuleList(EncoderLayer(dim, heads, mlp_ratio, r, eps) for r in rates)
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

"""timm's pre-norm ViT ``Block`` (``norm1``, ``attn.qkv``/``attn.proj``, ``norm2``, ``mlp.fc1``/``mlp.fc2``).

The implementation is :mod:`edgepose.zoo.vit_blocks`, shared by every zoo ViT; this
module keeps the import path DSTA uses. ``Block``'s default names are timm's, and its
positional arguments (dim, heads, mlp_ratio, qkv_bias, drop_path, eps) are timm's.
"""

from __future__ import annotations

from ..vit_blocks import Attention, Block, DropPath, Mlp

__all__ = ["Attention", "Block", "DropPath", "Mlp"]

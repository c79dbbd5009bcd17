"""The ViT pieces the zoo shares: stochastic depth, multi-head attention, the MLP, the pre-norm block.

DSTA, DistilPose, SHaRPose and TAR-ViTPose each load checkpoints of a different code
base, so each keeps its own parameter names; the maths is one implementation here.
The names are constructor arguments (:class:`BlockNames` for the block's four
sub-modules, ``mlp_layer`` for the MLP's inner layout), so a family's state-dict keys
are what they were and its official-layout mapping is unchanged:

==============  ===================================  ==========================================
family          block keys                           as in
==============  ===================================  ==========================================
timm / MAE      ``norm1 attn.{qkv,proj} norm2        timm ``Block`` (DSTA, SHaRPose)
                mlp.{fc1,fc2}``
TokenPose       ``attn_norm attn.{qkv,proj}          DistilPose / TokenPose (qkv without bias)
                mlp_norm mlp.{fc1,fc2}``
mmpretrain      ``ln1 attn.{qkv,proj} ln2            mmpretrain ``VisionTransformer``
                ffn.layers.{0.0,1}``                 (ViTPose, TAR-ViTPose)
==============  ===================================  ==========================================

Attention is explicit matmuls + softmax (no fused SDPA) so ONNX, OpenVINO, litert-torch
and Core ML all see plain ops, and the matmuls stay the attention module's own operators
(the int8 float scopes ``*.attn`` with ``direct=True`` name exactly those). Where the
scale is applied is part of each family's numerics and is kept: timm and TokenPose
scale the logits (``(q @ k^T) * scale``), mmpretrain and ``nn.MultiheadAttention``
scale the queries (``(q * scale) @ k^T``); the two differ in the last float bit.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn


class DropPath(nn.Module):
    """Stochastic depth: zero a whole residual branch per sample while training."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask / keep


def attend(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    scale: float,
    scale_query: bool = False,
    bias: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scaled dot-product attention in plain ops.

    ``q`` (B, heads, Lq, d), ``k``/``v`` (B, heads, Lk, d), ``bias`` broadcast onto the
    (B, heads, Lq, Lk) logits -> (output (B, Lq, heads * d) with heads merged, probabilities).
    ``scale_query`` scales ``q`` before the product instead of the logits after it.
    """
    if scale_query:
        logits = (q * scale) @ k.transpose(-2, -1)
    else:
        logits = (q @ k.transpose(-2, -1)) * scale
    if bias is not None:
        logits = logits + bias
    probs = logits.softmax(dim=-1)
    return (probs @ v).transpose(1, 2).flatten(2), probs


class Attention(nn.Module):
    """Multi-head self-attention with a fused ``qkv`` projection and an output ``proj``."""

    def __init__(self, dim: int, heads: int, qkv_bias: bool = True, scale_query: bool = False):
        super().__init__()
        if dim % heads:
            raise ValueError(f"attention dim {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.scale_query = scale_query
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def attend(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, N, D) -> (output (B, N, D), attention probabilities (B, heads, N, N))."""
        b, n, d = x.shape
        # channel order of qkv's output is (q|k|v, head, head_dim)
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        out, probs = attend(q, k, v, self.scale, self.scale_query)
        return self.proj(out), probs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attend(x)[0]


class Mlp(nn.Module):
    """``fc2(GELU(fc1(x)))`` (exact GELU), timm's names."""

    def __init__(self, dim: int, hidden: int, out: int | None = None):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, out or dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class MmcvFFN(nn.Module):
    """The same MLP with mmcv's ``FFN`` nesting: ``layers.0.0`` (fc1, GELU), ``layers.1`` (fc2)."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.layers = nn.Sequential(nn.Sequential(nn.Linear(dim, hidden), nn.GELU()), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class BlockNames(NamedTuple):
    """Attribute names of a block's pre-attention norm, attention, pre-MLP norm and MLP."""

    norm1: str = "norm1"
    attn: str = "attn"
    norm2: str = "norm2"
    mlp: str = "mlp"


TIMM = BlockNames()
TOKENPOSE = BlockNames("attn_norm", "attn", "mlp_norm", "mlp")
MMPRETRAIN = BlockNames("ln1", "attn", "ln2", "ffn")


class Block(nn.Module):
    """Pre-norm transformer block: x + DropPath(Attn(LN(x))), then x + DropPath(MLP(LN(x))).

    The positional arguments are timm's ``Block`` ones. ``names`` picks the family's
    attribute names, ``mlp_hidden`` overrides ``int(dim * mlp_ratio)``, ``attn_layer`` and
    ``mlp_layer`` the attention and MLP classes (``mlp_layer(dim, hidden)``).
    Sub-modules are built in the order norm1, attn, norm2, mlp, as every family built them,
    so a seeded initialisation draws the same numbers.
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop_path: float = 0.0,
        eps: float = 1e-6,
        *,
        mlp_hidden: int | None = None,
        names: BlockNames = TIMM,
        scale_query: bool = False,
        attn_layer: type[Attention] = Attention,
        mlp_layer: type[nn.Module] = Mlp,
    ):
        super().__init__()
        self.names = BlockNames(*names)
        hidden = int(dim * mlp_ratio) if mlp_hidden is None else int(mlp_hidden)
        setattr(self, self.names.norm1, nn.LayerNorm(dim, eps=eps))
        setattr(self, self.names.attn, attn_layer(dim, heads, qkv_bias, scale_query))
        setattr(self, self.names.norm2, nn.LayerNorm(dim, eps=eps))
        setattr(self, self.names.mlp, mlp_layer(dim, hidden))
        self.drop_path = DropPath(drop_path)

    def parts(self) -> tuple[nn.Module, nn.Module, nn.Module, nn.Module]:
        """(norm1, attn, norm2, mlp) under whatever names this family gives them."""
        return tuple(getattr(self, n) for n in self.names)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        norm1, attn, norm2, mlp = self.parts()
        x = x + self.drop_path(attn(norm1(x)))
        return x + self.drop_path(mlp(norm2(x)))


def init_vit_weights(module: nn.Module) -> None:
    """timm/MAE/TokenPose init (use with ``model.apply``): Linear weights truncated-normal std 0.02,
    biases 0; LayerNorm weight 1, bias 0."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)

"""Fixed 2-D sine position embedding on a token grid (the DETR/TokenPose 'sine' form).

Row and column indices 1..n are normalised to (0, 2*pi] and encoded with
``dim/2`` channels each, rows first then columns; within each half, channel
``i`` is ``sin`` for even ``i`` and ``cos`` for odd ``i`` of
``pos / temperature ** (2 * (i // 2) / (dim / 2))``. Tokens are ordered
row-major, matching a ``flatten`` of an (h, w) grid.
"""

from __future__ import annotations

import math

import torch


def _encode_axis(n: int, channels: int, temperature: float, scale: float, eps: float) -> torch.Tensor:
    pos = torch.arange(1, n + 1, dtype=torch.float64) / (n + eps) * scale
    i = torch.arange(channels, dtype=torch.float64)
    freq = temperature ** (2 * torch.div(i, 2, rounding_mode="floor") / channels)
    angle = pos[:, None] / freq[None, :]
    return torch.where(i.remainder(2) == 0, angle.sin(), angle.cos())  # (n, channels)


def sine_position_embedding_2d(
    h: int, w: int, dim: int, temperature: float = 10000.0, scale: float = 2 * math.pi, eps: float = 1e-6
) -> torch.Tensor:
    """(h*w, dim) float32 embedding for an h x w token grid; ``dim`` must be a multiple of 4."""
    if dim % 4:
        raise ValueError(f"sine position embedding needs dim divisible by 4 (sin/cos per axis), got {dim}")
    half = dim // 2
    rows = _encode_axis(h, half, temperature, scale, eps)  # (h, half)
    cols = _encode_axis(w, half, temperature, scale, eps)  # (w, half)
    grid = torch.cat([rows[:, None, :].expand(h, w, half), cols[None, :, :].expand(h, w, half)], dim=-1)
    return grid.reshape(h * w, dim).float()

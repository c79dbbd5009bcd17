"""Multi-scale deformable attention (Deformable DETR) in ops every export target carries.

The core op ``ms_deform_attn`` samples each head's value maps at fractional locations and sums the
samples with attention weights. Conventions are Deformable DETR's (and mmcv's
``multi_scale_deformable_attn_pytorch``, which PAVE-Net's official code runs off-GPU):

* ``locations`` are normalised (x, y) in [0, 1] over each level's map, (0, 0) the top-left corner of
  the top-left pixel and (1, 1) the bottom-right corner of the bottom-right one; pixel centres sit at
  ``(i + 0.5) / W``. That is ``grid_sample(align_corners=False)`` on ``2 * loc - 1``.
* Bilinear interpolation with zero padding: a tap outside the map contributes 0 (``padding_mode='zeros'``),
  so a location half a pixel outside the border still gets half the border value.

Three implementations give the same numbers:

* ``impl="grid_sample"``: one ``F.grid_sample`` per level (ONNX GridSample, opset >= 16).
* ``impl="gather"``: the four bilinear taps computed explicitly and read with an index gather
  (ONNX Gather), for converters without a grid-sample op.
* ``ms_deform_attn_reference``: a plain per-point loop, the specification the two are tested against.

Levels are a static tuple of (H, W) (a fixed input size gives fixed maps), so no shape arithmetic
reaches the exported graph.

The modules below are the attention layers PAVE-Net uses, with the official parameter names:
``MSDeformAttn`` (mmcv ``MultiScaleDeformableAttention``: the encoder's self-attention),
``FrameDeformAttn`` (the joint decoder's cross-attention over a frame window) and ``PoseDeformAttn``
(the pose decoder's pose-aware cross-attention). The window modules keep one offset/weight projection
per frame, named by the frame's offset as the official code names them (``pre_``, none, ``next_``;
``pre_pre_``/``next_next_`` for 5 frames) and normalise the attention weights jointly over frames,
levels and points per head; the official code's per-frame softmax re-weighted by each frame's share of
``sum(exp(logits))`` is exactly that, computed here without the unguarded ``exp``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

IMPLS = ("grid_sample", "gather")
FRAME_PREFIX = {-2: "pre_pre_", -1: "pre_", 0: "", 1: "next_", 2: "next_next_"}


def _check(value, shapes, locations, weights):
    if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export():
        return  # shapes are static at export; checked in eager runs
    n, s, h, _ = value.shape
    if sum(a * b for a, b in shapes) != s:
        raise ValueError(
            f"value has {s} tokens but the levels {list(shapes)} hold {sum(a * b for a, b in shapes)}"
        )
    if locations.shape[:3] != (n, locations.shape[1], h) or locations.shape[3] != len(shapes):
        raise ValueError(
            f"locations must be (N, Q, heads={h}, levels={len(shapes)}, P, 2), got {tuple(locations.shape)}"
        )
    if weights.shape != locations.shape[:-1]:
        raise ValueError(f"weights must be {tuple(locations.shape[:-1])}, got {tuple(weights.shape)}")


def ms_deform_attn(
    value: torch.Tensor,
    shapes: tuple[tuple[int, int], ...],
    locations: torch.Tensor,
    weights: torch.Tensor,
    impl: str = "grid_sample",
) -> torch.Tensor:
    """value (N, S, heads, d), locations (N, Q, heads, L, P, 2), weights (N, Q, heads, L, P) -> (N, Q, heads*d).

    ``S`` is the sum of ``H*W`` over ``shapes`` (levels in order, each row-major).
    """
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
    _check(value, shapes, locations, weights)
    n, q, heads, levels, points, _ = locations.shape
    flat_loc = locations.reshape(n, q, heads, levels * points, 2)
    return ms_deform_attn_flat(
        value, shapes, flat_loc, weights.reshape(n, q, heads, levels * points), points, impl
    )


def ms_deform_attn_flat(
    value: torch.Tensor,
    shapes: tuple[tuple[int, int], ...],
    locations: torch.Tensor,
    weights: torch.Tensor,
    points: int,
    impl: str = "grid_sample",
) -> torch.Tensor:
    """``ms_deform_attn`` with levels and points on one axis: locations (N, Q, heads, L*P, 2), weights
    (N, Q, heads, L*P), level-major. No tensor in it has more than 5 dimensions (Core ML's limit)."""
    n, _, heads, d = value.shape
    q = locations.shape[1]
    # (N*heads, Q, L*P, 2) and (N*heads, Q, L*P): one batch row per head.
    loc = locations.permute(0, 2, 1, 3, 4).reshape(n * heads, q, len(shapes) * points, 2)
    wts = weights.permute(0, 2, 1, 3).reshape(n * heads, q, len(shapes) * points)
    out = None
    start = 0
    for lvl, (h, w) in enumerate(shapes):
        v = value[:, start : start + h * w]  # (N, h*w, heads, d)
        start += h * w
        lv_loc = loc[:, :, lvl * points : (lvl + 1) * points]  # (N*heads, Q, P, 2)
        lv_wts = wts[:, :, lvl * points : (lvl + 1) * points]
        if impl == "grid_sample":
            v = v.permute(0, 2, 3, 1).reshape(n * heads, d, h, w)
            sampled = F.grid_sample(
                v, 2.0 * lv_loc - 1.0, mode="bilinear", padding_mode="zeros", align_corners=False
            )
            part = (sampled * lv_wts[:, None]).sum(-1)  # (N*heads, d, Q)
        else:
            v = v.permute(0, 2, 1, 3).reshape(n * heads * h * w, d)
            part = _gather_level(v, n * heads, h, w, lv_loc, lv_wts).transpose(1, 2)
        out = part if out is None else out + part
    return out.reshape(n, heads * d, q).transpose(1, 2)


def _gather_level(flat, rows, h, w, loc, wts):
    """Bilinear taps of one level read with a flat index gather: (rows, Q, P, 2) -> (rows, Q, d)."""
    x = loc[..., 0] * w - 0.5
    y = loc[..., 1] * h - 0.5
    x0, y0 = torch.floor(x), torch.floor(y)
    fx, fy = x - x0, y - y0
    base = (torch.arange(rows, device=flat.device) * (h * w)).view(rows, 1, 1)
    out = None
    for dx, dy, tap in (
        (0, 0, (1 - fx) * (1 - fy)),
        (1, 0, fx * (1 - fy)),
        (0, 1, (1 - fx) * fy),
        (1, 1, fx * fy),
    ):
        xi, yi = x0 + dx, y0 + dy
        inside = ((xi >= 0) & (xi <= w - 1) & (yi >= 0) & (yi <= h - 1)).to(flat.dtype)
        idx = (yi.clamp(0, h - 1) * w + xi.clamp(0, w - 1)).long() + base
        sample = flat[idx.reshape(-1)].reshape(*idx.shape, -1)  # (rows, Q, P, d)
        term = (sample * (tap * inside * wts)[..., None]).sum(2)
        out = term if out is None else out + term
    return out


def ms_deform_attn_reference(value, shapes, locations, weights) -> torch.Tensor:
    """The specification, one sampling point at a time (slow; for tests at tiny sizes)."""
    _check(value, shapes, locations, weights)
    n, _, heads, d = value.shape
    q, levels, points = locations.shape[1], locations.shape[3], locations.shape[4]
    starts = [0]
    for h, w in shapes:
        starts.append(starts[-1] + h * w)
    out = value.new_zeros(n, q, heads, d)

    def pixel(b, head, lvl, yi, xi):
        h, w = shapes[lvl]
        if 0 <= xi < w and 0 <= yi < h:
            return value[b, starts[lvl] + yi * w + xi, head]
        return value.new_zeros(d)

    for b in range(n):
        for qi in range(q):
            for head in range(heads):
                acc = value.new_zeros(d)
                for lvl in range(levels):
                    h, w = shapes[lvl]
                    for p in range(points):
                        lx, ly = (float(c) for c in locations[b, qi, head, lvl, p])
                        x, y = lx * w - 0.5, ly * h - 0.5
                        x0, y0 = math.floor(x), math.floor(y)
                        fx, fy = x - x0, y - y0
                        sample = (
                            pixel(b, head, lvl, y0, x0) * (1 - fx) * (1 - fy)
                            + pixel(b, head, lvl, y0, x0 + 1) * fx * (1 - fy)
                            + pixel(b, head, lvl, y0 + 1, x0) * (1 - fx) * fy
                            + pixel(b, head, lvl, y0 + 1, x0 + 1) * fx * fy
                        )
                        acc = acc + weights[b, qi, head, lvl, p] * sample
                out[b, qi, head] = acc
    return out.reshape(n, q, heads * d)


def _grid_init(heads: int, levels: int, points: int) -> torch.Tensor:
    """Deformable DETR's offset bias init: head h points along angle 2*pi*h/heads, point p at distance p+1."""
    thetas = torch.arange(heads, dtype=torch.float32) * (2.0 * math.pi / heads)
    grid = torch.stack([thetas.cos(), thetas.sin()], -1)
    grid = grid / grid.abs().max(-1, keepdim=True)[0]
    grid = grid.view(heads, 1, 1, 2).repeat(1, levels, points, 1)
    for p in range(points):
        grid[:, :, p, :] *= p + 1
    return grid.reshape(-1)


def _normalizer(shapes, points: int) -> torch.Tensor:
    """(L*P, 2): each level's (W, H), repeated for its points (offsets are in that level's pixels)."""
    return torch.tensor([[w, h] for h, w in shapes for _ in range(points)], dtype=torch.float32)


def _xavier(linear: nn.Linear) -> None:
    nn.init.xavier_uniform_(linear.weight)
    nn.init.zeros_(linear.bias)


class MSDeformAttn(nn.Module):
    """Deformable DETR's multi-scale deformable attention (mmcv ``MultiScaleDeformableAttention`` names).

    ``forward(query (B, Q, C), value (B, S, C), reference (B, Q, 2) normalised (x, y))`` -> (B, Q, C),
    before the residual (the layer adds it). Locations are ``reference + offset / (W_l, H_l)``.
    """

    def __init__(self, dim: int, heads: int, shapes, points: int = 4, impl: str = "grid_sample"):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.dim, self.heads, self.points, self.impl = dim, heads, points, impl
        self.shapes = tuple(tuple(int(v) for v in s) for s in shapes)
        levels = len(self.shapes)
        self.sampling_offsets = nn.Linear(dim, heads * levels * points * 2)
        self.attention_weights = nn.Linear(dim, heads * levels * points)
        self.value_proj = nn.Linear(dim, dim)
        self.output_proj = nn.Linear(dim, dim)
        self.register_buffer("normalizer", _normalizer(self.shapes, points), persistent=False)
        nn.init.zeros_(self.sampling_offsets.weight)
        with torch.no_grad():
            self.sampling_offsets.bias.copy_(_grid_init(heads, levels, points))
        nn.init.zeros_(self.attention_weights.weight)
        nn.init.zeros_(self.attention_weights.bias)
        _xavier(self.value_proj)
        _xavier(self.output_proj)

    def forward(self, query: torch.Tensor, value: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        b, q, _ = query.shape
        levels = len(self.shapes)
        v = self.value_proj(value).reshape(b, value.shape[1], self.heads, -1)
        offsets = self.sampling_offsets(query).view(b, q, self.heads, levels * self.points, 2)
        weights = self.attention_weights(query).view(b, q, self.heads, levels * self.points).softmax(-1)
        loc = reference[:, :, None, None, :] + offsets / self.normalizer
        return self.output_proj(ms_deform_attn_flat(v, self.shapes, loc, weights, self.points, self.impl))


class _WindowDeformAttn(nn.Module):
    """Shared part of the frame-window attentions: one offset and weight projection per frame."""

    def __init__(self, dim, heads, shapes, points, frame_offsets, impl):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        unknown = [o for o in frame_offsets if o not in FRAME_PREFIX]
        if unknown:
            raise ValueError(f"frame offsets must lie in {sorted(FRAME_PREFIX)}, got {tuple(frame_offsets)}")
        self.dim, self.heads, self.points, self.impl = dim, heads, points, impl
        self.shapes = tuple(tuple(int(v) for v in s) for s in shapes)
        self.frame_offsets = tuple(frame_offsets)
        levels = len(self.shapes)
        for o in self.frame_offsets:
            setattr(self, f"{FRAME_PREFIX[o]}sampling_offsets", nn.Linear(dim, heads * levels * points * 2))
            setattr(self, f"{FRAME_PREFIX[o]}attention_weights", nn.Linear(dim, heads * levels * points))
        self.value_proj = nn.Linear(dim, dim)
        self.output_proj = nn.Linear(dim, dim)
        for o in self.frame_offsets:
            for kind in ("sampling_offsets", "attention_weights"):
                lin = getattr(self, f"{FRAME_PREFIX[o]}{kind}")
                nn.init.zeros_(lin.weight)
                nn.init.zeros_(lin.bias)
        _xavier(self.value_proj)
        _xavier(self.output_proj)

    def project_value(self, window: torch.Tensor) -> torch.Tensor:
        """(B, T, S, C) memory window -> (B, T*S, heads, d): the frames laid end to end as extra levels."""
        b, t, s, _ = window.shape
        return self.value_proj(window).reshape(b, t * s, self.heads, -1)

    def _offsets_and_weights(self, query):
        b, q, _ = query.shape
        levels = len(self.shapes)
        offs = [  # (B, Q, heads, L*P, 2) per frame
            getattr(self, f"{FRAME_PREFIX[o]}sampling_offsets")(query).view(
                b, q, self.heads, levels * self.points, 2
            )
            for o in self.frame_offsets
        ]
        logits = torch.cat(
            [
                getattr(self, f"{FRAME_PREFIX[o]}attention_weights")(query).view(
                    b, q, self.heads, levels * self.points
                )
                for o in self.frame_offsets
            ],
            3,
        )  # (B, Q, heads, T*L*P): one softmax over every frame, level and point of a head
        return offs, logits.softmax(-1)

    def _attend(self, value, locs, weights):
        loc = torch.cat(locs, 3)  # (B, Q, heads, T*L*P, 2): the frames as consecutive levels
        shapes = self.shapes * len(self.frame_offsets)
        return self.output_proj(ms_deform_attn_flat(value, shapes, loc, weights, self.points, self.impl))


class FrameDeformAttn(_WindowDeformAttn):
    """Deformable cross-attention over a frame window (official ``MulFramesMultiScaleDeformableAttention``).

    ``forward(query (B, Q, C), value (from project_value), reference (B, T, Q, 2))`` -> (B, Q, C); frame t
    samples at ``reference[:, t] + offset_t / (W_l, H_l)``.
    """

    def __init__(self, dim, heads, shapes, points=4, frame_offsets=(-1, 0, 1), impl="grid_sample"):
        super().__init__(dim, heads, shapes, points, frame_offsets, impl)
        levels = len(self.shapes)
        with torch.no_grad():
            for o in self.frame_offsets:
                getattr(self, f"{FRAME_PREFIX[o]}sampling_offsets").bias.copy_(
                    _grid_init(heads, levels, points)
                )
        self.register_buffer("normalizer", _normalizer(self.shapes, points), persistent=False)

    def forward(self, query, value, reference):
        offs, weights = self._offsets_and_weights(query)
        locs = [reference[:, t, :, None, None, :] + off / self.normalizer for t, off in enumerate(offs)]
        return self._attend(value, locs, weights)


class PoseDeformAttn(_WindowDeformAttn):
    """PAVE-Net's pose-aware cross-attention (official ``MulFramesMultiScaleDeformablePoseAttention``).

    One sampling point per joint (``points`` = K): in frame t, point k of every head and level samples
    at ``pose_t[k] + offset_t * (w_t, h_t) / 2``, where ``pose_t`` (B, Q, K, 2) is the query's reference
    pose in frame t and ``(w_t, h_t)`` its box (clamped at 1e-4). ``forward(query, value, poses
    (B, T, Q, K, 2))`` -> (B, Q, C).
    """

    def forward(self, query, value, poses):
        offs, weights = self._offsets_and_weights(query)
        levels = len(self.shapes)
        locs = []
        for t, off in enumerate(offs):
            pose = poses[:, t]  # (B, Q, K, 2)
            wh = (pose.amax(2) - pose.amin(2)).clamp(min=1e-4)  # (B, Q, 2)
            base = pose.repeat(1, 1, levels, 1)[:, :, None]  # (B, Q, 1, L*K, 2): point k of every level
            locs.append(base + off * wh[:, :, None, None, :] * 0.5)
        return self._attend(value, locs, weights)

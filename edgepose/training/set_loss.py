"""PAVE-Net's training loss: Hungarian set matching, then focal classification and RLE regression.

A whole-frame model predicts a fixed set of M people per frame; the ground truth holds N_i people.
Following the paper (``shared/papers/pave-net.md``, "Loss Function") and the official configuration
(zgspose/PAVENet, ``configs/test/resnet50_num_frames_3.py``: ``PoseHungarianAssigner`` with
``FocalLossCost`` 2.0, ``KptL1Cost`` 70.0, ``OksCost`` 7.0; ``FocalLoss`` alpha 0.25, gamma 2, weight
0.5; ``RLELoss`` weight 1 on the initial poses, on each pose-decoder layer and on each joint-decoder
refinement; the OKS losses there carry weight 0 and are left out here):

1. **Matching**, per image and per prediction level: a one-to-one assignment of predictions to
   people (``scipy.optimize.linear_sum_assignment``) minimising
   ``w_cls * focal_cost + w_l1 * L1 + w_oks * (-OKS)``. ``focal_cost`` is the focal loss of calling
   a prediction a person minus that of calling it background; ``L1`` is the mean absolute error
   over a person's labelled coordinates (normalised [0, 1] units); ``OKS`` uses the layout's
   sigmas and the area of the person's labelled-joint extent (``areas`` may be given instead).
2. **Classification**: sigmoid focal loss over every prediction (matched ones are people),
   divided by the number of matched people.
3. **Regression**: RLE (``edgepose.training.losses.rle_loss``, with the task's RealNVP flow) on
   the matched predictions' joints, over labelled joints only, divided by the number of labelled
   joints (optionally weighted per joint, as the official ``joints_weight``).

Prediction levels come as a list (initial poses first, then each refinement), each a dict of
plain tensors: ``poses`` (B, M, K, 2) and ``sigmas`` (B, M, K, 2) normalised to [0, 1] of the
model-input image, and ``logits`` (B, M). A level without ``logits`` (the joint decoder refines
poses but scores no people) reuses the matching of the latest level that had them and gets no
classification loss. Targets: one (N_i, K, 3) tensor per image, x and y normalised to [0, 1] and
a visibility (> 0: labelled).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..core.keypoints import get_layout
from .losses import RealNVP, rle_loss


@dataclass(frozen=True)
class MatchWeights:
    """Weights of the matching cost's terms (the official assigner's) and the focal cost's shape."""

    cls: float = 2.0
    l1: float = 70.0
    oks: float = 7.0
    alpha: float = 0.25
    gamma: float = 2.0


# --------------------------------------------------------------------------- costs


def focal_cost(
    logits: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0, eps: float = 1e-8
) -> torch.Tensor:
    """(M,) cost of labelling each prediction a person: its focal loss as a person minus as background."""
    p = logits.float().sigmoid()
    as_person = -(p + eps).log() * alpha * (1 - p).pow(gamma)
    as_background = -(1 - p + eps).log() * (1 - alpha) * p.pow(gamma)
    return as_person - as_background


def pose_l1_cost(poses: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """(M, N) mean absolute error over each person's labelled coordinates; poses (M, K, 2), targets
    (N, K, 3). A person without labelled joints costs 0 against every prediction."""
    vis = (targets[..., 2] > 0).float()  # (N, K)
    diff = (poses[:, None] - targets[None, ..., :2]).abs().sum(-1)  # (M, N, K)
    return (diff * vis[None]).sum(-1) / (2 * vis.sum(-1)).clamp(min=1)[None]


def keypoint_areas(targets: torch.Tensor, minimum: float = 1e-6) -> torch.Tensor:
    """(N,) area of each person's labelled-joint extent (the stand-in for a segment area)."""
    vis = targets[..., 2] > 0
    big = torch.finfo(targets.dtype).max
    xy = targets[..., :2]
    lo = torch.where(vis[..., None], xy, xy.new_tensor(big)).amin(1)
    hi = torch.where(vis[..., None], xy, xy.new_tensor(-big)).amax(1)
    wh = (hi - lo).clamp(min=0)
    area = wh[:, 0] * wh[:, 1]
    return torch.where(vis.any(-1), area, area.new_zeros(())).clamp(min=minimum)


def oks(
    poses: torch.Tensor, targets: torch.Tensor, sigmas: torch.Tensor, areas: torch.Tensor | None = None
) -> torch.Tensor:
    """(M, N) object keypoint similarity of each prediction to each person, over labelled joints
    (0 for a person with none). ``sigmas`` (K,) as in COCO; ``areas`` (N,) default: joint extents."""
    if areas is None:
        areas = keypoint_areas(targets)
    vis = (targets[..., 2] > 0).float()
    d2 = (poses[:, None] - targets[None, ..., :2]).square().sum(-1)  # (M, N, K)
    var = (2 * sigmas.to(poses)) ** 2
    e = torch.exp(-d2 / (2 * var * areas.to(poses)[None, :, None]))
    return (e * vis[None]).sum(-1) / vis.sum(-1).clamp(min=1)[None]


def match_cost(
    logits: torch.Tensor,
    poses: torch.Tensor,
    targets: torch.Tensor,
    sigmas: torch.Tensor,
    weights: MatchWeights = MatchWeights(),
    areas: torch.Tensor | None = None,
) -> torch.Tensor:
    """(M, N) matching cost of one image: logits (M,), poses (M, K, 2), targets (N, K, 3)."""
    cost = weights.cls * focal_cost(logits, weights.alpha, weights.gamma)[:, None]
    cost = cost + weights.l1 * pose_l1_cost(poses.float(), targets.float())
    return cost - weights.oks * oks(poses.float(), targets.float(), sigmas, areas)


@torch.no_grad()
def hungarian_match(
    logits: torch.Tensor,
    poses: torch.Tensor,
    targets: torch.Tensor,
    sigmas: torch.Tensor,
    weights: MatchWeights = MatchWeights(),
    areas: torch.Tensor | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The one-to-one assignment of one image: ``(prediction indices, person indices)``, sorted by
    person; every person gets a prediction when M >= N."""
    if len(targets) == 0 or len(poses) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    try:
        from scipy.optimize import linear_sum_assignment
    except ImportError:  # scipy is not a core dependency (the device side never needs it)
        raise ImportError(
            "PAVE-Net's set loss matches with scipy's linear_sum_assignment: pip install scipy"
        ) from None
    cost = match_cost(logits.detach(), poses.detach(), targets, sigmas, weights, areas)
    cost = torch.nan_to_num(cost, nan=1e6, posinf=1e6, neginf=-1e6).cpu().numpy()
    rows, cols = linear_sum_assignment(cost)
    order = np.argsort(cols, kind="stable")
    return rows[order].astype(np.int64), cols[order].astype(np.int64)


# --------------------------------------------------------------------------- losses


def sigmoid_focal_loss(
    logits: torch.Tensor, labels: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0
) -> torch.Tensor:
    """Summed sigmoid focal loss (Lin et al.) of logits against 0/1 labels of the same shape."""
    x, y = logits.float(), labels.float()
    p = x.sigmoid()
    ce = nn.functional.binary_cross_entropy_with_logits(x, y, reduction="none")
    p_t = p * y + (1 - p) * (1 - y)
    a_t = alpha * y + (1 - alpha) * (1 - y)
    return (a_t * (1 - p_t).pow(gamma) * ce).sum()


class SetCriterion(nn.Module):
    """PAVE-Net's loss over all prediction levels (see the module docstring).

    ``sigmas``: the OKS sigmas (K,) or a keypoint layout name. ``flow``: the RLE RealNVP (made when
    not given; training-only, it learns with the model). ``joint_weights`` (K,): per-joint weights of
    the RLE term (the official PoseTrack config up-weights elbows, wrists, knees and ankles).
    ``level_weights``: one factor per level (default 1 each).
    """

    def __init__(
        self,
        sigmas: Sequence[float] | np.ndarray | str = "coco17",
        flow: RealNVP | None = None,
        cls_weight: float = 0.5,
        rle_weight: float = 1.0,
        match: MatchWeights = MatchWeights(),
        joint_weights: Sequence[float] | None = None,
        level_weights: Sequence[float] | None = None,
        focal_alpha: float = 0.25,
        focal_gamma: float = 2.0,
    ):
        super().__init__()
        s = get_layout(sigmas).sigmas if isinstance(sigmas, str) else sigmas
        self.register_buffer("sigmas", torch.as_tensor(np.asarray(s, np.float32)))
        self.flow = flow if flow is not None else RealNVP()
        self.cls_weight, self.rle_weight = float(cls_weight), float(rle_weight)
        self.match = match
        jw = None if joint_weights is None else torch.as_tensor(np.asarray(joint_weights, np.float32))
        if jw is not None and jw.shape != self.sigmas.shape:
            raise ValueError(
                f"joint_weights has {tuple(jw.shape)} entries, the layout {tuple(self.sigmas.shape)}"
            )
        self.register_buffer("joint_weights", jw if jw is not None else torch.ones_like(self.sigmas))
        self.level_weights = None if level_weights is None else [float(w) for w in level_weights]
        self.alpha, self.gamma = float(focal_alpha), float(focal_gamma)

    def match_level(
        self, level: dict[str, torch.Tensor], targets: Sequence[torch.Tensor], areas=None
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per image ``(prediction indices, person indices)`` for one level with logits."""
        return [
            hungarian_match(
                level["logits"][b],
                level["poses"][b],
                t.to(level["poses"].device),
                self.sigmas,
                self.match,
                None if areas is None else areas[b],
            )
            for b, t in enumerate(targets)
        ]

    def level_loss(
        self,
        level: dict[str, torch.Tensor],
        targets: Sequence[torch.Tensor],
        matches: list[tuple[np.ndarray, np.ndarray]],
    ) -> dict[str, torch.Tensor]:
        """``{"cls", "rle"}`` of one level under ``matches`` (``cls`` only when it has logits)."""
        poses, sigmas = level["poses"], level["sigmas"]
        device = poses.device
        out: dict[str, torch.Tensor] = {}
        n_pos = sum(len(p) for p, _ in matches)
        if "logits" in level:
            labels = torch.zeros_like(level["logits"], dtype=torch.float32)
            for b, (p, _) in enumerate(matches):
                labels[b, torch.as_tensor(p, device=device)] = 1.0
            focal = sigmoid_focal_loss(level["logits"], labels, self.alpha, self.gamma)
            out["cls"] = focal / max(n_pos, 1)
        if n_pos == 0:
            out["rle"] = (poses.sum() + sigmas.sum()) * 0.0  # keeps the graph; nothing to regress
            return out
        bi = torch.cat([torch.full((len(p),), b, dtype=torch.long) for b, (p, _) in enumerate(matches)])
        bi = bi.to(device)
        pi = torch.cat([torch.as_tensor(p, dtype=torch.long) for p, _ in matches]).to(device)
        gt = torch.cat(
            [
                t.to(device)[torch.as_tensor(g, dtype=torch.long, device=device)]
                for t, (_, g) in zip(targets, matches)
            ]
        ).float()  # (P, K, 3)
        weight = (gt[..., 2] > 0).float() * self.joint_weights.to(device)[None]
        visible = (gt[..., 2] > 0).float().sum().clamp(min=1)
        loss, _ = rle_loss(poses[bi, pi], sigmas[bi, pi].clamp(min=1e-6), gt[..., :2], weight, self.flow)
        out["rle"] = loss * len(pi) / visible  # rle_loss divides by rows; per labelled joint instead
        return out

    def forward(
        self,
        predictions: Sequence[dict[str, torch.Tensor]],
        targets: Sequence[torch.Tensor],
        areas: Sequence[torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The total loss and its parts ``{"l{i}.cls", "l{i}.rle"}`` (level 0: the initial poses).

        ``predictions``: levels in order, initial poses first; ``targets``: (N_i, K, 3) per image;
        ``areas``: optional (N_i,) per image for the OKS cost (default: labelled-joint extents)."""
        if not predictions:
            raise ValueError("predictions must hold at least one level (the initial poses)")
        if "logits" not in predictions[0]:
            raise ValueError("the first prediction level needs 'logits' (someone has to score the people)")
        b = predictions[0]["poses"].shape[0]
        if len(targets) != b:
            raise ValueError(f"{len(targets)} target tensors for a batch of {b} images")
        lw = self.level_weights or [1.0] * len(predictions)
        if len(lw) != len(predictions):
            raise ValueError(f"{len(lw)} level weights for {len(predictions)} levels")
        parts: dict[str, torch.Tensor] = {}
        total = predictions[0]["poses"].new_zeros(())
        matches = None
        for i, level in enumerate(predictions):
            if "logits" in level:
                matches = self.match_level(level, targets, areas)
            got = self.level_loss(level, targets, matches)
            for k, v in got.items():
                parts[f"l{i}.{k}"] = v
                total = total + lw[i] * (self.cls_weight if k == "cls" else self.rle_weight) * v
        return total, parts


__all__ = [
    "MatchWeights",
    "SetCriterion",
    "focal_cost",
    "hungarian_match",
    "keypoint_areas",
    "match_cost",
    "oks",
    "pose_l1_cost",
    "sigmoid_focal_loss",
]

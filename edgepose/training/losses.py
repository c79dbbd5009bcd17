"""The papers' training losses, written from their formulations (official code read for conventions).

* **RLE** (Li et al., ICCV 2021, as DSTA trains with it; DSTA ``posetimation/loss/criterion.py`` and
  ``dsta_std_resnet50.py``): the regressed coordinate ``mu`` and scale ``sigma`` define the
  normalised residual ``r = (target - mu) / sigma``. A RealNVP flow ``G`` (training-only, its own
  parameters, dropped at export) learns the density of ``r``; a fixed Laplace ``Q`` on ``r``
  carries the residual log-likelihood. Per joint (``paper`` form)::

      L = -log G(r) + sum_d [ log(2*sqrt(2)*sigma_d) + |target_d - mu_d| / (sqrt(2)*sigma_d) ]

  i.e. the Laplace NLL of the error with scale sqrt(2)*sigma (the official ``logQ``'s scale) plus
  the flow's NLL of the normalised residual. ``compat="official"`` reproduces the official code's
  tensor broadcast instead: its ``nf_loss = log(sigma) - log_phi`` is (B, J, 2), so ``log G`` and a
  second ``log sigma`` are counted once per coordinate, and its ``logQ`` constant is
  ``log(sqrt(2*pi)*sigma)``. Sums run over joints and coordinates, weighted by the target weight,
  and are divided by the batch size (the official ``size_average``). With an identity flow ``G``
  is the prior N(prior_mean, I); DSTA's code sets prior_mean 0.5 (RLE's own code: 0), offered as
  an option.
* **Heatmap MSE** with per-joint target weights (TAR-ViTPose ``core/loss.py``, mmpose
  ``JointsMSELoss``): mean over batch, joints and pixels of ``(w_j * (pred - target))^2``.
* **SHaRPose quality** (AnxQ/sharpose ``models/sharpose_qp_heatmap_head.py`` and
  ``models/eval_utils.py``): the quality token regresses the OKS of the *coarse* pass's prediction,
  ``MSE(quality, OKS)`` over crops with at least one labelled joint, weight 0.03 (0 early in
  training). OKS uses the coarse heatmap's argmax, COCO-style sigmas of the layout and the crop
  box's area, as the official ``instance_oks``; the official maps heatmap pixels back with the
  (H, W) factors swapped and compares against the argmax of the *target* heatmap; we map with the
  codec convention and compare against the ground-truth keypoints themselves.
* **DistilPose** (Ye et al., CVPR 2023; yshMars/DistilPose ``distilpose/models/losses/dist_loss.py``
  and the S config): token distillation ``MSE(student tokens, teacher tokens)`` (weights 5e-4 for
  keypoint and visual tokens), Simulated Heatmaps ``MSE(H(coords, sigma), teacher heatmap)`` with
  the Gaussian drawn from the student's coordinates and (sigma_x, sigma_y) (weight 1), confidence
  ``L1(score_raw, teacher heatmap at the rounded predicted point)`` (weight 0.01) and the
  regression loss on the ground truth, Smooth L1 (weight 1). Sigmas are in pixels of the 1/4-input
  heatmap grid (official); the official confidence look-up rounds ``coords * (size - 1)`` while its
  Gaussian is centred at ``coords * size``: we use ``coords * size`` for both, the codec's
  convention (heatmap pixel j sits at crop x = j * W / w).

All functions take ``weight`` of shape (B, J) (the datasets' ``target_weight`` /
``heatmap_weight``) and return a scalar; computations run in float32 under AMP.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

_LOG_2PI = math.log(2 * math.pi)
RLE_COMPAT = ("paper", "official")
RLE_RESIDUALS = ("laplace", "gaussian")


# ---------------------------------------------------------------------------------------------- RLE


class AffineCoupling(nn.Module):
    """One RealNVP coupling: the coordinates where ``mask`` is 1 pass through unchanged and
    condition a scale ``s`` (tanh-bounded) and shift ``t`` for the others."""

    def __init__(self, mask: torch.Tensor, hidden: int = 64):
        super().__init__()
        dim = mask.numel()
        self.register_buffer("mask", mask.float())
        self.scale = nn.Sequential(
            nn.Linear(dim, hidden),
            nn.LeakyReLU(),
            nn.Linear(hidden, hidden),
            nn.LeakyReLU(),
            nn.Linear(hidden, dim),
            nn.Tanh(),
        )
        self.shift = nn.Sequential(
            nn.Linear(dim, hidden),
            nn.LeakyReLU(),
            nn.Linear(hidden, hidden),
            nn.LeakyReLU(),
            nn.Linear(hidden, dim),
        )

    def to_latent(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x -> z and log|det dz/dx| per row."""
        keep = self.mask
        free = 1.0 - keep
        x_keep = x * keep
        s = self.scale(x_keep) * free
        t = self.shift(x_keep) * free
        z = x_keep + free * (x - t) * torch.exp(-s)
        return z, -s.sum(dim=-1)


class RealNVP(nn.Module):
    """A 2-D RealNVP density (RLE's flow): alternating-mask affine couplings over a Gaussian prior.

    Training-only: it lives in the regression task, not in the model, and is saved with the
    task's state in training checkpoints. Initialised as RLE does (Xavier-uniform weights with
    gain 0.01, so it starts near the identity); :meth:`make_identity` makes it exactly the
    identity (tests, or a prior-only start).
    """

    def __init__(self, dim: int = 2, hidden: int = 64, couplings: int = 6, prior_mean: float = 0.0):
        super().__init__()
        if couplings < 1 or couplings % 2:
            raise ValueError(
                f"RealNVP needs an even number of couplings (alternating masks), got {couplings}"
            )
        base = torch.arange(dim) % 2  # (0, 1, ...) then (1, 0, ...)
        self.couplings = nn.ModuleList(
            AffineCoupling(base if i % 2 == 0 else 1 - base, hidden) for i in range(couplings)
        )
        self.register_buffer("prior_mean", torch.full((dim,), float(prior_mean)))
        self.dim = dim
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight, gain=0.01)
                nn.init.zeros_(m.bias)

    @torch.no_grad()
    def make_identity(self) -> RealNVP:
        """Zero every coupling's output layer: s = t = 0, so the flow is the identity map."""
        for c in self.couplings:
            for net in (c.scale, c.shift):
                last = [m for m in net if isinstance(m, nn.Linear)][-1]
                last.weight.zero_()
                last.bias.zero_()
        return self

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log density of rows x (N, dim) under the flow."""
        z, log_det = x.float(), x.new_zeros(x.shape[0], dtype=torch.float32)
        for c in self.couplings:
            z, ld = c.to_latent(z)
            log_det = log_det + ld
        prior = -0.5 * (z - self.prior_mean).square().sum(-1) - 0.5 * self.dim * _LOG_2PI
        return prior + log_det


def rle_loss(
    coords: torch.Tensor,
    sigma: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor,
    flow: RealNVP,
    residual: str = "laplace",
    compat: str = "paper",
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Residual log-likelihood loss. coords, sigma, target (B, J, 2); weight (B, J).

    Returns the loss and its parts ``rle_residual`` (the Laplace/Gaussian term) and ``rle_flow``
    (the flow term), each already reduced the same way, so loss = the sum of the parts.
    """
    if residual not in RLE_RESIDUALS:
        raise ValueError(f"residual must be one of {RLE_RESIDUALS}, got {residual!r}")
    if compat not in RLE_COMPAT:
        raise ValueError(f"compat must be one of {RLE_COMPAT}, got {compat!r}")
    coords, sigma, target, weight = coords.float(), sigma.float(), target.float(), weight.float()
    b = coords.shape[0]
    err = target - coords
    normalised = err / sigma
    with torch.autocast(coords.device.type, enabled=False):  # the flow's density in full precision
        log_g = flow.log_prob(normalised.reshape(-1, 2)).reshape(weight.shape)  # (B, J)
    w = weight[..., None]
    if residual == "laplace":
        const = 0.5 * _LOG_2PI if compat == "official" else math.log(2 * math.sqrt(2))
        q = const + torch.log(sigma) + err.abs() / (math.sqrt(2) * sigma + 1e-9)
    else:
        q = 0.5 * _LOG_2PI + torch.log(sigma) + err.square() / (2 * sigma.square() + 1e-9)
    if compat == "official":  # (log sigma - log G) broadcast over both coordinates
        flow_term = (torch.log(sigma) - log_g[..., None]) * w
    else:
        flow_term = -log_g * weight
    parts = {"rle_residual": (q * w).sum() / b, "rle_flow": flow_term.sum() / b}
    return parts["rle_residual"] + parts["rle_flow"], parts


# ------------------------------------------------------------------------------------------ heatmaps


def heatmap_mse(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """mmpose's JointsMSELoss with target weights: mean of (w_j * (pred - target))^2 over B, J, h, w.
    Joints with weight 0 contribute nothing, whatever the prediction."""
    if pred.shape != target.shape:
        raise ValueError(f"heatmaps {tuple(pred.shape)} and targets {tuple(target.shape)} differ in shape")
    w = weight.float()[..., None, None]
    return ((pred.float() - target.float()) * w).square().mean()


def heatmap_argmax(heatmaps: torch.Tensor, input_size: Sequence[int]) -> torch.Tensor:
    """(B, J, h, w) -> integer-peak keypoints (B, J, 2) in crop pixels (codec convention)."""
    b, j, h, w = heatmaps.shape
    idx = heatmaps.reshape(b, j, -1).argmax(-1)
    xy = torch.stack([idx % w, torch.div(idx, w, rounding_mode="floor")], -1).float()
    return xy * xy.new_tensor([input_size[1] / w, input_size[0] / h])


def instance_oks(
    pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor, sigmas: torch.Tensor, area: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """OKS per instance of keypoints (B, J, 2) against targets (same units), over joints with weight > 0.

    Returns (oks (B,), valid (B,)): crops without a labelled joint are not valid.
    """
    var = (2 * sigmas.float()) ** 2
    d2 = (pred.float() - target.float()).square().sum(-1)
    e = torch.exp(-d2 / var / (area + 1e-12) / 2)
    mask = (weight > 0).float()
    count = mask.sum(-1)
    return (e * mask).sum(-1) / count.clamp(min=1), count > 0


def quality_loss(
    quality: torch.Tensor,
    coarse_heatmaps: torch.Tensor,
    keypoints: torch.Tensor,
    weight: torch.Tensor,
    sigmas: torch.Tensor,
    input_size: Sequence[int],
) -> tuple[torch.Tensor, torch.Tensor]:
    """SHaRPose's quality loss: MSE between the predicted quality (B,) and the OKS of the coarse
    heatmaps' argmax against the labelled keypoints (crop pixels; area = the crop's). Returns the
    loss (unweighted) and the mean OKS of the valid crops (for logging)."""
    with torch.no_grad():
        pred = heatmap_argmax(coarse_heatmaps.detach(), input_size)
        oks, valid = instance_oks(pred, keypoints, weight, sigmas, float(input_size[0] * input_size[1]))
    if not bool(valid.any()):
        return quality.sum() * 0.0, oks.new_zeros(())
    return F.mse_loss(quality.float()[valid], oks[valid]), oks[valid].mean()


# ---------------------------------------------------------------------------------------- DistilPose


def smooth_l1_regression(coords: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """DistilPose's regression loss: Smooth L1 (beta 1) of weighted coordinates, mean over B, J, 2."""
    w = weight.float()[..., None]
    return F.smooth_l1_loss(coords.float() * w, target.float() * w)


def simulated_heatmaps(
    coords: torch.Tensor, sigma: torch.Tensor, size: Sequence[int], sigma_scale: Sequence[float] = (1.0, 1.0)
) -> tuple[torch.Tensor, torch.Tensor]:
    """The Simulated Heatmaps: an unnormalised 2-D Gaussian per joint on an (h, w) grid.

    coords (B, J, 2) as (x/W, y/H); sigma (B, J, 2) as (sigma_x, sigma_y) in pixels of the
    1/4-input grid, multiplied by ``sigma_scale`` when the grid is another size. Returns the
    heatmaps (B, J, h, w) and ``in_range`` (B, J): False where the Gaussian's 3-sigma box misses
    the grid (the official mask; such joints are left out of the loss).
    """
    h, w = int(size[0]), int(size[1])
    coords, sigma = coords.float(), sigma.float()
    mu_x, mu_y = coords[..., 0] * w, coords[..., 1] * h
    sx = sigma[..., 0] * float(sigma_scale[0])
    sy = sigma[..., 1] * float(sigma_scale[1])
    with torch.no_grad():
        in_range = (
            (mu_x - 3 * sx < w) & (mu_y - 3 * sy < h) & (mu_x + 3 * sx + 1 >= 0) & (mu_y + 3 * sy + 1 >= 0)
        )
    xs = torch.arange(w, device=coords.device, dtype=torch.float32)[None, None, None, :]
    ys = torch.arange(h, device=coords.device, dtype=torch.float32)[None, None, :, None]
    g = torch.exp(
        -0.5
        * (
            (xs - mu_x[..., None, None]).square() / (sx[..., None, None].square() + 1e-9)
            + (ys - mu_y[..., None, None]).square() / (sy[..., None, None].square() + 1e-9)
        )
    )
    return g * in_range[..., None, None].float(), in_range


def simulated_heatmap_loss(
    coords: torch.Tensor,
    sigma: torch.Tensor,
    teacher_heatmaps: torch.Tensor,
    weight: torch.Tensor,
    sigma_scale: Sequence[float] = (1.0, 1.0),
) -> torch.Tensor:
    """L_SH: heatmap MSE between the student's simulated heatmaps and the teacher's."""
    sim, in_range = simulated_heatmaps(coords, sigma, teacher_heatmaps.shape[-2:], sigma_scale)
    return heatmap_mse(sim, teacher_heatmaps.detach(), weight.float() * in_range.float())


def teacher_value_at(coords: torch.Tensor, heatmaps: torch.Tensor) -> torch.Tensor:
    """The heatmap value at the rounded predicted point (B, J); 0 where coords leave [0, 1]."""
    b, j, h, w = heatmaps.shape
    c = coords.detach().float()
    ix = (c[..., 0].clamp(0, 1) * w).round().long().clamp(0, w - 1)
    iy = (c[..., 1].clamp(0, 1) * h).round().long().clamp(0, h - 1)
    flat = heatmaps.detach().float().reshape(b, j, h * w)
    value = flat.gather(-1, (iy * w + ix)[..., None])[..., 0]
    inside = ((c >= 0) & (c <= 1)).all(-1)
    return value * inside.float()


def confidence_loss(
    coords: torch.Tensor, score_raw: torch.Tensor, teacher_heatmaps: torch.Tensor, weight: torch.Tensor
) -> torch.Tensor:
    """L_CS: L1 between the raw score and the teacher heatmap's value at the predicted point."""
    w = weight.float()
    target = teacher_value_at(coords, teacher_heatmaps)
    return F.l1_loss(score_raw.float() * w, target * w)


def token_distill_loss(
    student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """L_KT / L_VT: MSE between token sets (B, N, D); ``mask`` (N,) keeps only some tokens."""
    if student.shape != teacher.shape:
        raise ValueError(
            f"student tokens {tuple(student.shape)} and teacher tokens {tuple(teacher.shape)} differ"
        )
    if mask is not None:
        keep = mask.bool()
        student, teacher = student[:, keep], teacher[:, keep]
    return F.mse_loss(student.float(), teacher.detach().float())

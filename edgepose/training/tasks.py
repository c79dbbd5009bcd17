"""Training tasks: how each model family is fed and which of the papers' losses it trains with.

A task is what :class:`edgepose.training.trainer.Trainer` needs from a family:
``forward(model, batch) -> outputs`` and ``loss(outputs, batch) -> (loss, parts)``. Tasks are
``nn.Module``\\ s so that training-only parameters (RLE's RealNVP flow, DistilPose's token
projection) are optimised with the model and saved in (and restored from) training
checkpoints, never in the model's weights.

=============  ============================  ==================================================
family         task                          loss
=============  ============================  ==================================================
dsta           :class:`RLERegressionTask`    RLE with a RealNVP flow on coords/sigma
tar_vitpose    :class:`HeatmapTask`          heatmap MSE with joint weights (current frame)
sharpose       :class:`SHaRPoseTask`         fine + coarse heatmap MSE + 0.03 x quality MSE
                                             against the coarse pass's OKS (late in training)
distilpose     :class:`DistilPoseTask`       Smooth L1 on GT + token, Simulated-Heatmap and
                                             confidence distillation from a heatmap teacher
pavenet        :class:`SetPredictionTask`    Hungarian matching, then focal + RLE on the initial
                                             poses and every pose- and joint-decoder level
=============  ============================  ==================================================

Each family's object (``edgepose.families``) names its task; one that names none falls back on
its codec (regression -> RLE, heatmap -> MSE).
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

from ..core.keypoints import get_layout
from ..families import get_family
from . import losses as L
from .teacher import Teacher, TokenProjection

log = logging.getLogger("edgepose.training")


def _inputs(batch: dict) -> torch.Tensor:
    """``frames`` (B, T, 3, H, W) for temporal models, else ``image`` (B, 3, H, W)."""
    return batch["frames"] if "frames" in batch else batch["image"]


class PoseTask(nn.Module):
    """Shared plumbing. ``notes`` collects one-line facts worth printing (e.g. a skipped loss)."""

    def __init__(self, spec, model):
        super().__init__()
        self.spec = spec
        self.input_size = tuple(spec.input_size)
        # the model's own heatmap grid where it says (TAR-ViTPose with patch 8, SHaRPose's head), else 1/4 input
        hm = getattr(model, "heatmap_size", None)
        self.model_heatmap_size = (
            tuple(hm) if hm is not None else (self.input_size[0] // 4, self.input_size[1] // 4)
        )
        self.notes: list[str] = []
        self.epoch, self.epochs = 0, 1

    def note(self, text: str) -> None:
        self.notes.append(text)
        log.info(text)

    def heatmap_size(self) -> tuple[int, int] | None:
        """Heatmap targets the dataset must produce (None: none needed)."""
        return None

    def set_epoch(self, epoch: int, epochs: int) -> None:
        self.epoch, self.epochs = int(epoch), max(int(epochs), 1)

    def forward(self, model: nn.Module, batch: dict) -> dict:
        return model(_inputs(batch))

    def loss(self, outputs: dict, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        raise NotImplementedError


class RLERegressionTask(PoseTask):
    """DSTA: RLE on the regressed (x/W, y/H) coordinates with the model's sigma.

    ``residual`` laplace (DSTA, RLE) or gaussian; ``compat`` paper or official (see
    :func:`edgepose.training.losses.rle_loss`); ``prior_mean`` 0 (RLE) or 0.5 (DSTA's code).
    """

    def __init__(
        self, spec, model, residual: str = "laplace", compat: str = "paper", prior_mean: float = 0.0
    ):
        super().__init__(spec, model)
        if residual not in L.RLE_RESIDUALS or compat not in L.RLE_COMPAT:
            raise ValueError(
                f"RLE options: residual in {L.RLE_RESIDUALS}, compat in {L.RLE_COMPAT}; got {residual!r}, {compat!r}"
            )
        self.residual, self.compat = residual, compat
        self.flow = L.RealNVP(prior_mean=prior_mean)

    def loss(self, outputs, batch):
        loss, parts = L.rle_loss(
            outputs["coords"],
            outputs["sigma"],
            batch["coords"],
            batch["target_weight"],
            self.flow,
            self.residual,
            self.compat,
        )
        parts = {k: v.detach() for k, v in parts.items()}
        with torch.no_grad():  # mean error in crop pixels over weighted joints, for the log
            scale = outputs["coords"].new_tensor([self.input_size[1], self.input_size[0]])
            err = ((outputs["coords"] - batch["coords"]) * scale).norm(dim=-1)
            w = batch["target_weight"]
            parts["err_px"] = (err * w).sum() / w.sum().clamp(min=1)
        return loss, parts


class HeatmapTask(PoseTask):
    """TAR-ViTPose (and any heatmap model): MSE against Gaussian targets with joint weights."""

    def heatmap_size(self):
        return self.model_heatmap_size

    def loss(self, outputs, batch):
        mse = L.heatmap_mse(outputs["heatmaps"], batch["heatmaps"], batch["heatmap_weight"])
        return mse, {"heatmap": mse.detach()}


class SHaRPoseTask(HeatmapTask):
    """SHaRPose: both passes' heatmaps supervised; the quality head learns the coarse pass's OKS.

    The quality weight is 0 until ``quality_from`` (a fraction of training: the paper's 180 of
    210 epochs) and ``quality_weight`` (0.03) after, as the paper: the quality predictor
    converges much faster than the heatmaps.
    """

    def __init__(
        self,
        spec,
        model,
        quality_weight: float = 0.03,
        quality_from: float = 180 / 210,
        coarse_weight: float = 1.0,
    ):
        super().__init__(spec, model)
        if not 0.0 <= quality_from <= 1.0:
            raise ValueError(f"quality_from is a fraction of training in [0, 1], got {quality_from}")
        self.quality_weight, self.quality_from, self.coarse_weight = (
            quality_weight,
            quality_from,
            coarse_weight,
        )
        self.register_buffer(
            "sigmas", torch.tensor(get_layout(spec.layout).sigmas, dtype=torch.float32), persistent=False
        )

    @property
    def quality_on(self) -> bool:
        return self.epoch >= round(self.quality_from * self.epochs)

    def loss(self, outputs, batch):
        weight = batch["heatmap_weight"]
        fine = L.heatmap_mse(outputs["heatmaps"], batch["heatmaps"], weight)
        coarse = L.heatmap_mse(outputs["coarse_heatmaps"], batch["heatmaps"], weight)
        q, oks = L.quality_loss(
            outputs["quality"],
            outputs["coarse_heatmaps"],
            batch["keypoints"],
            batch["target_weight"],
            self.sigmas,
            self.input_size,
        )
        lam = self.quality_weight if self.quality_on else 0.0
        loss = fine + self.coarse_weight * coarse + lam * q
        return loss, {
            "fine": fine.detach(),
            "coarse": coarse.detach(),
            "quality": q.detach(),
            "coarse_oks": oks,
            "quality_w": torch.tensor(lam),
        }


DISTILPOSE_WEIGHTS = {
    "reg": 1.0,
    "kpt_token": 5e-4,
    "vis_token": 5e-4,
    "sim_heatmap": 1.0,
    "confidence": 1e-2,
}


class DistilPoseTask(PoseTask):
    """DistilPose student: regression on the ground truth plus distillation from a heatmap teacher.

    ``teacher``: a :class:`~edgepose.training.teacher.Teacher` or None. Without one, and with
    ``gt_teacher`` (default), the Simulated-Heatmap and confidence losses use the ground-truth
    Gaussian heatmaps as the teacher's (an ideal teacher: the confidence then learns the target
    Gaussian's value at the predicted point), and token distillation is skipped. Token
    distillation runs when the teacher's tokens can be read; different widths or grids go through
    a training-only :class:`~edgepose.training.teacher.TokenProjection` unless
    ``project_tokens=False``, which skips it instead. Every skip is noted with its reason.
    """

    def __init__(
        self,
        spec,
        model,
        teacher: Teacher | None = None,
        weights: dict | None = None,
        project_tokens: bool = True,
        gt_teacher: bool = True,
    ):
        super().__init__(spec, model)
        unknown = set(weights or {}) - set(DISTILPOSE_WEIGHTS)
        if unknown:
            raise ValueError(
                f"unknown DistilPose loss weights {sorted(unknown)}; known: {sorted(DISTILPOSE_WEIGHTS)}"
            )
        self.weights = {**DISTILPOSE_WEIGHTS, **(weights or {})}
        self.teacher, self.gt_teacher = teacher, gt_teacher
        self.projection: TokenProjection | None = None
        h, w = self.input_size
        if teacher is None:
            self.note(
                "DistilPose: no teacher; "
                + (
                    "Simulated-Heatmap and confidence losses use the ground-truth heatmaps; token distillation skipped"
                    if gt_teacher
                    else "training on the regression loss only"
                )
            )
            return
        if teacher.missing_joints:
            self.note(
                f"DistilPose: teacher {teacher.spec.name} lacks joints {teacher.missing_joints}: "
                "they are left out of distillation"
            )
        if teacher.tokens is None:
            self.note(f"DistilPose: token distillation skipped: {teacher.no_token_reason}")
            return
        dim, grid = model.tde.keypoint_tokens.shape[-1], tuple(model.tde.grid)
        same = dim == teacher.tokens.dim and grid == tuple(teacher.tokens.grid)
        if not same and not project_tokens:
            self.note(
                f"DistilPose: token distillation skipped: student tokens {dim}-d on {grid} vs teacher "
                f"{teacher.tokens.dim}-d on {teacher.tokens.grid} and project_tokens is off"
            )
            return
        self.projection = TokenProjection(dim, grid, teacher.tokens)
        if not same:
            self.note(
                f"DistilPose: student tokens ({dim}-d, grid {grid}) are projected to the teacher's "
                f"({teacher.tokens.dim}-d, grid {teacher.tokens.grid}) by a training-only projection"
            )

    def heatmap_size(self):
        return (
            (self.input_size[0] // 4, self.input_size[1] // 4)
            if self.teacher is None and self.gt_teacher
            else None
        )

    def forward(self, model, batch):
        image = batch["image"]
        out = dict(model.forward_distill(image))
        if self.teacher is not None:
            out["teacher"] = self.teacher(image, batch.get("frames"))
        return out

    def loss(self, outputs, batch):
        wt = self.weights
        tw = batch["target_weight"]
        parts: dict[str, torch.Tensor] = {
            "reg": L.smooth_l1_regression(outputs["coords"], batch["coords"], tw)
        }
        teacher = outputs.get("teacher")
        if teacher is not None:
            heatmaps, hm_weight = teacher.heatmaps, tw * self.teacher.joint_mask
        elif self.gt_teacher:
            heatmaps, hm_weight = batch["heatmaps"], batch["heatmap_weight"]
        else:
            heatmaps = None
        if heatmaps is not None:
            h, w = self.input_size
            scale = (
                heatmaps.shape[-1] / (w / 4),
                heatmaps.shape[-2] / (h / 4),
            )  # sigmas live on the 1/4 grid
            parts["sim_heatmap"] = L.simulated_heatmap_loss(
                outputs["coords"], outputs["sigma"], heatmaps, hm_weight, scale
            )
            parts["confidence"] = L.confidence_loss(
                outputs["coords"], outputs["score_raw"], heatmaps, hm_weight
            )
        if teacher is not None and self.projection is not None:
            mask = self.teacher.joint_mask
            parts["kpt_token"] = L.token_distill_loss(
                self.projection.keypoints(outputs["kpt_tokens"]), teacher.kpt_tokens, mask
            )
            parts["vis_token"] = L.token_distill_loss(
                self.projection.visual(outputs["vis_tokens"]), teacher.vis_tokens
            )
        loss = sum(wt[k] * v for k, v in parts.items())
        return loss, {k: v.detach() for k, v in parts.items()}


CODEC_TASKS: dict[str, type[PoseTask]] = {"regression": RLERegressionTask, "heatmap": HeatmapTask}


def task_class(spec) -> type[PoseTask]:
    """The task ``spec``'s family object names, else its codec's."""
    return get_family(spec).task or CODEC_TASKS[spec.codec]


def build_task(spec, model, **options: Any) -> PoseTask:
    """The task for ``spec``'s family (or codec), with family-specific ``options``."""
    cls = task_class(spec)
    try:
        return cls(spec, model, **options)
    except TypeError as e:
        raise TypeError(f"{cls.__name__} ({spec.family}) does not take these options: {e}") from None

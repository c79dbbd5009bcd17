"""Heatmap teachers for DistilPose-style distillation.

A teacher is any heatmap model of the zoo (random, or loaded from a checkpoint), frozen. It
gives, for the student's crop:

* ``heatmaps`` (B, J, h, w) in the *student's* joint order (joints the teacher's layout lacks
  are zero and masked out by ``joint_mask``): always; the Simulated-Heatmap and confidence
  losses need only these;
* ``kpt_tokens`` (B, J, D_t) and ``vis_tokens`` (B, P_t, D_t) on a (gh, gw) grid: when its
  family's object has a ``teacher_reader`` knowing where they live (``edgepose.families``).
  SHaRPose: the fine pass's final keypoint tokens and the coarse pass's final patch tokens (a
  regular 8x6 grid; the fine pass's mixed-resolution tokens are not a grid). TAR-ViTPose: the
  joint queries after JTA (read at GRA's input) and the current frame's encoder token map.

The official DistilPose teacher (TokenPose with an HRNet-W48) has tokens of the student's size;
ours rarely do (SHaRPose-S: 384-d, 48 patches; DistilPose-S: 192-d, 256 patches), so the task
may bridge them with :class:`TokenProjection`: a linear map from student to teacher width and an
area resampling of the student's visual-token grid onto the teacher's. It is training-only (it
lives in the task, is optimised with the student and saved in training checkpoints, never in
the model). Where no reader exists, or projection is turned off and the shapes differ, token
distillation is skipped and the reason is logged.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..core.keypoints import get_layout
from ..families import families, get_family

log = logging.getLogger("edgepose.training")


@dataclass
class TeacherOutput:
    heatmaps: torch.Tensor  # (B, J_student, h, w)
    kpt_tokens: torch.Tensor | None = None  # (B, J_student, D)
    vis_tokens: torch.Tensor | None = None  # (B, P, D)


@dataclass(frozen=True)
class TokenInfo:
    dim: int
    grid: tuple[int, int]  # the visual tokens' (rows, cols), row-major


class Capture:
    """Collects a module's outputs (or one positional input) during one forward."""

    def __init__(self, module: nn.Module, arg: int | None = None):
        self.values: list[torch.Tensor] = []
        if arg is None:
            self.handle = module.register_forward_hook(lambda m, i, o: self.values.append(o))
        else:
            self.handle = module.register_forward_pre_hook(lambda m, i: self.values.append(i[arg]))

    def __enter__(self) -> Capture:
        return self

    def __exit__(self, *exc) -> None:
        self.handle.remove()


def teacher_clip(model, image: torch.Tensor, frames: torch.Tensor | None) -> torch.Tensor:
    """The teacher's input clip: the student's frames when the windows agree, else the image
    repeated over the teacher's window (a static clip)."""
    t = model.num_frames
    if frames is not None and frames.shape[1] == t:
        return frames
    return image[:, None].expand(-1, t, -1, -1, -1)


def _read_heatmaps_only(model, image, frames):
    x = teacher_clip(model, image, frames) if model.num_frames > 1 else image
    return model(x)["heatmaps"], None, None


class Teacher:
    """A frozen heatmap model adapted to a student's joints and crop.

    Not an ``nn.Module`` on purpose: its weights are neither optimised nor written into the
    student's checkpoints (the official detector keeps its teacher the same way).
    """

    def __init__(self, model: nn.Module, spec, student_spec):
        if spec.codec != "heatmap":
            raise ValueError(
                f"teacher {spec.name!r} is a {spec.codec} model; a DistilPose teacher must output heatmaps "
                "(e.g. sharpose_s or tar_vitpose_s, or a checkpoint of one)"
            )
        if tuple(spec.mean) != tuple(student_spec.mean) or tuple(spec.std) != tuple(student_spec.std):
            raise ValueError(
                f"teacher {spec.name!r} and student {student_spec.name!r} normalise images differently"
            )
        self.model = model.eval().requires_grad_(False)
        self.spec, self.family = spec, spec.family
        self.input_size = tuple(spec.input_size)
        self.student_size = tuple(student_spec.input_size)
        teacher_layout, student_layout = get_layout(spec.layout), get_layout(student_spec.layout)
        src, mask = [], []
        for name in student_layout.names:
            ok = name in teacher_layout.names and name not in teacher_layout.empty
            src.append(teacher_layout.names.index(name) if ok else 0)
            mask.append(ok and name not in student_layout.empty)
        if not any(mask):
            raise ValueError(
                f"teacher layout {spec.layout!r} shares no joint with student layout {student_spec.layout!r}"
            )
        self.joint_index = torch.tensor(src)
        self.joint_mask = torch.tensor(mask, dtype=torch.float32)  # (J_student,)
        self.missing_joints = [
            n for n, m in zip(student_layout.names, mask) if not m and n not in student_layout.empty
        ]
        reader = get_family(spec).teacher_reader
        self._reader = reader.read if reader is not None else _read_heatmaps_only
        self.tokens: TokenInfo | None = reader.tokens(self.model) if reader is not None else None
        self.no_token_reason = (
            None
            if reader is not None
            else (
                f"teacher family {self.family!r} has no token reader (known: "
                f"{sorted(n for n, f in families().items() if f.teacher_reader is not None)})"
            )
        )

    def _device(self, device: torch.device) -> None:
        p = next(self.model.parameters())
        if p.device != device:
            self.model.to(device)
            self.joint_index = self.joint_index.to(device)
            self.joint_mask = self.joint_mask.to(device)

    @torch.no_grad()
    def __call__(self, image: torch.Tensor, frames: torch.Tensor | None = None) -> TeacherOutput:
        self._device(image.device)
        if self.input_size != self.student_size:  # same crop, the teacher's resolution
            image = F.interpolate(image, size=self.input_size, mode="bilinear", align_corners=False)
            if frames is not None:
                b, t = frames.shape[:2]
                frames = F.interpolate(
                    frames.flatten(0, 1), size=self.input_size, mode="bilinear", align_corners=False
                ).reshape(b, t, 3, *self.input_size)
        heatmaps, kpt, vis = self._reader(self.model, image, frames)
        heatmaps = heatmaps.float().index_select(1, self.joint_index) * self.joint_mask[None, :, None, None]
        if kpt is not None:
            kpt = kpt.float().index_select(1, self.joint_index)
        return TeacherOutput(heatmaps, kpt, None if vis is None else vis.float())


class TokenProjection(nn.Module):
    """Training-only bridge from student tokens to a teacher's token shape (see the module docstring).

    ``kpt``/``vis`` are identities when the widths agree; the visual-token grid is area-resampled
    only when the grids differ.
    """

    def __init__(self, student_dim: int, student_grid: tuple[int, int], teacher: TokenInfo):
        super().__init__()
        self.student_grid, self.teacher_grid = tuple(student_grid), tuple(teacher.grid)
        same = student_dim == teacher.dim
        self.kpt = nn.Identity() if same else nn.Linear(student_dim, teacher.dim)
        self.vis = nn.Identity() if same else nn.Linear(student_dim, teacher.dim)

    def keypoints(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.kpt(tokens)

    def visual(self, tokens: torch.Tensor) -> torch.Tensor:
        if self.student_grid != self.teacher_grid:
            b, p, d = tokens.shape
            grid = tokens.transpose(1, 2).reshape(b, d, *self.student_grid)
            tokens = F.adaptive_avg_pool2d(grid, self.teacher_grid).flatten(2).transpose(1, 2)
        return self.vis(tokens)


def build_teacher(source: str, student_spec, device: str | torch.device = "cpu") -> tuple[Teacher, str]:
    """A teacher from ``MODEL`` (random weights), ``CHECKPOINT`` (an edgepose checkpoint naming its
    model) or ``MODEL:CHECKPOINT`` (e.g. an official checkpoint for a zoo model). Returns the
    teacher and a one-line description for logs."""
    from pathlib import Path

    from ..zoo import create_model, get_spec, load_weights
    from ..zoo.checkpoints import read_checkpoint

    name, ckpt, config = source, None, {}
    if Path(source).is_file():
        ckpt = source
        obj = read_checkpoint(source)
        name = obj.get("model")
        if not name:
            raise ValueError(
                f"teacher checkpoint {source!r} does not name its model (not an edgepose checkpoint); "
                "pass --teacher MODEL:CHECKPOINT"
            )
        config = obj.get("config") or {}
    elif ":" in source:
        name, ckpt = source.split(":", 1)
    spec = get_spec(name)
    overrides = {k: v for k, v in config.items() if k in spec.config and v != spec.config[k]}
    model = create_model(name, **overrides)
    if ckpt is None:
        desc = f"{name} with random weights (a random teacher teaches little: pass a trained checkpoint)"
        log.warning("teacher %s has random weights", name)
    else:
        report = load_weights(model, ckpt)
        desc = f"{name} from {ckpt} ({report.loaded} tensors)"
    return Teacher(model.to(device), spec, student_spec), desc

"""Top-down training samples: person crops (single frames or clips) with targets.

One sample is one labelled person in one frame. For a temporal model the
sample's clip holds the frames at the model's offsets (clamped at video ends,
``edgepose.data.clips``), and every frame is cropped with the *current* frame's
box and the *same* augmentation, as DCPose/DSTA's loader does: the model sees
how the scene moves inside a fixed window.

Augmentation follows the papers' settings: HRNet's pipeline, which DCPose and
DSTA's code inherit and DistilPose's paper cites, with the ranges of DSTA's
appendix and config (SCALE_FACTOR 0.35, ROT_FACTOR 45, PROB_HALF_BODY 0.3,
NUM_JOINTS_HALF_BODY 8): scale s ~ N(1, 0.35) truncated to [0.65, 1.35];
rotation ~ N(0, 45 deg) truncated to +-45 deg, applied with probability 0.6;
horizontal flip with probability 0.5 (joints swapped with
``layout.flip_index``); half-body crop with probability 0.3 when more than 8
usable joints are visible (box grown 1.5x around the chosen half's joints,
centred on their mean). Two deliberate differences from the official code:
rotation is truncated at the papers' stated +-45 deg (the code clips at
+-90), and upper and lower body are chosen with equal odds (the code's
``randn() < 0.5`` favours the upper body about 69% of the time).

Images are read with OpenCV; the crop is warped in BGR and only the small crop
is converted to RGB and normalised. Decoding dominates the cost (about 85% of
a sample on 1280x720 JPEGs): feed a trainer with DataLoader workers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from edgepose.core.codecs import encode_heatmaps
from edgepose.core.keypoints import KeypointLayout, get_layout
from edgepose.core.transforms import (
    BOX_PADDING,
    box_to_center_size,
    crop_matrix,
    invert_affine,
    normalize,
    transform_points,
    warp,
)
from edgepose.zoo.spec import IMAGENET_MEAN, IMAGENET_STD

from .clips import check_offsets, iter_clips
from .records import FrameRecord, PersonRecord, VideoRecord

_ITEM_KEYS = frozenset(
    {"image", "frames", "keypoints", "visible", "target_weight", "coords", "inverse", "image_id", "index",
     "heatmaps", "heatmap_weight"}
)  # fmt: skip
LOWER_BODY = frozenset({"left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle"})


@dataclass(frozen=True)
class AugmentConfig:
    """Random augmentation ranges (defaults: DSTA/DCPose's PoseTrack config)."""

    scale_factor: float = 0.35
    rotation_factor: float = 45.0
    rotation_prob: float = 0.6
    flip_prob: float = 0.5
    half_body_prob: float = 0.3
    half_body_min_joints: int = 8
    half_body_padding: float = 1.5


@dataclass(frozen=True)
class Augmentation:
    """One draw of the augmentation, applied identically to every frame of a clip."""

    scale: float = 1.0
    rotation: float = 0.0  # degrees
    flip: bool = False
    center: tuple[float, float] | None = None  # half-body crop region, replacing the box's
    size: tuple[float, float] | None = None


@dataclass(frozen=True)
class Sample:
    clip: tuple[FrameRecord, ...]  # time order; the current frame at ``current``
    current: int
    person: PersonRecord  # in the current frame


def read_bgr(path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise FileNotFoundError(f"cannot read image {path} (missing, or not an image OpenCV can decode)")
    return img


def _truncated_normal(rng: np.random.Generator) -> float:
    """N(0, 1) restricted to [-1, 1] (rejection sampling; accepts ~68% of draws)."""
    while True:
        v = rng.standard_normal()
        if -1.0 <= v <= 1.0:
            return float(v)


class TopDownDataset(Dataset):
    """A torch Dataset of top-down crops with keypoint, heatmap and coordinate targets.

    ``source``: PoseTrack videos (``read_posetrack``) or still frames
    (``read_coco``; single-frame offsets only). Each item is a dict:

    * ``image`` (3, H, W) float32, or ``frames`` (T, 3, H, W) for T offsets;
      ImageNet-normalised RGB (or the given mean/std);
    * ``keypoints`` (J, 2) crop pixels; ``visible`` (J,) the label's visibility;
      ``target_weight`` (J,): visible, labelable in the layout, inside the crop,
      outside ignore regions (times ``joint_weights`` if given);
    * ``coords`` (J, 2) = (x/W, y/H) for regression models;
    * ``heatmaps`` (J, h, w) and ``heatmap_weight`` (J,) when ``heatmap_size`` is set;
    * per-joint flags of the annotation (e.g. ``occluded``, ``blurred``) as (J,)
      float32, NaN where a person lacks a flag that others have;
    * ``inverse`` (2, 3) float64 crop -> frame matrix, ``image_id``, ``index``.

    ``collapse_window``: every slot of the window holds the current frame (the
    same samples, shapes and targets, no neighbouring frames): the ablation
    that shows what a temporal model gains from its window, with the
    architecture unchanged.
    """

    def __init__(
        self,
        source: Sequence[VideoRecord] | Sequence[FrameRecord],
        input_size: tuple[int, int],
        layout: str | KeypointLayout,
        offsets: Sequence[int] = (0,),
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        augment: AugmentConfig | None = None,
        heatmap_size: tuple[int, int] | None = None,
        heatmap_sigma: float = 2.0,
        joint_weights: Sequence[float] | None = None,
        padding: float = BOX_PADDING,
        min_visible: int = 1,
        image_loader: Callable[[object], np.ndarray] = read_bgr,
        collapse_window: bool = False,
    ):
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.layout = get_layout(layout) if isinstance(layout, str) else layout
        self.offsets = check_offsets(offsets)
        self.mean, self.std = tuple(mean), tuple(std)
        self.augment = augment
        self.heatmap_size = tuple(heatmap_size) if heatmap_size else None
        self.heatmap_sigma = heatmap_sigma
        self.joint_weights = None if joint_weights is None else np.asarray(joint_weights, np.float32)
        if self.joint_weights is not None and len(self.joint_weights) != len(self.layout):
            raise ValueError(
                f"joint_weights has {len(self.joint_weights)} entries; layout has {len(self.layout)}"
            )
        self.padding = padding
        self.min_visible = min_visible
        self.image_loader = image_loader
        self.collapse_window = bool(collapse_window)
        self._valid = self.layout.valid_mask
        self._flip_index = np.asarray(self.layout.flip_index)
        self._lower = np.array([n in LOWER_BODY for n in self.layout.names]) & self._valid
        self.samples = self._build_samples(source)
        self.flag_names = sorted({k for s in self.samples for k in s.person.joint_flags} - _ITEM_KEYS)
        self.seed: int | None = None
        self.epoch = 0

    @classmethod
    def for_spec(cls, spec, source, train: bool = True, heatmap_size=None, **kwargs) -> TopDownDataset:
        """A dataset shaped for a zoo model: its input size, layout, offsets, normalisation and codec."""
        if heatmap_size is None and spec.codec == "heatmap":
            heatmap_size = (spec.input_size[0] // 4, spec.input_size[1] // 4)
        return cls(
            source,
            spec.input_size,
            spec.layout,
            offsets=spec.frame_offsets,
            mean=spec.mean,
            std=spec.std,
            augment=AugmentConfig() if train else None,
            heatmap_size=heatmap_size,
            **kwargs,
        )

    # ---------------------------------------------------------------- samples
    def _build_samples(self, source) -> list[Sample]:
        items = list(source)
        if items and isinstance(items[0], FrameRecord):
            if self.offsets != (0,):
                raise ValueError(
                    f"frame offsets {self.offsets} need videos (read_posetrack), but still frames were given"
                )
            clips = [((f,), f) for f in items if f.is_labeled]
        else:
            clips = [(tuple(clip), v.frames[i]) for v, i, clip in iter_clips(items, self.offsets)]
        current = self.offsets.index(0)
        samples = []
        for clip, frame in clips:
            for person in frame.persons:
                if person.layout != self.layout.name:
                    raise ValueError(
                        f"image {frame.image_id}: records are in layout {person.layout!r}; this dataset "
                        f"wants {self.layout.name!r} (read the annotations with layout={self.layout.name!r})"
                    )
                if person.iscrowd or person.box() is None:
                    continue
                if int((person.visible & self._valid).sum()) < self.min_visible:
                    continue
                samples.append(Sample(clip=clip, current=current, person=person))
        return samples

    def __len__(self) -> int:
        return len(self.samples)

    # ----------------------------------------------------------- augmentation
    def set_epoch(self, epoch: int, seed: int | None = None) -> None:
        """Key augmentation on (seed, epoch, index): an item's draw then depends on nothing else,
        so a resumed run, any worker count and any sample order see the same augmentations."""
        self.epoch = int(epoch)
        if seed is not None:
            self.seed = int(seed)
        elif self.seed is None:
            self.seed = 0

    def _generator(self, index: int) -> np.random.Generator:
        """Keyed by (seed, epoch, index) after ``set_epoch``; otherwise seeded from torch's RNG, so
        ``torch.manual_seed`` makes draws reproducible and DataLoader workers never repeat each other."""
        if self.seed is not None:
            return np.random.default_rng([self.seed, self.epoch, int(index)])
        return np.random.default_rng(int(torch.randint(0, 2**62, ()).item()))

    def _joint_mask(self, sample: Sample) -> np.ndarray:
        """Joints usable as targets before cropping: visible, labelable, outside ignore regions."""
        p = sample.person
        frame = sample.clip[sample.current]
        return p.visible & self._valid & ~frame.in_ignore_region(p.keypoints[:, :2])

    def draw_augmentation(self, index: int, rng: np.random.Generator) -> Augmentation:
        cfg = self.augment
        if cfg is None:
            return Augmentation()
        sample = self.samples[index]
        center = size = None
        mask = self._joint_mask(sample)
        if mask.sum() > cfg.half_body_min_joints and rng.random() < cfg.half_body_prob:
            center, size = self._half_body(sample.person.keypoints[:, :2], mask, rng, cfg.half_body_padding)
        scale = 1.0 + cfg.scale_factor * _truncated_normal(rng)
        rotation = cfg.rotation_factor * _truncated_normal(rng) if rng.random() < cfg.rotation_prob else 0.0
        flip = bool(rng.random() < cfg.flip_prob)
        return Augmentation(scale=scale, rotation=rotation, flip=flip, center=center, size=size)

    def _half_body(self, pts, mask, rng, padding):
        upper, lower = mask & ~self._lower, mask & self._lower
        first, second = (upper, lower) if rng.random() < 0.5 else (lower, upper)
        chosen = first if first.sum() >= 2 else second
        if chosen.sum() < 2:
            return None, None
        sel = pts[chosen].astype(np.float64)
        _, size = box_to_center_size(np.concatenate([sel.min(0), sel.max(0)]), self.input_size, padding)
        return tuple(sel.mean(0)), tuple(size)

    # ------------------------------------------------------------------ items
    def __getitem__(self, index: int) -> dict:
        aug = self.draw_augmentation(index, self._generator(index)) if self.augment else Augmentation()
        return self.load(index, aug)

    def crop_matrix_for(self, index: int, aug: Augmentation = Augmentation()) -> np.ndarray:
        """The frame -> crop matrix of a sample under an augmentation (shared by all its frames)."""
        person = self.samples[index].person
        if aug.center is not None:
            center, size = np.asarray(aug.center), np.asarray(aug.size)
        else:
            center, size = box_to_center_size(person.box(), self.input_size, self.padding)
        return crop_matrix(center, size * aug.scale, self.input_size, aug.rotation, aug.flip)

    def load(self, index: int, aug: Augmentation = Augmentation()) -> dict:
        """The sample under a given augmentation (``Augmentation()``: plain box crop)."""
        sample = self.samples[index]
        person = sample.person
        m = self.crop_matrix_for(index, aug)
        h, w = self.input_size

        cache: dict = {}
        crops = []
        clip = (sample.clip[sample.current],) * len(sample.clip) if self.collapse_window else sample.clip
        for frame in clip:  # clamped (or collapsed) windows repeat frames: read each once
            if frame.image_path not in cache:
                bgr = warp(self.image_loader(frame.image_path), m, self.input_size)
                cache[frame.image_path] = normalize(bgr[..., ::-1], self.mean, self.std)
            crops.append(cache[frame.image_path])

        kp = transform_points(person.keypoints[:, :2], m).astype(np.float32)
        visible = person.visible.astype(np.float32)
        mask = self._joint_mask(sample).astype(np.float32)
        own = person.joint_flags
        unknown = np.full(len(kp), np.nan, np.float32)
        flags = {k: own[k].astype(np.float32) if k in own else unknown for k in self.flag_names}
        if aug.flip:
            fi = self._flip_index
            kp, visible, mask = kp[fi], visible[fi], mask[fi]
            flags = {k: v[fi] for k, v in flags.items()}
        inside = (kp[:, 0] >= 0) & (kp[:, 0] <= w - 1) & (kp[:, 1] >= 0) & (kp[:, 1] <= h - 1)
        weight = mask * inside
        if self.joint_weights is not None:
            weight = weight * self.joint_weights

        out = {
            ("image" if len(crops) == 1 else "frames"): torch.from_numpy(
                np.stack(crops) if len(crops) > 1 else crops[0]
            ),
            "keypoints": torch.from_numpy(kp),
            "visible": torch.from_numpy(visible),
            "target_weight": torch.from_numpy(weight.astype(np.float32)),
            "coords": torch.from_numpy(kp / np.array([w, h], np.float32)),
            "inverse": torch.from_numpy(invert_affine(m)),
            "image_id": int(sample.clip[sample.current].image_id),
            "index": index,
        }
        if self.heatmap_size is not None:
            target, hm_weight = encode_heatmaps(
                kp, weight > 0, self.heatmap_size, self.input_size, self.heatmap_sigma
            )
            out["heatmaps"] = torch.from_numpy(target)
            out["heatmap_weight"] = torch.from_numpy((hm_weight * weight).astype(np.float32))
        for k, v in flags.items():
            out[k] = torch.from_numpy(np.ascontiguousarray(v))
        return out

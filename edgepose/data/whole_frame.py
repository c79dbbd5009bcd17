"""Whole-frame training samples: letterboxed frame windows with every person's joints (PAVE-Net).

A whole-frame model (``input_kind == "frame"``) sees the entire frame and finds the people itself,
so one sample is one labelled *frame*, not one person: the window of frames at the model's offsets
(clamped at video ends, ``edgepose.data.clips``), each letterboxed to the model input exactly as the
SDK's ``WholeFrameEstimator.prepare_frame`` does (one scale keeping the aspect ratio, centred, the
padding the mean colour, i.e. 0 after normalising), and the current frame's people.

Sources: PoseTrack-form videos (``read_posetrack``: the synthetic benchmark and PoseTrack) or
still images (``read_coco``: every window slot holds the image). Each item is a dict:

* ``frames`` (T, 3, H, W) float32, normalised RGB (the spec's mean/std);
* ``people`` (P, K, 3) float32: x / W, y / H in the model input and a weight (1: a target joint:
  labelled, labelable in the layout, inside the input, outside ignore regions); rows past
  ``num_people`` are zeros (padding to ``max_people`` so the default collate stacks them);
* ``num_people`` () int64, ``boxes`` (P, 4) input-pixel boxes of the people (x1, y1, x2, y2),
* ``ignore`` (R, 4) float32: the frame's ignore regions (each polygon's bounding box) and its crowd
  people's boxes, x1, y1, x2, y2 normalised like ``people``, in rows up to ``num_ignore`` (at most
  ``max_ignore``, zeros past it). Pseudo-labels turn a person the teachers disagree on into such a
  region; the set loss must not push a query that finds that person towards "no person"
  (``SetPredictionTask``), since nobody labelled them either way;
* ``matrix`` (2, 3) float64 frame -> model-input affine, ``image_id``, ``index``.

Training augmentation (``train=True``), one draw per window, keyed on ``(seed, epoch, index)`` like
``TopDownDataset`` so a resumed run sees the same samples: horizontal flip (p 0.5, joints re-paired
with the layout's flip index) and a random zoom about a random point (scale in [0.75, 1.25],
shift up to 10% of the input), applied identically to every frame of the window after the
letterbox. The official PAVE-Net pipeline uses multi-scale resize + random crop + flip; this is
its fixed-input-size counterpart.

``collapse_window``: every slot holds the current frame (the ablation of the window, as
``TopDownDataset``'s).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from ..core.keypoints import get_layout
from ..core.transforms import letterbox_matrix, transform_points
from .clips import check_offsets, iter_clips
from .records import FrameRecord

DEFAULT_MAX_PEOPLE = 20
DEFAULT_MAX_IGNORE = 16


def letterbox(image_rgb: np.ndarray, input_size, mean, std) -> tuple[np.ndarray, np.ndarray]:
    """(3, H, W) normalised letterboxed input of an RGB uint8 frame and its frame -> input matrix,
    computed as ``WholeFrameEstimator.prepare_frame`` computes it."""
    h, w = int(input_size[0]), int(input_size[1])
    m, (nw, nh) = letterbox_matrix(image_rgb.shape[:2], input_size)
    interp = cv2.INTER_AREA if nw < image_rgb.shape[1] else cv2.INTER_LINEAR
    resized = cv2.resize(image_rgb, (nw, nh), interpolation=interp).astype(np.float32)
    resized *= np.float32(1.0 / 255.0)
    px, py = (w - nw) // 2, (h - nh) // 2
    out = np.zeros((3, h, w), np.float32)
    out[:, py : py + nh, px : px + nw] = (
        (resized - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    ).transpose(2, 0, 1)
    return out, m


@dataclass(frozen=True)
class FrameSample:
    clip: tuple[FrameRecord, ...]  # time order
    current: int


def _read_rgb(path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise FileNotFoundError(f"cannot read image {path} (missing, or not an image OpenCV can decode)")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


class WholeFrameDataset(Dataset):
    """Frame windows with all people's joints for a whole-frame model; see the module docstring."""

    def __init__(
        self,
        source,
        input_size: tuple[int, int],
        layout: str,
        offsets: Sequence[int] = (0,),
        mean=(0.485, 0.456, 0.406),
        std=(0.229, 0.224, 0.225),
        color: str = "RGB",
        train: bool = False,
        max_people: int = DEFAULT_MAX_PEOPLE,
        max_ignore: int = DEFAULT_MAX_IGNORE,
        collapse_window: bool = False,
        skip_empty: bool | None = None,
        image_loader: Callable[[object], np.ndarray] | None = None,
        zoom: tuple[float, float] = (0.75, 1.25),
        shift: float = 0.1,
        flip_prob: float = 0.5,
    ):
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.layout = get_layout(layout)
        self.offsets = check_offsets(offsets)
        self.current = self.offsets.index(0)
        self.mean, self.std, self.color = tuple(mean), tuple(std), color
        self.train = bool(train)
        self.max_people = int(max_people)
        self.max_ignore = int(max_ignore)
        self.collapse_window = bool(collapse_window)
        self.image_loader = image_loader or _read_rgb
        self.zoom, self.shift, self.flip_prob = zoom, float(shift), float(flip_prob)
        self._valid = self.layout.valid_mask
        self._flip_index = np.asarray(self.layout.flip_index)
        # training skips frames with nobody in them (nothing to match); evaluation keeps every labelled frame
        self.samples = self._build_samples(source, self.train if skip_empty is None else skip_empty)
        self.seed: int | None = None
        self.epoch = 0

    @classmethod
    def for_spec(cls, spec, source, train: bool = True, **kwargs) -> WholeFrameDataset:
        return cls(
            source,
            spec.input_size,
            spec.layout,
            offsets=spec.frame_offsets,
            mean=spec.mean,
            std=spec.std,
            color=getattr(spec, "color", "RGB"),
            train=train,
            **kwargs,
        )

    def _build_samples(self, source, skip_empty: bool) -> list[FrameSample]:
        items = list(source)
        if items and isinstance(items[0], FrameRecord):  # still images: the window repeats the image
            clips = [((f,) * len(self.offsets), f) for f in items if f.is_labeled]
        else:
            clips = [(tuple(clip), v.frames[i]) for v, i, clip in iter_clips(items, self.offsets)]
        out = []
        for clip, frame in clips:
            for p in frame.persons:
                if p.layout != self.layout.name:
                    raise ValueError(
                        f"image {frame.image_id}: records are in layout {p.layout!r}; this dataset wants "
                        f"{self.layout.name!r} (read the annotations with layout={self.layout.name!r})"
                    )
            if skip_empty and not any(self._usable(p) for p in frame.persons):
                continue
            out.append(FrameSample(clip, self.current))
        return out

    def _usable(self, person) -> bool:
        return not person.iscrowd and bool((person.visible & self._valid).any())

    def __len__(self) -> int:
        return len(self.samples)

    # ----------------------------------------------------------- augmentation
    def set_epoch(self, epoch: int, seed: int | None = None) -> None:
        self.epoch = int(epoch)
        if seed is not None:
            self.seed = int(seed)
        elif self.seed is None:
            self.seed = 0

    def _generator(self, index: int) -> np.random.Generator:
        if self.seed is not None:
            return np.random.default_rng([self.seed, self.epoch, int(index)])
        return np.random.default_rng(int(torch.randint(0, 2**62, ()).item()))

    def augmentation(self, index: int) -> tuple[np.ndarray, bool]:
        """The (2, 3) input -> augmented-input affine of item ``index`` and whether it flips."""
        if not self.train:
            return np.array([[1.0, 0, 0], [0, 1.0, 0]]), False
        rng = self._generator(index)
        h, w = self.input_size
        s = float(rng.uniform(*self.zoom))
        cx, cy = (
            (w - 1) / 2 + rng.uniform(-1, 1) * self.shift * w,
            (h - 1) / 2 + rng.uniform(-1, 1) * self.shift * h,
        )
        flip = bool(rng.random() < self.flip_prob)
        # zoom by s about (cx, cy), which lands on the input centre
        a = np.array([[s, 0.0, (w - 1) / 2 - s * cx], [0.0, s, (h - 1) / 2 - s * cy]])
        if flip:
            a = np.array([[-1.0, 0, w - 1], [0, 1.0, 0]]) @ np.vstack([a, [0, 0, 1]])
        return a, flip

    # ---------------------------------------------------------------- items
    def __getitem__(self, index: int) -> dict:
        sample = self.samples[index]
        frame = sample.clip[sample.current]
        clip = (frame,) * len(sample.clip) if self.collapse_window else sample.clip
        aug, flip = self.augmentation(index)
        h, w = self.input_size
        images, matrix = [], None
        cache: dict[int, np.ndarray] = {}
        for i, rec in enumerate(clip):
            key = id(rec)
            if key not in cache:
                img = self.image_loader(rec.image_path)
                if self.color == "BGR":
                    img = img[..., ::-1]
                x, m = letterbox(np.ascontiguousarray(img), self.input_size, self.mean, self.std)
                if self.train:
                    x = cv2.warpAffine(
                        x.transpose(1, 2, 0),
                        aug,
                        (w, h),
                        flags=cv2.INTER_LINEAR,
                        borderMode=cv2.BORDER_CONSTANT,
                        borderValue=0,
                    ).transpose(2, 0, 1)
                cache[key] = (np.ascontiguousarray(x), m)
            x, m = cache[key]
            images.append(x)
            if i == sample.current:
                matrix = m
        full = np.vstack([matrix, [0, 0, 1]])
        to_input = (np.vstack([aug, [0, 0, 1]]) @ full)[:2]  # frame -> augmented input
        people = np.zeros((self.max_people, len(self.layout), 3), np.float32)
        boxes = np.zeros((self.max_people, 4), np.float32)
        n = 0
        for p in frame.persons:
            if n >= self.max_people:
                break
            if not self._usable(p):
                continue
            kp = p.keypoints
            xy = transform_points(kp[:, :2].astype(np.float64), to_input)
            ok = (kp[:, 2] > 0) & self._valid
            if frame.ignore_regions:
                ok &= ~frame.in_ignore_region(kp[:, :2])
            ok &= (xy[:, 0] >= 0) & (xy[:, 0] <= w - 1) & (xy[:, 1] >= 0) & (xy[:, 1] <= h - 1)
            if flip:
                xy, ok = xy[self._flip_index], ok[self._flip_index]
            if not ok.any():
                continue
            people[n, :, 0] = xy[:, 0] / w
            people[n, :, 1] = xy[:, 1] / h
            people[n, :, 2] = ok
            people[n, ~ok, :2] = 0
            box = p.box()
            if box is not None:
                corners = transform_points(
                    np.array([[box[0], box[1]], [box[2], box[3]]], np.float64), to_input
                )
                boxes[n] = [*corners.min(0), *corners.max(0)]
            n += 1
        ignore = self._ignore_boxes(frame, to_input)
        return {
            "frames": torch.from_numpy(np.stack(images)),
            "people": torch.from_numpy(people),
            "num_people": torch.tensor(n, dtype=torch.int64),
            "boxes": torch.from_numpy(boxes),
            "ignore": torch.from_numpy(ignore[0]),
            "num_ignore": torch.tensor(ignore[1], dtype=torch.int64),
            "matrix": torch.from_numpy(to_input),
            "image_id": torch.tensor(int(frame.image_id), dtype=torch.int64),
            "index": torch.tensor(index, dtype=torch.int64),
        }

    def _ignore_boxes(self, frame, to_input: np.ndarray) -> tuple[np.ndarray, int]:
        """(max_ignore, 4) normalised boxes of the frame's ignore regions and crowd people in the
        augmented input (zoom and flip keep a box a box), and how many rows hold one; regions wholly
        outside the input are left out."""
        h, w = self.input_size
        polys = [np.asarray(p, np.float64).reshape(-1, 2) for p in frame.ignore_regions if len(p) >= 3]
        for p in frame.persons:
            box = p.box() if p.iscrowd else None
            if box is not None:
                polys.append(np.array([[box[0], box[1]], [box[2], box[3]]], np.float64))
        out = np.zeros((self.max_ignore, 4), np.float32)
        n = 0
        for poly in polys:
            if n >= self.max_ignore:
                break
            xy = transform_points(poly, to_input)
            x1, y1 = np.clip(xy.min(0), 0, [w - 1, h - 1])
            x2, y2 = np.clip(xy.max(0), 0, [w - 1, h - 1])
            if x2 <= x1 or y2 <= y1:
                continue
            out[n] = [x1 / w, y1 / h, x2 / w, y2 / h]
            n += 1
        return out, n


def targets_of(batch: dict) -> list[torch.Tensor]:
    """Per image the (N_i, K, 3) people of a collated batch (the set loss's target format)."""
    return [batch["people"][b, : int(n)] for b, n in enumerate(batch["num_people"])]


def ignore_of(batch: dict) -> list[torch.Tensor]:
    """Per image the (R_i, 4) normalised ignore boxes of a collated batch (none in batches without them)."""
    if "ignore" not in batch:
        return [batch["people"].new_zeros((0, 4)) for _ in batch["num_people"]]
    return [batch["ignore"][b, : int(n)] for b, n in enumerate(batch["num_ignore"])]

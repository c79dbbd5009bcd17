"""Calibration and evaluation data: real crops through the same preprocessing as inference.

Crops come from ``TopDownDataset.for_spec(train=False)``: the person box padded and warped to
the model's input size, RGB, ImageNet-normalised (``edgepose.core.transforms``), exactly
what ``PoseEstimator`` feeds a bundle. ``--data synthetic`` renders the seeded synthetic
benchmark (``edgepose.training.datasets.synthetic_dataset``) once and reuses it.

Each stage's calibration set is what that stage sees at run time: the first stage the
crops; a temporal stage the fp32 frame-stage outputs of real windows stacked on axis 1;
SHaRPose's fine stage the crops, the top-k of the fp32 coarse relevance and the coarse
features. Samples are spread evenly over the split (every n-th person), not the first N,
so calibration covers many videos.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..data.topdown import read_bgr
from ..training import datasets as D
from ..training.datasets import synthetic_dataset
from .pipeline import StagePlan, run_pipeline, torch_stage_runner


@dataclass
class DataSource:
    """Where a run's crops come from: the data directory, its train/val splits as datasets, and the spec."""

    root: Path
    spec: object  # the model's ModelSpec with its own input size and window (edgepose.zoo.pretrained.model_spec)
    train_split: object = None
    val_split: object = None
    _train: object = None
    _val: object = None
    frame_cache: dict = field(default_factory=dict)

    def _loader(self, path):
        key = str(path)
        img = self.frame_cache.get(key)
        if img is None:
            img = self.frame_cache[key] = read_bgr(path)
        return img

    def dataset(self, split: str, train: bool = False, **options):
        """The split as a TopDownDataset shaped for the model (``train``: with the recipe's augmentation)."""

        split_obj = self.split(split)
        return D.topdown_dataset(self.spec, split_obj, train=train, image_loader=self._loader, **options)

    def split(self, split: str):
        attr = f"{split}_split"
        if getattr(self, attr, None) is None:
            fmt = self.train_split.format if split == "val" and self.train_split is not None else "auto"
            setattr(self, attr, D.load_split(self.root, split, self.spec, fmt))
        return getattr(self, attr)

    @property
    def calibration_set(self):
        if self._train is None:
            self._train = self.dataset("train")
        return self._train

    @property
    def eval_set(self):
        if self._val is None:
            self._val = self.dataset("val")
        return self._val


def open_data(
    data: str | Path,
    spec,
    cache_dir: str | Path | None = None,
    seed: int = 0,
    videos: int = 8,
    frames: int = 24,
) -> DataSource:
    """``data``: a dataset directory (PoseTrack and/or COCO form), ``"synthetic"``, or
    ``"video:PATH[:START-STOP]"`` (unlabelled footage: detected people calibrate, nothing is scored)."""
    if str(data).startswith("video:"):
        from .video_calibration import VideoSource

        return VideoSource(str(data), spec)
    if str(data) == "synthetic":
        if cache_dir is None:
            raise ValueError("--data synthetic needs a directory to render into (cache_dir)")
        root = synthetic_dataset(cache_dir, seed=seed, videos=videos, frames=frames)
    else:
        root = Path(data)
        if not root.is_dir():
            raise FileNotFoundError(f"data directory {str(root)!r} does not exist (or pass --data synthetic)")
    return DataSource(root, spec)


def spread(n_items: int, count: int) -> np.ndarray:
    """``count`` indices spread evenly over ``range(n_items)`` (all of them when count >= n_items)."""
    if count >= n_items:
        return np.arange(n_items)
    return np.unique(np.linspace(0, n_items - 1, count).round().astype(int))


def model_inputs(dataset, indices) -> torch.Tensor:
    """The crops of dataset items: (N, T, 3, H, W) for windows, else (N, 3, H, W)."""
    items = [dataset[int(i)] for i in indices]
    key = "frames" if "frames" in items[0] else "image"
    return torch.stack([it[key] for it in items])


@dataclass
class Calibration:
    """Per stage, every input as an (N, ...) array in PyTorch's layout (NCHW crops, int64 indices)."""

    stages: dict[str, dict[str, np.ndarray]]
    description: str

    def count(self, stage: str) -> int:
        return len(next(iter(self.stages[stage].values())))

    def batches(self, stage: str, batch: int = 1) -> Iterator[dict[str, np.ndarray]]:
        data = self.stages[stage]
        for i in range(0, self.count(stage) - batch + 1, batch):
            yield {k: v[i : i + batch] for k, v in data.items()}

    def tensors(self, stage: str, batch: int = 1) -> Iterator[dict[str, torch.Tensor]]:
        for b in self.batches(stage, batch):
            yield {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in b.items()}

    def subset(self, count: int) -> Calibration:
        return Calibration(
            {s: {k: v[:count] for k, v in d.items()} for s, d in self.stages.items()}, self.description
        )


@torch.no_grad()
def collect(
    model,
    dataset,
    count: int = 256,
    batch: int = 32,
    description: str = "",
    progress: Callable[[str], None] | None = None,
) -> Calibration:
    """Run the fp32 model's stages on ``count`` real samples and keep every stage's inputs.

    The first stage of a temporal model sees every frame of the windows (``count * T`` crops,
    kept to ``count`` evenly spread ones); its later stage the ``count`` windows.
    """
    plan = StagePlan.from_model(model)
    model.eval()
    run = torch_stage_runner(model)
    idx = spread(len(dataset), count)
    per: dict[str, dict[str, list]] = {s: {} for s in plan.names}
    for start in range(0, len(idx), batch):
        x = model_inputs(dataset, idx[start : start + batch])
        feeds, _ = run_pipeline(plan, run, x)
        for s, f in feeds.items():
            for k, v in f.items():
                per[s].setdefault(k, []).append(v.cpu().numpy())
        if progress is not None:
            progress(f"calibration: {min(start + batch, len(idx))}/{len(idx)} samples")
    stages = {s: {k: np.concatenate(v) for k, v in d.items()} for s, d in per.items()}
    first = plan.names[0]
    if plan.frames > 1:
        keep = spread(len(next(iter(stages[first].values()))), len(idx))
        stages[first] = {k: v[keep] for k, v in stages[first].items()}
    return Calibration(stages, description or f"{len(idx)} samples spread over {len(dataset)}")

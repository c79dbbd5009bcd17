"""Finding a dataset on disk and shaping it for a zoo model's training and evaluation.

A data directory holds PoseTrack-form videos, COCO keypoint JSON, or both (the synthetic
benchmark writes both). Where each lives (first match wins):

* PoseTrack (``read_posetrack``): ``annotations/<split>/*.json`` (our synthetic set),
  ``posetrack_data/annotations/<split>/``, ``posetrack_data/<split>/`` or ``<split>/``;
* COCO (``read_coco``): ``annotations/coco_<split>.json`` (synthetic; images under DIR) or
  ``annotations/person_keypoints_<split>*.json`` (COCO; images under ``<split>2017/``).

Temporal models need videos. A single-frame model reads COCO JSON when its layout is COCO-17
and the file exists, otherwise the PoseTrack videos one frame at a time. The format decides the
metric: PoseTrack mAP or COCO AP.

Training augmentation is drawn from ``(seed, epoch, index)`` (``TopDownDataset.set_epoch``), not
from a global RNG, so a resumed run sees exactly the crops an uninterrupted one would.
"""

from __future__ import annotations

import bisect
import itertools
from dataclasses import dataclass
from pathlib import Path

FORMATS = ("posetrack", "coco")
SPLITS = ("train", "val")


@dataclass
class DataSplit:
    format: str  # posetrack | coco
    path: Path  # the annotation file or directory read
    records: list  # VideoRecords (posetrack) or FrameRecords (coco)


def _posetrack_dirs(root: Path, split: str) -> list[Path]:
    return [
        root / "annotations" / split,
        root / "posetrack_data" / "annotations" / split,
        root / "posetrack_data" / split,
        root / split,
    ]


def _coco_files(root: Path, split: str) -> list[tuple[Path, Path]]:
    found = [(root / "annotations" / f"coco_{split}.json", root)]
    for f in sorted((root / "annotations").glob(f"person_keypoints_{split}*.json")):
        images = root / f"{split}2017"
        found.append((f, images if images.is_dir() else root))
    return found


def locate(root: str | Path, split: str) -> dict[str, tuple[Path, Path | None]]:
    """Which formats ``root`` holds for ``split``: format -> (annotation path, image root or None)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"data directory {str(root)!r} does not exist")
    found: dict[str, tuple[Path, Path | None]] = {}
    for d in _posetrack_dirs(root, split):
        if d.is_dir() and any(d.glob("*.json")):
            found["posetrack"] = (d, None)
            break
    for f, images in _coco_files(root, split):
        if f.is_file():
            found["coco"] = (f, images)
            break
    return found


def choose_format(spec, available: dict, wanted: str = "auto") -> str:
    if wanted not in ("auto",) + FORMATS:
        raise ValueError(f"data format must be auto, posetrack or coco; got {wanted!r}")
    if wanted != "auto":
        if wanted not in available:
            raise FileNotFoundError(f"no {wanted} annotations found (looked in {_looked_in(wanted)})")
        if wanted == "coco" and spec.is_temporal:
            raise ValueError(
                f"{spec.name} is temporal and needs videos (PoseTrack form), not COCO still images"
            )
        return wanted
    if spec.is_temporal:
        order = ("posetrack",)
    elif spec.layout == "coco17":
        order = ("coco", "posetrack")
    else:
        order = ("posetrack", "coco")
    for fmt in order:
        if fmt in available:
            return fmt
    raise FileNotFoundError(
        f"no annotations for {spec.name} found: it reads {' or '.join(order)} "
        f"({'; '.join(_looked_in(f) for f in order)})"
    )


def _looked_in(fmt: str) -> str:
    if fmt == "posetrack":
        return "annotations/<split>/, posetrack_data/annotations/<split>/, posetrack_data/<split>/, <split>/"
    return "annotations/coco_<split>.json, annotations/person_keypoints_<split>*.json"


def load_split(root: str | Path, split: str, spec, fmt: str = "auto") -> DataSplit:
    """Read ``split`` of the data under ``root`` in the model's keypoint layout."""
    from ..data.coco import read_coco
    from ..data.posetrack import read_posetrack

    available = locate(root, split)
    fmt = choose_format(spec, available, fmt)
    path, images = available[fmt]
    if fmt == "posetrack":
        records = read_posetrack(path, layout=spec.layout)
    else:
        records = read_coco(path, layout=spec.layout, image_root=images)
    return DataSplit(fmt, path, records)


def topdown_dataset(spec, split: DataSplit, train: bool, heatmap_size=None, seed: int = 0, **options):
    """The model-shaped TopDownDataset of a split (GT boxes; augmentation when ``train``); ``options``
    go to TopDownDataset (e.g. a recipe's ``joint_weights``, ``heatmap_sigma``)."""
    from ..data.topdown import TopDownDataset

    ds = TopDownDataset.for_spec(spec, split.records, train=train, heatmap_size=heatmap_size, **options)
    if len(ds) == 0:
        raise ValueError(f"{split.path} holds no labelled person with a box and a visible joint")
    if train:
        ds.set_epoch(0, seed)  # augmentation keyed on (seed, epoch, index); the trainer advances the epoch
    return ds


class MixedDataset:
    """Training crops of several datasets end to end in one index space (real footage with synthetic
    people for pose variety). Items keep the keys every part has (a synthetic person's ``occluded`` /
    ``blurred`` flags have no counterpart in pseudo-labels), so a batch collates across parts; each part
    keeps its own augmentation keyed on (seed, epoch, index)."""

    def __init__(self, parts):
        self.parts = [p for p in parts if len(p)]
        if not self.parts:
            raise ValueError("no training crops in any of the datasets")
        self.ends = list(itertools.accumulate(len(p) for p in self.parts))
        self.keys = set.intersection(*(set(p[0]) for p in self.parts))

    def __len__(self) -> int:
        return self.ends[-1]

    def __getitem__(self, i: int) -> dict:
        k = bisect.bisect_right(self.ends, i)
        item = self.parts[k][i - (self.ends[k - 1] if k else 0)]
        return {key: v for key, v in item.items() if key in self.keys}

    def set_epoch(self, epoch: int, seed: int = 0) -> None:
        for p in self.parts:
            p.set_epoch(epoch, seed=seed)


def synthetic_dataset(
    out_dir: str | Path,
    seed: int = 0,
    videos: int = 6,
    frames: int = 24,
    size: tuple[int, int] = (256, 192),
    preset: str = "easy",
    name: str = "synthetic-data",
) -> Path:
    """A small seeded synthetic dataset under ``out_dir/name`` (frames ``size`` = width, height),
    rendered once and reused while its parameters (recorded in its meta.json) stay the same."""
    from ..data.synth_dataset import read_meta, write_dataset
    from ..data.synthetic import SynthConfig

    path = Path(out_dir) / name
    config = SynthConfig.preset(preset, width=int(size[0]), height=int(size[1]), frames=int(frames))
    if (path / "meta.json").is_file():
        try:
            meta = read_meta(path)
        except (ValueError, OSError):
            meta = {}
        if (
            meta.get("seed") == seed
            and meta.get("videos") == videos
            and meta.get("config") == config.to_dict()
        ):
            return path
    write_dataset(
        path,
        config,
        videos=videos,
        seed=seed,
        split_val=0.34 if videos < 6 else 0.25,
        layout="both",
        overwrite=True,
    )
    return path

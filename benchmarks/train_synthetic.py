#!/usr/bin/env python
"""Train the four zoo models on the synthetic video benchmark and show what each part buys.

One command generates the data (training videos and separate held-out videos), trains every run,
evaluates it on the held-out videos, prints a table and writes ``benchmarks/results/
train_synthetic.{md,json,png}``::

    python benchmarks/train_synthetic.py --work runs/train_synthetic_moderate --preset moderate \
        --videos 800 --frames 5 --input-size 64x48 --epochs 8 --epochs-for dsta_mnv2=16 sharpose_s=12 \
        --augment none --batch-size 16 --val-every 2 --threads 1 --jobs 2
                              # the reported run: 122 min of training in all, one thread per run
    python benchmarks/train_synthetic.py --scale tiny --videos 3 --frames 4 --input-size 64x48 \
        --epochs 1 --batch-size 4                                              # smoke (tests)

What it shows, every run with the same seed (same initialisation, data order and augmentation):

(a) each model against a mean-pose baseline: the training set's mean pose in crop coordinates,
    predicted for every held-out person and scored by the same evaluator;
(b) DSTA and TAR-ViTPose with their frame window against the same architecture trained and
    evaluated with the window collapsed to the current frame (``TopDownDataset(
    collapse_window=True)``: every slot holds the current frame), split by the synthetic
    per-joint ``occluded`` / ``blurred`` flags (``edgepose.eval.pck.pck_by_flags``); every
    ``<key>`` with a ``<key>/collapsed`` twin is such a pair;
(c) DistilPose-S distilled from a trained heatmap teacher (this run's TAR-ViTPose-S by default)
    against DistilPose-S without a teacher (its regression loss only), and the task's default
    teacher-less mode (ground-truth Gaussians standing in for the teacher's heatmaps).

TAR-ViTPose-S runs from scratch and in the paper's two stages: ``tar_vitpose_s/vitpose`` trains its
ViTPose (encoder + decoder, no temporal modules) on single frames, the paper's COCO stage; then
``tar_vitpose_s/from-vitpose`` (window) and its collapsed twin start from that encoder and decoder,
temporal modules at random, and train with the paper's fine-tune recipe. From scratch, JTA's masks
come from a decoder that has not learnt yet.

SHaRPose-S runs twice: from scratch, and with its shared ViT started from this run's trained
TAR-ViTPose-S encoder (same width, depth and heads; patch kernel and position table resampled,
``SHaRPose._convert_vit``) as the paper starts it from MAE ImageNet weights, which cannot be had
here. From scratch its keypoint tokens sat at the mean pose (train loss flat from epoch 2) at lr
5e-4 and 1e-3, with and without layer decay, patch 8 or 4, random or sine position tables.

What made DSTA-MNv2 learn at all (measured at 64x48 on the easy preset, held-out PCKh@0.5 minus the
mean pose's): 160 videos x 10 frames, mild augmentation, batch 32, 8 epochs: -0.8 (its training
error flat at 6.3-6.6 crop px from epoch 2 on); the same without augmentation at batch 16: +0.7 after 6 of 8
epochs; 800 videos x 5 frames (2.4x the crops, from 5x the videos), no augmentation, batch 16, 8
epochs: +8.1; the reported run trains it 16 epochs.

The models are the zoo's architectures at reduced size (``reduced`` below; 64x48 crops in the
reported run, narrower and shallower trunks) because this benchmark trains from scratch on CPUs; ``--scale
full`` builds the papers' sizes for a GPU. Training uses each family's ``*_synthetic`` recipe
(optimiser, lr, weight decay, layer decay, warm-up, losses, joint weights) with two changes for
runs this short, both options: milder augmentation and a cosine schedule (see ``--augment``,
``--schedule``). Metrics: PCKh@0.5 (PoseTrack's head-size criterion; all
joints, occluded / not, blurred / not), PCK@0.2 of the box's longer side (lenient with
ground-truth boxes: kept for reference), and the format's own metric (PoseTrack mAP for the
PoseTrack-layout models, COCO AP for the COCO-layout ones). No flip test.

``--ship-weights DIR`` also writes fp16 copies of the trained window models (and the distilled
DistilPose-S) in the form ``edgepose.zoo.pretrained`` loads.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
STEM = "train_synthetic"


# Reduced builds (create_model overrides) at input H x W. Both ViTs keep the papers' token geometry
# at any crop size: the patch is chosen so that TAR-ViTPose's encoder and SHaRPose's coarse pass see
# an 8x6 grid (the papers' 256x192 / 16 and 128x96 / 16), i.e. patch 8 and 4 at 64x48. With patch 16
# at 64x48 (4x3 tokens) TAR-ViTPose reached 51.8 PCKh@0.5 and SHaRPose stayed near the mean pose;
# TAR with patch 8 reached 61.7 after 4 epochs. DSTA keeps its paper temporal head (dim 32,
# depth 4, 8 heads) on a MobileNet-V2 of width 0.35 with a 256-channel last conv. DistilPose-S: a
# one-block stemnet of width 32 and a 4-layer, 64-wide encoder. SHaRPose-S and TAR-ViTPose-S run
# width 96 with 4 heads and 4 encoder layers (SHaRPose's vit-init run starts from TAR's), SHaRPose's
# coarse pass at half size, TAR with 2 JTA layers and 64-channel deconvs.
def reduced(h: int, w: int) -> dict[str, dict]:
    return {
        "dsta_mnv2": dict(width=0.35, last_channels=256),
        "distilpose_s": dict(stem_width=32, stem_blocks=1, dim=64, depth=4, heads=4),
        "sharpose_s": dict(
            coarse_size=(h // 2, w // 2),
            patch_size=max(h // 16, 1),
            dim=96,
            depth=4,
            heads=4,
            heatmap_size=(h // 4, w // 4),
            ema_from=1,
        ),
        "tar_vitpose_s": dict(
            embed_dim=96,
            depth=4,
            vit_heads=4,
            deconv_channels=(64, 64),
            jta_layers=2,
            attn_heads=4,
            patch_size=max(h // 8, 1),
        ),
    }


def tiny(h: int, w: int) -> dict[str, dict]:
    """The registry's ``*_tiny`` test configs (for the smoke test), at the given input size."""
    from edgepose.zoo import get_spec

    out = {}
    for name in MODELS:
        cfg = {k: v for k, v in get_spec(f"{name}_tiny").config.items() if k != "input_size"}
        if name == "sharpose_s":  # depth of the TAR encoder its vit-init run starts from
            cfg.update(
                coarse_size=(h // 2, w // 2),
                heatmap_size=(h // 4, w // 4),
                depth=get_spec("tar_vitpose_s_tiny").config["depth"],
            )
        out[name] = cfg
    return out


def _augment() -> dict:
    from edgepose.data.topdown import AugmentConfig

    return {
        "paper": AugmentConfig(),
        "none": None,
        "mild": AugmentConfig(scale_factor=0.25, rotation_factor=30.0, rotation_prob=0.4, half_body_prob=0.1),
    }


MODELS = ("dsta_mnv2", "tar_vitpose_s", "sharpose_s", "distilpose_s")
# relative time of one epoch (reduced builds at 64x48, one thread): orders parallel jobs only
EPOCH_COST = {"dsta_mnv2": 1.0, "tar_vitpose_s": 1.5, "sharpose_s": 2.5, "distilpose_s": 0.3}
SCALES = {"reduced": reduced, "tiny": tiny, "full": lambda h, w: {m: {} for m in MODELS}}


@dataclass(frozen=True)
class Run:
    key: str
    model: str
    label: str
    collapse: bool = False  # window filled with the current frame
    teacher: str | None = None  # key of a trained run that teaches this DistilPose
    gt_teacher: bool = True  # DistilPose without a teacher: ground-truth heatmaps (True) or regression only
    init_from: str | None = (
        None  # a trained run whose INIT_PARTS start this one (the papers' pretrained starts)
    )
    recipe: str | None = None  # None: the family's *_synthetic recipe

    @property
    def single_frame(self) -> bool:
        """Its recipe trains the model's single-frame part (TAR-ViTPose's ViTPose) on still crops."""
        from edgepose.training.recipes import get_recipe

        return bool(self.recipe) and get_recipe(self.recipe).single_frame

    @property
    def needs(self) -> tuple[str, ...]:
        """The runs this one is built on (teacher, encoder start): trained in an earlier stage."""
        return tuple(k for k in (self.teacher, self.init_from) if k)


# The paper's two-stage TAR-ViTPose: ViTPose (encoder + decoder) trained on single frames first (the
# paper's COCO stage), then the temporal modules added at random and the whole model trained on video.
VITPOSE_KEY = "tar_vitpose_s/vitpose"
# What an ``init_from`` run hands on, by the model it starts: SHaRPose takes a plain ViT encoder (its
# MAE start), TAR-ViTPose the encoder and decoder of a trained ViTPose (its COCO start).
INIT_PARTS = {
    "sharpose_s": (("backbone.",), "ViT encoder"),
    "tar_vitpose_s": (("backbone.", "heatmap_head."), "ViTPose encoder + decoder"),
}


def runs_for(teacher_key: str) -> list[Run]:
    return [
        Run("dsta_mnv2", "dsta_mnv2", "DSTA-MNv2, window -1..1"),
        Run("dsta_mnv2/collapsed", "dsta_mnv2", "DSTA-MNv2, window collapsed to frame 0", collapse=True),
        Run("tar_vitpose_s", "tar_vitpose_s", "TAR-ViTPose-S, window -1..1"),
        Run(
            "tar_vitpose_s/collapsed",
            "tar_vitpose_s",
            "TAR-ViTPose-S, window collapsed to frame 0",
            collapse=True,
        ),
        Run(
            VITPOSE_KEY,
            "tar_vitpose_s",
            "ViTPose-S: TAR's encoder + decoder alone on single frames",
            recipe="vitpose_s_synthetic",
        ),
        Run(
            "tar_vitpose_s/from-vitpose",
            "tar_vitpose_s",
            "TAR-ViTPose-S, window -1..1, from the trained ViTPose-S",
            init_from=VITPOSE_KEY,
            recipe="tar_vitpose_finetune_synthetic",
        ),
        Run(
            "tar_vitpose_s/from-vitpose/collapsed",
            "tar_vitpose_s",
            "TAR-ViTPose-S, window collapsed, from the trained ViTPose-S",
            collapse=True,
            init_from=VITPOSE_KEY,
            recipe="tar_vitpose_finetune_synthetic",
        ),
        Run("sharpose_s", "sharpose_s", "SHaRPose-S from scratch"),
        Run(
            "sharpose_s/vit-init",
            "sharpose_s",
            "SHaRPose-S, ViT started from this run's TAR-ViTPose-S encoder",
            init_from="tar_vitpose_s",
        ),
        Run(
            "distilpose_s/no-teacher",
            "distilpose_s",
            "DistilPose-S, no teacher (regression loss only)",
            gt_teacher=False,
        ),
        Run("distilpose_s/gt-heatmaps", "distilpose_s", "DistilPose-S, ground-truth heatmaps as teacher"),
        Run(
            "distilpose_s/teacher",
            "distilpose_s",
            f"DistilPose-S distilled from the trained {teacher_key}",
            teacher=teacher_key,
        ),
    ]


# ------------------------------------------------------------------------------------------- data
class FrameCache:
    """Decodes each frame once and keeps it (the benchmark's frames fit in memory easily)."""

    def __init__(self):
        self.frames: dict[str, np.ndarray] = {}

    def __call__(self, path) -> np.ndarray:
        key = str(path)
        img = self.frames.get(key)
        if img is None:
            from edgepose.data.topdown import read_bgr

            img = self.frames[key] = read_bgr(path)
        return img


def make_data(args, work: Path) -> tuple[Path, dict]:
    from edgepose.data.synth_dataset import read_meta, write_dataset
    from edgepose.data.synthetic import SynthConfig

    w, h = args.frame_size
    config = SynthConfig.preset(args.preset, width=w, height=h, frames=args.frames)
    path = work / "data"
    if (path / "meta.json").is_file():
        meta = read_meta(path)
        if (
            meta.get("seed") == args.data_seed
            and meta.get("videos") == args.videos
            and meta.get("config") == config.to_dict()
            and meta.get("split_val") == args.split_val
        ):
            return path, meta
    meta = write_dataset(
        path,
        config,
        videos=args.videos,
        seed=args.data_seed,
        split_val=args.split_val,
        layout="both",
        overwrite=True,
        workers=1,
    )
    return path, meta


# ------------------------------------------------------------------------------------------ models
def spec_for(model):
    """The registry spec with the built model's crop size and window (they differ at reduced scale)."""
    from edgepose.zoo.pretrained import model_spec

    return model_spec(model)


HEATMAP_SIGMA_RULE = "the recipe's sigma in heatmap pixels"  # part of a run's signature


def heatmap_sigma(recipe_sigma: float, heatmap_h: int) -> float:
    """The recipes' sigmas (2, TAR's 3) in heatmap pixels as they are, on our smaller heatmaps: so
    twice as wide relative to the crop at 128x96 as at 256x192. Scaled down to the same share of
    the heatmap (sigma 1 on 32x24), SHaRPose sat at the all-zero plateau for its whole short run."""
    return float(recipe_sigma)


# ------------------------------------------------------------------------------------- evaluation
HARD_FLAGS = ("occluded", "blurred")  # the generator's per-joint flags


def _hard(person) -> np.ndarray | None:
    own = person.joint_flags
    if not all(f in own for f in HARD_FLAGS):
        return None
    return np.logical_or.reduce([own[f] > 0 for f in HARD_FLAGS])


def recoverable(sample, joints: int) -> np.ndarray:
    """Per joint of a sample's person: 1 where it is occluded or blurred in the current frame but
    labelled and neither in another frame of the model's window (same track), 0 elsewhere, NaN where
    the flags are unknown. These are the joints whose window holds what the current frame lacks:
    an occlusion by a passing person mostly outlasts a +-1 window, a camera jerk mostly does not."""
    p = sample.person
    hard = _hard(p)
    if hard is None:
        return np.full(joints, np.nan)
    now = sample.clip[sample.current].image_id
    clean = np.zeros(joints, bool)
    for frame in sample.clip:
        if frame.image_id == now:  # the current frame, or a slot clamped to it at a video's end
            continue
        other = next((q for q in frame.persons if p.track_id is not None and q.track_id == p.track_id), None)
        other_hard = None if other is None else _hard(other)
        if other_hard is not None:
            clean |= other.visible & ~other_hard
    return (hard & clean).astype(np.float64)


def recoverable_share(dataset) -> dict[str, float]:
    """Per hard flag, the % of its scored joints that are recoverable (a clean frame in the window)."""
    _, mask, _, flags = gt_arrays(dataset)
    out = {}
    for f in HARD_FLAGS:
        hit = mask & (np.nan_to_num(flags[f]) > 0)
        out[f] = (
            round(100.0 * float((np.nan_to_num(flags["recoverable"])[hit] > 0).mean()), 1)
            if hit.any()
            else None
        )
    return out


def gt_arrays(dataset) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Ground truth of every dataset item, in item order: keypoints, mask, sizes (head, box), flags."""
    from edgepose.eval.pck import box_size
    from edgepose.eval.posetrack_map import person_head_size

    layout = dataset.layout
    j = len(layout)
    kps, masks, norms = [], [], {"head": [], "box": []}
    flags: dict[str, list] = {"occluded": [], "blurred": [], "recoverable": []}
    for s in dataset.samples:
        p, frame = s.person, s.clip[s.current]
        kps.append(p.keypoints[:, :2])
        masks.append(p.visible & layout.valid_mask & ~frame.in_ignore_region(p.keypoints[:, :2]))
        norms["head"].append(person_head_size(p, layout))
        norms["box"].append(box_size(p.box()))
        own = p.joint_flags
        for f in HARD_FLAGS:
            flags[f].append(own[f].astype(np.float64) if f in own else np.full(j, np.nan))
        flags["recoverable"].append(recoverable(s, j))
    return (
        np.stack(kps),
        np.stack(masks),
        {k: np.asarray(v) for k, v in norms.items()},
        {k: np.stack(v) for k, v in flags.items()},
    )


# name -> (person size, threshold): PCKh@0.5 (PoseTrack's head-size criterion) is the headline;
# PCK@0.2 of the box's longer side is lenient with ground-truth boxes (the crop already frames
# the person), so the mean pose scores high on it: it is kept for reference.
PCK_METRICS = {"pckh@0.5": ("head", 0.5), "pck@0.2": ("box", 0.2)}


def score(model, spec, split, dataset, batch_size: int = 64) -> dict[str, Any]:
    """PCKh@0.5 and PCK@0.2 split by flags, and the format's metric, for ``model`` on ``dataset``."""
    import torch

    from edgepose.eval.pck import pck_by_flags
    from edgepose.training.validate import PRIMARY_METRIC, metrics_of, predict

    with torch.no_grad():
        preds = predict(model, spec, dataset, batch_size=batch_size, device="cpu", flip=False)
    gt, mask, norm, flags = gt_arrays(dataset)
    pred = np.stack([p.keypoints for p in preds])
    out: dict[str, Any] = {"persons": len(preds)}
    for name, (size, thr) in PCK_METRICS.items():
        res = pck_by_flags(pred, gt, mask, norm[size], flags, threshold=thr, layout=dataset.layout)
        out[name] = {k: _num(r.mean) for k, r in res.items()}
        out[f"{name}_count"] = {k: r.count for k, r in res.items()}
    fmt_metrics = metrics_of(split.format, preds, split.records, spec.layout)
    out["format"] = split.format
    out["metric_name"] = "PoseTrack mAP" if split.format == "posetrack" else "COCO AP"
    out["metric"] = _num(fmt_metrics[PRIMARY_METRIC[split.format]])
    out["format_metrics"] = {k: _num(v) for k, v in fmt_metrics.items()}
    return out


def _num(v) -> float | None:
    v = float(v)
    return None if math.isnan(v) else round(v, 3)


class MeanPose:
    """The baseline as a model: the same mean pose (x/W, y/H of the crop) for every crop."""

    codec = "regression"

    def __init__(self, coords: np.ndarray):
        import torch

        self.coords = torch.as_tensor(coords, dtype=torch.float32)
        self.training = False

    def __call__(self, x):
        import torch

        b, j = x.shape[0], len(self.coords)
        return {"coords": self.coords.expand(b, j, 2), "scores": torch.ones(b, j)}

    def eval(self):
        return self

    def train(self, mode: bool = True):
        return self

    def to(self, *args, **kwargs):
        return self


def mean_pose(dataset) -> np.ndarray:
    """Per joint, the mean (x/W, y/H) over the training crops (no augmentation) where the joint is
    labelled and inside the crop; joints never seen sit at the crop centre."""
    from edgepose.core.transforms import transform_points

    h, w = dataset.input_size
    j = len(dataset.layout)
    total, count = np.zeros((j, 2)), np.zeros(j)
    for i, s in enumerate(dataset.samples):
        kp = transform_points(s.person.keypoints[:, :2], dataset.crop_matrix_for(i))
        ok = s.person.visible & dataset.layout.valid_mask
        ok &= (kp[:, 0] >= 0) & (kp[:, 0] <= w - 1) & (kp[:, 1] >= 0) & (kp[:, 1] <= h - 1)
        total[ok] += kp[ok] / np.array([w, h])
        count += ok
    mean = np.full((j, 2), 0.5)
    seen = count > 0
    mean[seen] = total[seen] / count[seen, None]
    return mean


# --------------------------------------------------------------------------------------- training
def run_dir(work: Path, key: str) -> Path:
    return work / "runs" / key.replace("/", "__")


def run_state(work: Path, key: str) -> dict:
    """A finished run's weights (a single-frame run's hold only its part of the model)."""
    from edgepose.zoo.checkpoints import read_checkpoint

    return read_checkpoint(run_dir(work, key) / "last.pt")["state_dict"]


def load_run_model(work: Path, key: str, single_frame: bool = False):
    """A finished run's model, rebuilt from its checkpoint's recorded config (eval mode); for a
    single-frame run, the part it trained."""
    from edgepose.zoo import create_model, get_spec, load_weights
    from edgepose.zoo.checkpoints import read_checkpoint

    obj = read_checkpoint(run_dir(work, key) / "last.pt")
    spec = get_spec(obj["model"])
    model = create_model(obj["model"], **{k: v for k, v in obj["config"].items() if k in spec.config})
    if single_frame:
        model = model.single_frame_model()
    load_weights(model, obj)
    return model.eval()


def build_overrides(model: str, args) -> dict:
    """create_model overrides of ``model``: the scale's build, ``--set`` changes, the crop size."""
    h, w = args.input_size
    return {**SCALES[args.scale](h, w)[model], **args.set.get(model, {}), "input_size": (h, w)}


def parse_sets(items: list[str]) -> dict[str, dict]:
    """``MODEL.KEY=VALUE`` items (VALUE read as JSON, else kept as a string) -> {model: {key: value}}."""
    out: dict[str, dict] = {}
    for item in items:
        target, sep, text = item.partition("=")
        model, dot, key = target.partition(".")
        if not sep or not dot or model not in MODELS or not key:
            raise SystemExit(f"--set takes MODEL.KEY=VALUE with MODEL in {', '.join(MODELS)}; got {item!r}")
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text
        out.setdefault(model, {})[key] = value
    return out


def epochs_of(run: Run, args) -> int:
    return int(args.epochs_for.get(run.model, args.epochs))


def signature(run: Run, args, runs: dict[str, Run]) -> dict:
    """Everything a run's result depends on: a finished run with the same signature is reused."""
    h, w = args.input_size
    fields = dataclasses.asdict(run)
    for later in ("init_from", "recipe"):  # left out at their defaults: earlier runs stay reusable
        if fields[later] is None:
            del fields[later]
    if run.single_frame:  # once a field, now read from the recipe: kept so finished runs stay reusable
        fields["single_frame"] = True
    sig = {
        "run": fields,
        "overrides": _plain(build_overrides(run.model, args)),
        "epochs": epochs_of(run, args),
        "batch_size": args.batch_size,
        "lr_mult": args.lr_mult,
        "seed": args.seed,
        "augment": args.augment,
        "schedule": args.schedule,
        "data": {
            "videos": args.videos,
            "frames": args.frames,
            "frame_size": list(args.frame_size),
            "preset": args.preset,
            "seed": args.data_seed,
            "split_val": args.split_val,
        },
    }
    if run.model in HEATMAP_TARGETS and not (
        run.model == "distilpose_s" and (run.teacher or not run.gt_teacher)
    ):
        sig["heatmap_sigma"] = HEATMAP_SIGMA_RULE
    if run.teacher:
        sig["teacher"] = signature(runs[run.teacher], args, runs)
    if run.init_from:
        sig["init_from"] = signature(runs[run.init_from], args, runs)
    return sig


HEATMAP_TARGETS = ("tar_vitpose_s", "sharpose_s", "distilpose_s")  # runs trained on Gaussian targets


def _plain(d: dict) -> dict:
    return json.loads(json.dumps(d))


def scoring_spec(model, run: Run):
    """The spec a finished run is scored with: its model's, and for a single-frame part (which reads
    the current frame of a window) the whole model's window, so that its "recoverable" split covers
    the same joints as the video runs'."""
    spec = spec_for(model)
    if not run.single_frame:
        return spec
    half = int(model.config.get("frames", 1)) // 2
    return dataclasses.replace(spec, frame_offsets=tuple(range(-half, half + 1)))


def is_window_run(run: Run, offsets) -> bool:
    return len(offsets) > 1 and not run.collapse and not run.single_frame


def score_run(model, run: Run, data_dir: Path, cache: FrameCache) -> dict:
    """A finished run's held-out metrics (``score``). A window run is also scored with the current
    frame in every slot (``collapsed_at_test``): how much its output leans on the neighbours."""
    spec = scoring_spec(model, run)
    out = score(model, spec, *held_out(spec, data_dir, cache, run.collapse))
    if is_window_run(run, spec.frame_offsets):
        alone = score(model, spec, *held_out(spec, data_dir, cache, collapse=True))
        out["collapsed_at_test"] = {m: alone[m] for m in (*PCK_METRICS, "metric")}
    return out


def held_out(spec, data_dir: Path, cache: FrameCache, collapse: bool = False):
    """The held-out split and its evaluation dataset (GT boxes, no augmentation) for ``spec``."""
    from edgepose.training import datasets as D

    val_split = D.load_split(data_dir, "val", spec)
    return val_split, D.topdown_dataset(
        spec, val_split, train=False, image_loader=cache, collapse_window=collapse
    )


def train_run(
    run: Run, args, data_dir: Path, work: Path, cache: FrameCache, log, sig: dict | None = None
) -> dict:
    out = run_dir(work, run.key)
    cached = out / "result.json"
    if sig is not None and not args.retrain and cached.is_file() and (out / "last.pt").is_file():
        saved = json.loads(cached.read_text())
        if saved.get("signature") == sig:
            log(f"{run.key}: reusing the finished run in {out} (same signature; --retrain to train again)")
            result = saved["result"]
            if all(split in result[HEADLINE] for split in SPLITS) and (
                "collapsed_at_test" in result or not is_window_run(run, result["frame_offsets"])
            ):
                return {**result, "reused": True}
            log(
                f"{run.key}: scoring it again (it was scored before the {', '.join(SPLITS)} splits and the "
                "test-time collapse)"
            )
            result = {
                **result,
                **score_run(load_run_model(work, run.key, run.single_frame), run, data_dir, cache),
            }
            from edgepose.core.atomic import atomic_file

            with atomic_file(cached, "w") as f:
                json.dump({"signature": sig, "result": result}, f, indent=1)
            return {**result, "reused": True}
    result = _train(run, args, data_dir, work, cache, log)
    if sig is not None:
        from edgepose.core.atomic import atomic_file

        with atomic_file(cached, "w") as f:
            json.dump({"signature": sig, "result": result}, f, indent=1)
    return result


def _train(run: Run, args, data_dir: Path, work: Path, cache: FrameCache, log) -> dict:
    import torch

    from edgepose.families import get_family
    from edgepose.training import datasets as D
    from edgepose.training.recipes import get_recipe, layer_decay, recipe_for, trained_part
    from edgepose.training.tasks import build_task
    from edgepose.training.teacher import Teacher
    from edgepose.training.trainer import Trainer, seed_everything
    from edgepose.zoo import create_model

    h, w = args.input_size
    overrides = build_overrides(run.model, args)
    seed_everything(args.seed)
    model = create_model(run.model, **overrides)
    spec = spec_for(model)
    notes = []
    if run.init_from:
        from edgepose.zoo.checkpoints import load_weights

        prefixes, what = INIT_PARTS[run.model]
        start = {k: v for k, v in run_state(work, run.init_from).items() if k.startswith(prefixes)}
        report = load_weights(model, start, strict=False)
        notes.append(f"{what} ({report.loaded} tensors) from the trained {run.init_from} of this run")
    recipe = get_recipe(run.recipe) if run.recipe else recipe_for(spec, synthetic=True)
    model, spec = trained_part(model, spec, recipe)
    options = dict(recipe.task_options)
    if get_family(spec).accepts_teacher:  # a student: a teacher of this run, or ground-truth heatmaps
        if run.teacher:
            t_model = load_run_model(work, run.teacher)
            options["teacher"] = Teacher(t_model, spec_for(t_model), spec)
            notes.append(f"teacher: the trained {run.teacher} of this run")
        else:
            options["gt_teacher"] = run.gt_teacher
    task = build_task(spec, model, **options)
    notes += task.notes

    data_opts = recipe.dataset_options(spec.layout)
    hm = task.heatmap_size()
    if hm is not None:
        data_opts["heatmap_sigma"] = heatmap_sigma(data_opts.get("heatmap_sigma", 2.0), hm[0])
    common = dict(image_loader=cache, collapse_window=run.collapse)
    train_split = D.load_split(data_dir, "train", spec)
    train_set = D.topdown_dataset(
        spec, train_split, train=True, heatmap_size=hm, seed=args.seed, **common, **data_opts
    )
    train_set.augment = AUGMENT[args.augment]
    val_split, val_set = held_out(spec, data_dir, cache, run.collapse)
    if val_split.format != train_split.format:
        raise ValueError(
            f"{run.key}: held-out data in {val_split.format} form, training data in {train_split.format}"
        )
    bs = min(args.batch_size, len(train_set))
    config = recipe.config(
        epochs=epochs_of(run, args),
        batch_size=bs,
        steps_per_epoch=len(train_set) // bs,
        lr=recipe.lr * args.lr_mult,
        seed=args.seed,
        device="cpu",
    )
    if args.schedule != "recipe":
        config = dataclasses.replace(config, schedule=args.schedule)
    lr_scale = layer_decay(model, spec.family, recipe.layer_decay) if recipe.layer_decay else None
    out = run_dir(work, run.key)
    if out.exists() and not args.resume:
        shutil.rmtree(out)

    def validate(m) -> dict:
        epoch = trainer.state.epoch + 1
        if not args.val_every or (epoch % args.val_every and epoch != config.epochs):
            return {}
        with torch.random.fork_rng():  # the val loader draws a seed: keep training's RNG stream as is
            r = score(m, spec, val_split, val_set)
        return {"pckh": r["pckh@0.5"]["all"], "metric": r["metric"]}

    trainer = Trainer(
        model,
        task,
        train_set,
        config,
        out,
        progress=False,
        lr_scale=lr_scale,
        evaluate=validate,
        meta={
            "benchmark": STEM,
            "run": run.key,
            "recipe": recipe.name,
            "seed": args.seed,
            "single_frame": recipe.single_frame,
        },
        on_epoch=lambda line: log(f"  {run.key}: {line}"),
    )
    params = sum(p.numel() for p in model.parameters())
    log(
        f"{run.key}: {params / 1e6:.2f}M params, {len(train_set)} train / "
        f"{len(val_set)} val crops, {config.epochs} epochs x {trainer.steps_per_epoch} steps, batch {bs}, "
        f"{recipe.name} (lr {config.lr:g})" + "".join(f"; {n}" for n in notes)
    )
    state = trainer.fit(resume=args.resume)
    model.eval()
    t0 = time.perf_counter()
    metrics = score_run(model, run, data_dir, cache)
    eval_s = time.perf_counter() - t0
    hist = state.history
    return {
        "label": run.label,
        "model": run.model,
        "collapse_window": run.collapse,
        "teacher": run.teacher,
        "init_from": run.init_from,
        "single_frame": run.single_frame,
        "layout": spec.layout,
        "input_size": list(spec.input_size),
        "frame_offsets": list(spec.frame_offsets),
        "overrides": {k: list(v) if isinstance(v, tuple) else v for k, v in overrides.items()},
        "params_m": round(params / 1e6, 3),
        "recipe": recipe.name,
        "train": {
            "epochs": state.epoch,
            "steps": state.step,
            "batch_size": bs,
            "lr": config.lr,
            "crops": len(train_set),
            "first_loss": hist[0]["train_loss"] if hist else None,
            "last_loss": hist[-1]["train_loss"] if hist else None,
            "seconds": round(sum(h["seconds"] for h in hist), 1),
        },  # all epochs, resumed ones too
        "eval_seconds": round(eval_s, 1),
        "history": [{k: (round(v, 5) if isinstance(v, float) else v) for k, v in h.items()} for h in hist],
        "notes": notes,
        **metrics,
    }


def baseline_run(layout_model: str, args, data_dir: Path, cache: FrameCache) -> dict:
    """The mean-pose baseline in the layout (and format) of ``layout_model``'s family."""
    from edgepose.training import datasets as D
    from edgepose.zoo import get_spec

    h, w = args.input_size
    spec = dataclasses.replace(get_spec(layout_model), input_size=(h, w), frame_offsets=(0,))
    fmt = "posetrack" if spec.layout == "posetrack17" else "auto"
    train_split = D.load_split(data_dir, "train", spec, fmt)
    val_split = D.load_split(data_dir, "val", spec, train_split.format)
    train_set = D.topdown_dataset(spec, train_split, train=False, image_loader=cache)
    # scored over the family's window so that the "recoverable" split covers the same joints as its models'
    window = get_spec(layout_model).frame_offsets if train_split.format == "posetrack" else (0,)
    val_set = D.topdown_dataset(
        dataclasses.replace(spec, frame_offsets=window), val_split, train=False, image_loader=cache
    )
    mean = mean_pose(train_set)
    base = dataclasses.replace(spec, codec="regression")
    metrics = score(MeanPose(mean), base, val_split, val_set)
    if len(window) > 1:
        metrics["recoverable_share"] = recoverable_share(val_set)
    return {
        "label": f"mean pose ({spec.layout})",
        "model": "mean_pose",
        "layout": spec.layout,
        "input_size": [h, w],
        "mean_pose": np.round(mean, 4).tolist(),
        **metrics,
    }


# ------------------------------------------------------------------------------------- comparisons
SPLITS = ("all", "occluded", "not_occluded", "blurred", "not_blurred", "recoverable")
HEADLINE = "pckh@0.5"
TITLES = {"pckh@0.5": "PCKh@0.5", "pck@0.2": "PCK@0.2 (box)"}


def _delta(a, b):
    return None if a is None or b is None else round(a - b, 2)


def _split_deltas(a: dict, b: dict) -> dict:
    out = {m: {s: _delta(a[m][s], b[m][s]) for s in SPLITS} for m in PCK_METRICS}
    out["metric"] = _delta(a["metric"], b["metric"])
    return out


def window_pairs(runs: dict) -> list[str]:
    """Keys of the window runs whose ``<key>/collapsed`` twin is in ``runs``."""
    return [k for k in runs if f"{k}/collapsed" in runs]


def comparisons(res: dict) -> dict:
    runs, base = res["runs"], res["baselines"]
    out: dict[str, Any] = {
        "a_vs_mean_pose": {},
        "b_window_vs_collapsed": {},
        "b_neighbours_used": {},
        "c_distillation": {},
    }
    for key, r in runs.items():
        b = base[r["layout"]]
        out["a_vs_mean_pose"][key] = {
            **{m: _delta(r[m]["all"], b[m]["all"]) for m in PCK_METRICS},
            "metric": _delta(r["metric"], b["metric"]),
            "metric_name": r["metric_name"],
        }
    for key in window_pairs(runs):
        out["b_window_vs_collapsed"][key] = _split_deltas(runs[key], runs[f"{key}/collapsed"])
        if "collapsed_at_test" in runs[key]:
            out["b_neighbours_used"][key] = _split_deltas(runs[key], runs[key]["collapsed_at_test"])
    student = runs.get("distilpose_s/teacher")
    for other in ("distilpose_s/no-teacher", "distilpose_s/gt-heatmaps"):
        if student and other in runs:
            out["c_distillation"][f"teacher - {other.split('/')[1]}"] = _split_deltas(student, runs[other])
    return out


# ----------------------------------------------------------------------------------------- output
def _f(v, digits: int = 1) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def _sf(v) -> str:
    return "-" if v is None else f"{v:+.1f}"


HEADER = [
    "run",
    "what",
    "params M",
    "steps",
    "PCKh@.5",
    "occl.",
    "not occl.",
    "blurred",
    "not blur.",
    "recov.",
    "PCK@.2 box",
    "mAP / AP",
]


def rows(res: dict) -> list[list[str]]:
    out = []
    entries = [(f"baseline:{k}", v) for k, v in res["baselines"].items()] + list(res["runs"].items())
    for key, r in entries:
        p = r[HEADLINE]
        out.append(
            [
                key,
                r["label"],
                _f(r["params_m"], 2) if r.get("params_m") else "-",
                str(r["train"]["steps"]) if "train" in r else "-",
                *(_f(p[s]) for s in SPLITS),
                _f(r["pck@0.2"]["all"]),
                f"{_f(r['metric'])} {'mAP' if r['format'] == 'posetrack' else 'AP'}",
            ]
        )
    return out


def _delta_lines(title: str, d: dict) -> str:
    p = d[HEADLINE]
    return (
        f"{title}: PCKh@0.5 all {_sf(p['all'])}, occluded {_sf(p['occluded'])}, not occluded "
        f"{_sf(p['not_occluded'])}, blurred {_sf(p['blurred'])}, not blurred {_sf(p['not_blurred'])}, "
        f"recoverable {_sf(p['recoverable'])}; mAP/AP {_sf(d['metric'])}"
    )


def print_table(res: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title="Synthetic benchmark, held-out videos, GT boxes (%): PCKh@0.5 by joint flag, "
        "PCK@0.2 of the box, PoseTrack mAP / COCO AP"
    )
    for i, h in enumerate(HEADER):
        table.add_column(h, justify="left" if i < 2 else "right")
    for r in rows(res):
        table.add_row(*r)
    console = Console(width=200)
    console.print(table)
    comp = res["comparisons"]
    for key, d in comp["a_vs_mean_pose"].items():
        console.print(
            f"(a) {key} - mean pose: PCKh@0.5 {_sf(d[HEADLINE])}, {d['metric_name']} {_sf(d['metric'])}"
        )
    for key, d in comp["b_window_vs_collapsed"].items():
        console.print(_delta_lines(f"(b) {key} window - collapsed", d))
    for key, d in comp.get("b_neighbours_used", {}).items():
        console.print(_delta_lines(f"(b) {key} window - the same weights fed the current frame only", d))
    for key, d in comp["c_distillation"].items():
        console.print(_delta_lines(f"(c) DistilPose-S {key}", d))


def _epochs_text(cfg: dict) -> str:
    extra = ", ".join(f"{m} {n}" for m, n in cfg.get("epochs_for", {}).items())
    return f"{cfg['epochs']} epochs" + (f" ({extra})" if extra else "")


def _split_counts(res: dict) -> list[str]:
    """A line with the held-out joints per split of the PoseTrack-layout baseline (its window's)."""
    base = res["baselines"].get("posetrack17")
    counts = (base or {}).get(f"{HEADLINE}_count")
    if not counts:
        return []
    parts = ", ".join(f"{s.replace('_', ' ')} {counts[s]}" for s in SPLITS if s != "all" and s in counts)
    shares = base.get("recoverable_share") or {}
    said = "; ".join(
        f"{v}% of the {f} ones have a clean frame in the window" for f, v in shares.items() if v is not None
    )
    return [
        f"Held-out joints scored (PoseTrack layout, window -1..1): {counts['all']} in all; {parts}"
        + (f". {said[0].upper()}{said[1:]}" if said else "")
        + ".",
        "",
    ]


def markdown(res: dict) -> str:
    cfg = res["setup"]
    data = cfg["data"]
    lines = [
        "# Training on the synthetic benchmark",
        "",
        "Written by `benchmarks/train_synthetic.py`: measured numbers of one run. Held-out videos (none of "
        "their frames is in training), ground-truth boxes, no flip test. PCKh@0.5: share of labelled joints "
        "(hidden ones included) within half of PoseTrack's head size (0.6 x the head box diagonal); "
        "occluded / blurred split them by the generator's per-joint flags; recoverable are the joints occluded "
        "or blurred in the current frame but neither in another frame of the model's window (same track, "
        "video models only): where the window holds what the current frame lacks. PCK@0.2 uses the box's longer "
        "side; it is lenient with ground-truth boxes (note the mean pose). mAP is PoseTrack's (PCKh@0.5 "
        "detections ranked by score) for the PoseTrack-layout models, AP is COCO's OKS AP for the "
        "COCO-layout ones.",
        "",
        f"Command: `{cfg['command']}`",
        "",
        f"Data: {data['videos']} videos x {data['frames']} frames at {data['frame_size']}, preset "
        f"`{data['preset']}`, generator seed {data['seed']}: {data['train_videos']} training / "
        f"{data['val_videos']} held-out videos; {data['stats'].get('occluded_joint_pct')}% of joints "
        f"occluded by others, {data['stats'].get('blurred_joint_pct')}% blurred. Crops {cfg['input_size'][0]}x"
        f"{cfg['input_size'][1]}, scale `{cfg['scale']}`, {_epochs_text(cfg)}, batch {cfg['batch_size']}, "
        f"augmentation `{cfg['augment']}`, schedule `{cfg['schedule']}`, "
        f"seed {cfg['seed']} for every run. Training time of all runs "
        f"{sum(r['train']['seconds'] for r in res['runs'].values()) / 60:.1f} min (their own sums, below; "
        f"runs reused from earlier invocations with the same settings: "
        f"{sum(bool(r.get('reused')) for r in res['runs'].values())}); this invocation's wall time "
        f"{cfg['wall_minutes']} min ({cfg['machine']}).",
        "",
        *_split_counts(res),
        "| " + " | ".join(HEADER) + " |",
        "|" + "|".join("---" if i < 2 else "---:" for i in range(len(HEADER))) + "|",
    ]
    lines += ["| " + " | ".join(r) + " |" for r in rows(res)]
    comp = res["comparisons"]
    lines += [
        "",
        "## (a) Against the mean-pose baseline of the same layout",
        "",
        "| run | PCKh@0.5 gain | PCK@0.2 gain | mAP / AP gain |",
        "|---|---:|---:|---:|",
    ]
    for k, d in comp["a_vs_mean_pose"].items():
        lines.append(
            f"| {k} | {_sf(d[HEADLINE])} | {_sf(d['pck@0.2'])} | {_sf(d['metric'])} ({d['metric_name']}) |"
        )

    def split_table(title: str, intro: str, entries: dict) -> list[str]:
        if not entries:
            return ["", title, "", "Not part of this run (its runs were left out with `--only`)."]
        out = [
            "",
            title,
            "",
            intro,
            "",
            "| difference | metric | all | occluded | not occluded | blurred | "
            "not blurred | recoverable | mAP / AP |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for k, d in entries.items():
            for m in PCK_METRICS:
                out.append(
                    f"| {k} | {TITLES[m]} | "
                    + " | ".join(_sf(d[m][s]) for s in SPLITS)
                    + f" | {_sf(d['metric']) if m == HEADLINE else ''} |"
                )
        return out

    lines += split_table(
        "## (b) Frame window against the window collapsed to the current frame",
        "Same architecture, seed, data and epochs; the collapsed model is trained and "
        "evaluated with every window slot holding the current frame. Positive = the window "
        "helps.",
        {f"{k}: window - collapsed": v for k, v in comp["b_window_vs_collapsed"].items()},
    )
    lines += split_table(
        "### How much the window models lean on their neighbours",
        "Each window model's score minus the same weights' score with the current frame in "
        "every slot at test time. Positive = its output uses the neighbouring frames.",
        {f"{k}: window - current frame only": v for k, v in comp.get("b_neighbours_used", {}).items()},
    )
    lines += split_table(
        "## (c) DistilPose-S with and without a teacher",
        f"Teacher: this run's trained `{cfg['teacher']}`. Same student initialisation, data "
        "order, augmentation and epochs. Positive = the teacher helps.",
        comp["c_distillation"],
    )
    lines += ["", "## Model builds (create_model overrides of the zoo configs)", ""]
    seen = set()
    for r in res["runs"].values():  # one line per model and recipe (TAR's two stages have their own)
        if (r["model"], r["recipe"]) in seen:
            continue
        seen.add((r["model"], r["recipe"]))
        lines.append(
            f"- `{r['model']}`: `{json.dumps(r['overrides'])}`, {r['params_m']}M params, recipe "
            f"`{r['recipe']}` (lr {r['train']['lr']:g})"
        )
    lines += [
        "",
        "## Run times",
        "",
        "| run | train s | eval s | first loss | last loss |",
        "|---|---:|---:|---:|---:|",
    ]
    for k, r in res["runs"].items():
        t = r["train"]
        lines.append(
            f"| {k} | {t['seconds']} | {r['eval_seconds']} | {_f(t['first_loss'], 4)} | "
            f"{_f(t['last_loss'], 4)} |"
        )
    if res.get("notes"):
        lines += ["", "## Notes", ""] + [f"- {n}" for n in res["notes"]]
    return "\n".join(lines) + "\n"


DISTIL_KEYS = ("distilpose_s/no-teacher", "distilpose_s/gt-heatmaps", "distilpose_s/teacher")
SHIP_MARGIN = 4.0  # --ship-weights: PCKh@0.5 points a run must gain over its layout's mean pose


def shippable(res: dict, margin: float = SHIP_MARGIN) -> tuple[list[str], list[str]]:
    """Per model, its best run with the window intact (by held-out PCKh@0.5), if that run beats the
    mean pose of its layout by ``margin`` points: weights that do not find joints are not shipped.
    Returns the run keys to ship and a line per model left out."""
    best: dict[str, str] = {}
    for key, r in res["runs"].items():
        if r["collapse_window"] or r.get("single_frame") or r["pckh@0.5"]["all"] is None:
            continue
        if r["model"] not in best or r["pckh@0.5"]["all"] > res["runs"][best[r["model"]]]["pckh@0.5"]["all"]:
            best[r["model"]] = key
    keys, skipped = [], []
    for _model, key in best.items():
        r = res["runs"][key]
        gain = r["pckh@0.5"]["all"] - res["baselines"][r["layout"]]["pckh@0.5"]["all"]
        if gain >= margin:
            keys.append(key)
        else:
            skipped.append(f"{key}: {gain:+.2f} PCKh@0.5 over the mean pose < {margin}: not shipped")
    return keys, skipped


def plot(res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs, base = res["runs"], res["baselines"]
    fig, axes = plt.subplots(1, 3, figsize=(18, 5.6), gridspec_kw={"width_ratios": [1.25, 1.25, 1]})
    # (a) every run against the mean pose of its layout
    ax = axes[0]
    keys = list(runs)
    vals = [runs[k][HEADLINE]["all"] or 0 for k in keys]
    colors = ["#bbbbbb" if runs[k].get("collapse_window") else "#3b75af" for k in keys]
    ax.barh(range(len(keys)), vals, color=colors)
    for layout, ls in (("posetrack17", "--"), ("coco17", ":")):
        if layout in base:
            v = base[layout][HEADLINE]["all"]
            ax.axvline(v, color="#c0392b", ls=ls, lw=1.5, label=f"mean pose, {layout}: {v:.1f}")
    for i, v in enumerate(vals):
        ax.text(v + 0.8, i, f"{v:.1f}", va="center", fontsize=8)
    ax.set_yticks(range(len(keys)), keys, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 105)
    ax.set_xlabel("PCKh@0.5, all labelled joints (%)")
    ax.set_title("(a) trained models vs the mean pose (grey: window collapsed)", fontsize=10)
    ax.legend(loc="lower right", fontsize=7)
    # (b) window vs collapsed, by joint flag
    ax = axes[1]
    pairs = window_pairs(runs)
    x = np.arange(len(SPLITS))
    width = 0.8 / max(2 * len(pairs), 1)
    palette = (("#1f77b4", "#aec7e8"), ("#d62728", "#ff9896"), ("#2ca02c", "#98df8a"), ("#9467bd", "#c5b0d5"))
    for i, m in enumerate(pairs):
        for j, (key, tag) in enumerate(((m, "window"), (f"{m}/collapsed", "collapsed"))):
            v = [runs[key][HEADLINE][s] or 0 for s in SPLITS]
            ax.bar(
                x + (2 * i + j - len(pairs) + 0.5) * width,
                v,
                width,
                color=palette[i % len(palette)][j],
                label=f"{m} {tag}",
            )
    ax.set_xticks(x, [s.replace("_", " ") for s in SPLITS], fontsize=8)
    ax.set_ylabel("PCKh@0.5 (%)")
    ax.set_ylim(0, 100)
    ax.set_title("(b) frame window vs window collapsed to the current frame", fontsize=10)
    ax.legend(fontsize=7, loc="upper right", ncol=2)
    # (c) DistilPose-S with and without a teacher
    ax = axes[2]
    dkeys = [k for k in DISTIL_KEYS if k in runs]
    groups = ("all", "occluded", "blurred")
    for j, k in enumerate(dkeys):
        v = [runs[k][HEADLINE][s] or 0 for s in groups]
        ax.bar(np.arange(3) + (j - len(dkeys) / 2 + 0.5) * 0.25, v, 0.25, label=k.split("/")[1])
    ax.set_xticks(np.arange(3), groups, fontsize=8)
    ax.set_ylim(0, 100)
    ax.set_ylabel("PCKh@0.5 (%)")
    ax.set_title(f"(c) DistilPose-S: teacher ({res['setup']['teacher']}) or not", fontsize=10)
    ax.legend(fontsize=7, loc="upper right", ncol=3)
    s = res["setup"]
    fig.suptitle(
        f"Synthetic benchmark, held-out videos: crops {s['input_size'][0]}x{s['input_size'][1]}, "
        f"scale {s['scale']}, {_epochs_text(s)}, seed {s['seed']}",
        fontsize=11,
    )
    fig.tight_layout()
    from edgepose.core.atomic import atomic_file

    with atomic_file(path) as f:
        fig.savefig(f, format="png", dpi=100)
    plt.close(fig)


def ship_weights(res: dict, work: Path, out_dir: Path, keys: list[str], log) -> None:
    """fp16 copies of trained models in edgepose.zoo.pretrained's form, plus their index."""
    from edgepose.zoo.pretrained import write_pretrained

    for key in keys:
        r = res["runs"][key]
        trained_on = (
            f"edgepose synthetic benchmark only ({res['setup']['data']['preset']} preset, "
            f"{res['setup']['data']['train_videos']} training videos, generator seed "
            f"{res['setup']['data']['seed']}); {r['train']['epochs']} epochs, seed "
            f"{res['setup']['seed']}"
        )
        metrics = {
            "pckh@0.5": r["pckh@0.5"]["all"],
            "pck@0.2": r["pck@0.2"]["all"],
            r["metric_name"]: r["metric"],
        }
        path = write_pretrained(
            load_run_model(work, key), out_dir, trained_on=trained_on, metrics=metrics, note=r["label"]
        )
        log(f"shipped {key} -> {path} ({path.stat().st_size / 1e6:.2f} MB)")


# ------------------------------------------------------------------------------------------- main
def _size(text: str, what: str) -> tuple[int, int]:
    try:
        a, b = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{what} must look like 64x48, got {text!r}") from None
    return a, b


def parse(argv=None):
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--work", type=Path, default=Path("runs") / STEM, help="data and run directories")
    ap.add_argument("--results", type=Path, default=RESULTS, help="where the .md/.json/.png go")
    ap.add_argument(
        "--videos",
        type=int,
        default=300,
        help="synthetic videos (a quarter held out): many short ones, as the models overfit a few long",
    )
    ap.add_argument("--frames", type=int, default=10, help="frames per video")
    ap.add_argument("--frame-size", type=lambda s: _size(s, "--frame-size"), default=(320, 240), help="WxH")
    ap.add_argument(
        "--preset", default="default", help="synthetic preset: clean | easy | moderate | default | hard"
    )
    ap.add_argument("--split-val", type=float, default=0.25)
    ap.add_argument("--data-seed", type=int, default=0, help="seed of the synthetic videos")
    ap.add_argument(
        "--input-size", type=lambda s: _size(s, "--input-size"), default=(128, 96), help="crop HxW"
    )
    ap.add_argument(
        "--scale",
        choices=sorted(SCALES),
        default="reduced",
        help="model builds: reduced (see reduced()), the registry's tiny configs, or full",
    )
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument(
        "--epochs-for",
        nargs="*",
        default=[],
        metavar="MODEL=N",
        help="per-model epochs (e.g. tar_vitpose_s=10): window and collapsed runs stay paired",
    )
    ap.add_argument(
        "--set",
        nargs="*",
        default=[],
        metavar="MODEL.KEY=VALUE",
        help="change a model's build (create_model override), e.g. dsta_mnv2.jfd=pool",
    )
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument(
        "--augment",
        choices=("paper", "mild", "none"),
        default="mild",
        help="training augmentation: the papers' ranges, milder ones (default: in short runs the "
        "papers' ranges kept every model under the mean pose), or none",
    )
    ap.add_argument(
        "--val-every",
        type=int,
        default=0,
        help="also score the held-out set every N epochs (learning curves in the JSON; 0: only at the end)",
    )
    ap.add_argument(
        "--schedule",
        choices=("recipe", "cosine", "constant"),
        default="cosine",
        help="lr schedule: the recipes' (step decays at the papers' fractions of training, which "
        "in a few epochs cut the lr 10x after half of them) or cosine (default)",
    )
    ap.add_argument("--lr-mult", type=float, default=1.0, help="multiply every recipe's learning rate")
    ap.add_argument("--seed", type=int, default=0, help="seed of every run (init, order, augmentation)")
    ap.add_argument(
        "--teacher",
        default="tar_vitpose_s",
        choices=("tar_vitpose_s", "sharpose_s"),
        help="the trained run that teaches DistilPose-S",
    )
    ap.add_argument("--only", nargs="*", default=None, help="run keys to train (default: all)")
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (0: torch's default). 1 is fastest on a shared CPU: with other jobs "
        "on a 2-core machine, 2 threads ran a DSTA step 4x slower than 1",
    )
    ap.add_argument("--jobs", type=int, default=1, help="runs trained in parallel processes (each --threads)")
    ap.add_argument("--resume", action="store_true", help="continue unfinished runs from their last.pt")
    ap.add_argument(
        "--retrain",
        action="store_true",
        help="train every run again (default: reuse a finished run whose settings are unchanged)",
    )
    ap.add_argument(
        "--ship-weights",
        type=Path,
        default=None,
        help="also write fp16 demo weights here (e.g. edgepose/assets/weights): per model its best "
        "windowed run, if it beats the mean pose by SHIP_MARGIN PCKh@0.5 points",
    )
    ap.add_argument(
        "--ship-margin",
        type=float,
        default=SHIP_MARGIN,
        help="PCKh@0.5 points over the mean pose a run needs to be shipped",
    )
    return ap.parse_args(argv)


def _worker(run: Run, args, data_dir: Path, work: Path, t_start: float, sig: dict) -> dict:
    """One run in a worker process (``--jobs``): its own frame cache and thread setting."""
    import torch

    global AUGMENT
    AUGMENT = _augment()
    if args.threads:
        torch.set_num_threads(args.threads)

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - t_start:7.1f}s] {msg}", file=sys.stderr, flush=True)

    return train_run(run, args, data_dir, work, FrameCache(), log, sig)


def main(argv=None) -> dict:
    args = parse(argv)
    try:
        args.epochs_for = {k: int(v) for k, v in (item.split("=", 1) for item in args.epochs_for)}
    except ValueError:
        raise SystemExit(f"--epochs-for takes MODEL=N items, got {args.epochs_for}") from None
    args.set = parse_sets(args.set)
    unknown = set(args.epochs_for) - set(MODELS)
    if unknown:
        raise SystemExit(f"--epochs-for: unknown models {sorted(unknown)}; known: {', '.join(MODELS)}")
    global AUGMENT
    AUGMENT = _augment()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    t_start = time.perf_counter()
    work = args.work
    work.mkdir(parents=True, exist_ok=True)

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - t_start:7.1f}s] {msg}", file=sys.stderr, flush=True)

    data_dir, meta = make_data(args, work)
    log(f"data: {data_dir} ({len(meta['splits']['train'])} train / {len(meta['splits']['val'])} val videos)")
    cache = FrameCache()
    all_runs = runs_for(args.teacher)
    selected = [r for r in all_runs if args.only is None or r.key in args.only]
    needed = {k for r in selected for k in r.needs}
    order = [r for r in all_runs if r in selected or r.key in needed]

    res: dict[str, Any] = {"baselines": {}, "runs": {}}
    for model in ("dsta_mnv2", "distilpose_s"):
        b = baseline_run(model, args, data_dir, cache)
        res["baselines"][b["layout"]] = b
        log(
            f"baseline mean pose {b['layout']}: PCKh@0.5 {b['pckh@0.5']['all']}, PCK@0.2 "
            f"{b['pck@0.2']['all']}, {b['metric_name']} {b['metric']}"
        )

    def done(key: str, r: dict) -> None:
        res["runs"][key] = r
        p = r["pckh@0.5"]
        log(
            f"{key}: PCKh@0.5 {p['all']} (occluded {p['occluded']}, blurred {p['blurred']}), PCK@0.2 "
            f"{r['pck@0.2']['all']}, {r['metric_name']} {r['metric']}, train {r['train']['seconds']} s"
        )

    by_key = {r.key: r for r in all_runs}
    sigs = {r.key: signature(r, args, by_key) for r in order}
    # runs without a teacher first (in parallel with --jobs), then the distilled students
    for stage in ([r for r in order if not r.needs], [r for r in order if r.needs]):
        if args.jobs > 1:  # longest first, so the last job does not run alone
            stage = sorted(stage, key=lambda r: -epochs_of(r, args) * EPOCH_COST.get(r.model, 1.0))
        if args.jobs > 1 and len(stage) > 1:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor

            with ProcessPoolExecutor(min(args.jobs, len(stage)), mp_context=mp.get_context("spawn")) as pool:
                futures = [
                    (r.key, pool.submit(_worker, r, args, data_dir, work, t_start, sigs[r.key]))
                    for r in stage
                ]
                for key, fut in futures:
                    done(key, fut.result())
        else:
            for run in stage:
                done(run.key, train_run(run, args, data_dir, work, cache, log, sigs[run.key]))
    res["runs"] = {r.key: res["runs"][r.key] for r in order}

    wall = time.perf_counter() - t_start
    stats = meta.get("stats", {})
    res["setup"] = {
        "command": "python benchmarks/train_synthetic.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "data": {
            "videos": args.videos,
            "frames": args.frames,
            "frame_size": f"{args.frame_size[0]}x{args.frame_size[1]}",
            "preset": args.preset,
            "seed": args.data_seed,
            "train_videos": len(meta["splits"]["train"]),
            "val_videos": len(meta["splits"]["val"]),
            "stats": stats,
        },
        "input_size": list(args.input_size),
        "scale": args.scale,
        "epochs": args.epochs,
        "epochs_for": args.epochs_for,
        "set": args.set,
        "augment": args.augment,
        "schedule": args.schedule,
        "batch_size": args.batch_size,
        "seed": args.seed,
        "teacher": args.teacher,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "machine": f"{platform.machine()} CPU, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads",
        "wall_minutes": round(wall / 60, 1),
    }
    res["comparisons"] = comparisons(res)
    res["notes"] = []

    if args.ship_weights is not None:
        keys, skipped = shippable(res, args.ship_margin)
        for line in skipped:
            log(line)
        ship_weights(res, work, args.ship_weights, keys, log)

    from edgepose.core.atomic import atomic_file

    args.results.mkdir(parents=True, exist_ok=True)
    with atomic_file(args.results / f"{STEM}.json", "w") as f:
        json.dump(res, f, indent=1)
    with atomic_file(args.results / f"{STEM}.md", "w") as f:
        f.write(markdown(res))
    plot(res, args.results / f"{STEM}.png")
    print_table(res)
    log(f"wrote {args.results / STEM}.{{md,json,png}}")
    return res


if __name__ == "__main__":
    main()

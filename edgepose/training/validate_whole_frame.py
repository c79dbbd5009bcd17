"""Evaluation of whole-frame models with *predicted* people: no ground-truth boxes anywhere.

A whole-frame model (PAVE-Net, ``input_kind == "frame"``) sees each letterboxed frame window
(:class:`edgepose.data.whole_frame.WholeFrameDataset`, the SDK's letterbox) and returns M people
with a person score; the people at or above ``score_threshold`` are mapped back to frame pixels
and scored as they are:

* PoseTrack mAP (poseval's protocol, ``edgepose.eval.posetrack_map``): per frame each GT person
  takes its best prediction by PCKh, every predicted joint is a detection ranked by its score;
* COCO keypoint AP (pycocotools through ``edgepose.eval.coco_ap``): the prediction's person score
  is the instance score, OKS with the layout's sigmas.

Ignore regions (pseudo-labels' people the teachers disagree on, PoseTrack's unlabelled crowds): a
predicted person whose mean joint lies in one of its frame's regions is dropped before scoring, as
poseval drops predictions there; nobody inside is a ground-truth person, so neither side counts them.
PoseTrack mAP needs head_top/head_bottom for its head size: on labels without them (COCO-17 teachers'
pseudo-labels read into ``posetrack15``) only COCO AP is reported, over the joints the labels have.

No OKS-NMS is applied (the official code has a 0.45 OKS-NMS after the network; the paper's claim
is that a set-trained model needs none). Baselines for the synthetic benchmark:

* :func:`mean_pose_predictions`: the training split's mean pose (joint positions normalised to the
  person's box) placed in every *true* box of the evaluated frames, all scores 1: the floor a
  model must beat, and a generous one, since it is handed the boxes the model has to find;
* the collapsed twin: the same weights on windows whose every slot holds the current frame
  (``collapse_window=True``): what the window adds.

Also the glue that lets ``edgepose train`` / ``edgepose eval`` run whole-frame models through
their normal paths (:func:`adapt_for_spec`, :func:`eval_command`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..core.transforms import invert_affine, transform_points
from ..eval.predictions import Prediction

DEFAULT_SCORE_THRESHOLD = 0.05
POSETRACK_KEYS = ("mAP", "Head", "Sho", "Elb", "Wri", "Hip", "Knee", "Ank")
COCO_KEYS = ("AP", "AP50", "AP75", "APm", "APl", "AR")


def is_whole_frame(spec) -> bool:
    return getattr(spec, "input_kind", "crop") == "frame"


def whole_frame_dataset(spec, split, train: bool = False, seed: int = 0, **options):
    """The model-shaped WholeFrameDataset of a ``DataSplit`` (augmentation when ``train``)."""
    from ..data.whole_frame import WholeFrameDataset

    ds = WholeFrameDataset.for_spec(spec, split.records, train=train, **options)
    if len(ds) == 0:
        raise ValueError(f"{split.path} holds no labelled frame{' with a labelled person' if train else ''}")
    if train:
        ds.set_epoch(0, seed)
    return ds


@torch.no_grad()
def predict(
    model,
    dataset,
    batch_size: int = 8,
    device: str | torch.device = "cpu",
    score_threshold: float = DEFAULT_SCORE_THRESHOLD,
) -> list[Prediction]:
    """The people a whole-frame model finds in every frame of ``dataset``, in frame pixels."""
    device = torch.device(device)
    was_training = model.training
    model.eval().to(device)
    preds: list[Prediction] = []
    for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        out = model(batch["frames"].to(device))
        poses = out["poses"].float().cpu().numpy()  # (B, M, K, 3) input pixels + joint score
        scores = out["scores"].float().cpu().numpy()  # (B, M)
        for b in range(len(poses)):
            inv = invert_affine(batch["matrix"][b].numpy())
            image_id = int(batch["image_id"][b])
            for m in np.flatnonzero(scores[b] >= score_threshold):
                kp = transform_points(poses[b, m, :, :2].astype(np.float64), inv)
                preds.append(
                    Prediction(image_id, kp, poses[b, m, :, 2].astype(np.float64), float(scores[b, m]))
                )
    model.train(was_training)
    return preds


def mean_pose(records, layout: str) -> np.ndarray:
    """(K, 2) mean joint position normalised to the person's box over labelled joints of ``records``
    (VideoRecords or FrameRecords); joints never labelled sit at the box centre."""
    from ..core.keypoints import get_layout

    k = len(get_layout(layout))
    rel, weight = np.zeros((k, 2)), np.zeros((k, 1))
    for f in _frames(records):
        for p in f.persons:
            box = p.box()
            if box is None:
                continue
            size = np.maximum(box[2:] - box[:2], 1.0)
            ok = p.keypoints[:, 2:3] > 0
            rel += ok * (p.keypoints[:, :2] - box[:2]) / size
            weight += ok
    out = rel / np.maximum(weight, 1)
    out[weight[:, 0] == 0] = 0.5
    return out


def mean_pose_predictions(records, mean: np.ndarray) -> list[Prediction]:
    """The mean pose in every true box of the labelled frames of ``records``, scores 1."""
    preds = []
    for f in _frames(records):
        if not f.is_labeled:
            continue
        for p in f.persons:
            box = p.box()
            if box is None or p.iscrowd:
                continue
            kp = box[:2] + mean * (box[2:] - box[:2])
            preds.append(Prediction(int(f.image_id), kp, np.ones(len(mean)), 1.0))
    return preds


def oracle_assignment(predictions: list[Prediction], records, layout: str) -> list[Prediction]:
    """A diagnostic, not a result: per frame, the predictions the ground truth would pick (one per GT
    person, Hungarian on OKS over labelled joints), scored 1. It separates how good the poses are
    from how well the model scores its people (what predicted-people AP needs both of)."""
    import torch
    from scipy.optimize import linear_sum_assignment

    from ..core.keypoints import get_layout
    from .set_loss import oks

    sigmas = torch.as_tensor(get_layout(layout).sigmas, dtype=torch.float64)
    by_image: dict[int, list[Prediction]] = {}
    for p in predictions:
        by_image.setdefault(p.image_id, []).append(p)
    out = []
    for f in _frames(records):
        preds = by_image.get(int(f.image_id), [])
        people = [p for p in f.persons if p.visible.any()]
        if not f.is_labeled or not preds or not people:
            continue
        gt = torch.as_tensor(np.stack([p.keypoints for p in people]), dtype=torch.float64)
        gt[..., 2] = (gt[..., 2] > 0).double()
        pr = torch.as_tensor(np.stack([np.nan_to_num(p.keypoints) for p in preds]), dtype=torch.float64)
        rows, cols = linear_sum_assignment(-oks(pr, gt, sigmas).numpy())
        for r in rows:
            q = preds[r]
            out.append(Prediction(q.image_id, q.keypoints, np.ones(len(q.keypoints)), 1.0))
    return out


def _frames(records):
    items = list(records)
    if items and hasattr(items[0], "frames"):
        return [f for v in items for f in v.frames]
    return items


def drop_ignored(predictions: list[Prediction], records) -> list[Prediction]:
    """The predictions whose mean joint (frame pixels) lies outside its frame's ignore regions."""
    regions = {int(f.image_id): f for f in _frames(records) if f.ignore_regions}
    if not regions:
        return list(predictions)
    out = []
    for p in predictions:
        f = regions.get(int(p.image_id))
        if f is not None and f.in_ignore_region(np.nanmean(p.keypoints[:, :2], 0)):
            continue
        out.append(p)
    return out


def metrics(predictions: list[Prediction], records, layout: str, fmt: str = "posetrack") -> dict[str, float]:
    """PoseTrack mAP (with ``fmt == "posetrack"`` and labels with head_top/head_bottom) and COCO AP, both
    in percent, in one flat dict (``mAP`` ... ``Ank``, ``AP`` ... ``AR``); predictions in ignore regions
    are dropped first. Without head joints there is no ``mAP``; ``no_mAP`` says why."""
    from .validate import metric_format, metrics_of

    predictions = drop_ignored(predictions, records)
    out: dict[str, float] = {}
    posetrack = metric_format(fmt, layout) == "posetrack"
    if posetrack and metric_format(fmt, layout, records) != "posetrack":
        posetrack = False
        out["no_mAP"] = "the labels have no head_top/head_bottom: COCO AP only"  # type: ignore[assignment]
    if posetrack:
        out.update(metrics_of("posetrack", predictions, records, layout))
    try:
        out.update(metrics_of("coco", predictions, records, layout))
    except RuntimeError as e:  # pycocotools missing: the PoseTrack numbers still stand
        out["coco_error"] = str(e)  # type: ignore[assignment]
    return out


def evaluate(
    model,
    spec,
    split,
    dataset,
    batch_size: int = 8,
    device="cpu",
    flip: bool = False,
    score_threshold: float = DEFAULT_SCORE_THRESHOLD,
) -> dict[str, Any]:
    """The trainer's validation for whole-frame models: predict ``dataset`` and score it against
    ``split``'s records (``flip`` is not supported: matching people across a mirrored pass is a
    post-processing of its own; it is ignored)."""
    preds = predict(model, dataset, batch_size, device, score_threshold)
    out = metrics(preds, split.records, spec.layout, split.format)
    out["people_per_frame"] = len(preds) / max(len(dataset), 1)
    return out


class _WholeFrameData:
    """``training.datasets`` with ``topdown_dataset`` answering whole-frame windows (the train CLI's seam)."""

    def __init__(self, datasets_module):
        self._d = datasets_module

    def __getattr__(self, name):
        return getattr(self._d, name)

    def load_split(self, root, split: str, spec, fmt: str = "auto"):
        """As ``datasets.load_split``, and COCO still images too when asked for (``--format coco``): a
        whole-frame window of a still repeats the image (the collapsed window), so every person of every
        COCO image trains the model's single-frame path."""
        if fmt != "coco":
            return self._d.load_split(root, split, spec, fmt)
        from ..data.coco import read_coco

        available = self._d.locate(root, split)
        if "coco" not in available:
            raise FileNotFoundError(
                f"no coco annotations found under {root} for {split} "
                "(annotations/coco_<split>.json, annotations/person_keypoints_<split>*.json)"
            )
        path, images = available["coco"]
        return self._d.DataSplit("coco", path, read_coco(path, layout=spec.layout, image_root=images))

    @staticmethod
    def topdown_dataset(spec, split, train: bool, heatmap_size=None, seed: int = 0, **options):
        if heatmap_size is not None:
            raise ValueError(f"{spec.name} is a whole-frame model: it trains on no heatmaps")
        options.pop("joint_weights", None)  # PAVE-Net weights joints in its loss (task option), not in data
        options.pop("heatmap_sigma", None)
        return whole_frame_dataset(spec, split, train=train, seed=seed, **options)


def adapt_for_spec(spec, datasets_module, evaluate_fn):
    """(datasets module, evaluate) for ``spec``: unchanged for crop models; for whole-frame models the
    datasets give frame windows with every person and validation scores predicted people."""
    if not is_whole_frame(spec):
        return datasets_module, evaluate_fn
    return _WholeFrameData(datasets_module), evaluate


def eval_command(
    model_name: str,
    weights: str,
    model,
    report,
    spec,
    data,
    split: str,
    data_format: str,
    batch_size: int,
    device,
    as_json: bool,
    score_threshold: float = DEFAULT_SCORE_THRESHOLD,
) -> None:
    """``edgepose eval`` for a whole-frame model: predicted people, PoseTrack mAP and COCO AP."""
    from ..cli._common import console, err_console, print_json
    from . import datasets as D

    part = D.load_split(data, split, spec, data_format)
    dataset = whole_frame_dataset(spec, part, train=False)
    preds = predict(model, dataset, batch_size, device, score_threshold)
    values = metrics(preds, part.records, spec.layout, part.format)
    result = {
        "model": model_name,
        "weights": weights,
        "data": str(data),
        "split": split,
        "format": part.format,
        "frames": len(dataset),
        "people": "predicted",
        "score_threshold": score_threshold,
        "predictions": len(preds),
        "metrics": values,
    }
    if as_json:
        print_json(result)
        return
    err_console.print(
        f"[dim]{model_name}: {report.loaded} tensors from {weights} ({report.source}); "
        f"{len(dataset)} frames of {part.path}; {len(preds)} people predicted at score >= "
        f"{score_threshold:g}[/]"
    )
    console.print(metrics_table(model_name, values))


def metrics_table(name: str, values: dict):
    from ..cli._common import new_table

    table = new_table(
        "Whole-frame model, predicted people (no GT boxes): PoseTrack mAP (PCKh@0.5) | COCO AP (OKS)"
    )
    table.add_column("Method")
    cols = [k for k in (*POSETRACK_KEYS, *COCO_KEYS) if k in values]
    for c in cols:
        table.add_column("Mean" if c == "mAP" else c, justify="right")
    table.add_row(
        name,
        *(
            "-"
            if values[c] is None or (isinstance(values[c], float) and math.isnan(values[c]))
            else f"{values[c]:.1f}"
            for c in cols
        ),
    )
    return table

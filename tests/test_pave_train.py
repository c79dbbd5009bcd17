"""PAVE-Net training (issue #17 item 5): whole-frame windows, the set-loss task through the Trainer,
exact resume, the train/eval CLIs on a tiny synthetic set, and evaluation with predicted people."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

pytest.importorskip("scipy")

from edgepose.data.synth_dataset import write_dataset  # noqa: E402
from edgepose.data.synthetic import SynthConfig  # noqa: E402
from edgepose.data.whole_frame import WholeFrameDataset, letterbox_matrix, targets_of  # noqa: E402
from edgepose.training import datasets as D  # noqa: E402
from edgepose.training.tasks import build_task  # noqa: E402
from edgepose.training.trainer import TrainConfig, Trainer  # noqa: E402
from edgepose.zoo import create_model, get_spec  # noqa: E402

NAME = "pave_mnv2_tiny"


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    """Two short clean videos with several people, 128x96 frames (the tiny model's input is 96x64)."""
    root = tmp_path_factory.mktemp("pave") / "data"
    cfg = SynthConfig.preset("easy", width=128, height=96, frames=6, min_people=2, max_people=3)
    write_dataset(root, cfg, videos=3, seed=3, split_val=0.34, layout="both")
    return root


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: threads only contend on a loaded machine
    yield
    torch.set_num_threads(n)


def _dataset(synth, split="train", train=False, **kw):
    spec = get_spec(NAME)
    part = D.load_split(synth, split, spec)
    return spec, part, WholeFrameDataset.for_spec(spec, part.records, train=train, **kw)


def test_windows_are_letterboxed_like_the_sdk_with_every_person(synth):
    from edgepose.sdk.estimator import letterbox_matrix as sdk_letterbox

    spec, part, ds = _dataset(synth)
    assert letterbox_matrix is sdk_letterbox  # one implementation (core.transforms) for data and SDK
    item = ds[0]
    assert item["frames"].shape == (3, 3, *spec.input_size)
    n = int(item["num_people"])
    frame = ds.samples[0].clip[ds.samples[0].current]
    assert 1 <= n <= len(frame.persons)
    people = item["people"][:n].numpy()
    w = people[..., 2] > 0
    assert ((people[..., :2][w] >= 0) & (people[..., :2][w] <= 1)).all()
    assert not item["people"][n:].any()
    # back to frame pixels through the matrix: the labels
    h, wd = spec.input_size
    m = np.vstack([item["matrix"].numpy(), [0, 0, 1]])
    back = (np.linalg.inv(m) @ np.c_[people[0, :, 0] * wd, people[0, :, 1] * h, np.ones(len(people[0]))].T)[
        :2
    ].T
    labelled = [p for p in frame.persons if p.visible.any()][0]
    ok = w[0]
    assert np.allclose(back[ok], labelled.keypoints[ok, :2], atol=1e-3)


def test_flip_augmentation_mirrors_and_repairs_joints(synth):
    spec, part, ds = _dataset(synth, train=True, zoom=(1.0, 1.0), shift=0.0, flip_prob=1.0)
    _, _, plain = _dataset(synth)
    ds.set_epoch(0, seed=0)
    a, b = ds[0], plain[0]
    assert torch.allclose(a["frames"], b["frames"].flip(-1), atol=1e-5)
    flip = np.asarray(ds.layout.flip_index)
    pa, pb = a["people"][0].numpy(), b["people"][0].numpy()
    w = spec.input_size[1]
    ok = pb[flip, 2] > 0
    assert np.allclose(pa[ok, 0] * w, (w - 1) - pb[flip][ok, 0] * w, atol=1e-4)
    assert np.allclose(pa[ok, 1], pb[flip][ok, 1], atol=1e-6)


def _trainer(synth, out, epochs, **cfg):
    torch.manual_seed(0)
    spec = get_spec(NAME)
    model = create_model(NAME)
    task = build_task(spec, model, joint_weights={"left_wrist": 1.5, "right_wrist": 1.5})
    _, _, ds = _dataset(synth)
    ds.samples = ds.samples[:4]  # one fixed batch of four windows
    config = TrainConfig(
        epochs=epochs,
        batch_size=4,
        lr=1e-3,
        schedule="constant",
        optimizer="adamw",
        seed=1,
        device="cpu",
        grad_clip=0.1,
        **cfg,
    )
    return Trainer(model, task, ds, config, out, progress=False)


def test_loss_decreases_and_a_killed_run_resumes_to_the_same_weights(synth, tmp_path):
    steps = 6
    full = _trainer(synth, tmp_path / "full", steps)
    losses = []
    full.on_step = lambda step, parts: losses.append(parts["loss"])
    full.fit()
    assert len(losses) == steps and all(np.isfinite(losses))
    assert losses[-1] < losses[0] - 0.5, losses  # the same batch every step: the set loss must fall
    assert {"cls", "rle_init", "rle_dec", "rle_joint", "err_px"} <= set(full.state.history[-1]) | {
        k[len("train_") :] for k in full.state.history[-1]
    }

    killed = _trainer(synth, tmp_path / "killed", steps, checkpoint_every=1)
    killed.interrupt_after_steps = 3
    with pytest.raises(KeyboardInterrupt):
        killed.fit()
    resumed = _trainer(synth, tmp_path / "killed", steps, checkpoint_every=1)
    resumed.fit(resume=True)
    assert resumed.state.step == steps
    a, b = full.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])][:5]
    ta, tb = full.task.state_dict(), resumed.task.state_dict()  # the three RealNVP flows too
    assert ta and all(torch.equal(ta[k], tb[k]) for k in ta)


def test_inference_stages_are_unchanged_by_the_training_outputs():
    torch.manual_seed(0)
    model = create_model(NAME).eval()
    x = torch.randn(1, 3, 3, *model.input_size)
    with torch.no_grad():
        out = model(x)
    assert set(out) == {"poses", "scores"}
    spec = get_spec(NAME)
    task = build_task(spec, model)
    model.train()
    batch = {"frames": x, "people": torch.zeros(1, 20, model.num_joints, 3), "num_people": torch.tensor([0])}
    outs = task.forward(model, batch)
    assert outs["pick"].shape == (1, model.max_persons) and outs["dec_logits"].shape[0] == 2
    loss, parts = task.loss(outs, batch)  # nobody in the frame: classification only, finite
    assert torch.isfinite(loss)


def test_joint_decoder_refines_the_matched_queries_first():
    torch.manual_seed(0)
    spec = get_spec(NAME)
    model = create_model(NAME).train()
    task = build_task(spec, model)
    people = torch.zeros(2, 20, model.num_joints, 3)
    people[0, :2, :, :2] = torch.rand(2, model.num_joints, 2) * 0.5 + 0.25
    people[0, :2, :, 2] = 1
    people[1, :1, :, :2] = torch.rand(1, model.num_joints, 2) * 0.5 + 0.25
    people[1, :1, :, 2] = 1
    batch = {
        "frames": torch.randn(2, 3, 3, *model.input_size),
        "people": people,
        "num_people": torch.tensor([2, 1]),
    }
    out = task.forward(model, batch)
    last = {"logits": out["dec_logits"][-1], "poses": out["dec_kpts"][-1]}
    matches = task.dec_criterion.match_level(last, targets_of(batch))
    for b, (q, g) in enumerate(matches):
        assert out["pick"][b, : len(q)].tolist() == list(q)
        assert len(set(out["pick"][b].tolist())) == model.max_persons  # no query twice
        assert out["joint_matches"][b][1].tolist() == list(g)


def test_cli_trains_and_evaluates_with_predicted_people(synth, tmp_path):
    from typer.testing import CliRunner

    from edgepose.cli import app

    out = tmp_path / "run"
    res = CliRunner().invoke(
        app,
        [
            "train",
            NAME,
            "--data",
            str(synth),
            "--out",
            str(out),
            "--epochs",
            "1",
            "--batch-size",
            "2",
            "--no-progress",
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output[res.output.index("{") :])
    assert summary["steps"] >= 1 and summary["val_metric"] == "mAP"
    rec = summary["history"][-1]
    assert {"train_cls", "train_rle_joint", "val_mAP", "val_AP"} <= set(rec)
    run = json.loads((out / "run.json").read_text())
    assert run["recipe"]["name"] == "pave"  # a dataset directory: the paper recipe
    res = CliRunner().invoke(
        app, ["eval", NAME, "--weights", str(out / "last.pt"), "--data", str(synth), "--json"]
    )
    assert res.exit_code == 0, res.output
    got = json.loads(res.output[res.output.index("{") :])
    assert got["people"] == "predicted" and "mAP" in got["metrics"] and "AP" in got["metrics"]


def test_mean_pose_at_true_boxes_scores_and_perfect_predictions_score_100(synth):
    from edgepose.eval.predictions import Prediction
    from edgepose.training.validate_whole_frame import mean_pose, mean_pose_predictions, metrics

    spec = get_spec(NAME)
    train, val = D.load_split(synth, "train", spec), D.load_split(synth, "val", spec)
    mean = mean_pose(train.records, spec.layout)
    assert mean.shape == (15, 2) and ((mean >= 0) & (mean <= 1)).all()
    floor = metrics(mean_pose_predictions(val.records, mean), val.records, spec.layout, val.format)
    perfect = [
        Prediction(
            int(f.image_id), np.where(p.labelled[:, None], p.keypoints[:, :2], np.nan), np.ones(15), 1.0
        )
        for v in val.records
        for f in v.frames
        if f.is_labeled
        for p in f.persons
    ]  # unlabelled: not predicted
    top = metrics(perfect, val.records, spec.layout, val.format)
    assert top["mAP"] == pytest.approx(100.0) and top["AP"] == pytest.approx(100.0)
    assert 0 <= floor["mAP"] < 100 and 0 <= floor["AP"] < 100


def test_coco_stills_train_as_repeated_windows(synth):
    from edgepose.training.validate import evaluate as topdown_evaluate
    from edgepose.training.validate_whole_frame import adapt_for_spec

    spec = get_spec(NAME)
    data, _ = adapt_for_spec(spec, D, topdown_evaluate)
    part = data.load_split(synth, "train", spec, "coco")
    assert part.format == "coco"
    ds = data.topdown_dataset(spec, part, train=True, seed=0)
    item = ds[0]
    assert torch.equal(item["frames"][0], item["frames"][1]) and torch.equal(
        item["frames"][1], item["frames"][2]
    )
    assert int(item["num_people"]) >= 1
    assert adapt_for_spec(get_spec("dsta_mnv2_tiny"), D, topdown_evaluate) == (D, topdown_evaluate)

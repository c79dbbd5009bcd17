"""Training through the tasks: each tiny model learns a fixed batch, training-only parameters are
optimised and checkpointed, ``edgepose train``/``eval`` run end to end on synthetic data, and a
training process killed with SIGKILL resumes to the same weights as an uninterrupted run."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from torch.utils.data import default_collate
from typer.testing import CliRunner

from edgepose.cli import app
from edgepose.data.synth_dataset import write_dataset
from edgepose.data.synthetic import SynthConfig
from edgepose.training import datasets as D
from edgepose.training.tasks import DistilPoseTask, RLERegressionTask, SHaRPoseTask, build_task
from edgepose.training.teacher import build_teacher
from edgepose.training.trainer import TrainConfig, Trainer
from edgepose.zoo import create_model, get_spec
from edgepose.zoo.checkpoints import read_checkpoint

TINY = ("dsta_mnv2_tiny", "tar_vitpose_s_tiny", "sharpose_s_tiny", "distilpose_s_tiny")


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    """Two short synthetic videos (one train, one val) in PoseTrack and COCO form."""
    out = tmp_path_factory.mktemp("synth") / "data"
    write_dataset(
        out, SynthConfig.preset("easy", width=256, height=192, frames=6), videos=2, seed=3, split_val=0.5
    )
    return out


def _batch(spec, task, data_dir, n=4):
    split = D.load_split(data_dir, "train", spec)
    ds = D.topdown_dataset(spec, split, train=False, heatmap_size=task.heatmap_size())
    return default_collate([ds[i] for i in range(n)])


@pytest.mark.parametrize("name", TINY)
def test_each_family_learns_a_fixed_batch(name, synth):
    torch.manual_seed(0)
    spec, model = get_spec(name), create_model(name)
    options = {"teacher": build_teacher("sharpose_s_tiny", spec)[0]} if spec.family == "distilpose" else {}
    task = build_task(spec, model, **options)
    assert type(task) is {
        "dsta": RLERegressionTask,
        "sharpose": SHaRPoseTask,
        "distilpose": DistilPoseTask,
    }.get(spec.family, type(task))
    batch = _batch(spec, task, synth)
    before = {k: v.clone() for k, v in task.state_dict().items()}
    opt = torch.optim.Adam(list(model.parameters()) + list(task.parameters()), lr=1e-3)
    model.train()
    losses = []
    for _ in range(6):
        loss, parts = task.loss(task.forward(model, batch), batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        assert all(torch.isfinite(torch.as_tensor(v)) for v in parts.values())
    assert losses[-1] < losses[0], losses
    trained = [
        k for k, v in task.state_dict().items() if v.dtype.is_floating_point and not torch.equal(v, before[k])
    ]
    if spec.family == "dsta":
        assert any(k.startswith("flow.") for k in trained)  # the RealNVP flow trains with the model
    if spec.family == "distilpose":
        assert set(parts) == {"reg", "sim_heatmap", "confidence", "kpt_token", "vis_token"}


def test_distilpose_without_teacher_uses_ground_truth_heatmaps(synth):
    spec, model = get_spec("distilpose_s_tiny"), create_model("distilpose_s_tiny")
    task = build_task(spec, model)
    assert task.heatmap_size() == (16, 12) and "ground-truth heatmaps" in task.notes[0]
    batch = _batch(spec, task, synth, n=2)
    _, parts = task.loss(task.forward(model, batch), batch)
    assert set(parts) == {"reg", "sim_heatmap", "confidence"}


def test_heatmap_targets_follow_the_models_grid(synth):
    """TAR-ViTPose with patch 8 at 64x48 has an 8x6 token map and 32x24 heatmaps: the targets follow."""
    spec = get_spec("tar_vitpose_s_tiny")
    model = create_model("tar_vitpose_s_tiny", patch_size=8)
    task = build_task(spec, model)
    assert model.grid == (8, 6) and task.heatmap_size() == model.heatmap_size == (32, 24)
    batch = _batch(spec, task, synth, n=2)
    loss, _ = task.loss(task.forward(model, batch), batch)
    assert batch["heatmaps"].shape[-2:] == (32, 24) and torch.isfinite(loss)


def test_sharpose_quality_weight_switches_on_late(synth):
    spec, model = get_spec("sharpose_s_tiny"), create_model("sharpose_s_tiny")
    task = build_task(spec, model, quality_from=0.5)
    batch = _batch(spec, task, synth, n=2)
    task.set_epoch(1, 4)
    assert task.loss(task.forward(model, batch), batch)[1]["quality_w"] == 0.0
    task.set_epoch(2, 4)
    assert task.loss(task.forward(model, batch), batch)[1]["quality_w"] == pytest.approx(0.03)


def test_trainer_optimises_and_checkpoints_the_flow(synth, tmp_path):
    torch.manual_seed(0)
    spec, model = get_spec("dsta_mnv2_tiny"), create_model("dsta_mnv2_tiny")
    task = build_task(spec, model)
    init = {k: v.clone() for k, v in task.flow.state_dict().items()}
    data = D.topdown_dataset(spec, D.load_split(synth, "train", spec), train=True)
    cfg = TrainConfig(epochs=1, batch_size=4, lr=1e-3, device="cpu")
    Trainer(model, task, data, cfg, tmp_path, progress=False).fit()
    saved = read_checkpoint(tmp_path / "last.pt")["train"]["task"]
    assert any(not torch.equal(saved[f"flow.{k}"], v) for k, v in init.items() if v.dtype.is_floating_point)
    # a new run in the same directory restores the flow with the rest of the training state
    task2 = build_task(spec, create_model("dsta_mnv2_tiny"))
    Trainer(create_model("dsta_mnv2_tiny"), task2, data, cfg, tmp_path, progress=False).fit()
    for k, v in task2.state_dict().items():
        assert torch.equal(v, saved[k])
    # --weights CHECKPOINT (a continuation in a new directory) starts from that run's flow too, and a
    # task whose state does not fit (another model's flow) starts fresh, saying so
    from edgepose.cli.train import _init_task

    task3 = build_task(spec, create_model("dsta_mnv2_tiny"))
    note, fit = _init_task(task3, str(tmp_path / "last.pt"))
    assert "from" in note and not fit
    final = read_checkpoint(tmp_path / "last.pt")["train"]["task"]
    assert all(torch.equal(v, final[k]) for k, v in task3.state_dict().items())
    from edgepose.zoo.checkpoints import save_checkpoint

    save_checkpoint(create_model("dsta_mnv2_tiny"), tmp_path / "weights-only.pt")
    task4 = build_task(spec, create_model("dsta_mnv2_tiny"))
    fresh = {k: v.clone() for k, v in task4.state_dict().items()}
    note, fit = _init_task(task4, str(tmp_path / "weights-only.pt"))
    assert "starts fresh" in note and fit  # ... and is to be fitted to the weights first
    assert all(torch.equal(v, fresh[k]) for k, v in task4.state_dict().items())


def test_a_fresh_flow_is_fitted_to_the_weights_without_touching_them(synth):
    from edgepose.training.task_state import fit_task_state

    torch.manual_seed(0)
    spec, model = get_spec("dsta_mnv2_tiny"), create_model("dsta_mnv2_tiny")
    model.train()
    task = build_task(spec, model)
    data = D.topdown_dataset(spec, D.load_split(synth, "train", spec), train=True)
    weights = {k: v.clone() for k, v in model.state_dict().items()}  # BN running statistics included
    flow = {k: v.clone() for k, v in task.flow.state_dict().items()}
    note = fit_task_state(model, task, data, batches=2, steps=60, batch_size=4)
    before, after = (float(x) for x in note.rsplit("loss ", 1)[1].split(" -> "))
    assert after < before  # the flow learnt the density of this model's residuals
    assert any(not torch.equal(v, flow[k]) for k, v in task.flow.state_dict().items())
    assert all(torch.equal(v, weights[k]) for k, v in model.state_dict().items())  # the model untouched
    assert model.training and all(p.grad is None for p in model.parameters())


class _BrightestPixel(torch.nn.Module):
    """A regression 'model' that puts every joint on the brightest pixel of channel 0."""

    def __init__(self):
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x):
        b, _, h, w = x.shape
        idx = x[:, 0].reshape(b, -1).argmax(-1)
        xy = torch.stack([(idx % w).float() / w, (idx // w).float() / h], -1)
        return {
            "coords": xy[:, None].expand(b, 17, 2),
            "scores": torch.ones(b, 17),
            "sigma": torch.ones(b, 17, 2),
        }


def test_flip_test_mirrors_back_exactly():
    from edgepose.training.validate import predict

    spec = get_spec("distilpose_s_tiny")  # regression, 64x48, COCO-17
    image = torch.zeros(3, 64, 48)
    image[0, 20, 7] = 1.0
    inverse = torch.tensor([[1.0, 0.0, 100.0], [0.0, 1.0, 50.0]], dtype=torch.float64)  # crop -> frame: shift
    items = [{"image": image, "inverse": inverse, "image_id": 9}]
    plain = predict(_BrightestPixel(), spec, items)[0]
    flipped = predict(_BrightestPixel(), spec, items, flip=True)[0]
    assert plain.image_id == 9
    assert plain.keypoints[0].tolist() == [107.0, 70.0]
    assert flipped.keypoints.tolist() == plain.keypoints.tolist()


def test_cli_train_and_eval_on_synthetic_posetrack(tmp_path):
    runner = CliRunner()
    out = tmp_path / "run"
    args = [
        "train",
        "dsta_mnv2_tiny",
        "--data",
        "synthetic",
        "--epochs",
        "1",
        "--out",
        str(out),
        "--synthetic-videos",
        "2",
        "--synthetic-frames",
        "5",
        "--batch-size",
        "4",
        "--no-progress",
        "--json",
    ]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout[res.stdout.index("{") :])
    assert summary["epochs"] == 1 and summary["val_metric"] == "mAP"
    history = json.loads((out / "history.json").read_text())
    assert len(history) == 1 and "val_mAP" in history[0] and "train_rle_flow" in history[0]
    assert (out / "last.pt").is_file() and (out / "best.pt").is_file()
    assert json.loads((out / "run.json").read_text())["recipe"]["name"] == "dsta_synthetic"
    res = runner.invoke(
        app,
        ["eval", "dsta_mnv2_tiny", "--weights", str(out / "best.pt"), "--data", str(out / "synthetic-data")],
    )
    assert res.exit_code == 0, res.output
    for col in ("Head", "Sho", "Elb", "Wri", "Hip", "Knee", "Ank", "Mean"):
        assert col in res.stdout


def test_cli_stop_after_epoch_validates_at_the_stop_and_resumes_on(tmp_path):
    """--epochs 3 --stop-after-epoch 1: one epoch, validated (it is the run's last), resumable to 3."""
    out = tmp_path / "run"
    base = ["train", "dsta_mnv2_tiny", "--data", "synthetic", "--out", str(out), "--epochs", "3"]
    small = ["--synthetic-videos", "2", "--synthetic-frames", "5", "--batch-size", "4", "--no-progress"]
    res = CliRunner().invoke(app, [*base, *small, "--val-every", "5", "--stop-after-epoch", "1"])
    assert res.exit_code == 0, res.output
    history = json.loads((out / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1] and "val_mAP" in history[0]
    res = CliRunner().invoke(app, [*base, *small, "--val-every", "5"])
    assert res.exit_code == 0, res.output
    assert [h["epoch"] for h in json.loads((out / "history.json").read_text())] == [1, 2, 3]


def test_cli_collapse_window_trains_the_twin_and_keeps_to_it(tmp_path, monkeypatch):
    """--collapse-window: recorded in the checkpoint, resumed only as such, scored by eval --collapse-window;
    refused with one line for a model that sees one frame."""
    out = tmp_path / "twin"
    base = ["train", "dsta_mnv2_tiny", "--data", "synthetic", "--out", str(out), "--epochs", "2"]
    small = ["--synthetic-videos", "2", "--synthetic-frames", "5", "--batch-size", "4", "--no-progress"]
    res = CliRunner().invoke(
        app, [*base, *small, "--val-every", "0", "--stop-after-epoch", "1", "--collapse-window"]
    )
    assert res.exit_code == 0, res.output
    assert read_checkpoint(out / "last.pt")["meta"]["collapse_window"] is True
    assert json.loads((out / "run.json").read_text())["meta"]["collapse_window"] is True
    res = CliRunner().invoke(app, [*base, *small, "--val-every", "0"])  # resumed without the flag
    assert res.exit_code != 0
    assert "--collapse-window" in res.output and "Traceback" not in res.output
    data = str(out / "synthetic-data")
    built, make = [], D.topdown_dataset
    monkeypatch.setattr(D, "topdown_dataset", lambda *a, **k: built.append(make(*a, **k)) or built[-1])
    for flag in ("--collapse-window", "--no-collapse-window"):
        res = CliRunner().invoke(
            app, ["eval", "dsta_mnv2_tiny", "--weights", str(out / "last.pt"), "--data", data, flag, "--json"]
        )
        assert res.exit_code == 0, res.output
        result = json.loads(res.stdout[res.stdout.index("{") :])
        assert result["collapse_window"] is built[-1].collapse_window is (flag == "--collapse-window")
    res = CliRunner().invoke(
        app,
        [
            "train",
            "distilpose_s_tiny",
            "--data",
            "synthetic",
            "--out",
            str(tmp_path / "d"),
            *small,
            "--collapse-window",
        ],
    )
    assert res.exit_code != 0 and "temporal models" in res.output and "Traceback" not in res.output


def test_cli_mix_synthetic_adds_synthetic_crops_to_real_data(tmp_path):
    """--mix-synthetic N: N synthetic videos' training crops join --data's (one batch collates across both,
    the synthetic-only occlusion flags dropped), validation stays on --data, and the run keeps to N."""
    real = D.synthetic_dataset(tmp_path / "real", seed=3, videos=2, frames=5, preset="clean")
    out = tmp_path / "run"
    base = [
        "train",
        "dsta_mnv2_tiny",
        "--data",
        str(real),
        "--out",
        str(out),
        "--epochs",
        "2",
        "--no-progress",
    ]
    small = ["--synthetic-frames", "5", "--batch-size", "4", "--val-every", "0"]
    res = CliRunner().invoke(app, [*base, *small, "--mix-synthetic", "2", "--stop-after-epoch", "1"])
    assert res.exit_code == 0, res.output
    run = json.loads((out / "run.json").read_text())
    assert run["meta"]["mix_synthetic"] == 2 and any("mixed in" in n for n in run["notes"])
    assert (out / "mix-synthetic" / "meta.json").is_file()
    res = CliRunner().invoke(app, [*base, *small])  # resumed without the mix
    assert res.exit_code != 0 and "--mix-synthetic 2" in res.output and "Traceback" not in res.output
    synthetic = [
        "train",
        "dsta_mnv2_tiny",
        "--data",
        "synthetic",
        "--out",
        str(tmp_path / "s"),
        "--no-progress",
    ]
    res = CliRunner().invoke(app, [*synthetic, *small, "--mix-synthetic", "2"])
    assert res.exit_code != 0 and "--mix-synthetic" in res.output and "Traceback" not in res.output


def test_mixed_dataset_indexes_parts_end_to_end_with_their_shared_keys():
    a = [{"x": i, "flag": 1} for i in range(3)]
    b = [{"x": 10 + i} for i in range(2)]
    mixed = D.MixedDataset([a, [], b])
    assert len(mixed) == 5 and [mixed[i]["x"] for i in range(5)] == [0, 1, 2, 10, 11]
    assert all(set(mixed[i]) == {"x"} for i in range(5))


def test_cli_distilpose_with_teacher_on_coco_form(synth, tmp_path):
    runner = CliRunner()
    out = tmp_path / "run"
    res = runner.invoke(
        app,
        [
            "train",
            "distilpose_s_tiny",
            "--data",
            str(synth),
            "--epochs",
            "1",
            "--out",
            str(out),
            "--batch-size",
            "4",
            "--teacher",
            "sharpose_s_tiny",
            "--no-progress",
        ],
    )
    assert res.exit_code == 0, res.output
    history = json.loads((out / "history.json").read_text())
    assert "val_AP" in history[0] and "train_vis_token" in history[0]
    assert "projected" in res.output  # the training-only token projection is announced
    res = runner.invoke(
        app,
        [
            "eval",
            "distilpose_s_tiny",
            "--weights",
            str(out / "last.pt"),
            "--data",
            str(synth),
            "--json",
            "--flip-test",
        ],
    )
    assert res.exit_code == 0, res.output
    metrics = json.loads(res.stdout)["metrics"]
    assert set(metrics) == {"AP", "AP50", "AP75", "APm", "APl", "AR"}


def test_cli_train_sharpose_from_an_mae_style_vit(synth, tmp_path):
    """``--weights`` with a plain ViT (as the paper's MAE start) fills SHaRPose's shared encoder only."""
    torch.manual_seed(3)
    src = create_model("sharpose_s_tiny").state_dict()
    vit = {k: v for k, v in src.items() if k.startswith(("blocks.", "norm."))}
    vit["patch_embed.proj.weight"], vit["patch_embed.proj.bias"] = (
        src["patch_embed.weight"],
        src["patch_embed.bias"],
    )
    vit["pos_embed"] = torch.cat((torch.zeros(1, 1, 32), src["pos_embed_fine"]), 1)  # class token first
    vit["cls_token"] = torch.zeros(1, 1, 32)
    path = tmp_path / "mae_vit.pth"
    torch.save({"model": vit}, path)
    res = CliRunner().invoke(
        app,
        [
            "train",
            "sharpose_s_tiny",
            "--data",
            str(synth),
            "--epochs",
            "1",
            "--out",
            str(tmp_path / "run"),
            "--batch-size",
            "4",
            "--no-progress",
            "--weights",
            str(path),
        ],
    )
    assert res.exit_code == 0, res.output
    out = " ".join(res.output.split())
    assert (
        f"initialised from {path}: 54 tensors (official)" in out
    )  # patch 2, 4 blocks x 12, norm 2, positions 2
    assert (
        "model tensors not in it keep their random init" in out and "1 of its keys unused (cls_token)" in out
    )


def test_cli_tar_vitpose_in_the_papers_two_stages(synth, tmp_path):
    """ViTPose on COCO-form stills (--recipe vitpose_s_synthetic), scored by eval, then TAR-ViTPose from it
    on the videos: the paper's COCO stage and video stage."""
    runner = CliRunner()
    stage = tmp_path / "vitpose"
    res = runner.invoke(
        app,
        [
            "train",
            "tar_vitpose_s_tiny",
            "--recipe",
            "vitpose_s_synthetic",
            "--data",
            str(synth),
            "--format",
            "coco",
            "--epochs",
            "1",
            "--out",
            str(stage),
            "--batch-size",
            "4",
            "--no-progress",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "single-frame part on still crops" in " ".join(res.output.split())
    ck = read_checkpoint(stage / "last.pt")
    assert ck["meta"]["single_frame"] and ck["model"] == "tar_vitpose_s_tiny"
    assert {k.split(".")[0] for k in ck["state_dict"]} == {"backbone", "heatmap_head"}
    assert "val_AP" in json.loads((stage / "history.json").read_text())[0]
    res = runner.invoke(
        app,
        ["eval", "tar_vitpose_s_tiny", "--weights", str(stage / "last.pt"), "--data", str(synth), "--json"],
    )
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["metrics"]["mAP"] >= 0  # the single-frame part on the videos' frames
    res = runner.invoke(
        app,
        [
            "train",
            "tar_vitpose_s_tiny",
            "--recipe",
            "tar_vitpose_finetune_synthetic",
            "--weights",
            str(stage / "last.pt"),
            "--data",
            str(synth),
            "--epochs",
            "1",
            "--out",
            str(tmp_path / "tar"),
            "--batch-size",
            "4",
            "--no-progress",
        ],
    )
    assert res.exit_code == 0, res.output
    out = " ".join(res.output.split())
    n = len(ck["state_dict"])
    assert f"initialised from {stage / 'last.pt'}: {n} tensors" in out and "keep their random init" in out
    assert set(read_checkpoint(tmp_path / "tar" / "last.pt")["state_dict"]) == set(
        create_model("tar_vitpose_s_tiny").state_dict()
    )


def test_cli_errors_are_clear(synth, tmp_path):
    runner = CliRunner()
    res = runner.invoke(
        app,
        [
            "train",
            "dsta_mnv2_tiny",
            "--data",
            str(synth),
            "--out",
            str(tmp_path / "r"),
            "--teacher",
            "sharpose_s_tiny",
        ],
    )
    assert res.exit_code == 2 and "DistilPose" in res.output
    res = runner.invoke(
        app,
        ["train", "dsta_mnv2_tiny", "--data", str(synth), "--out", str(tmp_path / "r"), "--format", "coco"],
    )
    assert res.exit_code == 2 and "temporal" in res.output


def _train_cmd(data, out, epochs=3):
    return [
        sys.executable,
        "-m",
        "edgepose.cli",
        "train",
        "dsta_mnv2_tiny",
        "--data",
        str(data),
        "--out",
        str(out),
        "--epochs",
        str(epochs),
        "--batch-size",
        "4",
        "--checkpoint-every",
        "1",
        "--val-every",
        "0",
        "--no-progress",
        "--seed",
        "5",
    ]


def test_sigkilled_training_resumes_to_the_uninterrupted_weights(synth, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        _train_cmd(synth, killed), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.time() + 120
    while not (killed / "last.pt").exists():
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.time() < deadline, "no checkpoint appeared within 120 s"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    partial = read_checkpoint(killed / "last.pt")
    assert partial["meta"]["epoch"] < 3  # killed mid-run

    done = subprocess.run(_train_cmd(synth, killed), env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr  # resumed
    res = CliRunner().invoke(app, _train_cmd(synth, tmp_path / "straight")[3:])  # uninterrupted, in-process
    assert res.exit_code == 0, res.output
    history = json.loads((killed / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2, 3]
    resumed = read_checkpoint(killed / "last.pt")
    straight = read_checkpoint(tmp_path / "straight" / "last.pt")
    assert resumed["meta"]["epoch"] == 3 and resumed["meta"]["step"] == straight["meta"]["step"]
    for k, v in straight["state_dict"].items():
        assert torch.equal(v, resumed["state_dict"][k]), k
    for k, v in straight["train"]["task"].items():  # the flow resumed too
        assert torch.equal(v, resumed["train"]["task"][k]), k


@pytest.mark.slow
@pytest.mark.parametrize("name", ("dsta_mnv2", "tar_vitpose_s", "sharpose_s", "distilpose_s"))
def test_full_size_models_take_a_training_step(name):
    """The paper-size configs through their tasks (DistilPose-S distilled from SHaRPose-S: 192-d tokens
    on a 16x16 grid projected onto 384-d tokens on SHaRPose's 8x6 coarse grid)."""
    torch.manual_seed(0)
    spec, model = get_spec(name), create_model(name)
    options = {"teacher": build_teacher("sharpose_s", spec)[0]} if spec.family == "distilpose" else {}
    task = build_task(spec, model, **options)
    b, (h, w), j = 2, spec.input_size, model.num_joints
    g = torch.Generator().manual_seed(1)
    batch = {"target_weight": torch.ones(b, j), "coords": torch.rand(b, j, 2, generator=g) * 0.8 + 0.1}
    batch["keypoints"] = batch["coords"] * torch.tensor([w, h])
    batch["frames" if spec.is_temporal else "image"] = torch.randn(
        b, *((len(spec.frame_offsets),) if spec.is_temporal else ()), 3, h, w, generator=g
    )
    if task.heatmap_size():
        batch["heatmaps"] = torch.rand(b, j, *task.heatmap_size(), generator=g)
        batch["heatmap_weight"] = torch.ones(b, j)
    loss, parts = task.loss(task.forward(model, batch), batch)
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None for p in task.parameters())
    if spec.family == "distilpose":
        assert {"kpt_token", "vis_token"} <= set(parts) and task.projection.teacher_grid == (8, 6)

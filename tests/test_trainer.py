"""The training loop's mechanics on a small least-squares problem: it learns, it is
deterministic, and an interrupted run resumed from its checkpoint ends where an
uninterrupted one does."""

import json
import math

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from edgepose.training.trainer import TrainConfig, Trainer


class Pairs(Dataset):
    def __init__(self, n=96):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 8, generator=g)
        self.w = torch.randn(8, 3, generator=g)
        self.y = self.x @ self.w
        self.epochs_seen = []

    def set_epoch(self, epoch, seed=None):
        self.epochs_seen.append(epoch)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {"x": self.x[i], "y": self.y[i]}


class LeastSquares:
    def forward(self, model, batch):
        return {"y": model(batch["x"])}

    def loss(self, outputs, batch):
        mse = (outputs["y"] - batch["y"]).square().mean()
        return mse, {"mse": mse.detach()}


def _run(tmp, interrupt=None, epochs=4, opt="adam", **cfg):
    torch.manual_seed(123)
    model = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 3))
    config = TrainConfig(
        epochs=epochs, batch_size=16, lr=0.02, optimizer=opt, checkpoint_every=2, val_metric="neg_mse", **cfg
    )
    data = Pairs()

    def evaluate(m):
        return {"neg_mse": -float((m(data.x) - data.y).square().mean())}

    tr = Trainer(model, LeastSquares(), data, config, tmp, evaluate=evaluate, progress=False)
    tr.interrupt_after_steps = interrupt
    return tr, model, data


def test_trainer_learns_and_writes_checkpoints(tmp_path):
    tr, model, data = _run(tmp_path)
    state = tr.fit()
    hist = json.loads((tmp_path / "history.json").read_text())
    assert [h["epoch"] for h in hist] == [1, 2, 3, 4]
    assert hist[-1]["train_loss"] < 0.5 * hist[0]["train_loss"]
    assert state.step == 4 * 6 and data.epochs_seen == [0, 1, 2, 3]
    assert (tmp_path / "last.pt").exists() and (tmp_path / "best.pt").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_same_seed_same_weights(tmp_path):
    a, ma, _ = _run(tmp_path / "a")
    b, mb, _ = _run(tmp_path / "b")
    a.fit(), b.fit()
    for pa, pb in zip(ma.parameters(), mb.parameters()):
        assert torch.equal(pa, pb)


@pytest.mark.parametrize("kill_at", [3, 6, 13])  # mid-epoch after a checkpoint, epoch end, mid-epoch
def test_interrupted_run_resumes_to_the_same_weights(tmp_path, kill_at):
    ref, m_ref, _ = _run(tmp_path / "ref")
    ref.fit()
    first, _, _ = _run(tmp_path / "run", interrupt=kill_at)
    with pytest.raises(KeyboardInterrupt):
        first.fit()
    second, m_res, _ = _run(tmp_path / "run")  # a fresh process would build everything anew
    state = second.fit()
    assert state.step == ref.state.step
    for pa, pb in zip(m_ref.parameters(), m_res.parameters()):
        torch.testing.assert_close(pa, pb)
    assert [h["epoch"] for h in state.history] == [1, 2, 3, 4]
    # the interrupted epoch's mean covers all its steps, not only those after the resume
    for got, want in zip(state.history, ref.state.history):
        assert got["train_loss"] == pytest.approx(want["train_loss"], rel=1e-5)
        assert got["train_mse"] == pytest.approx(want["train_mse"], rel=1e-5)


def test_bad_settings_are_named(tmp_path):
    tr, _, _ = _run(tmp_path, opt="lion")
    with pytest.raises(ValueError, match="unknown optimizer 'lion'"):
        tr.fit()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_asking_for_cuda_without_a_gpu_is_a_clear_error(tmp_path):
    with pytest.raises(RuntimeError, match="torch sees no CUDA GPU"):
        _run(tmp_path, device="cuda")


def test_frozen_prefixes_keep_their_weights_and_batchnorm_statistics(tmp_path):
    """--freeze: the named parameters end as loaded and their BatchNorm stays in eval mode (its running
    statistics untouched); the rest trains."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.Tanh(), nn.Linear(16, 3))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    config = TrainConfig(epochs=2, batch_size=16, lr=0.02, freeze=("0.", "1."))
    Trainer(model, LeastSquares(), Pairs(), config, tmp_path, progress=False).fit()
    after = model.state_dict()
    for k in ("0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var"):
        assert torch.equal(before[k], after[k]), k
    assert not torch.equal(before["3.weight"], after["3.weight"])
    with pytest.raises(ValueError, match="--freeze trunk. matches no parameter"):
        Trainer(
            model, LeastSquares(), Pairs(), TrainConfig(freeze=("trunk.",)), tmp_path / "b", progress=False
        ).fit()


# -- the CUDA path's options, as far as a CPU runs them (issue #14) ---------------------------------
class _ConvData(Dataset):
    def __init__(self, n=32):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 3, 8, 8, generator=g)
        self.y = self.x.mean((1, 2, 3))[:, None].repeat(1, 3)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {"image": self.x[i], "y": self.y[i]}


class _ConvTask:
    def forward(self, model, batch):
        return {"y": model(batch["image"])}

    def loss(self, outputs, batch):
        mse = (outputs["y"].float() - batch["y"]).square().mean()
        return mse, {"mse": mse.detach()}


def _convnet():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 3),
    )


def test_amp_on_cpu_is_bf16_autocast_and_trains(tmp_path):
    model = _convnet()
    config = TrainConfig(epochs=2, batch_size=8, lr=0.01, device="cpu", amp=True)
    tr = Trainer(model, _ConvTask(), _ConvData(), config, tmp_path, progress=False)
    assert tr.amp_dtype == torch.bfloat16
    state = tr.fit()
    assert tr.scaler is None  # bf16 needs no loss scaling
    assert state.step == 8 and all(math.isfinite(h["train_loss"]) for h in state.history)
    assert all(p.dtype == torch.float32 for p in model.parameters())  # autocast: fp32 master weights


def test_channels_last_and_compile_keep_the_checkpoint_plain(tmp_path):
    """Forced on CPU (their defaults are CUDA-only): same state-dict keys, weights that load back."""
    from edgepose.training.trainer import is_convnet
    from edgepose.zoo.checkpoints import read_checkpoint

    model = _convnet()
    keys = set(model.state_dict())
    assert is_convnet(model) and not is_convnet(nn.Linear(4, 4))
    config = TrainConfig(
        epochs=1,
        batch_size=8,
        lr=0.01,
        device="cpu",
        channels_last=True,
        compile=True,
        compile_backend="eager",
    )
    Trainer(model, _ConvTask(), _ConvData(), config, tmp_path, progress=False).fit()
    assert model[0].weight.is_contiguous(memory_format=torch.channels_last)
    saved = read_checkpoint(tmp_path / "last.pt")["state_dict"]
    assert set(saved) == keys  # no "_orig_mod." or "module." prefixes
    _convnet().load_state_dict(saved)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cli_train_on_cuda_without_a_gpu_refuses_in_one_line(tmp_path):
    from typer.testing import CliRunner

    from edgepose.cli import app

    res = CliRunner().invoke(
        app,
        [
            "train",
            "dsta_mnv2_tiny",
            "--data",
            "synthetic",
            "--out",
            str(tmp_path),
            "--device",
            "cuda",
            "--no-progress",
        ],
    )
    assert res.exit_code == 2
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "torch sees no CUDA GPU" in lines[0], res.output
    assert not (tmp_path / "synthetic-data").exists()  # refused before any data was made


def test_stop_after_epoch_keeps_the_long_schedule_and_resumes_to_the_full_run(tmp_path):
    """A 4-epoch step schedule stopped after epoch 2 has trained the first two epochs of that schedule
    (not a 2-epoch schedule squeezed), and a resume without the stop ends where the uninterrupted
    run does."""
    sched = dict(schedule="step", milestones=(0.5, 0.75))
    full, m_full, _ = _run(tmp_path / "full", **sched)
    full.fit()
    part, m_part, _ = _run(tmp_path / "part", stop_after_epoch=2, **sched)
    state = part.fit()
    assert state.epoch == 2 and state.step == 2 * 6
    hist = json.loads((tmp_path / "part" / "history.json").read_text())
    assert [h["epoch"] for h in hist] == [1, 2]
    assert part.optimizer.param_groups[0]["lr"] == pytest.approx(0.02)  # before the first decay (epoch 2)
    short, m_short, _ = _run(tmp_path / "short", epochs=2, **sched)
    short.fit()  # a 2-epoch schedule decays at epoch 1: other weights
    assert not all(torch.equal(a, b) for a, b in zip(m_part.parameters(), m_short.parameters()))
    rest, m_rest, _ = _run(tmp_path / "part", **sched)  # same directory, no stop: resumes
    assert rest.fit().epoch == 4
    for a, b in zip(m_full.parameters(), m_rest.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)

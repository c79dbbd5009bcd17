"""The training loop's mechanics on a small least-squares problem: it learns, it is
deterministic, and an interrupted run resumed from its checkpoint ends where an
uninterrupted one does."""

import json

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
    config = TrainConfig(epochs=epochs, batch_size=16, lr=0.02, optimizer=opt, checkpoint_every=2,
                         val_metric="neg_mse", **cfg)
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
        Trainer(model, LeastSquares(), Pairs(), TrainConfig(freeze=("trunk.",)), tmp_path / "b", progress=False).fit()

"""Fit a task's training-only parameters (RLE's RealNVP flow) to weights that arrive without them.

RLE learns the density of the normalised residual ``(target - mu) / sigma`` together with the
model. A continuation from weights that carry no flow (shipped fp16 weights, another run's export)
would start with a random one: its first steps then pull ``sigma`` (the keypoint confidence) to
fit a density the model never had, and the confidences drift (a continuation whose flow restarted
at random kept background boxes on photos as people). Fitting the flow first, with the model
frozen, on the model's own residuals over some training crops starts the continuation where a run
that kept its flow would be.
"""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader

IMAGE_KEYS = ("frames", "image")  # the inputs: not needed once the outputs are cached


def _detached(x):
    if isinstance(x, torch.Tensor):
        return x.detach()
    if isinstance(x, dict):
        return {k: _detached(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(_detached(v) for v in x)
    return x


def fit_task_state(
    model: torch.nn.Module,
    task: torch.nn.Module,
    dataset,
    batches: int = 40,
    steps: int = 1500,
    batch_size: int = 16,
    lr: float = 1e-3,
    seed: int = 0,
) -> str:
    """Optimise ``task``'s own parameters on the frozen ``model``'s outputs for ``batches`` batches
    of ``dataset`` (run once, eval mode, then cached) over ``steps`` Adam steps; the model is not
    touched (no gradient, BN statistics unchanged). Returns a line for the run's notes."""
    params = [p for p in task.parameters() if p.requires_grad]
    if not params:
        return f"{type(task).__name__} has no training-only parameters to fit"
    was_training = model.training
    model.eval()
    loader = DataLoader(
        dataset,
        batch_size=min(batch_size, len(dataset)),
        shuffle=True,
        drop_last=True,
        generator=torch.Generator().manual_seed(seed),
    )
    cached = []
    with torch.no_grad():
        for batch in loader:
            outputs = _detached(task.forward(model, batch))
            cached.append((outputs, {k: v for k, v in batch.items() if k not in IMAGE_KEYS}))
            if len(cached) == batches:
                break
    model.train(was_training)
    if not cached:
        raise ValueError(f"{len(dataset)} training samples are fewer than one batch of {batch_size}")
    opt = torch.optim.Adam(params, lr=lr)
    task.train()

    def mean_loss() -> float:
        with torch.no_grad():
            return sum(float(task.loss(o, b)[0]) for o, b in cached) / len(cached)

    before = mean_loss()
    for step in range(steps):
        outputs, batch = cached[step % len(cached)]
        loss, _ = task.loss(outputs, batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    after = mean_loss()
    for p in model.parameters():  # the loss reached the model's outputs only, never its weights
        p.grad = None
    return (
        f"{type(task).__name__}'s training state fitted to these weights first (model frozen): "
        f"{steps} steps on {len(cached) * loader.batch_size} cached training crops, loss {before:.3f} -> {after:.3f}"
    )

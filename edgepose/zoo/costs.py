"""Measured costs of a model: parameters and FLOPs per stage.

FLOPs are counted by ``torch.utils.flop_counter`` on the real stage graphs at
batch 1 and reported as GFLOPs in the papers' convention, which is
multiply-accumulates (mmcv's counter, used by all four papers, counts one MAC
as one FLOP). Parameters are attributed to a stage when the stage's forward
touches them, found by watching torch function calls, so shared weights
(SHaRPose's one ViT for both passes) count in each stage that uses them and
once in the total.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils.flop_counter import FlopCounterMode


class _ParamWatcher(TorchFunctionMode):
    def __init__(self):
        super().__init__()
        self.seen: dict[int, int] = {}

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        for a in (*args, *kwargs.values()):
            for t in a if isinstance(a, (list, tuple)) else (a,):
                if isinstance(t, nn.Parameter):
                    self.seen[id(t)] = t.numel()
        return func(*args, **kwargs)


@dataclass
class StageCost:
    name: str
    params: int
    gflops: float  # MACs / 1e9, per call at batch 1


@dataclass
class ModelCost:
    model: str
    params: int
    stages: dict[str, StageCost] = field(default_factory=dict)
    steady_state_gflops: float = 0.0  # per frame per person with the ring buffer

    def to_dict(self) -> dict:
        d = asdict(self)
        d["stages"] = {k: asdict(v) for k, v in self.stages.items()}
        return d


@torch.no_grad()
def stage_cost(model, stage: str) -> StageCost:
    module = model.stage(stage).eval()
    inputs = tuple(model.example_inputs(stage, batch=1).values())
    watcher = _ParamWatcher()
    counter = FlopCounterMode(display=False)
    with watcher, counter:
        module(*inputs)
    return StageCost(stage, sum(watcher.seen.values()), counter.get_total_flops() / 2 / 1e9)


def measure(model, name: str | None = None) -> ModelCost:
    """Params (all, and per stage) and GFLOPs per stage and per steady-state frame."""
    was_training = model.training
    model.eval()
    try:
        stages = {s: stage_cost(model, s) for s in model.stage_names}
    finally:
        model.train(was_training)
    total_params = sum(p.numel() for p in model.parameters())
    steady = sum(c.gflops for c in stages.values())
    return ModelCost(name or getattr(model, "spec_name", type(model).__name__), total_params, stages, steady)

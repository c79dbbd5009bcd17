"""Measured costs of a model: parameters and FLOPs per stage.

Two counts per stage, both at batch 1 and both in the papers' unit (one
multiply-accumulate = one FLOP):

* ``gflops``: ``torch.utils.flop_counter`` on the real stage graph: every
  conv, linear and matmul, attention included. This is what the hardware does.
* ``gflops_mmcv``: the convention of mmcv's module counter, which all four
  papers used: forward hooks on Conv/Linear/deconv modules plus one FLOP per
  element of norms, ReLU-family activations, pooling and upsampling, and
  nothing for functional ops (so attention matmuls written as ``@``/einsum
  are not counted). Comparing the papers' figures with this count compares
  like with like; the difference between the two is itself informative.

Parameters are attributed to a stage when the stage's forward
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
    gflops_mmcv: float = 0.0  # the papers' counter convention (see module docstring)


@dataclass
class ModelCost:
    model: str
    params: int
    stages: dict[str, StageCost] = field(default_factory=dict)
    steady_state_gflops: float = 0.0  # per frame per person with the ring buffer
    steady_state_gflops_mmcv: float = 0.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["stages"] = {k: asdict(v) for k, v in self.stages.items()}
        return d


def _numel(t) -> int:
    return int(t.numel()) if isinstance(t, torch.Tensor) else 0


def _first(x):
    return x[0] if isinstance(x, (tuple, list)) else x


def _conv_macs(m, inp, out) -> int:
    out = _first(out)
    per_position = int(torch.tensor(m.kernel_size).prod()) * m.in_channels * m.out_channels // m.groups
    positions = out.numel() // out.shape[1]
    return per_position * positions + (m.out_channels * positions if m.bias is not None else 0)


def _deconv_macs(m, inp, out) -> int:
    x = _first(inp)
    per_position = int(torch.tensor(m.kernel_size).prod()) * m.in_channels * m.out_channels // m.groups
    positions = x.numel() // x.shape[1]
    bias = m.out_channels * (_first(out).numel() // m.out_channels) if m.bias is not None else 0
    return per_position * positions + bias


def _norm_macs(m, inp, out) -> int:
    affine = getattr(m, "affine", False) or getattr(m, "elementwise_affine", False)
    return _numel(_first(inp)) * (2 if affine else 1)


# Module type -> MACs, after mmcv's counter: what it hooks and how it counts.
_MMCV_HOOKS = (
    ((nn.Conv1d, nn.Conv2d, nn.Conv3d), _conv_macs),
    ((nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d), _deconv_macs),
    ((nn.Linear,), lambda m, i, o: _numel(_first(i)) * _first(o).shape[-1]),
    (
        (
            nn.BatchNorm1d,
            nn.BatchNorm2d,
            nn.BatchNorm3d,
            nn.GroupNorm,
            nn.InstanceNorm1d,
            nn.InstanceNorm2d,
            nn.LayerNorm,
        ),
        _norm_macs,
    ),
    ((nn.ReLU, nn.ReLU6, nn.PReLU, nn.ELU, nn.LeakyReLU), lambda m, i, o: _numel(_first(o))),
    (
        (
            nn.MaxPool1d,
            nn.MaxPool2d,
            nn.AvgPool1d,
            nn.AvgPool2d,
            nn.AdaptiveAvgPool1d,
            nn.AdaptiveAvgPool2d,
            nn.AdaptiveMaxPool2d,
        ),
        lambda m, i, o: _numel(_first(i)),
    ),
    ((nn.Upsample,), lambda m, i, o: _numel(_first(o))),
)


def _grid_sample_flops(input_shape, grid_shape, *args, out_shape=None, **kwargs) -> int:
    """Bilinear ``grid_sample`` (deformable attention): four taps, one multiply-accumulate each, per output
    element (2 FLOPs per MAC, as FlopCounterMode counts). torch's counter has no formula for it."""
    n = 1
    for d in out_shape:
        n *= int(d)
    return 2 * 4 * n


_EXTRA_FLOP_FORMULAS = {torch.ops.aten.grid_sampler_2d: _grid_sample_flops}


def _mmcv_style_macs(module: nn.Module, inputs: tuple) -> int:
    total = [0]
    handles = []
    for m in module.modules():
        for types, count in _MMCV_HOOKS:
            if isinstance(m, types):
                handles.append(
                    m.register_forward_hook(
                        lambda mod, i, o, c=count: total.__setitem__(0, total[0] + c(mod, i, o))
                    )
                )
                break
    try:
        module(*inputs)
    finally:
        for h in handles:
            h.remove()
    return total[0]


@torch.no_grad()
def stage_cost(model, stage: str) -> StageCost:
    module = model.stage(stage).eval()
    inputs = tuple(model.example_inputs(stage, batch=1).values())
    watcher = _ParamWatcher()
    counter = FlopCounterMode(display=False, custom_mapping=_EXTRA_FLOP_FORMULAS)
    with watcher, counter:
        module(*inputs)
    mmcv = _mmcv_style_macs(module, inputs)
    return StageCost(stage, sum(watcher.seen.values()), counter.get_total_flops() / 2 / 1e9, mmcv / 1e9)


def measure(model, name: str | None = None) -> ModelCost:
    """Params (all, and per stage) and GFLOPs per stage and per steady-state frame."""
    was_training = model.training
    model.eval()
    try:
        stages = {s: stage_cost(model, s) for s in model.stage_names}
    finally:
        model.train(was_training)
    total_params = sum(p.numel() for p in model.parameters())
    return ModelCost(
        name or getattr(model, "spec_name", type(model).__name__),
        total_params,
        stages,
        sum(c.gflops for c in stages.values()),
        sum(c.gflops_mmcv for c in stages.values()),
    )

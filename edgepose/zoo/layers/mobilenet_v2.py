"""MobileNet-V2 trunk with mmpose's parameter names.

mmpose/mmcls build MobileNet-V2 from ``ConvModule``s (``conv`` + ``bn`` + ReLU6),
seven ``layerN`` stages of inverted residuals whose convs sit in a ``conv``
Sequential, and a final 1x1 ``conv2`` to 1280 channels; the ImageNet weights the
pose codebases start from use those names (``conv1.conv.weight``,
``layer2.0.conv.1.bn.running_mean``, ``conv2.bn.weight``). Mirroring them makes a
checkpoint mapping a prefix rename. No torchvision: this is the whole network.
"""

from __future__ import annotations

import torch
from torch import nn

# (expand ratio, output channels, blocks, stride of the first block), Sandler et al. Table 2.
ARCH = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


def make_divisible(value: float, divisor: int = 8, min_ratio: float = 0.9) -> int:
    """Round ``value`` to a multiple of ``divisor`` without losing more than 10% (mmcv's rule)."""
    new = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return new + divisor if new < min_ratio * value else new


class ConvBNAct(nn.Module):
    """conv (no bias) -> BatchNorm -> optional ReLU6, named like mmcv's ``ConvModule``."""

    def __init__(self, cin: int, cout: int, kernel: int = 1, stride: int = 1, groups: int = 1, act=True):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.act = nn.ReLU6() if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class InvertedResidual(nn.Module):
    """1x1 expand (skipped at ratio 1) -> 3x3 depthwise -> linear 1x1 project, residual when shapes allow."""

    def __init__(self, cin: int, cout: int, stride: int, expand_ratio: int):
        super().__init__()
        hidden = make_divisible(round(cin * expand_ratio))
        layers = [ConvBNAct(cin, hidden)] if expand_ratio != 1 else []
        layers += [ConvBNAct(hidden, hidden, 3, stride, groups=hidden), ConvBNAct(hidden, cout, act=False)]
        self.conv = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.residual else self.conv(x)


class MobileNetV2(nn.Module):
    """Image (B, 3, H, W) -> (B, out_channels, ceil(H/32), ceil(W/32)).

    ``last_channels`` defaults to mmpose's rule (1280, scaled up only for
    ``widen_factor > 1``); small test variants pass a smaller value.
    """

    def __init__(self, widen_factor: float = 1.0, last_channels: int | None = None):
        super().__init__()
        cin = make_divisible(32 * widen_factor)
        self.conv1 = ConvBNAct(3, cin, 3, 2)
        self.stage_names = []
        for i, (t, c, n, s) in enumerate(ARCH, start=1):
            cout = make_divisible(c * widen_factor)
            blocks = []
            for k in range(n):
                blocks.append(InvertedResidual(cin, cout, s if k == 0 else 1, t))
                cin = cout
            self.add_module(f"layer{i}", nn.Sequential(*blocks))
            self.stage_names.append(f"layer{i}")
        if last_channels is None:
            last_channels = int(1280 * widen_factor) if widen_factor > 1.0 else 1280
        self.conv2 = ConvBNAct(cin, last_channels)
        self.out_channels = last_channels
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """mmpose's init without pretrained weights: Kaiming (fan_out) convs, unit BatchNorm."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    @staticmethod
    def output_size(input_size: tuple[int, int]) -> tuple[int, int]:
        """Spatial size of the output: five stride-2 convs with padding k//2, each ceil(n / 2)."""
        h, w = input_size
        for _ in range(5):
            h, w = (h + 1) // 2, (w + 1) // 2
        return h, w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        for name in self.stage_names:
            x = getattr(self, name)(x)
        return self.conv2(x)

"""ResNet-50 (v1.5) trunk with torchvision's state-dict key layout, returning multi-scale features.

torchvision is not a dependency, so the network is written here. Key names follow
``torchvision.models.resnet50`` exactly (``conv1``, ``bn1``, ``layer1..4.<i>.conv1/bn1/conv2/bn2/conv3/bn3``,
``layerN.0.downsample.0/1``), which is also the layout of mmdet's/mmpose's ``ResNet(style='pytorch')``
and of DSTA's ResNet trunk: a torchvision or mmdet ResNet-50 checkpoint loads by prefix only.
The stride-2 of each stage sits on the 3x3 conv (v1.5, torchvision's and mmdet's ``pytorch`` style).

``forward`` returns the requested stages' outputs: ``out_indices=(1, 2, 3)`` gives C3, C4, C5
(strides 8, 16, 32; 512, 1024, 2048 channels), as PAVE-Net's backbone (mmdet ``out_indices=(1, 2, 3)``)
uses; ``(3,)`` gives C5 only, as DSTA uses. ``depths``/``base_width`` shrink the network for tests
(``ResNet(depths=(1, 1, 1, 1), base_width=16)``); the defaults are ResNet-50.

The classification head (``fc``) is not built: torchvision checkpoints' ``fc.*`` keys are the only
extra keys, and ``strip_classifier`` drops them.
"""

from __future__ import annotations

import torch
from torch import nn

RESNET50_DEPTHS = (3, 4, 6, 3)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, width: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        cout = width * self.expansion
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return self.relu(y + skip)


class ResNet(nn.Module):
    """Image (B, 3, H, W) -> tuple of stage outputs named by ``out_indices`` (0 = layer1 ... 3 = layer4)."""

    def __init__(
        self,
        depths: tuple[int, ...] = RESNET50_DEPTHS,
        base_width: int = 64,
        out_indices: tuple[int, ...] = (1, 2, 3),
    ):
        super().__init__()
        if len(depths) != 4 or min(depths) < 1:
            raise ValueError(f"ResNet needs four stages of at least one block, got depths={depths}")
        if not out_indices or any(i not in range(4) for i in out_indices):
            raise ValueError(f"out_indices must name stages 0..3, got {out_indices}")
        self.out_indices = tuple(out_indices)
        self.conv1 = nn.Conv2d(3, base_width, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(base_width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        cin = base_width
        self.stage_channels = []
        for i, n in enumerate(depths):
            width = base_width * 2**i
            stride = 1 if i == 0 else 2
            cout = width * Bottleneck.expansion
            down = None
            if stride != 1 or cin != cout:
                down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))
            blocks = [Bottleneck(cin, width, stride, down)]
            blocks += [Bottleneck(cout, width) for _ in range(n - 1)]
            self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))
            self.stage_channels.append(cout)
            cin = cout
        self.out_channels = tuple(self.stage_channels[i] for i in self.out_indices)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """torchvision's init: Kaiming (fan_out) convs, unit BatchNorm."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    @staticmethod
    def output_sizes(input_size: tuple[int, int]) -> tuple[tuple[int, int], ...]:
        """Spatial size of layer1..layer4 for an (H, W) input: stride 4, 8, 16, 32 with ceil rounding."""
        h, w = input_size
        sizes = []
        for _ in range(2):  # conv1 (k7 s2 p3), maxpool (k3 s2 p1)
            h, w = (h + 1) // 2, (w + 1) // 2
        sizes.append((h, w))
        for _ in range(3):
            h, w = (h + 1) // 2, (w + 1) // 2
            sizes.append((h, w))
        return tuple(sizes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        outs = []
        for i in range(4):
            x = getattr(self, f"layer{i + 1}")(x)
            if i in self.out_indices:
                outs.append(x)
            if i >= max(self.out_indices):
                break
        return tuple(outs)


def resnet50(out_indices: tuple[int, ...] = (1, 2, 3)) -> ResNet:
    return ResNet(RESNET50_DEPTHS, 64, out_indices)


def strip_classifier(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A torchvision ResNet checkpoint without its ``fc.*`` classifier (the trunk has none)."""
    return {k: v for k, v in state.items() if not k.startswith("fc.")}

"""TokenPose's *stemnet*: two stride-2 3x3 convs and one stage of ResNet bottlenecks.

A very shallow CNN that brings a crop to 1/4 resolution quickly (256x192 ->
64x48, 256 channels). TokenPose-S and DistilPose-S use it in front of their
transformer, trained from scratch. Attribute names follow the official
``StemNet`` (``conv1``, ``bn1``, ``conv2``, ``bn2``, ``layer1.<i>.*``,
``downsample.0/1``) so official ``backbone.*`` checkpoints map one to one.
"""

from __future__ import annotations

import torch
from torch import nn


class Bottleneck(nn.Module):
    """ResNet v1 bottleneck (1x1 -> 3x3 -> 1x1, expansion 4), no biases, BN after each conv."""

    expansion = 4

    def __init__(self, in_channels: int, planes: int, stride: int = 1):
        super().__init__()
        out = planes * self.expansion
        self.conv1 = nn.Conv2d(in_channels, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.relu = nn.ReLU(inplace=True)
        needs_projection = stride != 1 or in_channels != out
        self.downsample = (
            nn.Sequential(nn.Conv2d(in_channels, out, 1, stride=stride, bias=False), nn.BatchNorm2d(out))
            if needs_projection
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return self.relu(y + shortcut)


class StemNet(nn.Module):
    """image (B,3,H,W) -> features (B, 4*width, H/4, W/4).

    ``width=64, blocks=4`` is the official stemnet (about 0.33M parameters).
    """

    def __init__(self, width: int = 64, blocks: int = 4):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=2, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        out = width * Bottleneck.expansion
        self.layer1 = nn.Sequential(
            Bottleneck(width, width), *(Bottleneck(out, width) for _ in range(blocks - 1))
        )
        self.out_channels = out

    def reset_parameters(self) -> None:
        """The official from-scratch initialisation: convs N(0, 0.001), BN weight 1 and bias 0."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.001)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        return self.layer1(x)

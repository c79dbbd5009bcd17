"""The classic heatmap decoder (SimpleBaseline / ViTPose): deconvolutions, then a 1x1 conv.

Each deconvolution is ConvTranspose2d(k=4, s=2, p=1, no bias) + BatchNorm +
ReLU, so two of them turn a stride-16 feature map into stride-4 heatmaps
(16x12 -> 64x48 at a 256x192 input). Names follow mmpose's ``HeatmapHead``
(``deconv_layers.{0,1,3,4}``, ``final_layer``) so official checkpoints map by
prefix.
"""

from __future__ import annotations

import torch
from torch import nn


class DeconvHeatmapHead(nn.Module):
    def __init__(self, in_channels: int, num_joints: int, deconv_channels: tuple[int, ...] = (256, 256)):
        super().__init__()
        layers: list[nn.Module] = []
        for out in deconv_channels:
            layers += [
                nn.ConvTranspose2d(in_channels, out, kernel_size=4, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(out),
                nn.ReLU(inplace=True),
            ]
            in_channels = out
        self.deconv_layers = nn.Sequential(*layers)
        self.final_layer = nn.Conv2d(in_channels, num_joints, kernel_size=1)
        for m in self.modules():  # mmpose's init: N(0, 0.001) convs, unit BN
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.normal_(m.weight, std=0.001)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.final_layer(self.deconv_layers(x))

"""MobileNet-V2 trunk with mmpose's parameter names.

mmpose/mmcls build MobileNet-V2 from ``ConvModule``s (``conv`` + ``bn`` + ReLU6),
seven ``layerN`` stages of inverted residuals whose convs sit in a ``conv``
Sequential, and a final 1x1 ``conv2`` to 1280 channels; the ImageNet weights the
pose codebases start from use those names (``conv1.conv.weight``,
``layer2.0.conv.1.bn.running_mean``, ``conv2.bn.weight``). Mirroring them makes a
checkpoint mapping a prefix rename. No torchvision: this is the whole network.

Padding: PyTorch pads a stride-2 3x3 conv by 1 on every side; TensorFlow's ``SAME``
pads ``(0, 1)`` on an even side (``(1, 1)`` on an odd one), so the two sample the
image one pixel apart and a Keras trunk's weights (MoveNet's) only reproduce its
activations with TF's padding. ``pad="tf"`` builds that padding; it is static, worked
out from ``input_size`` when the trunk is built, so exported graphs hold a plain Pad.
The default ``pad="torch"`` is mmpose's, which official PyTorch checkpoints expect.
With ``pad="tf"`` the stem pads each input channel with its own value (buffer
``conv1.pad.fill``, zero unless set): a trunk whose own input normalisation was folded
into the stem (MoveNet's, which pads with mid-grey in its own input scale) then pads
with that same grey.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
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
PADDINGS = ("torch", "tf")


def make_divisible(value: float, divisor: int = 8, min_ratio: float = 0.9) -> int:
    """Round ``value`` to a multiple of ``divisor`` without losing more than 10% (mmcv's rule)."""
    new = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return new + divisor if new < min_ratio * value else new


def tf_same_pads(size: tuple[int, int], kernel: int, stride: int) -> tuple[int, int, int, int]:
    """TF's ``SAME`` padding of a conv on an (H, W) input, as ``(left, right, top, bottom)``: the extra
    pixel of an odd total goes after."""
    pads = []
    for n in size:
        total = max((-(-n // stride) - 1) * stride + kernel - n, 0)
        pads.append((total // 2, total - total // 2))
    (top, bottom), (left, right) = pads
    return left, right, top, bottom


class FillPad2d(nn.Module):
    """Pad ``(left, right, top, bottom)`` with ``fill[c]`` in channel c (a buffer: checkpoints carry it)."""

    def __init__(self, pads: tuple[int, int, int, int], channels: int):
        super().__init__()
        self.pads = tuple(pads)
        self.register_buffer("fill", torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fill = self.fill.view(1, -1, 1, 1)
        return F.pad(x - fill, self.pads) + fill


class ConvBNAct(nn.Module):
    """conv (no bias) -> BatchNorm -> optional ReLU6, named like mmcv's ``ConvModule``.

    ``pads`` (left, right, top, bottom) replaces the conv's symmetric ``kernel // 2`` padding (TF's
    ``SAME``), with zeros or, with ``fill``, a per-channel value (:class:`FillPad2d`).
    """

    def __init__(
        self,
        cin: int,
        cout: int,
        kernel: int = 1,
        stride: int = 1,
        groups: int = 1,
        act=True,
        pads: tuple[int, int, int, int] | None = None,
        fill: bool = False,
    ):
        super().__init__()
        if pads is None:
            self.pad = nn.Identity()
        else:
            self.pad = FillPad2d(pads, cin) if fill else nn.ZeroPad2d(pads)
        padding = 0 if pads is not None else kernel // 2
        self.conv = nn.Conv2d(cin, cout, kernel, stride, padding, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.act = nn.ReLU6() if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(self.pad(x))))


class InvertedResidual(nn.Module):
    """1x1 expand (skipped at ratio 1) -> 3x3 depthwise -> linear 1x1 project, residual when shapes allow."""

    def __init__(self, cin: int, cout: int, stride: int, expand_ratio: int, pads=None):
        super().__init__()
        hidden = make_divisible(round(cin * expand_ratio))
        layers = [ConvBNAct(cin, hidden)] if expand_ratio != 1 else []
        layers += [
            ConvBNAct(hidden, hidden, 3, stride, groups=hidden, pads=pads),
            ConvBNAct(hidden, cout, act=False),
        ]
        self.conv = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.residual else self.conv(x)


class MobileNetV2(nn.Module):
    """Image (B, 3, H, W) -> (B, out_channels, ceil(H/32), ceil(W/32)).

    ``last_channels`` defaults to mmpose's rule (1280, scaled up only for
    ``widen_factor > 1``); small test variants pass a smaller value. ``pad="tf"`` (see the module
    docstring) needs ``input_size`` (H, W): TF's padding of a stride-2 conv depends on its input's size.
    """

    def __init__(
        self,
        widen_factor: float = 1.0,
        last_channels: int | None = None,
        pad: str = "torch",
        input_size: tuple[int, int] | None = None,
    ):
        super().__init__()
        if pad not in PADDINGS:
            raise ValueError(f"pad must be one of {PADDINGS}, got {pad!r}")
        if pad == "tf" and input_size is None:
            raise ValueError(
                "pad='tf' needs input_size: TF's padding of a stride-2 conv depends on its input size"
            )
        size = tuple(input_size) if input_size is not None else None

        def pads(stride: int):
            """TF's padding for a stride-2 3x3 conv at the current size (stride 1: symmetric, as torch's)."""
            nonlocal size
            if pad != "tf" or stride == 1:
                return None
            p = tf_same_pads(size, 3, stride)
            size = ((size[0] + 1) // 2, (size[1] + 1) // 2)
            return p

        cin = make_divisible(32 * widen_factor)
        self.padding = pad
        self.conv1 = ConvBNAct(3, cin, 3, 2, pads=pads(2), fill=pad == "tf")
        self.stage_names = []
        for i, (t, c, n, s) in enumerate(ARCH, start=1):
            cout = make_divisible(c * widen_factor)
            blocks = []
            for k in range(n):
                stride = s if k == 0 else 1
                blocks.append(InvertedResidual(cin, cout, stride, t, pads(stride)))
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

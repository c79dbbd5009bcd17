"""Start a zoo MobileNet-V2 trunk from MoveNet SinglePose Lightning's (``edgepose train --weights movenet``).

MoveNet Lightning (Google, Apache-2.0; ``movenet-lightning.onnx``, converted from TF.js and checked
against it) is a CenterNet head on a Keras MobileNet-V2 width 1.0 with BatchNorm folded into the
convs. Its trunk, from the stem through the last 320-channel block, has exactly the zoo
MobileNet-V2's convs in the same order (stem, block 0's depthwise and projection, then expand,
depthwise, projection for blocks 1-16), so the weights map by order and shape: no names to trust.
The final 320->1280 conv (MoveNet's feeds its FPN, not a pose decoder like ours) stays random.

What loading does, so that the zoo trunk computes MoveNet's activations:

* BatchNorm: MoveNet's convs carry the folded BN as a bias; our BN becomes ``x + bias`` (weight 1,
  running mean 0, running var ``1 - eps``). That is exact in eval mode, but BN in training mode
  normalises with the batch's statistics and would rescale every channel (on a real crop the last
  block is then off by 2x its range). :func:`calibrate_batchnorm` rewrites each BN as the same
  eval-mode function with running statistics measured on real crops (``edgepose train`` uses
  training crops), so training starts near MoveNet's function.
* Input: MoveNet maps 0-255 RGB to ``x / 127.5 - 1`` (read from its graph); the zoo feeds
  ImageNet-standardised crops. The affine change between the two is folded into the stem's weights
  and bias, and the stem pads each channel with the value MoveNet's zero padding corresponds to
  (``conv1.pad.fill``): without it the bottom/right padding of TF's stride-2 stem differs, and the
  trunk's receptive field carries that into every output position (1.3% of the activation range at
  the last block on a real crop, against ~1e-6 with it).
* Padding: TF pads stride-2 convs (0, 1), PyTorch (1, 1); the model must be built with ``pad="tf"``
  (``dsta_mnv2_coco``'s default; ``edgepose train`` builds any DSTA or PAVE-Net so when given
  ``--weights movenet``).

Models: the DSTA models' ``trunk`` and PAVE-Net's MobileNet-V2 pyramid (``pave_mnv2``; its ``trunk`` is
its ``backbone``, tapped at strides 8/16/32, without the 1280 conv). A narrower trunk (``pave_mnv2_tiny``
is width 0.25) is refused: the shapes differ from the first conv on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

ASSET = "movenet-lightning.onnx"
LAST_TRUNK_CHANNELS = 320
# MoveNet's input chain: int32 NHWC -> Cast -> Split (unstack the batch) -> (x - a) * b - c -> NCHW.
INPUT_CHAIN = ("Cast", "Split", "Sub", "Mul", "Sub", "Transpose")


class MoveNetTrunkError(ValueError):
    """MoveNet's trunk cannot be read or does not fit the model; one line."""


@dataclass
class Conv:
    weight: np.ndarray  # (out, in / groups, kh, kw)
    bias: np.ndarray
    stride: int
    groups: int


@dataclass
class MoveNetTrunk:
    """MoveNet's trunk convs in graph order and its input map ``m = x * scale + shift`` (x in 0-255)."""

    convs: list[Conv]
    scale: np.ndarray  # (3,)
    shift: np.ndarray  # (3,)
    output: str  # graph name of the last 320-channel block's output


def _attrs(node) -> dict:
    import onnx

    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def read_movenet_trunk(path: str | Path) -> MoveNetTrunk:
    """The trunk of a MoveNet ONNX graph, up to and including the first 320-channel conv."""
    import onnx
    from onnx import numpy_helper

    try:
        graph = onnx.load(str(path)).graph
    except Exception as e:  # noqa: BLE001 - protobuf's decode errors have no common type; one line
        raise MoveNetTrunkError(
            f"could not read {path} as ONNX: {type(e).__name__}: {str(e)[:200]}"
        ) from None
    init = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)

    chain, tensor = [], graph.input[0].name
    for _ in INPUT_CHAIN:
        nxt = consumers.get(tensor, [])
        if len(nxt) != 1:
            break
        chain.append(nxt[0])
        tensor = nxt[0].output[0]
    if tuple(n.op_type for n in chain) != INPUT_CHAIN:
        raise MoveNetTrunkError(
            f"{path}: MoveNet's input chain is not {'/'.join(INPUT_CHAIN)} (found "
            f"{'/'.join(n.op_type for n in chain)}): not the MoveNet Lightning graph this loader knows"
        )
    sub, mul, sub2 = (next(init[i] for i in n.input if i in init).astype(np.float64) for n in chain[2:5])
    scale = np.broadcast_to(mul.reshape(-1), (3,)).copy()
    shift = np.broadcast_to((-sub * mul - sub2).reshape(-1), (3,)).copy()

    convs, output = [], None
    for node in graph.node:
        if node.op_type != "Conv":
            continue
        a = _attrs(node)
        w = init.get(node.input[1])
        b = init.get(node.input[2]) if len(node.input) > 2 else None
        if w is None or b is None:
            raise MoveNetTrunkError(f"{path}: trunk conv {node.name} has no constant weight and bias")
        convs.append(Conv(w, b, int(a.get("strides", [1, 1])[0]), int(a.get("group", 1))))
        if w.shape[0] == LAST_TRUNK_CHANNELS:
            output = node.output[0]
            break
    if output is None:
        raise MoveNetTrunkError(
            f"{path}: no {LAST_TRUNK_CHANNELS}-channel conv found; not a MobileNet-V2 trunk"
        )
    return MoveNetTrunk(convs, scale, shift, output)


def trunk_layers(trunk) -> list:
    """The zoo MobileNet-V2's ConvBNAct layers in forward order, without the final 1x1 ``conv2``."""
    from .layers.mobilenet_v2 import ConvBNAct

    return [
        m for name, m in trunk.named_modules() if isinstance(m, ConvBNAct) and not name.startswith("conv2")
    ]


def _check_fit(layers, movenet: MoveNetTrunk, name: str) -> None:
    if len(layers) != len(movenet.convs):
        raise MoveNetTrunkError(
            f"MoveNet's trunk has {len(movenet.convs)} convs up to its last {LAST_TRUNK_CHANNELS}-channel block; "
            f"{name}'s MobileNet-V2 has {len(layers)}"
        )
    for k, (layer, conv) in enumerate(zip(layers, movenet.convs)):
        ours = layer.conv
        theirs = (tuple(conv.weight.shape), conv.stride, conv.groups)
        if (tuple(ours.weight.shape), ours.stride[0], ours.groups) != theirs:
            raise MoveNetTrunkError(
                f"MoveNet Lightning's trunk is MobileNet-V2 width 1.0 and does not fit {name}'s: conv {k} is "
                f"{tuple(conv.weight.shape)} stride {conv.stride} in MoveNet, {tuple(ours.weight.shape)} "
                f"stride {ours.stride[0]} here"
            )


@torch.no_grad()
def _conv_statistics(trunk, layers, images: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per-channel mean and variance of every layer's conv output (before its bias), in eval mode."""
    stats, hooks = [], []
    for layer in layers:

        def hook(_m, _i, out):
            stats.append((out.mean((0, 2, 3)).double(), out.var((0, 2, 3), unbiased=False).double()))

        hooks.append(layer.conv.register_forward_hook(hook))
    was_training = trunk.training
    trunk.eval()
    try:
        trunk(images)
    finally:
        trunk.train(was_training)
        for h in hooks:
            h.remove()
    return stats


@torch.no_grad()
def load_movenet_trunk(
    trunk,
    movenet: MoveNetTrunk,
    mean,
    std,
    name: str = "the model",
) -> int:
    """Write MoveNet's trunk into ``trunk`` (a zoo MobileNetV2 built with ``pad="tf"``) for inputs
    standardised with ``mean``/``std`` on [0, 1]; returns the number of tensors written."""
    if getattr(trunk, "padding", None) != "tf":
        raise MoveNetTrunkError(
            f"MoveNet's trunk needs TF's padding: build {name} with pad='tf' (dsta_mnv2_coco's default; "
            "edgepose train does so for --weights movenet)"
        )
    layers = trunk_layers(trunk)
    _check_fit(layers, movenet, name)
    # MoveNet sees m = s * x_ours + t; written as s * (x_ours - fill) so that its zero padding is our fill.
    mean, std = np.asarray(mean, np.float64), np.asarray(std, np.float64)
    s = 255.0 * std * movenet.scale
    t = 255.0 * mean * movenet.scale + movenet.shift
    written = 0
    for k, (layer, conv) in enumerate(zip(layers, movenet.convs)):
        w, b = conv.weight.astype(np.float64), conv.bias.astype(np.float64)
        if k == 0:
            b = b + (w * t[None, :, None, None]).sum((1, 2, 3))
            w = w * s[None, :, None, None]
            layer.pad.fill.copy_(torch.from_numpy(-t / s))
            written += 1
        layer.conv.weight.copy_(torch.from_numpy(w))
        bn = layer.bn
        bn.weight.fill_(1.0)
        bn.bias.copy_(torch.from_numpy(b))
        bn.running_mean.zero_()
        bn.running_var.fill_(1.0 - bn.eps)
        bn.num_batches_tracked.zero_()
        written += 6
    return written


@torch.no_grad()
def calibrate_batchnorm(trunk, images: torch.Tensor) -> None:
    """Give the BN of every conv up to the last 320-channel block the statistics of its input on
    ``images`` (standardised crops, B x 3 x H x W), keeping each BN's eval-mode function: BN computes
    ``a * z + c``; with the measured mean m and variance v it becomes weight ``a * sqrt(v + eps)``,
    bias ``c + a * m``. BN in training mode then starts from (nearly) the eval-mode trunk."""
    layers = trunk_layers(trunk)
    for layer, (mu, var) in zip(layers, _conv_statistics(trunk, layers, images)):
        bn = layer.bn
        a = bn.weight.double() / (bn.running_var.double() + bn.eps).sqrt()
        c = bn.bias.double() - a * bn.running_mean.double()
        bn.running_mean.copy_(mu)
        bn.running_var.copy_(var)
        bn.weight.copy_(a * (var + bn.eps).sqrt())
        bn.bias.copy_(c + a * mu)


def init_from_movenet(model) -> str:
    """Load the checked MoveNet Lightning asset's trunk into ``model.trunk``; returns a one-line note of
    what loaded and what stayed random. A missing or altered asset raises ExternalModelError (one line)."""
    from ..external.check import verified_path
    from .layers.mobilenet_v2 import MobileNetV2
    from .registry import get_spec
    from .spec import IMAGENET_MEAN, IMAGENET_STD

    name = getattr(model, "spec_name", type(model).__name__)
    if not isinstance(getattr(model, "trunk", None), MobileNetV2):
        raise MoveNetTrunkError(
            f"--weights movenet starts a MobileNet-V2 trunk (the DSTA models', PAVE-Net's mnv2 builds); "
            f"{name} has none"
        )
    path = verified_path(ASSET)
    spec = get_spec(name) if hasattr(model, "spec_name") else None
    mean, std = (spec.mean, spec.std) if spec else (IMAGENET_MEAN, IMAGENET_STD)
    movenet = read_movenet_trunk(path)
    written = load_movenet_trunk(model.trunk, movenet, mean, std, name)
    rest = len(model.state_dict()) - written
    after = (
        "the 320->1280 conv and everything after it"
        if hasattr(model.trunk, "conv2")
        else "everything after it"
    )
    return (
        f"initialised {name}'s trunk from MoveNet Lightning ({path.name}): stem and blocks 1-16 up to the last "
        f"320-channel block ({written} tensors); {after} ({rest} tensors) keep their random init"
    )

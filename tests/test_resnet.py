"""The ResNet-50 trunk: torchvision's key layout and sizes, multi-scale outputs."""

import pytest
import torch

from edgepose.zoo.resnet import ResNet, resnet50, strip_classifier


def _torchvision_resnet50_keys():
    """torchvision.models.resnet50().state_dict() keys without fc.*, written out from its definition."""
    bn = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    keys = ["conv1.weight", *(f"bn1.{n}" for n in bn)]
    for i, blocks in enumerate((3, 4, 6, 3), start=1):
        for j in range(blocks):
            p = f"layer{i}.{j}."
            for c in (1, 2, 3):
                keys.append(f"{p}conv{c}.weight")
                keys += [f"{p}bn{c}.{n}" for n in bn]
            if j == 0:
                keys.append(f"{p}downsample.0.weight")
                keys += [f"{p}downsample.1.{n}" for n in bn]
    return keys


def test_resnet50_has_torchvisions_keys_shapes_and_size():
    m = resnet50()
    state = m.state_dict()
    assert list(state) == _torchvision_resnet50_keys()
    assert len(state) == 318  # torchvision's 320 minus fc.weight/fc.bias
    shapes = {
        "conv1.weight": (64, 3, 7, 7),
        "layer1.0.conv1.weight": (64, 64, 1, 1),
        "layer1.0.downsample.0.weight": (256, 64, 1, 1),
        "layer2.0.conv2.weight": (128, 128, 3, 3),  # v1.5: the stride sits on the 3x3
        "layer3.5.conv3.weight": (1024, 256, 1, 1),
        "layer4.2.bn3.running_var": (2048,),
    }
    for k, s in shapes.items():
        assert tuple(state[k].shape) == s, k
    # torchvision resnet50: 25,557,032 parameters, of which fc has 2048*1000 + 1000.
    assert sum(p.numel() for p in m.parameters()) == 25_557_032 - 2_049_000
    assert m.layer2[0].conv2.stride == (2, 2) and m.layer2[0].conv1.stride == (1, 1)


def test_multiscale_outputs_and_sizes():
    m = resnet50().eval()
    x = torch.randn(1, 3, 75, 100)
    with torch.no_grad():
        c3, c4, c5 = m(x)
    assert m.out_channels == (512, 1024, 2048)
    sizes = ResNet.output_sizes((75, 100))
    assert [tuple(t.shape[-2:]) for t in (c3, c4, c5)] == list(sizes[1:])
    assert [t.shape[1] for t in (c3, c4, c5)] == [512, 1024, 2048]


def test_small_variant_and_c5_only():
    m = ResNet(depths=(1, 1, 1, 1), base_width=8, out_indices=(3,))
    (c5,) = m(torch.randn(2, 3, 64, 48))
    assert c5.shape == (2, 256, 2, 2)
    with pytest.raises(ValueError):
        ResNet(out_indices=(4,))


def test_torchvision_checkpoint_loads_after_dropping_fc():
    src = resnet50()
    state = {**src.state_dict(), "fc.weight": torch.zeros(1000, 2048), "fc.bias": torch.zeros(1000)}
    dst = resnet50()
    dst.load_state_dict(strip_classifier(state), strict=True)

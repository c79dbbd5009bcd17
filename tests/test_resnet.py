"""The ResNet-50 trunk: torchvision's key layout and sizes, multi-scale outputs."""

import math

import pytest
import torch
import torch.nn.functional as F

from edgepose.zoo import create_model, get_spec, load_weights
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


# ---- dsta_r50: the official DSTA_STD_ResNet50 checkpoint ------------------------------------------
OFFICIAL_JOINT_ORDOR = [1, 2, 0, 0, 0, 3, 6, 4, 7, 5, 8, 9, 12, 10, 13, 11, 14]  # the official file's


def _official_dsta_keys(cfg, joints=17, frames=3):
    """Key -> shape of zgspose/DSTA posetimation/zoo/DSTA/dsta_std_resnet50.py (its __init__, written out)."""
    d, hid = cfg["dim"], int(cfg["dim"] * 2)
    depths, base = cfg["resnet_depths"], cfg["resnet_width"]
    bn = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    keys = {"preact.conv1.weight": (base, 3, 7, 7)}
    keys.update({f"preact.bn1.{n}": () if n == "num_batches_tracked" else (base,) for n in bn})
    cin = base
    for i, n_blocks in enumerate(depths):
        w = base * 2**i
        for j in range(n_blocks):
            p = f"preact.layer{i + 1}.{j}."
            for c, s in enumerate(
                [(w, cin if j == 0 else 4 * w, 1, 1), (w, w, 3, 3), (4 * w, w, 1, 1)], start=1
            ):
                keys[f"{p}conv{c}.weight"] = s
                keys.update({f"{p}bn{c}.{n}": () if n == "num_batches_tracked" else (s[0],) for n in bn})
            if j == 0:
                keys[f"{p}downsample.0.weight"] = (4 * w, cin, 1, 1)
                keys.update(
                    {f"{p}downsample.1.{n}": () if n == "num_batches_tracked" else (4 * w,) for n in bn}
                )
        cin = 4 * w
    keys["Spatial_pos_embed"] = (3, d)
    for group in ("Spatial_blocks", "blocks"):
        for i in range(cfg["depth"]):
            p = f"{group}.{i}."
            keys.update(
                {
                    f"{p}norm1.weight": (d,),
                    f"{p}norm1.bias": (d,),
                    f"{p}norm2.weight": (d,),
                    f"{p}norm2.bias": (d,),
                    f"{p}attn.qkv.weight": (3 * d, d),
                    f"{p}attn.qkv.bias": (3 * d,),
                    f"{p}attn.proj.weight": (d, d),
                    f"{p}attn.proj.bias": (d,),
                    f"{p}mlp.fc1.weight": (hid, d),
                    f"{p}mlp.fc1.bias": (hid,),
                    f"{p}mlp.fc2.weight": (d, hid),
                    f"{p}mlp.fc2.bias": (d,),
                }
            )
    keys.update(
        {
            "Spatial_norm.weight": (d,),
            "Spatial_norm.bias": (d,),
            "Temporal_norm.weight": (d,),
            "Temporal_norm.bias": (d,),
            "Temporal_pos_embed": (1, frames, d),
            "weighted_mean.weight": (1, 2, 1, 1),
            "weighted_mean.bias": (1,),
        }
    )
    for head in ("head_coord", "head_sigma"):
        keys.update(
            {
                f"{head}.0.weight": (d,),
                f"{head}.0.bias": (d,),
                f"{head}.1.weight": (2, d),
                f"{head}.1.bias": (2,),
            }
        )
    keys["flow.mask"] = (6, 2)
    for st in ("s", "t"):
        for i in range(6):
            keys.update(
                {
                    f"flow.{st}.{i}.0.weight": (64, 2),
                    f"flow.{st}.{i}.0.bias": (64,),
                    f"flow.{st}.{i}.2.weight": (64, 64),
                    f"flow.{st}.{i}.2.bias": (64,),
                    f"flow.{st}.{i}.4.weight": (2, 64),
                    f"flow.{st}.{i}.4.bias": (2,),
                }
            )
    keys["fc_coord.linear.weight"] = (joints * d, 4 * base * 8)
    keys["fc_coord.linear.bias"] = (joints * d,)
    return keys


def _official_dsta_state(cfg, seed=0):
    g = torch.Generator().manual_seed(seed)
    state = {}
    for k, s in _official_dsta_keys(cfg).items():
        if k.endswith("num_batches_tracked"):
            state[k] = torch.tensor(3)
        elif k == "flow.mask":
            state[k] = torch.tensor([[0.0, 1.0], [1.0, 0.0]] * 3)
        elif k.endswith("running_var"):
            state[k] = 0.5 + torch.rand(s, generator=g)
        elif len(s) == 1 and k.endswith("weight"):
            state[k] = 1 + 0.1 * torch.randn(s, generator=g)
        elif len(s) > 1 and "pos" not in k:
            state[k] = torch.randn(s, generator=g) / math.sqrt(math.prod(s[1:]))
        else:
            state[k] = 0.1 * torch.randn(s, generator=g)
    return state


def _block(sd, p, x, heads):
    b, n, c = x.shape
    h = F.layer_norm(x, (c,), sd[f"{p}norm1.weight"], sd[f"{p}norm1.bias"], eps=1e-6)
    qkv = F.linear(h, sd[f"{p}attn.qkv.weight"], sd[f"{p}attn.qkv.bias"])
    q, k, v = qkv.reshape(b, n, 3, heads, c // heads).permute(2, 0, 3, 1, 4)
    a = ((q @ k.transpose(-2, -1)) * (c // heads) ** -0.5).softmax(-1)
    x = x + F.linear(
        (a @ v).transpose(1, 2).reshape(b, n, c), sd[f"{p}attn.proj.weight"], sd[f"{p}attn.proj.bias"]
    )
    h = F.layer_norm(x, (c,), sd[f"{p}norm2.weight"], sd[f"{p}norm2.bias"], eps=1e-6)
    h = F.linear(
        F.gelu(F.linear(h, sd[f"{p}mlp.fc1.weight"], sd[f"{p}mlp.fc1.bias"])),
        sd[f"{p}mlp.fc2.weight"],
        sd[f"{p}mlp.fc2.bias"],
    )
    return x + h


@torch.no_grad()
def _official_dsta_forward(sd, cfg, x, joints=17, frames=3):
    """The official forward on (B, 3*frames, H, W): frames concatenated on the batch axis, pooled
    normalised linear decoder, 5 body-part groups of the first 15 tokens, joint_ordor gather."""
    d, heads = cfg["dim"], cfg["heads"]
    b = x.shape[0]
    trunk = ResNet(cfg["resnet_depths"], cfg["resnet_width"], (3,)).eval()
    trunk.load_state_dict({k[7:]: v for k, v in sd.items() if k.startswith("preact.")})
    feat = trunk(torch.cat(x.split(3, dim=1), 0))[-1].mean((2, 3))
    feat = (
        feat @ sd["fc_coord.linear.weight"].t() / torch.norm(feat, dim=1, keepdim=True)
        + sd["fc_coord.linear.bias"]
    )
    feat = torch.stack(feat.reshape(-1, joints, d).split(b, dim=0), 0)  # (T, B, J, d)
    s = feat[frames // 2]
    unused = s[:, -2:]
    s = (s[:, :15].reshape(b, 5, 3, d) + sd["Spatial_pos_embed"]).reshape(b * 5, 3, d)
    for i in range(cfg["depth"]):
        s = _block(sd, f"Spatial_blocks.{i}.", s, heads)
    s = F.layer_norm(s, (d,), sd["Spatial_norm.weight"], sd["Spatial_norm.bias"], eps=1e-6).reshape(b, 15, d)
    s = torch.cat([s, unused], 1)
    t = feat.permute(1, 2, 0, 3).reshape(b * joints, frames, d) + sd["Temporal_pos_embed"]
    for i in range(cfg["depth"]):
        t = _block(sd, f"blocks.{i}.", t, heads)
    t = F.layer_norm(t, (d,), sd["Temporal_norm.weight"], sd["Temporal_norm.bias"], eps=1e-6)
    t = t.reshape(b, joints, frames, d).permute(2, 0, 1, 3)[frames // 2]
    fused = F.conv2d(torch.stack((t, s), 1), sd["weighted_mean.weight"], sd["weighted_mean.bias"]).squeeze(1)
    fused = fused[:, OFFICIAL_JOINT_ORDOR]

    def head(name):
        h = F.layer_norm(fused, (d,), sd[f"{name}.0.weight"], sd[f"{name}.0.bias"])
        return F.linear(h, sd[f"{name}.1.weight"], sd[f"{name}.1.bias"])

    coord, sigma = head("head_coord"), head("head_sigma").sigmoid()
    return coord, sigma, (1 - sigma).mean(-1)


def test_dsta_r50_loads_the_official_resnet50_checkpoint_strictly(tmp_path):
    full = create_model("dsta_r50")
    want = {
        k: s for k, s in _official_dsta_keys(get_spec("dsta_r50").config).items() if not k.startswith("flow.")
    }
    assert {k: tuple(full.state_dict()[v].shape) for k, v in full.official_key_map().items()} == want
    assert sum(k.startswith("preact.") for k in want) == 318  # the whole ResNet-50 trunk is there now

    cfg = get_spec("dsta_r50_tiny").config
    state = _official_dsta_state(cfg)
    path = tmp_path / "dsta_r50_official.pth"
    torch.save({"begin_epoch": 19, "state_dict": state, "optimizer": {"state": {}}}, path)
    model = create_model("dsta_r50_tiny").eval()
    report = load_weights(model, path)
    assert report.source == "official" and set(report.ignored) == {k for k in state if k.startswith("flow.")}
    assert report.loaded == len(model.state_dict())


@pytest.mark.parametrize("seed", [0, 1])
def test_dsta_r50_equals_the_official_forward_on_the_same_weights(seed):
    cfg = get_spec("dsta_r50_tiny").config
    state = _official_dsta_state(cfg, seed)
    model = create_model("dsta_r50_tiny").eval()
    load_weights(model, {"state_dict": state})
    g = torch.Generator().manual_seed(5 + seed)
    x = torch.randn(2, 9, *model.input_size, generator=g)  # the official input: frames on channels
    with torch.no_grad():
        ours = model.forward_official(x)
    coord, sigma, score = _official_dsta_forward(state, cfg, x)
    torch.testing.assert_close(ours["coords"], coord, rtol=0, atol=1e-5)
    torch.testing.assert_close(ours["sigma"], sigma, rtol=0, atol=1e-5)
    torch.testing.assert_close(ours["scores"], score, rtol=0, atol=1e-5)

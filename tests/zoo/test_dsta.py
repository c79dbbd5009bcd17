"""DSTA-MobileNet-V2: official checkpoints and forward, joint order, windows, stages.

The official model (zgspose/DSTA, posetimation/zoo/DSTA/dsta_std_resnet50.py) is
rebuilt here as a reference with its module names (``preact``, ``fc_coord.linear``,
``Spatial_blocks``, ``blocks``, ``weighted_mean``, ``head_coord``, ``flow`` ...) and
its forward written out step by step (channel-stacked frames, frames concatenated on
the batch axis, pooled normalised linear decoder, body-part groups of the first 15
tokens, ``joint_ordor`` gather). A checkpoint saved from it in the official container
must load into our model and, with ``compat="official"``, give the same outputs.
"""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from edgepose.core.keypoints import POSETRACK17
from edgepose.zoo import CheckpointError, create_model, load_weights
from edgepose.zoo.dsta import (
    _TINY,
    GROUP_INDEX,
    OFFICIAL_JOINT_ORDER,
    OFFICIAL_OUT_INDEX,
    OFFICIAL_TOKEN_NAMES,
    SPATIAL_GROUPS,
)
from edgepose.zoo.layers.mobilenet_v2 import MobileNetV2

# ``self.joint_ordor`` of the official file, as a fact to check against
OFFICIAL_JOINT_ORDOR = [1, 2, 0, 0, 0, 3, 6, 4, 7, 5, 8, 9, 12, 10, 13, 11, 14]


class _RefBlock(nn.Module):  # the official Block: pre-norm, qkv with bias, GELU MLP, LN eps 1e-6
    def __init__(self, dim, heads, ratio):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(dim, eps=1e-6), nn.LayerNorm(dim, eps=1e-6)
        self.attn = nn.Module()
        self.attn.qkv, self.attn.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.mlp = nn.Module()
        self.mlp.fc1, self.mlp.fc2 = nn.Linear(dim, int(dim * ratio)), nn.Linear(int(dim * ratio), dim)

    def forward(self, x):
        b, n, c = x.shape
        h = self.norm1(x)
        q, k, v = self.attn.qkv(h).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        a = torch.softmax(q @ k.transpose(-2, -1) * (c // self.heads) ** -0.5, dim=-1)
        x = x + self.attn.proj((a @ v).transpose(1, 2).reshape(b, n, c))
        return x + self.mlp.fc2(F.gelu(self.mlp.fc1(self.norm2(x))))


class _RefOfficialDSTA(nn.Module):
    """The official DSTA_STD_ResNet50 module tree and forward, with a MobileNet-V2 under ``preact``."""

    def __init__(self, cfg, joints=17, frames=3):
        super().__init__()
        dim, self.dim, self.joints, self.frames = cfg["dim"], cfg["dim"], joints, frames
        self.preact = MobileNetV2(cfg["width"], cfg["last_channels"])
        self.Spatial_pos_embed = nn.Parameter(torch.randn(3, dim))
        self.Spatial_blocks = nn.ModuleList(_RefBlock(dim, cfg["heads"], 2.0) for _ in range(cfg["depth"]))
        self.blocks = nn.ModuleList(_RefBlock(dim, cfg["heads"], 2.0) for _ in range(cfg["depth"]))
        self.Spatial_norm, self.Temporal_norm = nn.LayerNorm(dim, eps=1e-6), nn.LayerNorm(dim, eps=1e-6)
        self.Temporal_pos_embed = nn.Parameter(torch.randn(1, frames, dim))
        self.weighted_mean = nn.Conv2d(2, 1, 1)
        self.head_coord = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, 2))
        self.head_sigma = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, 2))
        self.flow = nn.Module()  # RLE's RealNVP: a mask buffer and six s/t nets (training only)
        self.flow.register_buffer("mask", torch.tensor([[0.0, 1.0], [1.0, 0.0]] * 3))

        def net():
            act = nn.LeakyReLU
            return nn.Sequential(nn.Linear(2, 64), act(), nn.Linear(64, 64), act(), nn.Linear(64, 2))

        self.flow.t = nn.ModuleList(net() for _ in range(6))
        self.flow.s = nn.ModuleList(net() for _ in range(6))
        self.fc_coord = nn.Module()
        self.fc_coord.linear = nn.Linear(self.preact.out_channels, joints * dim)

    def forward(self, x):  # x: (B, 3 * frames, H, W)
        b = x.shape[0]
        feat = self.preact(torch.cat(x.split(3, dim=1), 0)).mean((2, 3))
        fc = self.fc_coord.linear
        feat = feat @ fc.weight.t() / torch.norm(feat, dim=1, keepdim=True) + fc.bias
        feat = torch.stack(feat.reshape(-1, self.joints, self.dim).split(b, dim=0), 0)  # (F, B, J, C)
        s = feat[self.frames // 2]
        unused = s[:, -2:]
        s = s[:, :15].reshape(b, 5, 3, self.dim) + self.Spatial_pos_embed
        s = s.reshape(b * 5, 3, self.dim)
        for blk in self.Spatial_blocks:
            s = blk(s)
        s = torch.cat([self.Spatial_norm(s).reshape(b, 15, self.dim), unused], 1)
        t = feat.permute(1, 2, 0, 3).reshape(b * self.joints, self.frames, self.dim) + self.Temporal_pos_embed
        for blk in self.blocks:
            t = blk(t)
        t = self.Temporal_norm(t).reshape(b, self.joints, self.frames, self.dim).permute(2, 0, 1, 3)
        t = t[self.frames // 2]
        fused = self.weighted_mean(torch.stack((t, s), 1)).squeeze(1)[:, OFFICIAL_JOINT_ORDOR]
        coord = self.head_coord(fused)
        sigma = self.head_sigma(fused).sigmoid()
        return coord, sigma, torch.mean(1 - sigma, dim=2, keepdim=True)


def _randomise(module, seed):
    """Random but well-scaled weights and BatchNorm statistics, so no layer saturates."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in module.state_dict().items():
            if name.endswith("num_batches_tracked") or name.endswith("flow.mask"):
                continue
            r = torch.randn(t.shape, generator=g)
            if name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            elif t.dim() > 1 and "pos" not in name.lower():
                t.copy_(r / t[0].numel() ** 0.5)
            elif name.endswith("weight") and t.dim() == 1:
                t.copy_(1 + 0.1 * r)
            else:
                t.copy_(0.1 * r)
    return module.eval()


@pytest.fixture(scope="module")
def official():
    torch.manual_seed(0)
    return _randomise(_RefOfficialDSTA(_TINY), seed=11)


def _save_official(state, path):
    container = {
        "begin_epoch": 19,
        "state_dict": state,
        "optimizer": {"state": {}, "param_groups": [{"lr": 2e-5, "params": [0, 1, 2]}]},
        "tensorboard_global_steps": 1234,
    }
    torch.save(container, path)
    return path


def _window(model, batch=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, model.num_frames, 3, *model.input_size, generator=g)


def test_joint_order_facts_match_the_official_joint_ordor():
    names = POSETRACK17.names
    assert list(OFFICIAL_JOINT_ORDER) == OFFICIAL_JOINT_ORDOR
    for slot, token in enumerate(OFFICIAL_JOINT_ORDER):
        expected = "head_top" if names[slot] in POSETRACK17.empty else names[slot]
        assert OFFICIAL_TOKEN_NAMES[token] == expected  # the official reorder copies head_top into the ears
    assert [names[i] for i in OFFICIAL_OUT_INDEX] == [
        "head_top" if n in POSETRACK17.empty else n for n in names
    ]
    assert sorted(GROUP_INDEX) == sorted(i for i, n in enumerate(names) if n not in POSETRACK17.empty)
    assert all(len(g) == 3 for g in SPATIAL_GROUPS) and len(SPATIAL_GROUPS) == 5


def test_trunk_has_mmpose_mobilenet_v2_names_and_size():
    trunk = MobileNetV2()
    sd = trunk.state_dict()
    facts = {
        "conv1.conv.weight": (32, 3, 3, 3),
        "layer1.0.conv.0.conv.weight": (32, 1, 3, 3),
        "layer1.0.conv.1.bn.running_var": (16,),
        "layer2.0.conv.0.conv.weight": (96, 16, 1, 1),
        "layer6.2.conv.1.conv.weight": (960, 1, 3, 3),
        "layer7.0.conv.2.conv.weight": (320, 960, 1, 1),
        "conv2.conv.weight": (1280, 320, 1, 1),
    }
    for k, shape in facts.items():
        assert tuple(sd[k].shape) == shape, k
    assert sum(p.numel() for p in trunk.parameters()) == 2_223_872  # MobileNet-V2 1.0 without the classifier
    assert trunk(torch.zeros(1, 3, 256, 192)).shape == (1, 1280, 8, 6)


def test_official_checkpoint_reproduces_the_official_forward(official, tmp_path):
    path = _save_official(official.state_dict(), tmp_path / "epoch_19_state.pth")
    model = create_model("dsta_mnv2_tiny", compat="official").eval()
    assert model.jfd_kind == "pool"
    report = load_weights(model, path)
    assert report.source == "official"
    assert report.ignored == sorted(k for k in official.state_dict() if k.startswith("flow."))
    assert len(report.ignored) == 1 + 6 * 2 * 6
    x9 = torch.randn(2, 9, *model.input_size, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        coord, sigma, maxvals = official(x9)
        ours = model.forward_official(x9)
    torch.testing.assert_close(ours["coords"], coord, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ours["sigma"], sigma, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ours["scores"], maxvals.squeeze(-1), rtol=1e-5, atol=1e-5)
    # the official head_top token fills the ear slots
    torch.testing.assert_close(ours["coords"][:, 3], ours["coords"][:, 2])


def test_paper_mode_differs_from_official_only_in_the_ear_slots(official):
    state = {"module." + k: v for k, v in official.state_dict().items()}  # DataParallel prefix is stripped
    paper = create_model("dsta_mnv2_tiny", jfd="pool").eval()
    off = create_model("dsta_mnv2_tiny", compat="official").eval()
    load_weights(paper, {"state_dict": state})
    load_weights(off, {"state_dict": state})
    x = _window(paper, seed=4)
    with torch.no_grad():
        a, b = paper(x), off(x)
    body = [i for i, n in enumerate(POSETRACK17.names) if n not in POSETRACK17.empty]
    ears = [POSETRACK17.index("left_ear"), POSETRACK17.index("right_ear")]
    for k in ("coords", "sigma", "scores"):
        torch.testing.assert_close(a[k][:, body], b[k][:, body], rtol=1e-5, atol=1e-5)
    # paper mode: the ears have their own tokens
    assert not torch.allclose(a["coords"][:, ears], b["coords"][:, ears])


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda s: s.pop("Spatial_norm.weight"), r"missing keys: Spatial_norm\.weight"),
        (lambda s: s.update({"extra_head.weight": torch.zeros(3)}), r"unexpected keys: extra_head\.weight"),
        (
            lambda s: s.update({"head_coord.1.weight": torch.zeros(3, 16)}),
            r"mis-shaped keys: head_coord\.1\.weight: checkpoint \(3, 16\) vs model \(2, 16\)",
        ),
        (lambda s: s.pop("preact.conv2.bn.running_mean"), r"missing keys: preact\.conv2\.bn\.running_mean"),
    ],
)
def test_official_checkpoint_problems_are_named(official, tmp_path, edit, message):
    state = dict(official.state_dict())
    edit(state)
    path = _save_official(state, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match=message):
        load_weights(create_model("dsta_mnv2_tiny", compat="official"), path)


def test_three_frame_checkpoint_in_a_five_frame_model_is_named(official):
    five = create_model("dsta_mnv2_tiny", compat="official", frames=5)
    match = r"Temporal_pos_embed: checkpoint \(1, 3, 16\) vs model \(1, 5, 16\).*5 frames"
    with pytest.raises(CheckpointError, match=match):
        load_weights(five, {"state_dict": official.state_dict()})


def test_conv_decoder_model_explains_how_to_load_an_official_checkpoint(official):
    with pytest.raises(CheckpointError, match=r"jfd='pool'"):
        load_weights(create_model("dsta_mnv2_tiny"), {"state_dict": official.state_dict()})


def test_another_models_checkpoint_is_rejected_naming_the_expected_prefixes():
    foreign = {"model_state_dict": {"backbone.patch_embed.projection.weight": torch.zeros(8, 3, 16, 16)}}
    match = r"not an official DSTA checkpoint: expected keys under preact\..*found backbone"
    with pytest.raises(CheckpointError, match=match):
        load_weights(create_model("dsta_mnv2_tiny", compat="official"), foreign)
    tar = create_model("tar_vitpose_s_tiny")
    with pytest.raises(CheckpointError, match="not an official DSTA checkpoint"):
        load_weights(create_model("dsta_mnv2_tiny"), {"model_state_dict": tar.state_dict()})


def test_five_frame_window_uses_every_frame_and_composes_from_stages():
    torch.manual_seed(0)
    model = _randomise(create_model("dsta_mnv2_tiny", frames=5), seed=5)
    assert model.frame_offsets == (-2, -1, 0, 1, 2) and model.current == 2
    assert model.temporal_pos.shape == (1, 5, 16)
    x = _window(model, seed=6)
    with torch.no_grad():
        base = model(x)
        tokens = torch.stack([model.run_stage("frame", image=x[:, t])["tokens"] for t in range(5)], 1)
        composed = model.run_stage("temporal", tokens=tokens)
        for k in base:
            torch.testing.assert_close(base[k], composed[k], rtol=1e-5, atol=1e-5)
        for t in range(5):
            y = x.clone()
            y[:, t] = torch.randn(y[:, t].shape, generator=torch.Generator().manual_seed(t))
            assert not torch.allclose(model(y)["coords"], base["coords"]), f"frame {t} has no effect"


def test_spatial_branch_reads_only_the_current_frame():
    torch.manual_seed(0)
    model = _randomise(create_model("dsta_mnv2_tiny"), seed=7)
    tokens = model.example_inputs("temporal", batch=2, seed=1)["tokens"]
    with torch.no_grad():
        model.temporal_blocks.requires_grad_(False)
        # With the temporal branch's weight in the fusion zeroed, only the current frame may matter.
        model.fuse.weight[:, 0] = 0.0
        base = model.run_stage("temporal", tokens=tokens)
        other = tokens.clone()
        other[:, 0], other[:, 2] = tokens[:, 2], tokens[:, 0]  # (LayerNorm would cancel a constant shift)
        torch.testing.assert_close(model.run_stage("temporal", tokens=other)["coords"], base["coords"])
        cur = tokens.clone()
        cur[:, 1] = tokens[:, 0]
        assert not torch.allclose(model.run_stage("temporal", tokens=cur)["coords"], base["coords"])


def test_forward_official_input_conventions():
    torch.manual_seed(0)
    model = _randomise(create_model("dsta_mnv2_tiny", compat="official"), seed=8)
    x = _window(model, seed=9)
    x9 = torch.cat([x[:, t] for t in range(3)], dim=1)  # previous, current, next on channels
    with torch.no_grad():
        ref = model(x)
        for got in (model.forward_official(x9), model.forward_official(x)):
            for k in ref:
                torch.testing.assert_close(got[k], ref[k])
    with pytest.raises(ValueError, match=r"expects \(B, 9, H, W\)"):
        model.forward_official(x9[:, :6])


def test_codec_outputs_and_input_checks():
    model = create_model("dsta_mnv2_tiny").eval()
    with torch.no_grad():
        out = model(_window(model))
    assert out["coords"].shape == (2, 17, 2) and out["sigma"].shape == (2, 17, 2)
    assert ((out["sigma"] > 0) & (out["sigma"] < 1)).all()
    torch.testing.assert_close(out["scores"], 1 - out["sigma"].mean(-1))
    with pytest.raises(ValueError, match=r"tokens \(B, 3, 17, 16\)"):
        model.run_stage("temporal", tokens=torch.zeros(2, 5, 17, 16))
    with pytest.raises(ValueError, match="input size must match"):
        model.run_stage("frame", image=torch.zeros(1, 3, 96, 64))
    with pytest.raises(ValueError, match="frames"):
        create_model("dsta_mnv2_tiny", frames=4)
    with pytest.raises(ValueError, match="compat"):
        create_model("dsta_mnv2_tiny", compat="legacy")


@pytest.mark.slow
def test_full_model_stage_io_and_size():
    model = create_model("dsta_mnv2").eval()
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(2.4e6, rel=0.05)
    with torch.no_grad():
        tok = model.run_stage("frame", image=torch.zeros(2, 3, 256, 192))["tokens"]
        assert tok.shape == (2, 17, 32)
        out = model.run_stage("temporal", tokens=torch.stack([tok] * 3, 1))
    shapes = {k: tuple(v.shape) for k, v in out.items()}
    assert shapes == {"coords": (2, 17, 2), "sigma": (2, 17, 2), "scores": (2, 17)}
    official = create_model("dsta_mnv2", compat="official")
    assert official.jfd.fc.weight.shape == (17 * 32, 1280)


# ---- the COCO-17 build -------------------------------------------------------------------------


def test_coco_build_is_the_same_network_slot_for_slot():
    """dsta_mnv2_coco groups the same slots, so with dsta_mnv2's weights (and its padding) it computes
    the same outputs; only the names on the slots differ."""
    from edgepose.core.keypoints import COCO17
    from edgepose.zoo import get_spec

    torch.manual_seed(0)
    pt = _randomise(create_model("dsta_mnv2_tiny"), seed=12)
    coco = create_model("dsta_mnv2_coco_tiny", pad="torch").eval()
    coco.load_state_dict(pt.state_dict())
    assert torch.equal(coco.group_index, pt.group_index) and torch.equal(coco.rest_index, pt.rest_index)
    x = _window(pt, seed=13)
    with torch.no_grad():
        a, b = pt(x), coco(x)
    for k in a:
        torch.testing.assert_close(a[k], b[k])
    assert get_spec("dsta_mnv2_coco").layout == "coco17" and coco.layout == "coco17"
    # the head group is nose and eyes; the ears stay outside the spatial blocks, as PoseTrack's empty ears
    head = [COCO17.names[i] for i in coco.group_index[:3].tolist()]
    assert sorted(head) == ["left_eye", "nose", "right_eye"]
    assert [COCO17.names[i] for i in coco.rest_index.tolist()] == ["left_ear", "right_ear"]
    # every body group is one side's joints, so flipping maps groups onto groups
    flip = COCO17.flip_index
    groups = [tuple(coco.group_index[i : i + 3].tolist()) for i in range(0, 15, 3)]
    assert {tuple(sorted(flip[j] for j in g)) for g in groups} == {tuple(sorted(g)) for g in groups}


def test_coco_build_refuses_the_official_posetrack_checkpoint(official):
    coco = create_model("dsta_mnv2_coco_tiny", jfd="pool")
    with pytest.raises(CheckpointError, match=r"posetrack17 layout.*dsta_mnv2_coco_tiny is coco17"):
        load_weights(coco, {"state_dict": official.state_dict()})
    with pytest.raises(ValueError, match="compat='official' reproduces the official posetrack17"):
        create_model("dsta_mnv2_coco_tiny", compat="official")
    with pytest.raises(ValueError, match="DSTA layouts"):
        create_model("dsta_mnv2_tiny", layout="posetrack15")


def test_coco_build_reads_labels_in_coco17(tmp_path):
    """Training data convert to the model's layout by name: COCO-named labels keep their eyes and ears,
    PoseTrack-named ones give COCO's nose and body (eyes and ears unlabelled)."""
    from edgepose.data.synth_dataset import write_dataset
    from edgepose.data.synthetic import SynthConfig
    from edgepose.training import datasets as D
    from edgepose.zoo import get_spec

    write_dataset(tmp_path, SynthConfig.preset("easy", width=128, height=96, frames=3), videos=1, seed=1)
    spec = get_spec("dsta_mnv2_coco_tiny")
    split = D.load_split(tmp_path, "train", spec)
    person = next(p for v in split.records for f in v.frames for p in f.persons if p.labelled.any())
    assert person.layout == "coco17"
    assert not person.labelled[1:5].any() and person.labelled[5:].any()
    item = D.topdown_dataset(spec, split, train=False)[0]
    assert item["frames"].shape == (3, 3, 64, 48) and item["target_weight"].shape == (17,)

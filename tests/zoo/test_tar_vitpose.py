"""TAR-ViTPose: official checkpoints, the official forward's reshapes, masks and windows.

The official model (zgspose/TARViTPose, models/best/TAR_ViTPose.py) is rebuilt here
as a reference with the same module tree (so its ``state_dict`` has the official
key names, duplicates included) and the same forward, using torch's
``nn.MultiheadAttention``; an official-format checkpoint saved from it must load
into our model and, with ``compat="official"``, give the same heatmaps.
"""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from edgepose.zoo import CheckpointError, create_model, load_weights
from edgepose.zoo.checkpoints import save_checkpoint
from edgepose.zoo.layers.deconv_head import DeconvHeatmapHead
from edgepose.zoo.layers.mmpretrain_vit import ViTEncoder
from edgepose.zoo.tar_vitpose import _TINY


class _RefAttention(nn.Module):  # official CrossAttention / SelfAttention: norm(q + mha(q, kv, kv))
    def __init__(self, dim, heads):
        super().__init__()
        self.mha = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm = nn.LayerNorm(dim)

    def forward(self, q, kv=None, attn_mask=None):
        kv = q if kv is None else kv
        return self.norm(q + self.mha(q, kv, kv, attn_mask=attn_mask)[0])


class _RefFFN(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim)
        self.drop, self.norm = nn.Dropout(0.0), nn.LayerNorm(dim)

    def forward(self, x):
        return self.norm(x + self.drop(self.fc2(self.act(self.fc1(x)))))


class _RefTAR(nn.Module):
    """The official module tree: ``model`` (mmpose estimator) plus aliases of its parts."""

    def __init__(self, cfg, frames, threshold=0.2):
        super().__init__()
        self.threshold = threshold
        self.transpose_masks = False  # True: per-joint rows (what the paper describes), for contrast
        dim, j = cfg["embed_dim"], cfg["num_joints"]
        self.model = nn.Module()
        self.model.backbone = ViTEncoder(
            cfg["input_size"], 16, 2, dim, cfg["depth"], cfg["vit_heads"], 4.0, 0.0
        )
        self.model.head = DeconvHeatmapHead(dim, j, cfg["deconv_channels"])
        self.backbone = self.model.backbone
        self.heatmap_head = nn.Sequential(self.model.head.deconv_layers, self.model.head.final_layer)
        self.dim, self.joints, self.frames, self.heads = dim, j, frames, cfg["attn_heads"]
        self.query_feat, self.query_pe = nn.Embedding(j, dim), nn.Embedding(j, dim)
        n = cfg["jta_layers"]
        self.masked_attention_layers = nn.ModuleList(_RefAttention(dim, self.heads) for _ in range(n))
        self.self_attention_layers = nn.ModuleList(_RefAttention(dim, self.heads) for _ in range(n))
        self.ffn_layers = nn.ModuleList(_RefFFN(dim) for _ in range(n))
        self.cross_attention = _RefAttention(dim, self.heads)

    def forward(self, x):
        b, t, c3, h, w = x.shape
        feats = self.backbone(x.view(-1, c3, h, w))
        fh, fw = feats.shape[2:]
        init = self.heatmap_head(feats)
        lo, hi = init.amin((2, 3), keepdim=True), init.amax((2, 3), keepdim=True)
        normed = (init - lo) / (hi - lo + 1e-6)
        small = F.interpolate(normed, size=(fh, fw), mode="bilinear", align_corners=False)
        mask = (small < self.threshold).view(b, t, self.joints, fh, fw)
        mask = mask.flatten(3).unsqueeze(1).repeat(1, self.heads, 1, 1, 1).flatten(0, 1)
        q = self.query_feat.weight.unsqueeze(0).repeat(b, 1, 1)
        q = q + self.query_pe.weight.unsqueeze(0).repeat(b, 1, 1)
        tokens = feats.view(b, t, self.dim, fh, fw).flatten(3).reshape(b, t, fh * fw, self.dim)
        centre = tokens[:, t // 2]
        tokens = tokens.flatten(1, 2)
        self.masked_fraction = mask.float().mean().item()
        if self.transpose_masks:
            mask = mask.view(-1, t, self.joints, fh * fw).transpose(1, 2).flatten(2)
        else:
            mask = mask.view(-1, self.joints, t, fh * fw).flatten(2)
        jta = zip(self.masked_attention_layers, self.self_attention_layers, self.ffn_layers)
        for cross, selfa, ffn in jta:
            q = ffn(selfa(cross(q, tokens, mask)))
        centre = self.cross_attention(centre, q)
        return self.heatmap_head(centre.view(b, self.dim, fh, fw))


def _randomise(module, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in module.state_dict().items():
            if t.is_floating_point():
                if name.endswith("running_var"):
                    t.copy_(torch.rand(t.shape, generator=g) + 0.5)
                else:
                    t.copy_(torch.randn(t.shape, generator=g) * 0.2)
    return module.eval()


def _official_state(frames=3, seed=0, threshold=0.2):
    ref = _randomise(_RefTAR(_TINY, frames, threshold), seed)
    return ref, {k: v.clone() for k, v in ref.state_dict().items()}


def _clip(model, batch=2, seed=7):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, model.num_frames, 3, *model.input_size, generator=g)


@pytest.mark.parametrize("frames", [3, 5])
def test_official_checkpoint_reproduces_the_official_forward(tmp_path, frames):
    # Random weights give flat heatmaps; a higher threshold masks about half the tokens so the
    # mask layout is exercised (the official threshold, 0.2, is a config value in both models).
    ref, state = _official_state(frames, threshold=0.55)
    assert any(k.startswith("model.backbone.") for k in state)  # the official duplicates are there
    path = tmp_path / "tar.pt"
    torch.save({"model_state_dict": state, "epoch": 3}, path)

    model = create_model("tar_vitpose_s_tiny", compat="official", frames=frames, mask_threshold=0.55).eval()
    report = load_weights(model, path)
    assert report.source == "official"
    assert report.ignored and all(k.startswith("model.") for k in report.ignored)

    x = _clip(model)
    with torch.no_grad():
        expected = ref(x)
        ours = model(x)["heatmaps"]
    assert torch.isfinite(expected).all()
    assert 0.2 < ref.masked_fraction < 0.95  # masks are neither empty nor full, so their layout matters
    torch.testing.assert_close(ours, expected, rtol=1e-4, atol=1e-5)
    ref.transpose_masks = True
    with torch.no_grad():
        assert not torch.allclose(ref(x), ours, atol=1e-4)  # the mask view quirk is what we reproduce

    paper = create_model("tar_vitpose_s_tiny", frames=frames, mask_threshold=0.55).eval()
    load_weights(paper, path)
    with torch.no_grad():
        assert not torch.allclose(paper(x)["heatmaps"], expected, atol=1e-4)  # the quirks matter


def test_official_keys_and_shapes_at_full_size():
    model = create_model("tar_vitpose_s")
    ref_names = {  # official key -> shape, read from mmpretrain's ViT, mmpose's HeatmapHead, TAR_ViTPose.py
        "backbone.patch_embed.projection.weight": (384, 3, 16, 16),
        "backbone.pos_embed": (1, 192, 384),
        "backbone.layers.11.ln1.weight": (384,),
        "backbone.layers.11.attn.qkv.weight": (1152, 384),
        "backbone.layers.11.attn.proj.bias": (384,),
        "backbone.layers.11.ln2.bias": (384,),
        "backbone.layers.11.ffn.layers.0.0.weight": (1536, 384),
        "backbone.layers.11.ffn.layers.1.weight": (384, 1536),
        "backbone.ln1.weight": (384,),
        "heatmap_head.0.0.weight": (384, 256, 4, 4),
        "heatmap_head.0.1.running_var": (256,),
        "heatmap_head.0.3.weight": (256, 256, 4, 4),
        "heatmap_head.0.4.num_batches_tracked": (),
        "heatmap_head.1.weight": (17, 256, 1, 1),
        "query_feat.weight": (17, 384),
        "query_pe.weight": (17, 384),
        "masked_attention_layers.5.mha.in_proj_weight": (1152, 384),
        "masked_attention_layers.5.mha.out_proj.weight": (384, 384),
        "self_attention_layers.5.mha.in_proj_bias": (1152,),
        "self_attention_layers.5.norm.weight": (384,),
        "ffn_layers.5.fc1.weight": (768, 384),
        "ffn_layers.5.fc2.weight": (384, 768),
        "ffn_layers.5.norm.bias": (384,),
        "cross_attention.mha.in_proj_weight": (1152, 384),
        "cross_attention.norm.weight": (384,),
    }
    fake = {k: torch.zeros(s) for k, s in ref_names.items()}
    converted, _ = model.convert_official_state(fake)
    own = model.state_dict()
    for k, v in converted.items():
        assert k in own, k
        assert tuple(own[k].shape) == tuple(v.shape), k
    assert len(model.masked_attention_layers) == 6 and model.backbone.layers[0].attn.heads == 12


def test_class_token_position_slot_is_dropped_like_mmpretrain():
    ref, state = _official_state()
    pos = state["backbone.pos_embed"]
    state["backbone.pos_embed"] = torch.cat([torch.full_like(pos[:, :1], 9.0), pos], dim=1)
    model = create_model("tar_vitpose_s_tiny", compat="official").eval()
    load_weights(model, {"model_state_dict": state})
    torch.testing.assert_close(model.backbone.pos_embed.detach(), pos)


def test_mmpose_vitpose_checkpoint_initialises_encoder_and_decoder_only():
    ref, state = _official_state()
    vitpose = {k.replace("model.", "", 1): v for k, v in state.items() if k.startswith("model.")}
    model = create_model("tar_vitpose_s_tiny")
    with pytest.raises(CheckpointError, match="missing keys: cross_attention"):
        load_weights(model, {"state_dict": vitpose})
    load_weights(model, {"state_dict": vitpose}, strict=False)
    torch.testing.assert_close(model.heatmap_head.final_layer.weight.detach(), ref.heatmap_head[1].weight)


def test_single_frame_model_is_vitpose_and_starts_tar(tmp_path):
    """The ViTPose view runs encoder + decoder on one frame and shares TAR's parameters; its
    checkpoint starts a TAR-ViTPose's encoder and decoder, the temporal modules keeping their init."""
    torch.manual_seed(0)
    tar = create_model("tar_vitpose_s_tiny").eval()
    vitpose = tar.single_frame_model().eval()
    assert set(vitpose.state_dict()) == {
        k for k in tar.state_dict() if k.startswith(("backbone.", "heatmap_head."))
    }
    frames = torch.randn(2, 3, 3, 64, 48)
    with torch.no_grad():
        want = tar.heatmap_head(tar.backbone(frames[:, 1]))
        torch.testing.assert_close(vitpose(frames[:, 1])["heatmaps"], want)
        torch.testing.assert_close(vitpose(frames)["heatmaps"], want)  # a window: its current frame
    with pytest.raises(ValueError, match=r"expected an image \(B, 3, H, W\)"):
        vitpose(torch.randn(3, 64, 48))
    assert vitpose.spec_name == "tar_vitpose_s_tiny" and vitpose.frame_offsets == (0,)

    path = save_checkpoint(vitpose, tmp_path / "vitpose.pt")
    torch.manual_seed(1)
    fresh = create_model("tar_vitpose_s_tiny")
    queries = fresh.query_feat.weight.detach().clone()
    with pytest.raises(CheckpointError, match="missing keys: cross_attention"):
        load_weights(fresh, path)
    load_weights(fresh, path, strict=False)
    torch.testing.assert_close(fresh.backbone.pos_embed, tar.backbone.pos_embed)
    torch.testing.assert_close(fresh.heatmap_head.final_layer.weight, tar.heatmap_head.final_layer.weight)
    assert torch.equal(fresh.query_feat.weight, queries)


def test_bad_official_checkpoints_are_named(tmp_path):
    _, state = _official_state()
    model = create_model("tar_vitpose_s_tiny")

    missing = {k: v for k, v in state.items() if k != "ffn_layers.1.fc2.weight"}
    with pytest.raises(CheckpointError, match=r"missing keys: ffn_layers\.1\.fc2\.weight"):
        load_weights(model, {"model_state_dict": missing})

    extra = {**state, "masked_attention_layers.7.norm.weight": torch.zeros(32)}
    with pytest.raises(CheckpointError, match=r"unexpected keys: masked_attention_layers\.7\.norm\.weight"):
        load_weights(model, {"model_state_dict": extra})

    bad = {**state, "query_pe.weight": torch.zeros(15, 32)}
    with pytest.raises(CheckpointError, match=r"query_pe\.weight: checkpoint \(15, 32\) vs model \(17, 32\)"):
        load_weights(model, {"model_state_dict": bad})

    # DSTA's official layout (ResNet backbone + head) and SHaRPose's (timm-named ViT) are not ours.
    dsta = {"backbone.conv1.weight": torch.zeros(64, 3, 7, 7), "head.fc_coord.weight": torch.zeros(2, 8)}
    sharpose = {
        "backbone.patch_embed.proj.weight": torch.zeros(8, 3, 16, 16),
        "keypoint_head.final_layer.bias": torch.ones(1),
    }
    for foreign in (dsta, sharpose):
        path = tmp_path / "foreign.pt"
        torch.save({"state_dict": foreign}, path)
        named = r"not a TAR-ViTPose checkpoint.*found top-level prefixes \['backbone'"
        with pytest.raises(CheckpointError, match=named):
            load_weights(model, path)


def test_joint_masks_follow_each_joints_heatmap_peak():
    model = create_model("tar_vitpose_s_tiny").eval()  # 64x48 input: 16x12 heatmaps, 4x3 tokens
    ys, xs = torch.meshgrid(torch.arange(16.0), torch.arange(12.0), indexing="ij")
    peaks = [(1.5, 1.5), (13.5, 9.5)]
    hm = torch.stack([torch.exp(-((xs - x) ** 2 + (ys - y) ** 2) / 8) * 0.3 + 0.05 for y, x in peaks])
    mask = model.joint_masks(hm[None])[0]
    assert mask.shape == (2, 4, 3) and set(mask.unique().tolist()) <= {0.0, 1.0}
    assert mask[0, 0, 0] == 1 and mask[0, 3, 2] == 0
    assert mask[1, 3, 2] == 1 and mask[1, 0, 0] == 0
    # The threshold is on the min-max normalised map, so a scaled heatmap gives the same mask.
    torch.testing.assert_close(model.joint_masks(hm[None] * 40 - 3)[0], mask)


@torch.no_grad()
def test_paper_masks_are_per_joint_spatial_and_official_ones_are_not():
    """With masks open only at token 0, auxiliary frames' other tokens cannot matter (paper mode)."""
    for compat, should_change in (("paper", False), ("official", True)):
        torch.manual_seed(0)
        model = _randomise(create_model("tar_vitpose_s_tiny", compat=compat), 3)
        ex = model.example_inputs("temporal", batch=2, seed=1)
        masks = torch.zeros_like(ex["joint_masks"])
        masks[..., 0, 0] = 1.0
        base = model.run_stage("temporal", features=ex["features"], joint_masks=masks)["heatmaps"]
        moved = ex["features"].clone()
        moved[:, [0, 2], :, 1:, :] += torch.randn_like(moved[:, [0, 2], :, 1:, :])
        out = model.run_stage("temporal", features=moved, joint_masks=masks)["heatmaps"]
        assert (not torch.allclose(out, base, atol=1e-5)) == should_change, compat


@torch.no_grad()
def test_empty_masks_give_finite_heatmaps_and_masking_can_be_turned_off():
    model = create_model("tar_vitpose_s_tiny").eval()
    ex = model.example_inputs("temporal", batch=2)
    feats, masks = ex["features"], ex["joint_masks"]
    out = model.run_stage("temporal", features=feats, joint_masks=torch.zeros_like(masks))
    assert torch.isfinite(out["heatmaps"]).all()
    ones = model.run_stage("temporal", features=feats, joint_masks=torch.ones_like(masks))
    torch.testing.assert_close(out["heatmaps"], ones["heatmaps"])  # empty rows attend everywhere
    unmasked = create_model("tar_vitpose_s_tiny", use_mask=False).eval()
    unmasked.load_state_dict(model.state_dict())
    torch.testing.assert_close(unmasked.run_stage("temporal", **ex)["heatmaps"], ones["heatmaps"])


def test_five_frame_window_and_shapes():
    model = create_model("tar_vitpose_s_tiny", frames=5).eval()
    assert model.frame_offsets == (-2, -1, 0, 1, 2)
    x = _clip(model, batch=2)
    with torch.no_grad():
        frame = model.run_stage("frame", image=x[:, 0])
        assert frame["features"].shape == (2, 32, 4, 3) and frame["joint_masks"].shape == (2, 17, 4, 3)
        assert model(x)["heatmaps"].shape == (2, 17, 16, 12)
    with pytest.raises(ValueError, match="built for 5 frames got a window of 3"):
        model.run_stage("temporal", **create_model("tar_vitpose_s_tiny").example_inputs("temporal"))
    with pytest.raises(ValueError, match="frames must be odd"):
        create_model("tar_vitpose_s_tiny", frames=4)
    with pytest.raises(ValueError, match="compat must be one of"):
        create_model("tar_vitpose_s_tiny", compat="mmpose")


@pytest.mark.slow
def test_full_size_stage_io_and_official_forward():
    model = create_model("tar_vitpose_s", compat="official").eval()
    x = _clip(model, batch=1)
    with torch.no_grad():
        frame = model.run_stage("frame", image=x[:, 1])
        assert frame["features"].shape == (1, 384, 16, 12) and frame["joint_masks"].shape == (1, 17, 16, 12)
        assert model(x)["heatmaps"].shape == (1, 17, 64, 48)

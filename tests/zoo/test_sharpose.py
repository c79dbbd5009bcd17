"""SHaRPose: official checkpoint layout, the official forward, and the coarse/fine split."""

import math

import pytest
import torch
import torch.nn.functional as F

from edgepose.zoo import CheckpointError, create_model, get_spec, load_weights
from edgepose.zoo.sharpose import to_official_key

TINY = "sharpose_s_tiny"


def _model(compat="paper", seed=0, name=TINY):
    torch.manual_seed(seed)
    return create_model(name, compat=compat).eval()


def official_keys(depth: int, two_layer_head: bool) -> set[str]:
    """Every key of AnxQ/sharpose's StatedTopDown(SHaRPose backbone, SHaRPoseQPHeatmapHead), written from
    the official module tree (models/sharpose.py, models/sharpose_qp_heatmap_head.py)."""
    wb = ("weight", "bias")
    keys = {
        "backbone.keypoint_tokens",
        "backbone.quality_token",
        "backbone.pos_embed_list.0",
        "backbone.pos_embed_list.1",
    }
    keys |= {f"backbone.patch_embed.proj.{s}" for s in wb}
    for i in range(depth):
        for layer in ("norm1", "attn.qkv", "attn.proj", "norm2", "mlp.fc1", "mlp.fc2"):
            keys |= {f"backbone.blocks.{i}.{layer}.{s}" for s in wb}
    for layer in (
        "norm",
        "reuse_block.0",
        "reuse_block.1.fc1",
        "reuse_block.1.fc2",
        "quality_predictor.norm",
        "quality_predictor.mlp.0",
        "quality_predictor.mlp.3",
        "quality_predictor.mlp.6",
    ):
        keys |= {f"backbone.{layer}.{s}" for s in wb}
    for i in (0, 1, 3, 4) if two_layer_head else (0, 1):
        keys |= {f"keypoint_head.heatmap_mlp.{i}.{s}" for s in wb}
    return keys


def official_state(model) -> dict[str, torch.Tensor]:
    return {to_official_key(k): v.clone() for k, v in model.state_dict().items()}


def official_forward(sd, img, *, cfg, compat):
    """The official SHaRPose forward (eval, gate off), re-derived from models/sharpose.py and run on an
    official-layout state dict: argsort ranking, get_index, nearest-upsampled reuse tokens, coarse tokens
    of the unselected patches, all in the official token order."""
    m, p, heads, depth = cfg["num_joints"], cfg["patch_size"], cfg["heads"], cfg["depth"]
    (ch, cw), (h, w) = cfg["coarse_size"], cfg["input_size"]
    gh, gw, fh, fw = ch // p, cw // p, h // p, w // p
    n = gh * gw

    def lin(x, k):
        return F.linear(x, sd[k + ".weight"], sd[k + ".bias"])

    def ln(x, k):
        return F.layer_norm(x, (x.shape[-1],), sd[k + ".weight"], sd[k + ".bias"])

    def block(x, i):
        pre = f"backbone.blocks.{i}."
        b, t, c = x.shape
        q, k, v = (
            lin(ln(x, pre + "norm1"), pre + "attn.qkv")
            .reshape(b, t, 3, heads, c // heads)
            .permute(2, 0, 3, 1, 4)
        )
        attn = ((q @ k.transpose(-2, -1)) * (c // heads) ** -0.5).softmax(-1)
        x = x + lin((attn @ v).transpose(1, 2).reshape(b, t, c), pre + "attn.proj")
        x = x + lin(F.gelu(lin(ln(x, pre + "norm2"), pre + "mlp.fc1")), pre + "mlp.fc2")
        return x, attn

    def embed(x):
        return (
            F.conv2d(
                x, sd["backbone.patch_embed.proj.weight"], sd["backbone.patch_embed.proj.bias"], stride=p
            )
            .flatten(2)
            .transpose(1, 2)
        )

    def decode(tokens):
        hm = sd.keys()
        x = lin(ln(tokens, "keypoint_head.heatmap_mlp.0"), "keypoint_head.heatmap_mlp.1")
        if "keypoint_head.heatmap_mlp.4.weight" in hm:
            x = lin(ln(F.gelu(x), "keypoint_head.heatmap_mlp.3"), "keypoint_head.heatmap_mlp.4")
        return x.reshape(x.shape[0], m, *cfg["heatmap_size"])

    b = img.shape[0]
    small = (
        F.interpolate(img, size=(ch, cw), mode="bilinear")
        if compat == "official"
        else F.avg_pool2d(img, h // ch)
    )
    x = torch.cat(
        (
            sd["backbone.quality_token"].expand(b, -1, -1),
            sd["backbone.keypoint_tokens"].expand(b, -1, -1),
            embed(small) + sd["backbone.pos_embed_list.0"],
        ),
        dim=1,
    )
    embedding_x1 = x
    ga = 0
    for i in range(depth):
        x, attn = block(x, i)
        if i in range(depth // 4, depth):
            ga = 0.99 * ga + 0.01 * attn
    x = ln(x, "backbone.norm")
    quality_token, kp, feat = x[:, :1], x[:, 1 : m + 1], x[:, m + 1 :]
    qx = ln(quality_token.mean(dim=1), "backbone.quality_predictor.norm")
    for k in (
        "backbone.quality_predictor.mlp.0",
        "backbone.quality_predictor.mlp.3",
        "backbone.quality_predictor.mlp.6",
    ):
        qx = F.gelu(lin(qx, k))
    # reuse: MLP on the coarse tokens, nearest-upsampled to the fine grid, zeros for the keypoint slots
    feat = lin(
        F.gelu(lin(ln(feat, "backbone.reuse_block.0"), "backbone.reuse_block.1.fc1")),
        "backbone.reuse_block.1.fc2",
    )
    feat = (
        F.interpolate(feat.transpose(1, 2).reshape(b, -1, gh, gw), (fh, fw), mode="nearest")
        .flatten(2)
        .transpose(1, 2)
    )
    feat = torch.cat((torch.zeros(b, m, feat.shape[-1]), feat), dim=1)
    x2 = torch.cat(
        (sd["backbone.keypoint_tokens"].expand(b, -1, -1), embed(img) + sd["backbone.pos_embed_list.1"]), 1
    )
    embedding_x2 = x2 + feat
    rows = (
        ga.mean(dim=1)[:, 1:m, m + 1 :].sum(dim=1)
        if compat == "official"
        else ga.mean(dim=1)[:, 1 : m + 1, m + 1 :].mean(dim=1)
    )
    k = math.ceil(cfg["alpha"] * n)
    policy = torch.argsort(rows, dim=1, descending=True)
    important, unimportant = policy[:, :k], policy[:, k:]
    rest = torch.gather(embedding_x1, 1, (unimportant + m + 1)[..., None].expand(-1, -1, x.shape[-1]))
    i, j = important // gw, important % gw
    base = i * (fh // gh) * fw + j * (fw // gw)
    fine_idx = torch.cat([base + di * fw + dj for di in range(fh // gh) for dj in range(fw // gw)], dim=1)
    idx = torch.cat((torch.arange(m).expand(b, -1), fine_idx + m), dim=1)
    chosen = torch.gather(embedding_x2, 1, idx[..., None].expand(-1, -1, x.shape[-1]))
    x = torch.cat((chosen, rest), dim=1)
    for layer in range(depth):
        x, _ = block(x, layer)
    x = ln(x, "backbone.norm")
    return {
        "coarse_heatmaps": decode(kp),
        "heatmaps": decode(x[:, :m]),
        "quality": qx[:, 0],
        "relevance": rows,
        "patch_index": important,
    }


# -- checkpoints -------------------------------------------------------------------------------------


def test_our_keys_map_onto_exactly_the_official_layout():
    for name in (TINY, "sharpose_s"):
        cfg = get_spec(name).config
        two_layer = cfg["dim"] < cfg["heatmap_size"][0] * cfg["heatmap_size"][1] // 4
        torch.manual_seed(0)
        with torch.device("meta"):
            model = create_model(name)
        assert set(official_state(model)) == official_keys(cfg["depth"], two_layer)


@pytest.mark.parametrize("compat", ["paper", "official"])
def test_official_checkpoint_loads_and_reproduces_the_official_forward(compat, tmp_path):
    src = _model(compat, seed=1)
    path = tmp_path / "sharpose_official.pth"
    torch.save({"state_dict": official_state(src), "meta": {"epoch": 210, "mmpose_version": "0.29.0"}}, path)
    dst = _model(compat, seed=2)
    report = load_weights(dst, path)
    assert report.source == "official" and report.ignored == []
    img = dst.example_image(batch=3, seed=7)
    with torch.no_grad():
        ours, theirs = dst(img), src(img)
        ref = official_forward(
            torch.load(path, weights_only=True)["state_dict"], img, cfg=get_spec(TINY).config, compat=compat
        )
    for key in ours:
        torch.testing.assert_close(ours[key], theirs[key], rtol=0, atol=0)
    assert torch.equal(ours["patch_index"], ref["patch_index"])
    for key in ("heatmaps", "coarse_heatmaps", "quality", "relevance"):
        torch.testing.assert_close(ours[key], ref[key], rtol=1e-5, atol=1e-5)


def _corrupt(model, how):
    sd = official_state(model)
    if how == "missing":
        del sd["backbone.reuse_block.1.fc2.bias"]
        return sd, "missing keys: backbone.reuse_block.1.fc2.bias"
    if how == "extra":
        sd["backbone.cls_token"] = torch.zeros(1, 1, 32)
        return sd, "unexpected keys: backbone.cls_token"
    if how == "shape":
        sd["backbone.pos_embed_list.1"] = torch.zeros(1, 108, 32)
        return sd, r"mis-shaped keys: backbone.pos_embed_list.1: checkpoint \(1, 108, 32\)"
    if how == "vitpose":  # ViTPose-S in mmpose: its ViT-S encoder could start SHaRPose-S, not this tiny one
        sd = {
            "backbone.pos_embed": torch.zeros(1, 193, 384),
            "backbone.patch_embed.proj.weight": torch.zeros(384, 3, 16, 16),
            "backbone.blocks.0.attn.qkv.weight": torch.zeros(1152, 384),
            "backbone.last_norm.weight": torch.zeros(384),
            "keypoint_head.deconv_layers.0.weight": torch.zeros(384, 256, 4, 4),
            "keypoint_head.final_layer.weight": torch.zeros(17, 256, 1, 1),
        }
        return sd, r"ViT encoder does not fit sharpose_s_tiny \(dim 32, 4 blocks, patch 8\): it has 1 blocks"
    # a detector or classifier checkpoint: neither SHaRPose nor a ViT encoder
    sd = {"backbone.conv1.weight": torch.zeros(64, 3, 7, 7), "neck.fpn.weight": torch.zeros(8, 8)}
    return sd, r"not an official SHaRPose checkpoint.*pos_embed_list\.0.*found prefixes: .*backbone\.conv1"


@pytest.mark.parametrize("how", ["missing", "extra", "shape", "vitpose", "other"])
def test_bad_official_checkpoints_name_the_problem(how, tmp_path):
    model = _model()
    sd, message = _corrupt(model, how)
    path = tmp_path / f"{how}.pth"
    torch.save({"state_dict": sd}, path)
    with pytest.raises(CheckpointError, match=message):
        load_weights(model, path)


# -- starting from a plain ViT encoder (the paper's MAE start) -----------------------------------------


def _timm_vit_state(model, with_cls: bool = True) -> dict:
    """The model's encoder as an MAE/timm ViT checkpoint: ``blocks.N.*``, ``patch_embed.proj``, a
    square-free 2-D position table on the fine grid with a class-token entry in front."""
    sd = {}
    for key, value in model.state_dict().items():
        if key.startswith("blocks."):
            sd[key] = value.clone()
        elif key.startswith("patch_embed."):
            sd["patch_embed.proj." + key.split(".")[-1]] = value.clone()
        elif key.startswith("norm."):
            sd[key] = value.clone()
    pos = torch.randn(1, model.fine_grid[0] * model.fine_grid[1], model.dim)
    sd["pos_embed"] = torch.cat((torch.randn(1, 1, model.dim), pos), 1) if with_cls else pos
    sd["cls_token"] = torch.zeros(1, 1, model.dim)
    sd["decoder_embed.weight"] = torch.zeros(8, model.dim)  # MAE's decoder: not ours
    return sd


def test_mae_style_vit_starts_the_shared_encoder_and_leaves_the_rest():
    source, model = _model(seed=1), _model(seed=2)
    sd = _timm_vit_state(source)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    report = load_weights(model, {"model": sd}, strict=False)
    assert sorted(report.ignored) == ["cls_token", "decoder_embed.weight"]
    after = model.state_dict()
    for key in before:
        if key.startswith(("blocks.", "patch_embed.", "norm.")):
            assert torch.equal(after[key], source.state_dict()[key]), key
        elif not key.startswith("pos_embed"):
            assert torch.equal(after[key], before[key]), key  # keypoint/quality tokens, heads: untouched
    # the class-token entry is added to every position and dropped; the fine grid is the source's own
    fine = sd["pos_embed"][:, 1:] + sd["pos_embed"][:, :1]
    torch.testing.assert_close(after["pos_embed_fine"], fine)
    grid = fine.reshape(1, *model.fine_grid, -1).permute(0, 3, 1, 2)
    coarse = F.interpolate(grid, size=model.coarse_grid, mode="bicubic", align_corners=False)
    torch.testing.assert_close(after["pos_embed_coarse"], coarse.flatten(2).transpose(1, 2))


def test_a_vit_encoder_alone_is_not_a_full_sharpose_checkpoint():
    model = _model()
    message = r"does not fit model sharpose_s_tiny: missing keys: head\.0\.bias.*24 in all"
    with pytest.raises(CheckpointError, match=message):
        load_weights(model, _timm_vit_state(model, with_cls=False))


def test_tar_vitpose_encoder_with_another_patch_size_starts_sharpose():
    """mmpretrain names (``layers.N.ln1``, ``ffn.layers.0.0``) and patch 16 -> 8: the kernel is
    resampled so that a flat image still embeds the same."""
    tar = create_model("tar_vitpose_s_tiny")
    cfg = get_spec("tar_vitpose_s_tiny").config
    model = create_model(TINY, depth=cfg["depth"], heads=cfg["vit_heads"], dim=cfg["embed_dim"]).eval()
    encoder = {k: v for k, v in tar.state_dict().items() if k.startswith("backbone.")}
    report = load_weights(model, encoder, strict=False)
    assert (
        report.loaded == 2 + 12 * cfg["depth"] + 2 + 2
    )  # patch embed, blocks, final norm, 2 position tables
    assert torch.equal(model.blocks[1].mlp.fc1.weight, tar.backbone.layers[1].ffn.layers[0][0].weight)
    assert torch.equal(model.norm.weight, tar.backbone.ln1.weight)
    flat = torch.full((1, 3, 16, 16), 0.7)
    with torch.no_grad():
        want = F.conv2d(flat, tar.backbone.patch_embed.projection.weight)
        got = F.conv2d(flat[..., :8, :8], model.patch_embed.weight)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


# -- the coarse/fine split ---------------------------------------------------------------------------


@pytest.mark.parametrize("compat", ["paper", "official"])
def test_forward_is_exactly_coarse_then_topk_then_fine(compat):
    model = _model(compat)
    img = model.example_image(batch=3, seed=11)
    with torch.no_grad():
        full = model(img)
        coarse = model.run_stage("coarse", image=img)
        index = torch.topk(coarse["relevance"], model.num_refined, dim=1, sorted=True).indices
        fine = model.run_stage("fine", image=img, patch_index=index, features=coarse["features"])
    assert torch.equal(full["heatmaps"], fine["heatmaps"])
    assert torch.equal(full["patch_index"], index)
    assert torch.equal(full["coarse_heatmaps"], coarse["heatmaps"])
    assert torch.equal(full["quality"], coarse["quality"]) and full["quality"].shape == (3,)
    assert torch.equal(full["relevance"], coarse["relevance"])


def test_fine_output_depends_on_which_patches_not_their_order():
    model = _model()
    ex = model.example_inputs("fine", batch=2, seed=3)
    n, k = model.num_patches, model.num_refined
    assert n >= 2 and k >= 2
    with torch.no_grad():
        base = model.run_stage("fine", **ex)["heatmaps"]
        others = torch.stack(
            [torch.tensor(sorted(set(range(n)) - set(row.tolist()))) for row in ex["patch_index"]]
        )
        swapped = model.run_stage("fine", **{**ex, "patch_index": others[:, :k]})["heatmaps"]
        shuffled = model.run_stage("fine", **{**ex, "patch_index": ex["patch_index"].flip(1)})["heatmaps"]
    assert (base - swapped).abs().amax(dim=(1, 2, 3)).min() > 1e-4
    torch.testing.assert_close(base, shuffled, rtol=1e-5, atol=1e-5)


def test_fine_stage_rejects_invalid_patch_indices():
    model = _model()
    ex = model.example_inputs("fine", batch=2)
    k, n = model.num_refined, model.num_patches
    bad = {
        "distinct": torch.zeros(2, k, dtype=torch.int64),
        r"lie in \[0, 12\)": torch.full((2, k), n, dtype=torch.int64),
        r"shape \(2, 6\)": ex["patch_index"][:, :-1],
        "must be int64": ex["patch_index"].int(),
    }
    for message, index in bad.items():
        with pytest.raises(ValueError, match=message):
            model.run_stage("fine", **{**ex, "patch_index": index})


def test_compat_modes_differ_only_in_the_documented_quirks():
    paper, official = _model("paper"), _model("official")
    official.load_state_dict(paper.state_dict())
    img = paper.example_image(batch=2, seed=5)
    # At the exact 2x factor the official bilinear resize is the 2x2 mean that paper mode takes.
    torch.testing.assert_close(
        paper._coarse_embedding(img), official._coarse_embedding(img), rtol=0, atol=1e-5
    )
    with torch.no_grad():
        a, b = paper.run_stage("coarse", image=img), official.run_stage("coarse", image=img)
    torch.testing.assert_close(a["heatmaps"], b["heatmaps"], rtol=1e-5, atol=1e-5)
    # Official ranking rows leave out the last keypoint token, so the normalised scores differ.
    share_a, share_b = (r / r.sum(dim=1, keepdim=True) for r in (a["relevance"], b["relevance"]))
    assert not torch.allclose(share_a, share_b, atol=1e-6)
    assert paper.quality_threshold == get_spec("sharpose_s").config["quality_threshold"] == 0.95
    with pytest.raises(ValueError, match="compat must be one of"):
        create_model(TINY, compat="mmpose")


def test_fine_stage_exports_with_a_dynamic_batch_and_runs_in_onnxruntime(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    model = _model("official")
    stage = model.stage("fine").eval()
    ex = tuple(model.example_inputs("fine", batch=2).values())
    batch = torch.export.Dim("batch", min=1, max=64)
    path = tmp_path / "fine.onnx"
    torch.onnx.export(
        stage,
        ex,
        path,
        dynamo=True,
        opset_version=18,
        external_data=False,
        input_names=list(stage.input_names),
        output_names=list(stage.output_names),
        dynamic_shapes=(tuple({0: batch} for _ in ex),),
    )
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    ex3 = model.example_inputs("fine", batch=3, seed=9)
    (got,) = session.run(None, {k: v.numpy() for k, v in ex3.items()})
    with torch.no_grad():
        want = model.run_stage("fine", **ex3)["heatmaps"]
    assert got.shape == tuple(want.shape)
    torch.testing.assert_close(torch.from_numpy(got), want, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_full_size_sharpose_s_matches_the_official_forward():
    model = _model("official", name="sharpose_s")
    assert (model.num_patches, model.num_refined, model.fine_grid) == (48, 24, (16, 12))
    img = model.example_image(batch=1, seed=2)
    with torch.no_grad():
        ours = model(img)
        ref = official_forward(
            official_state(model), img, cfg=get_spec("sharpose_s").config, compat="official"
        )
    assert ours["heatmaps"].shape == (1, 17, 64, 48) and ours["relevance"].shape == (1, 48)
    assert torch.equal(ours["patch_index"], ref["patch_index"])
    for key in ("heatmaps", "coarse_heatmaps", "quality", "relevance"):
        torch.testing.assert_close(ours[key], ref[key], rtol=1e-4, atol=1e-5)

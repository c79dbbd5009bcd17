"""DistilPose-S: official mmpose checkpoint layout, the official forward maths, and its outputs.

The official layout and forward are re-derived here, independently of the
model code, from yshMars/DistilPose (``backbones/stemnet.py``,
``heads/utils/tokenbase.py`` ``DistilPose_base``, ``heads/distilpose_head.py``):
an official-style checkpoint is generated with random values, loaded through
``load_weights``, and our outputs must equal a functional forward that reads
the official keys directly.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from edgepose.zoo import CheckpointError, create_model, get_spec, load_weights
from edgepose.zoo.distilpose import official_to_ours, ours_to_official

HEAD = "keypoint_head.tokenhead."


# --- the official layout, written out from the official modules ---------------------------------


def _bn(prefix, c):
    return {
        f"{prefix}.weight": (c,),
        f"{prefix}.bias": (c,),
        f"{prefix}.running_mean": (c,),
        f"{prefix}.running_var": (c,),
        f"{prefix}.num_batches_tracked": (),
    }


def official_layout(cfg) -> dict[str, tuple]:
    """Key -> shape of an official DistilPose checkpoint's ``state_dict`` for our config dict."""
    w, blocks, d, k = cfg["stem_width"], cfg["stem_blocks"], cfg["dim"], cfg["num_joints"]
    c = 4 * w
    ph, pw = cfg["patch_size"]
    h, wd = cfg["input_size"]
    n_patches = (h // 4 // ph) * (wd // 4 // pw)
    mlp = d * cfg["mlp_ratio"]
    keys = {
        "backbone.conv1.weight": (w, 3, 3, 3),
        **_bn("backbone.bn1", w),
        "backbone.conv2.weight": (w, w, 3, 3),
        **_bn("backbone.bn2", w),
    }
    for i in range(blocks):
        p, cin = f"backbone.layer1.{i}", (w if i == 0 else c)
        keys.update(
            {
                f"{p}.conv1.weight": (w, cin, 1, 1),
                **_bn(f"{p}.bn1", w),
                f"{p}.conv2.weight": (w, w, 3, 3),
                **_bn(f"{p}.bn2", w),
                f"{p}.conv3.weight": (c, w, 1, 1),
                **_bn(f"{p}.bn3", c),
            }
        )
        if i == 0:
            keys.update({f"{p}.downsample.0.weight": (c, w, 1, 1), **_bn(f"{p}.downsample.1", c)})
    keys.update(
        {
            HEAD + "keypoint_token": (1, k, d),
            HEAD + "pos_embedding": (1, n_patches, d),
            HEAD + "patch_to_embedding.weight": (d, ph * pw * c),
            HEAD + "patch_to_embedding.bias": (d,),
        }
    )
    for i in range(cfg["depth"]):
        p = f"{HEAD}transformer.layers.{i}"
        keys.update(
            {
                f"{p}.0.fn.norm.weight": (d,),
                f"{p}.0.fn.norm.bias": (d,),
                f"{p}.0.fn.fn.to_qkv.weight": (3 * d, d),
                f"{p}.0.fn.fn.to_out.0.weight": (d, d),
                f"{p}.0.fn.fn.to_out.0.bias": (d,),
                f"{p}.1.fn.norm.weight": (d,),
                f"{p}.1.fn.norm.bias": (d,),
                f"{p}.1.fn.fn.net.0.weight": (mlp, d),
                f"{p}.1.fn.fn.net.0.bias": (mlp,),
                f"{p}.1.fn.fn.net.3.weight": (d, mlp),
                f"{p}.1.fn.fn.net.3.bias": (d,),
            }
        )
    hid = cfg["hidden_dim"]
    if d <= hid * 0.5:  # the official two-layer head rule
        head = {"0": (d,), "1": (hid, d), "2": (hid,), "3": (5, hid)}
    else:
        head = {"0": (d,), "1": (5, d)}
    for i, wshape in head.items():
        keys[f"{HEAD}mlp_head.{i}.weight"] = wshape
        keys[f"{HEAD}mlp_head.{i}.bias"] = (wshape[0],)
    return keys


def official_sine_table(h, w, d, temperature=10000.0, scale=2 * math.pi, eps=1e-6):
    """The official 'sine' table in float32: cumsum-normalised rows then columns, sin/cos interleaved."""
    ones = torch.ones(1, h, w)
    y = ones.cumsum(1)
    x = ones.cumsum(2)
    y = y / (y[:, -1:, :] + eps) * scale
    x = x / (x[:, :, -1:] + eps) * scale
    half = d // 2
    t = temperature ** (2 * (torch.arange(half, dtype=torch.float32) // 2) / half)

    def enc(v):
        a = v[..., None] / t
        return torch.stack((a[..., 0::2].sin(), a[..., 1::2].cos()), dim=4).flatten(3)

    return torch.cat((enc(y), enc(x)), dim=3).reshape(1, h * w, d)


def random_official_state(cfg, seed=0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in official_layout(cfg).items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(1234, dtype=torch.long)
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=g) + 0.5
        elif key.endswith("pos_embedding"):
            ph, pw = cfg["patch_size"]
            h, w = cfg["input_size"]
            state[key] = official_sine_table(h // 4 // ph, w // 4 // pw, cfg["dim"])
        else:
            std = 0.1 if len(shape) > 1 else 0.5
            state[key] = torch.randn(shape, generator=g) * std + (1.0 if key.endswith("norm.weight") else 0.0)
    return state


# --- the official forward, reading official keys -------------------------------------------------


def _bn_apply(sd, p, x):
    stats = sd[f"{p}.running_mean"], sd[f"{p}.running_var"]
    return F.batch_norm(x, *stats, sd[f"{p}.weight"], sd[f"{p}.bias"], training=False, eps=1e-5)


def official_forward(sd, cfg, image):
    x = image
    for i in (1, 2):
        x = F.conv2d(x, sd[f"backbone.conv{i}.weight"], stride=2, padding=1)
        x = F.relu(_bn_apply(sd, f"backbone.bn{i}", x))
    for i in range(cfg["stem_blocks"]):
        p = f"backbone.layer1.{i}"
        y = F.relu(_bn_apply(sd, f"{p}.bn1", F.conv2d(x, sd[f"{p}.conv1.weight"])))
        y = F.relu(_bn_apply(sd, f"{p}.bn2", F.conv2d(y, sd[f"{p}.conv2.weight"], padding=1)))
        y = _bn_apply(sd, f"{p}.bn3", F.conv2d(y, sd[f"{p}.conv3.weight"]))
        short = x if i else _bn_apply(sd, f"{p}.downsample.1", F.conv2d(x, sd[f"{p}.downsample.0.weight"]))
        x = F.relu(y + short)
    b, c, h, w = x.shape
    p1, p2 = cfg["patch_size"]
    # 'b c (h p1) (w p2) -> b (h w) (p1 p2 c)'
    t = x.reshape(b, c, h // p1, p1, w // p2, p2).permute(0, 2, 4, 3, 5, 1).reshape(b, -1, p1 * p2 * c)
    t = F.linear(t, sd[HEAD + "patch_to_embedding.weight"], sd[HEAD + "patch_to_embedding.bias"])
    pos = sd[HEAD + "pos_embedding"]
    k, d, heads = cfg["num_joints"], cfg["dim"], cfg["heads"]
    x = torch.cat([sd[HEAD + "keypoint_token"].expand(b, -1, -1), t + pos[:, : t.shape[1]]], dim=1)
    n = x.shape[1]
    for i in range(cfg["depth"]):
        p = f"{HEAD}transformer.layers.{i}"
        if i > 0:  # 'sine-full'
            x = x.clone()
            x[:, k:] += pos
        y = F.layer_norm(x, (d,), sd[f"{p}.0.fn.norm.weight"], sd[f"{p}.0.fn.norm.bias"])
        q, kk, v = (
            z.reshape(b, n, heads, d // heads).transpose(1, 2)
            for z in F.linear(y, sd[f"{p}.0.fn.fn.to_qkv.weight"]).chunk(3, dim=-1)
        )
        dots = torch.einsum("bhid,bhjd->bhij", q, kk) * (d // heads) ** -0.5
        o = torch.einsum("bhij,bhjd->bhid", dots.softmax(-1), v).transpose(1, 2).reshape(b, n, d)
        x = x + F.linear(o, sd[f"{p}.0.fn.fn.to_out.0.weight"], sd[f"{p}.0.fn.fn.to_out.0.bias"])
        y = F.layer_norm(x, (d,), sd[f"{p}.1.fn.norm.weight"], sd[f"{p}.1.fn.norm.bias"])
        y = F.linear(
            F.gelu(F.linear(y, sd[f"{p}.1.fn.fn.net.0.weight"], sd[f"{p}.1.fn.fn.net.0.bias"])),
            sd[f"{p}.1.fn.fn.net.3.weight"],
            sd[f"{p}.1.fn.fn.net.3.bias"],
        )
        x = x + y
    kpt, vis = x[:, :k], x[:, k:]
    o = kpt
    i = 0
    while f"{HEAD}mlp_head.{i}.weight" in sd:
        wt, bs = sd[f"{HEAD}mlp_head.{i}.weight"], sd[f"{HEAD}mlp_head.{i}.bias"]
        o = F.layer_norm(o, wt.shape, wt, bs) if i % 2 == 0 else F.linear(o, wt, bs)
        i += 1
    return {
        "pred": o[..., 0:2].sigmoid(),
        "score": o[..., 2],
        "sigma": F.softplus(o[..., 3:5]),
        "kpt_token": kpt,
        "vis_token": vis,
    }


def _save_official(state, path):
    torch.save({"meta": {"epoch": 300, "mmpose_version": "0.22.0"}, "state_dict": state}, path)
    return path


def _tiny(**overrides):
    cfg = {**get_spec("distilpose_s_tiny").config, **overrides}
    return create_model("distilpose_s_tiny", **overrides).eval(), cfg


# --- tests ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("overrides", [{}, {"hidden_dim": 64}], ids=["one_layer_head", "two_layer_head"])
def test_official_checkpoint_loads_and_reproduces_the_official_forward(tmp_path, overrides):
    model, cfg = _tiny(**overrides)
    official = random_official_state(cfg, seed=1)
    report = load_weights(model, _save_official(official, tmp_path / "distilpose_s.pth"))
    assert report.source == "official"
    assert report.ignored == [HEAD + "pos_embedding"]
    image = model.example_image(batch=3, seed=4)
    with torch.no_grad():
        ref = official_forward(official, cfg, image)
        ours = model.forward_distill(image)
        stage = model(image)
    torch.testing.assert_close(ours["coords"], ref["pred"], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(ours["sigma"], ref["sigma"], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(ours["score_raw"], ref["score"], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(ours["kpt_tokens"], ref["kpt_token"], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(ours["vis_tokens"], ref["vis_token"], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(stage["scores"], ref["score"].clamp(0, 1), rtol=1e-4, atol=1e-5)
    assert set(stage) == {"coords", "sigma", "scores"}


def test_our_layout_round_trips_to_the_official_names_and_shapes():
    model, cfg = _tiny()
    official = model.to_official_state()
    assert {k: tuple(v.shape) for k, v in official.items()} == official_layout(cfg)
    sine = official_sine_table(4, 4, cfg["dim"])
    torch.testing.assert_close(official[HEAD + "pos_embedding"], sine, atol=1e-6, rtol=0)
    for key in model.state_dict():
        assert official_to_ours(ours_to_official(key)) == key
    fresh, _ = _tiny()
    load_weights(fresh, {"state_dict": official})
    x = model.example_image(batch=2, seed=9)
    with torch.no_grad():
        for k, v in model(x).items():
            torch.testing.assert_close(fresh(x)[k], v)


def test_full_size_layout_matches_the_official_config():
    cfg = get_spec("distilpose_s").config
    model = create_model("distilpose_s")
    layout = official_layout(cfg)
    assert {k: tuple(v.shape) for k, v in model.to_official_state().items()} == layout
    assert layout[HEAD + "patch_to_embedding.weight"] == (192, 3072)  # 4x3 patches of 256 channels
    assert layout[HEAD + "pos_embedding"] == (1, 256, 192)  # 16x16 grid on the 64x48 map
    assert HEAD + "mlp_head.2.weight" not in layout  # 192 > 64 / 2: one LayerNorm + Linear(192, 5)
    torch.testing.assert_close(model.tde.pos, official_sine_table(16, 16, 192), atol=1e-6, rtol=0)


def _drop(key):
    return lambda s: s.pop(key)


def _put(key, *shape):
    return lambda s: s.__setitem__(key, torch.zeros(shape))


QKV0 = HEAD + "transformer.layers.0.0.fn.fn.to_qkv.weight"
BAD_CHECKPOINTS = {
    "missing_head": (
        _drop(HEAD + "transformer.layers.1.0.fn.fn.to_qkv.weight"),
        r"missing keys: tde\.blocks\.1\.attn\.qkv\.weight",
    ),
    "missing_bn_stat": (
        _drop("backbone.layer1.0.bn3.running_var"),
        r"missing keys: backbone\.layer1\.0\.bn3\.running_var",
    ),
    "extra": (_put(HEAD + "teacher_proj.weight", 3, 3), r"unexpected keys: .*teacher_proj\.weight"),
    "deeper_encoder": (
        _put(HEAD + "transformer.layers.7.0.fn.norm.weight", 32),
        r"unexpected keys: keypoint_head\.tokenhead\.transformer\.layers\.7\.0\.fn\.norm",
    ),
    "misshaped": (
        _put(QKV0, 90, 32),
        r"mis-shaped keys: .*\.0\.0\.fn\.fn\.to_qkv\.weight \(ours tde\.blocks\.0\.attn\.qkv",
    ),
    "patch_embed": (
        _put(HEAD + "patch_to_embedding.weight", 32, 100),
        r"patch_to_embedding\.weight .*\(32, 100\)",
    ),
    "head_out_dim": (
        _put(HEAD + "mlp_head.1.weight", 3, 32),
        r"mlp_head\.1\.weight \(ours head\.1\.weight\)",
    ),
    "pos": (_put(HEAD + "pos_embedding", 1, 16, 32), r"pos_embedding .*not the fixed sine table"),
}


@pytest.mark.parametrize("edit, message", BAD_CHECKPOINTS.values(), ids=BAD_CHECKPOINTS.keys())
def test_bad_official_checkpoints_are_named(tmp_path, edit, message):
    model, cfg = _tiny()
    state = random_official_state(cfg)
    edit(state)
    with pytest.raises(CheckpointError, match=message):
        load_weights(model, _save_official(state, tmp_path / "bad.pth"))


def test_other_models_checkpoints_are_refused(tmp_path):
    model, _ = _tiny()
    vitpose_like = {
        "patch_embed.proj.weight": torch.zeros(4, 3, 16, 16),
        "blocks.0.attn.qkv.weight": torch.zeros(12, 4),
    }
    expected = r"expected keys under 'backbone\.' and 'keypoint_head\.tokenhead\.'"
    with pytest.raises(CheckpointError, match=expected + r".*found prefixes \['blocks\.', 'patch_embed\.'\]"):
        load_weights(model, {"model_state_dict": vitpose_like})
    # The TokenPose teacher shares the head prefix but has an HRNet backbone and a heatmap MLP head.
    teacher = {
        "backbone.stage2.0.branches.0.0.conv1.weight": torch.zeros(48, 48, 3, 3),
        HEAD + "keypoint_token": torch.zeros(1, 17, 32),
        HEAD + "mlp_head.1.weight": torch.zeros(3072, 32),
    }
    with pytest.raises(CheckpointError, match=r"mlp_head\.1\.weight"):
        load_weights(model, {"state_dict": teacher})


def test_stage_outputs_and_score_semantics():
    model, _ = _tiny()
    with torch.no_grad():
        for p in model.head.parameters():  # spread the raw scores well outside [0, 1]
            p.normal_(0, 3)
        x = model.example_image(batch=2, seed=1)
        out = model.forward_distill(x)
        staged = model.stage("model")(x)
    assert tuple(out["coords"].shape) == (2, 17, 2) and tuple(out["sigma"].shape) == (2, 17, 2)
    assert tuple(out["scores"].shape) == (2, 17) and tuple(out["score_raw"].shape) == (2, 17)
    assert tuple(out["kpt_tokens"].shape) == (2, 17, 32) and tuple(out["vis_tokens"].shape) == (2, 16, 32)
    assert bool((out["coords"] >= 0).all() and (out["coords"] <= 1).all() and (out["sigma"] >= 0).all())
    assert bool((out["score_raw"] < 0).any() and (out["score_raw"] > 1).any())
    torch.testing.assert_close(out["scores"], out["score_raw"].clamp(0, 1))
    for name, value in zip(model.stage_io("model")[1], staged):
        torch.testing.assert_close(value, out[name])

    sig, _ = _tiny(score_activation="sigmoid")
    sig.load_state_dict(model.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(sig(x)["scores"], out["score_raw"].sigmoid())


def test_bad_config_is_a_clear_error():
    with pytest.raises(ValueError, match="score_activation must be one of"):
        create_model("distilpose_s_tiny", score_activation="softmax")
    with pytest.raises(ValueError, match="not divisible by patch size"):
        create_model("distilpose_s_tiny", patch_size=(5, 3))


def test_distill_tokens_carry_gradients_for_the_token_losses():
    model, _ = _tiny()
    model.train()
    out = model.forward_distill(model.example_image(batch=2))
    tokens = out["kpt_tokens"].square().mean() + out["vis_tokens"].square().mean()
    tokens.backward(retain_graph=True)
    # The token losses train the student's stem and encoder, every tensor of them, and nothing after
    # the encoder: the regression head does not make the tokens.
    grads = {n: p.grad for n, p in model.named_parameters()}
    encoder = [n for n in grads if n.startswith(("backbone.", "tde."))]
    assert encoder and len(encoder) == len(grads) - len(list(model.head.parameters()))
    for n in encoder:
        assert grads[n] is not None and torch.isfinite(grads[n]).all() and grads[n].abs().sum() > 0, n
    assert all(p.grad is None for p in model.head.parameters())
    # score_raw (the confidence loss's input) reaches the head and the keypoint tokens too.
    model.zero_grad(set_to_none=True)
    out["score_raw"].abs().mean().backward()
    for p in (model.head[-1].weight, model.tde.keypoint_tokens, model.backbone.conv1.weight):
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0


@pytest.mark.slow
def test_full_size_official_checkpoint_reproduces_the_official_forward(tmp_path):
    cfg = get_spec("distilpose_s").config
    model = create_model("distilpose_s").eval()
    official = random_official_state(cfg, seed=2)
    load_weights(model, _save_official(official, tmp_path / "distilpose_s.pth"))
    image = model.example_image(batch=2, seed=3)
    with torch.no_grad():
        ref = official_forward(official, cfg, image)
        ours = model.forward_distill(image)
    torch.testing.assert_close(ours["coords"], ref["pred"], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(ours["sigma"], ref["sigma"], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(ours["score_raw"], ref["score"], rtol=1e-4, atol=1e-4)

"""PAVE-Net: official checkpoint layout, a reference forward in the official code's own data layout, stages.

``official_state`` writes a checkpoint from the official code's module definitions (zgspose/PAVENet:
``VideoPoseHeadMulFrames._init_layers``, ``VideoPoseTransformerMulFrames.init_layers``, mmcv's
``BaseTransformerLayer``/``FFN``/``MultiheadAttention``/``MultiScaleDeformableAttention``, the two
``MulFrames*`` attentions, mmdet's ``ChannelMapper`` and ``ResNet``), not from our model. ``official_forward``
re-traces the official test path (``simple_test`` -> head ``forward`` -> ``_get_bboxes_single`` ->
``forward_refine``) on that state dict: sequence-first tensors, frames interleaved in the batch, a
softmax per frame re-weighted by exp-sums, the joint decoder's value projected per person, batch 1
per image as the official test asserts. Only the OKS-NMS at the very end is left out (the model
returns people before NMS).
"""

import math
import re

import pytest
import torch
import torch.nn.functional as F

from edgepose.zoo import CheckpointError, create_model, get_spec, load_weights
from edgepose.zoo.pavenet import PAVENet
from edgepose.zoo.resnet import ResNet

BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def _bn(prefix, c):
    return {f"{prefix}.{n}": (() if n == "num_batches_tracked" else (c,)) for n in BN}


# ---- the official layout ------------------------------------------------------------------------
def _resnet_keys(depths, base):
    keys = {"conv1.weight": (base, 3, 7, 7), **_bn("bn1", base)}
    cin = base
    for i, blocks in enumerate(depths):
        w = base * 2**i
        for j in range(blocks):
            p = f"layer{i + 1}.{j}."
            shapes = [(w, cin if j == 0 else 4 * w, 1, 1), (w, w, 3, 3), (4 * w, w, 1, 1)]
            for c, s in enumerate(shapes, start=1):
                keys[f"{p}conv{c}.weight"] = s
                keys.update(_bn(f"{p}bn{c}", s[0]))
            if j == 0:
                keys[f"{p}downsample.0.weight"] = (4 * w, cin, 1, 1)
                keys.update(_bn(f"{p}downsample.1", 4 * w))
        cin = 4 * w
    return keys


def official_keys(cfg, joints=15):
    """Official key -> shape for a 3-frame ResNet PAVE-Net config (see the module docstring)."""
    d, h, k2 = cfg["dim"], cfg["heads"], 2 * joints
    keys = {f"backbone.{k}": s for k, s in _resnet_keys(cfg["depths"], cfg["base_width"]).items()}
    bw = cfg["base_width"]
    ins = [8 * bw, 16 * bw, 32 * bw]
    for i, c in enumerate(ins):
        keys[f"neck.convs.{i}.conv.weight"] = (d, c, 1, 1)
        keys[f"neck.convs.{i}.gn.weight"] = keys[f"neck.convs.{i}.gn.bias"] = (d,)
    keys["neck.extra_convs.0.conv.weight"] = (d, ins[-1], 3, 3)
    keys["neck.extra_convs.0.gn.weight"] = keys["neck.extra_convs.0.gn.bias"] = (d,)

    def lin(prefix, cin, cout):
        keys[f"{prefix}.weight"], keys[f"{prefix}.bias"] = (cout, cin), (cout,)

    def ffn_norms(p, n_norms):
        lin(f"{p}.ffns.0.layers.0.0", d, cfg["ffn"])
        lin(f"{p}.ffns.0.layers.1", cfg["ffn"], d)
        for i in range(n_norms):
            keys[f"{p}.norms.{i}.weight"] = keys[f"{p}.norms.{i}.bias"] = (d,)

    def mha(p):
        keys[f"{p}.attn.in_proj_weight"], keys[f"{p}.attn.in_proj_bias"] = (3 * d, d), (3 * d,)
        lin(f"{p}.attn.out_proj", d, d)

    t = "bbox_head.transformer"
    keys[f"{t}.level_embeds"] = (4, d)
    for i in range(cfg["enc_layers"]):
        p = f"{t}.encoder.layers.{i}"
        pts = cfg["enc_points"]
        lin(f"{p}.attentions.0.sampling_offsets", d, h * 4 * pts * 2)
        lin(f"{p}.attentions.0.attention_weights", d, h * 4 * pts)
        lin(f"{p}.attentions.0.value_proj", d, d)
        lin(f"{p}.attentions.0.output_proj", d, d)
        ffn_norms(p, 2)
    for name, layers, pts in (
        ("decoder", cfg["dec_layers"], joints),
        ("refine_decoder", cfg["refine_layers"], cfg["refine_points"]),
    ):
        for i in range(layers):
            p = f"{t}.{name}.layers.{i}"
            mha(f"{p}.attentions.0")
            for pre in ("pre_", "", "next_"):
                lin(f"{p}.attentions.1.{pre}sampling_offsets", d, h * 4 * pts * 2)
                lin(f"{p}.attentions.1.{pre}attention_weights", d, h * 4 * pts)
            lin(f"{p}.attentions.1.value_proj", d, d)
            lin(f"{p}.attentions.1.output_proj", d, d)
            ffn_norms(p, 3)
    lin(f"{t}.enc_output", d, d)
    keys[f"{t}.enc_output_norm.weight"] = keys[f"{t}.enc_output_norm.bias"] = (d,)
    keys[f"{t}.refine_query_embedding.weight"] = (joints, 2 * d)

    hid, fcs = cfg["kpt_hidden"], 2
    nd = cfg["dec_layers"]

    def kpt_branch(p):  # Linear, ReLU, (Linear, ReLU) x fcs, Linear
        lin(f"{p}.0", d, hid)
        for j in range(fcs):
            lin(f"{p}.{2 + 2 * j}", hid, hid)
        lin(f"{p}.{2 + 2 * fcs}", hid, k2)

    def refine_branch(p):  # (Linear, ReLU) x fcs, Linear
        for j in range(fcs):
            lin(f"{p}.{2 * j}", d, d)
        lin(f"{p}.{2 * fcs}", d, 2)

    def sigma_branch(p, out):  # Linear x fcs (no activation), Linear_with_norm
        for j in range(fcs):
            lin(f"{p}.{j}", d, d)
        lin(f"{p}.{fcs}.linear", d, out)

    hd = "bbox_head"
    for i in range(nd + 1):
        lin(f"{hd}.cls_branches.{i}", d, 1)
        kpt_branch(f"{hd}.kpt_branches.{i}")
        sigma_branch(f"{hd}.dec_fc_sigma_branches.{i}", k2)
    for i in range(nd):
        kpt_branch(f"{hd}.pre_kpt_branches.{i}")
        kpt_branch(f"{hd}.next_kpt_branches.{i}")
    keys[f"{hd}.query_embedding.weight"] = (cfg["queries"], 2 * d)
    for i in range(cfg["refine_layers"]):
        for pre in ("pre_", "", "next_"):
            refine_branch(f"{hd}.{pre}refine_kpt_branches.{i}")
        sigma_branch(f"{hd}.refine_fc_sigma_branches.{i}", 2)
    lin(f"{hd}.fc_hm", d, joints)  # training only (heatmap loss, weight 0)
    for flow in ("enc_flow", "dec_flow", "flow"):  # RealNVP: training only
        keys[f"{hd}.{flow}.mask"] = (6, 2)
        for st in ("s", "t"):
            for i in range(6):
                lin(f"{hd}.{flow}.{st}.{i}.0", 2, 64)
                lin(f"{hd}.{flow}.{st}.{i}.2", 64, 64)
                lin(f"{hd}.{flow}.{st}.{i}.4", 64, 2)
    return keys


def official_state(cfg, seed=0):
    g = torch.Generator().manual_seed(seed)
    state = {}
    for k, s in official_keys(cfg).items():
        if k.endswith("num_batches_tracked"):
            state[k] = torch.tensor(7)
        elif k.endswith("running_var"):
            state[k] = 0.5 + torch.rand(s, generator=g)
        elif k.endswith((".gn.weight", "bn1.weight", "bn2.weight", "bn3.weight", "downsample.1.weight")) or (
            "norm" in k and k.endswith("weight")
        ):
            state[k] = 1 + 0.1 * torch.randn(s, generator=g)
        elif k.endswith("cls_branches.0.bias") or "cls_branches" in k and k.endswith("bias"):
            state[k] = torch.randn(s, generator=g)
        else:
            fan_in = s[1] if len(s) > 1 else 1
            scale = 1.0 / math.sqrt(fan_in * (9 if len(s) == 4 and s[-1] == 3 else 1)) if len(s) > 1 else 0.1
            state[k] = scale * torch.randn(s, generator=g)
    return state


# ---- the official forward, re-traced ------------------------------------------------------------
def _lin(sd, p, x):
    return F.linear(x, sd[f"{p}.weight"], sd[f"{p}.bias"])


def _inv_sig(x, eps=1e-5):
    x = x.clamp(min=0, max=1)
    return torch.log(x.clamp(min=eps) / (1 - x).clamp(min=eps))


def _msda_mmcv(value, shapes, loc, w):
    """mmcv ``multi_scale_deformable_attn_pytorch``: value (bs, S, h, d), loc (bs, Q, h, L, P, 2)."""
    bs, _, h, d = value.shape
    _, q, _, levels, p, _ = loc.shape
    vals = value.split([a * b for a, b in shapes], 1)
    grids = 2 * loc - 1
    out = []
    for lvl, (hh, ww) in enumerate(shapes):
        v = vals[lvl].flatten(2).transpose(1, 2).reshape(bs * h, d, hh, ww)
        gr = grids[:, :, :, lvl].transpose(1, 2).flatten(0, 1)
        out.append(F.grid_sample(v, gr, mode="bilinear", padding_mode="zeros", align_corners=False))
    w = w.transpose(1, 2).reshape(bs * h, 1, q, levels * p)
    res = (torch.stack(out, -2).flatten(-2) * w).sum(-1).view(bs, h * d, q)
    return res.transpose(1, 2)


def _sine(h, w, d, offset=-0.5):
    mask = torch.zeros(1, h, w, dtype=torch.int)
    nm = 1 - mask
    y = nm.cumsum(1, dtype=torch.float32)
    x = nm.cumsum(2, dtype=torch.float32)
    y = (y + offset) / (y[:, -1:, :] + 1e-6) * 2 * math.pi
    x = (x + offset) / (x[:, :, -1:] + 1e-6) * 2 * math.pi
    nf = d // 2
    dt = torch.arange(nf, dtype=torch.float32)
    dt = 10000 ** (2 * (dt // 2) / nf)
    px, py = x[..., None] / dt, y[..., None] / dt
    px = torch.stack((px[..., 0::2].sin(), px[..., 1::2].cos()), 4).view(1, h, w, -1)
    py = torch.stack((py[..., 0::2].sin(), py[..., 1::2].cos()), 4).view(1, h, w, -1)
    return torch.cat((py, px), 3).permute(0, 3, 1, 2)


def _mha(sd, p, x, pos, heads):
    """mmcv MultiheadAttention (sequence-first): q = k = x + pos, v = x, identity added."""
    q = x + pos
    out = F.multi_head_attention_forward(
        q,
        q,
        x,
        x.shape[-1],
        heads,
        sd[f"{p}.attn.in_proj_weight"],
        sd[f"{p}.attn.in_proj_bias"],
        None,
        None,
        False,
        0.0,
        sd[f"{p}.attn.out_proj.weight"],
        sd[f"{p}.attn.out_proj.bias"],
        training=False,
        need_weights=False,
    )[0]
    return x + out


def _ln(sd, p, x):
    return F.layer_norm(x, x.shape[-1:], sd[f"{p}.weight"], sd[f"{p}.bias"])


def _ffn(sd, p, x):
    return x + _lin(sd, f"{p}.layers.1", F.relu(_lin(sd, f"{p}.layers.0.0", x)))


def _frame_mix(sd, p, query, values, locs_fn, heads, levels, points, shapes):
    """The MulFrames attentions' body: per frame softmax, outputs mixed by exp-sum shares."""
    bs, nq, _ = query.shape
    outs, sums = [], []
    for i, pre in enumerate(("pre_", "", "next_")):
        off = _lin(sd, f"{p}.{pre}sampling_offsets", query).view(bs, nq, heads, levels, points, 2)
        aw = _lin(sd, f"{p}.{pre}attention_weights", query).view(bs, nq, heads, levels * points)
        sums.append(torch.exp(aw).sum(-1, keepdim=True))
        aw = aw.softmax(-1).view(bs, nq, heads, levels, points)
        outs.append(_msda_mmcv(values[i], shapes, locs_fn(i, off), aw).reshape(bs, nq, heads, -1))
    total = sums[0] + sums[1] + sums[2]
    out = sum(o * (s / total) for o, s in zip(outs, sums)).flatten(-2)
    return _lin(sd, f"{p}.output_proj", out)


@torch.no_grad()
def official_forward(sd, cfg, imgs, joints=15, max_per_img=None):
    """imgs (1, 3, 3, H, W) -> (kpts (M, K, 3), scores (M,)) before OKS-NMS, as the official test path."""
    assert imgs.shape[0] == 1  # the official test asserts batch size 1
    T, K = 3, joints
    d, heads = cfg["dim"], cfg["heads"]
    H, W = imgs.shape[-2:]
    x = imgs.flatten(0, 1)
    trunk = ResNet(cfg["depths"], cfg["base_width"], (1, 2, 3)).eval()
    trunk.load_state_dict({k[9:]: v for k, v in sd.items() if k.startswith("backbone.")})
    feats = list(trunk(x))
    gn_groups = min(32, d)
    outs = [
        F.group_norm(
            F.conv2d(f, sd[f"neck.convs.{i}.conv.weight"]),
            gn_groups,
            sd[f"neck.convs.{i}.gn.weight"],
            sd[f"neck.convs.{i}.gn.bias"],
        )
        for i, f in enumerate(feats)
    ]
    outs.append(
        F.group_norm(
            F.conv2d(feats[-1], sd["neck.extra_convs.0.conv.weight"], stride=2, padding=1),
            gn_groups,
            sd["neck.extra_convs.0.gn.weight"],
            sd["neck.extra_convs.0.gn.bias"],
        )
    )
    t = "bbox_head.transformer"
    shapes = [tuple(f.shape[-2:]) for f in outs]
    L = len(shapes)
    feat = torch.cat([f.flatten(2).transpose(1, 2) for f in outs], 1)  # (BT, S, C)
    pos = torch.cat(
        [
            (_sine(h, w, d).flatten(2).transpose(1, 2) + sd[f"{t}.level_embeds"][i].view(1, 1, -1))
            for i, (h, w) in enumerate(shapes)
        ],
        1,
    ).expand(x.shape[0], -1, -1)
    refs = []
    for h, w in shapes:
        ry, rx = torch.meshgrid(
            torch.linspace(0.5, h - 0.5, h), torch.linspace(0.5, w - 0.5, w), indexing="ij"
        )
        refs.append(torch.stack((rx.reshape(-1)[None] / w, ry.reshape(-1)[None] / h), -1))
    ref_enc = torch.cat(refs, 1)[:, :, None].expand(-1, -1, L, -1)  # (1, S, L, 2)
    norm = torch.tensor([[w, h] for h, w in shapes], dtype=torch.float32)

    # Encoder (batch-first here; the per-token math is the same as the sequence-first original).
    mem = feat
    for i in range(cfg["enc_layers"]):
        p = f"{t}.encoder.layers.{i}"
        q = mem + pos
        bs, s, _ = q.shape
        v = _lin(sd, f"{p}.attentions.0.value_proj", mem).view(bs, s, heads, -1)
        pts = cfg["enc_points"]
        off = _lin(sd, f"{p}.attentions.0.sampling_offsets", q).view(bs, s, heads, L, pts, 2)
        aw = _lin(sd, f"{p}.attentions.0.attention_weights", q).view(bs, s, heads, L * pts).softmax(-1)
        loc = ref_enc[:, :, None, :, None, :] + off / norm[None, None, None, :, None, :]
        a = _lin(
            sd, f"{p}.attentions.0.output_proj", _msda_mmcv(v, shapes, loc, aw.view(bs, s, heads, L, pts))
        )
        mem = _ln(sd, f"{p}.norms.0", mem + a)
        mem = _ln(sd, f"{p}.norms.1", _ffn(sd, f"{p}.ffns.0", mem))
    memory = mem  # (BT, S, C), frames interleaved: index b*T + t

    # Two-stage proposals from the current frame.
    now = memory[T // 2 :: T]
    props = torch.cat(
        [
            torch.stack(
                torch.meshgrid(torch.linspace(0, h - 1, h), torch.linspace(0, w - 1, w), indexing="ij")[::-1],
                -1,
            )
            .view(1, -1, 2)
            .add(0.5)
            / torch.tensor([w, h], dtype=torch.float32)
            for h, w in shapes
        ],
        1,
    )
    valid = ((props > 0.01) & (props < 0.99)).all(-1, keepdim=True)
    props = torch.log(props / (1 - props)).masked_fill(~valid, float("inf"))
    om = _ln(sd, f"{t}.enc_output_norm", _lin(sd, f"{t}.enc_output", now.masked_fill(~valid, 0.0)))
    nd = cfg["dec_layers"]

    def kbr(name, i, z):
        p = f"bbox_head.{name}.{i}"
        n_lin = 4
        for j in range(n_lin):
            z = _lin(sd, f"{p}.{2 * j}", z)
            if j < n_lin - 1:
                z = F.relu(z)
        return z

    def rbr(name, i, z):
        p = f"bbox_head.{name}.{i}"
        z = F.relu(_lin(sd, f"{p}.0", z))
        z = F.relu(_lin(sd, f"{p}.2", z))
        return _lin(sd, f"{p}.4", z)

    def sbr(name, i, z):
        p = f"bbox_head.{name}.{i}"
        return _lin(sd, f"{p}.2.linear", _lin(sd, f"{p}.1", _lin(sd, f"{p}.0", z)))

    enc_cls = _lin(sd, f"bbox_head.cls_branches.{nd}", om)
    enc_kpt = kbr("kpt_branches", nd, om)
    enc_kpt[..., 0::2] += props[..., 0:1]
    enc_kpt[..., 1::2] += props[..., 1:2]
    Q = cfg["queries"]
    top = torch.topk(enc_cls[..., 0], Q, dim=1)[1]
    ref = torch.gather(enc_kpt, 1, top.unsqueeze(-1).repeat(1, 1, enc_kpt.size(-1))).sigmoid()
    ref = ref.repeat(1, T, 1)  # (1, T*Q, 2K)
    tgt = torch.gather(om, 1, top.unsqueeze(-1).repeat(1, 1, d))
    qpos, qq = torch.split(sd["bbox_head.query_embedding.weight"], d, 1)
    query = (tgt + qq[None]).permute(1, 0, 2)  # (Q, 1, C)
    qpos = qpos[None].permute(1, 0, 2)

    # Pose decoder.
    out = query
    for lid in range(nd):
        p = f"{t}.decoder.layers.{lid}"
        r_in = ref[:, :, None].expand(-1, -1, L, -1)  # (1, TQ, L, 2K)
        out = _ln(sd, f"{p}.norms.0", _mha(sd, f"{p}.attentions.0", out, qpos, heads))
        qb = (out + qpos).permute(1, 0, 2)  # (1, Q, C)
        v = _lin(sd, f"{p}.attentions.1.value_proj", memory)
        values = [v[i::T].view(1, v.shape[1], heads, -1) for i in range(T)]

        def pose_locs(i, off, r_in=r_in):
            rr = r_in[:, i * Q : (i + 1) * Q]
            rs = rr.reshape(1, Q, L, -1, 2).unsqueeze(2)
            wv = torch.clamp(
                rr[..., 0::2].max(-1, keepdim=True)[0] - rr[..., 0::2].min(-1, keepdim=True)[0], min=1e-4
            )
            hv = torch.clamp(
                rr[..., 1::2].max(-1, keepdim=True)[0] - rr[..., 1::2].min(-1, keepdim=True)[0], min=1e-4
            )
            wh = torch.cat([wv, hv], -1)[:, :, None, :, None, :]
            return rs + off * wh * 0.5

        a = _frame_mix(sd, f"{p}.attentions.1", qb, values, pose_locs, heads, L, K, shapes).permute(1, 0, 2)
        out = _ln(sd, f"{p}.norms.1", out + a)
        out = _ln(sd, f"{p}.norms.2", _ffn(sd, f"{p}.ffns.0", out))
        ob = out.permute(1, 0, 2)
        tmps = torch.cat(
            [
                kbr("pre_kpt_branches", lid, ob),
                kbr("kpt_branches", lid, ob),
                kbr("next_kpt_branches", lid, ob),
            ],
            1,
        )
        prev = ref
        ref = (tmps + _inv_sig(ref)).sigmoid()
    hs = out.permute(1, 0, 2)
    cls = _lin(sd, f"bbox_head.cls_branches.{nd - 1}", hs)[0]
    kpt = (kbr("kpt_branches", nd - 1, hs) + _inv_sig(prev[:, Q : 2 * Q])).sigmoid()[0]
    pre_k = (kbr("pre_kpt_branches", nd - 1, hs) + _inv_sig(prev[:, :Q])).sigmoid()[0]
    next_k = (kbr("next_kpt_branches", nd - 1, hs) + _inv_sig(prev[:, 2 * Q :])).sigmoid()[0]

    # _get_bboxes_single: top max_per_img, then the joint decoder on them.
    M = max_per_img
    scores, idx = cls.sigmoid().view(-1).topk(M)
    pos_k = torch.cat([pre_k[idx], kpt[idx], next_k[idx]], 0)  # (T*M, 2K)
    jpos, jq = torch.split(sd[f"{t}.refine_query_embedding.weight"], d, 1)
    jpos = jpos[None].expand(M, -1, -1).permute(1, 0, 2)  # (K, M, C)
    y = jq[None].expand(M, -1, -1).permute(1, 0, 2)
    rref = pos_k.reshape(-1, K, 2)  # (T*M, K, 2)
    pos_memory = memory.reshape(1, T, memory.shape[1], d)[[0] * M]  # (M, T, S, C): per person
    nr = cfg["refine_layers"]
    pts = cfg["refine_points"]
    for lid in range(nr):
        p = f"{t}.refine_decoder.layers.{lid}"
        r_in = rref[:, :, None].expand(-1, -1, L, -1)  # (TM, K, L, 2)
        y = _ln(sd, f"{p}.norms.0", _mha(sd, f"{p}.attentions.0", y, jpos, heads))
        qb = (y + jpos).permute(1, 0, 2)  # (M, K, C)
        v = _lin(sd, f"{p}.attentions.1.value_proj", pos_memory)  # per person, as the official code
        values = [v[:, i].reshape(M, -1, heads, d // heads) for i in range(T)]

        def joint_locs(i, off, r_in=r_in):
            rr = r_in[i * M : (i + 1) * M]
            return rr[:, :, None, :, None, :] + off / norm[None, None, None, :, None, :]

        a = _frame_mix(sd, f"{p}.attentions.1", qb, values, joint_locs, heads, L, pts, shapes).permute(
            1, 0, 2
        )
        y = _ln(sd, f"{p}.norms.1", y + a)
        y = _ln(sd, f"{p}.norms.2", _ffn(sd, f"{p}.ffns.0", y))
        yb = y.permute(1, 0, 2)
        tmps = torch.cat(
            [
                rbr("pre_refine_kpt_branches", lid, yb),
                rbr("refine_kpt_branches", lid, yb),
                rbr("next_refine_kpt_branches", lid, yb),
            ],
            0,
        )
        prev = rref
        rref = (tmps + _inv_sig(rref)).sigmoid()
    yb = y.permute(1, 0, 2)
    det = (rbr("refine_kpt_branches", nr - 1, yb) + _inv_sig(prev[M : 2 * M])).sigmoid()
    sig = sbr("refine_fc_sigma_branches", nr - 1, yb).sigmoid()
    det = det.clone()
    det[..., 0] = (det[..., 0] * W).clamp(min=0, max=W)
    det[..., 1] = (det[..., 1] * H).clamp(min=0, max=H)
    pr = 1 - torch.exp(-(0.2 / sig))
    pr = (pr[:, :, 0] * pr[:, :, 1])[:, :, None] * 0.7
    det = det * pr**5 / (pr**5 + 1e-10)
    return torch.cat([det, scores[:, None, None] * pr], 2), scores


# ---- tests --------------------------------------------------------------------------------------
TINY_R50 = get_spec("pave_r50_tiny").config


def test_official_layout_loads_strictly_and_drops_training_only_keys(tmp_path):
    state = official_state(TINY_R50)
    path = tmp_path / "pave_official.pth"
    torch.save({"meta": {"epoch": 20}, "state_dict": state}, path)
    model = create_model("pave_r50_tiny")
    report = load_weights(model, path)
    assert report.source == "official"
    assert set(report.ignored) == {
        k
        for k in state
        if k.startswith(("bbox_head.fc_hm.", "bbox_head.enc_flow.", "bbox_head.dec_flow.", "bbox_head.flow."))
    }
    assert report.loaded == len(model.state_dict())
    own = model.state_dict()
    for k, v in own.items():
        torch.testing.assert_close(v, state[k], rtol=0, atol=0)


def test_full_size_official_layout_matches_pave_r50_key_for_key():
    """Key names and shapes of the full ResNet-50 config (no weights are made: shapes only)."""
    model = create_model("pave_r50")
    want = {
        k: s
        for k, s in official_keys(get_spec("pave_r50").config).items()
        if not k.startswith(
            ("bbox_head.fc_hm.", "bbox_head.enc_flow.", "bbox_head.dec_flow.", "bbox_head.flow.")
        )
    }
    own = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert own == want


@pytest.mark.parametrize("seed", [0, 1])
def test_outputs_equal_the_official_forward_on_the_same_weights(seed):
    state = official_state(TINY_R50, seed=seed)
    model = create_model("pave_r50_tiny").eval()
    load_weights(model, {"state_dict": state})
    g = torch.Generator().manual_seed(10 + seed)
    frames = torch.randn(2, 3, 3, *model.input_size, generator=g)
    with torch.no_grad():
        out = model(frames)
    for b in range(2):
        kpts, scores = official_forward(state, TINY_R50, frames[b : b + 1], max_per_img=model.max_persons)
        torch.testing.assert_close(out["scores"][b], scores, rtol=0, atol=1e-5)
        torch.testing.assert_close(out["poses"][b, ..., 2], kpts[..., 2], rtol=0, atol=1e-5)
        # pixels: 1e-5 of the normalised coordinate
        torch.testing.assert_close(
            out["poses"][b, ..., :2] / model.image_wh, kpts[..., :2] / model.image_wh, rtol=0, atol=1e-5
        )


def test_gather_kernel_gives_the_same_model_outputs():
    torch.manual_seed(0)
    a = create_model("pave_mnv2_tiny").eval()
    b = create_model("pave_mnv2_tiny", impl="gather").eval()
    b.load_state_dict(a.state_dict())
    x = torch.randn(1, 3, 3, *a.input_size)
    with torch.no_grad():
        oa, ob = a(x), b(x)
    for k in ("poses", "scores"):  # two summation orders of float32: a few ulp apart (poses reach ~55)
        torch.testing.assert_close(oa[k], ob[k], rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize("name", ["pave_r50_tiny", "pave_mnv2_tiny"])
def test_stage_contract_and_output_conventions(name):
    torch.manual_seed(0)
    model = create_model(name).eval()
    spec = get_spec(name)
    assert spec.input_kind == "frame" and model.input_kind == "frame" and PAVENet.input_kind == "frame"
    assert model.stage_io("frame") == (("image",), ("memory",))
    assert model.stage_io("temporal") == (("memory_window",), ("poses", "scores"))
    x = torch.randn(2, 3, 3, *model.input_size)
    with torch.no_grad():
        memory = torch.stack([model.run_stage("frame", image=x[:, i])["memory"] for i in range(3)], 1)
        out = model.run_stage("temporal", memory_window=memory)
        full = model(x)
    assert memory.shape == (2, 3, model.num_tokens, model.dim)
    m, k = model.max_persons, model.num_joints
    assert out["poses"].shape == (2, m, k, 3) and out["scores"].shape == (2, m)
    h, w = model.input_size
    assert (out["poses"][..., 0] >= 0).all() and (out["poses"][..., 0] <= w).all()
    assert (out["poses"][..., 1] >= 0).all() and (out["poses"][..., 1] <= h).all()
    assert ((out["poses"][..., 2] >= 0) & (out["poses"][..., 2] <= 1)).all()
    assert ((out["scores"] >= 0) & (out["scores"] <= 1)).all()
    assert (out["scores"][:, :-1] >= out["scores"][:, 1:]).all()  # sorted best first
    for key in ("poses", "scores"):
        torch.testing.assert_close(full[key], out[key], rtol=1e-5, atol=1e-5)


def test_training_forward_returns_every_stage_for_the_losses():
    torch.manual_seed(0)
    model = create_model("pave_mnv2_tiny").train()
    out = model(torch.randn(1, 3, 3, *model.input_size))
    k, q, m = model.num_joints, model.queries, model.max_persons
    assert out["enc_logits"].shape == (1, model.num_tokens) and out["enc_kpts"].shape == (
        1,
        model.num_tokens,
        k,
        2,
    )
    assert out["dec_kpts"].shape == (2, 1, q, k, 2) and out["dec_logits"].shape == (2, 1, q)
    assert out["refine_kpts"].shape == (1, 1, m, k, 2) and out["refine_sigma"].shape == (1, 1, m, k, 2)
    sum(v.square().mean() for v in out.values() if v.is_floating_point()).backward()
    idle = {n for n, p in model.named_parameters() if p.grad is None or not bool(p.grad.abs().sum() > 0)}
    # Expected at the official init and with the official detach: the pose MLPs' zero-initialised last
    # layers block gradients to their hidden layers; zero sampling-offset/weight projections make the level
    # embeddings inert; the last layer's other-frame poses only feed the joint decoder through a detach.
    allowed = re.compile(
        r"bbox_head\.(transformer\.level_embeds"
        r"|kpt_branches\.\d+\.[024]\."
        r"|(pre_|next_)kpt_branches\.1\."
        r"|(pre_|next_)refine_kpt_branches\.0\.)"
    )
    assert idle and all(allowed.match(n) for n in idle), sorted(n for n in idle if not allowed.match(n))


def test_official_loader_refuses_other_layouts_with_reasons():
    state = official_state(TINY_R50)
    with pytest.raises(CheckpointError, match="load it into pave_r50"):
        load_weights(create_model("pave_mnv2_tiny"), {"state_dict": state})
    broken = {k: v for k, v in state.items() if "refine_query_embedding" not in k}
    with pytest.raises(
        CheckpointError, match="missing keys: bbox_head.transformer.refine_query_embedding.weight"
    ):
        load_weights(create_model("pave_r50_tiny"), {"state_dict": broken})
    five = {**state, "bbox_head.pre_pre_kpt_branches.0.0.weight": torch.zeros(1)}
    with pytest.raises(CheckpointError, match="build with frames=5"):
        load_weights(create_model("pave_r50_tiny"), {"state_dict": five})
    with pytest.raises(CheckpointError, match="not an official PAVE-Net checkpoint"):
        load_weights(create_model("pave_r50_tiny"), {"state_dict": {"foo.weight": torch.zeros(1)}})


def test_five_frame_build_names_its_extra_frames_like_the_official_code():
    model = create_model("pave_r50_tiny", frames=5)
    keys = set(model.state_dict())
    assert model.frame_offsets == (-2, -1, 0, 1, 2)
    assert "bbox_head.pre_pre_kpt_branches.0.0.weight" in keys
    assert "bbox_head.next_next_refine_kpt_branches.0.0.weight" in keys
    assert "bbox_head.transformer.decoder.layers.0.attentions.1.next_next_sampling_offsets.weight" in keys
    with torch.no_grad():
        out = model.eval()(torch.randn(1, 5, 3, *model.input_size))
    assert out["poses"].shape == (1, model.max_persons, 15, 3)


def test_full_builds_sizes():
    """Parameter counts of the full builds (the paper gives only the two decoders' sizes)."""
    r50 = create_model("pave_r50")
    h, tr = r50.bbox_head, r50.transformer

    def n(*mods):
        return sum(p.numel() for m in mods for p in m.parameters())

    total = n(r50)
    stpd = n(
        tr.decoder,
        h.query_embedding,
        *h.cls_branches[:3],
        *h.kpt_branches[:3],
        h.pre_kpt_branches,
        h.next_kpt_branches,
        *h.dec_fc_sigma_branches[:3],
    )
    assert n(r50.backbone) == 23_508_032
    assert stpd / 1e6 == pytest.approx(12.34, rel=0.05)  # paper Table 4: STPD 12.34M
    assert total / 1e6 == pytest.approx(50.79, abs=0.01)
    assert r50.num_tokens == 94 * 167 + 47 * 84 + 24 * 42 + 12 * 21
    mnv2 = create_model("pave_mnv2")
    assert n(mnv2) / 1e6 == pytest.approx(8.19, abs=0.01)


def test_stages_export_to_onnx_through_the_project_exporter_with_parity(tmp_path):
    """The project's exporter writes both stages; onnxruntime reproduces PyTorch on them. (The exporter's own
    verification loads the bundle through the SDK, which does not decode whole-frame outputs yet.)"""
    ort = pytest.importorskip("onnxruntime")
    import numpy as np

    from edgepose.export import export

    result = export(
        "pave_mnv2_tiny", out=tmp_path / "b", format="onnx", verify=False, onnx_exporter="torchscript"
    )
    bundle = result.bundles[0]
    torch.manual_seed(0)  # the seed a weight-less export initialises with
    model = create_model("pave_mnv2_tiny").eval()
    g = torch.Generator().manual_seed(3)
    frames = torch.randn(2, 3, 3, *model.input_size, generator=g)
    with torch.no_grad():
        memory = [model.run_stage("frame", image=frames[:, i])["memory"] for i in range(3)]
        ref = model.run_stage("temporal", memory_window=torch.stack(memory, 1))
    sessions = {
        s.name: ort.InferenceSession(str(bundle.path / s.files[0]), providers=["CPUExecutionProvider"])
        for s in bundle.manifest.stages
    }
    got = [sessions["frame"].run(None, {"image": frames[:, i].numpy()})[0] for i in range(3)]
    for g_, r in zip(got, memory):
        assert np.abs(g_ - r.numpy()).max() < 1e-4
    poses, scores = sessions["temporal"].run(None, {"memory_window": np.stack(got, 1)})
    assert np.abs(poses[..., :2] - ref["poses"][..., :2].numpy()).max() < 1e-2  # pixels
    assert np.abs(poses[..., 2] - ref["poses"][..., 2].numpy()).max() < 1e-5
    assert np.abs(scores - ref["scores"].numpy()).max() < 1e-5

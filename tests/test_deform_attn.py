"""Multi-scale deformable attention: the exportable implementations against the per-point reference."""

import pytest
import torch
import torch.nn.functional as F

from edgepose.zoo.deform_attn import (
    FRAME_PREFIX,
    FrameDeformAttn,
    MSDeformAttn,
    PoseDeformAttn,
    ms_deform_attn,
    ms_deform_attn_reference,
)

SHAPES = ((5, 7), (3, 4), (2, 2))


def _inputs(n=2, q=3, heads=2, d=4, points=3, lo=-0.15, hi=1.15, seed=0):
    g = torch.Generator().manual_seed(seed)
    s = sum(h * w for h, w in SHAPES)
    value = torch.randn(n, s, heads, d, generator=g)
    loc = lo + (hi - lo) * torch.rand(n, q, heads, len(SHAPES), points, 2, generator=g)
    weights = torch.rand(n, q, heads, len(SHAPES), points, generator=g)
    return value, loc, weights


@pytest.mark.parametrize("impl", ["grid_sample", "gather"])
def test_implementations_match_the_per_point_reference(impl):
    # Locations reach beyond the maps on every side: zero padding must hold there too.
    value, loc, weights = _inputs()
    ref = ms_deform_attn_reference(value, SHAPES, loc, weights)
    out = ms_deform_attn(value, SHAPES, loc, weights, impl=impl)
    assert out.shape == (2, 3, 8)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-5)


@pytest.mark.parametrize("impl", ["grid_sample", "gather"])
def test_pixel_centres_borders_and_outside(impl):
    """Deformable DETR's conventions: (i + 0.5) / W is pixel i exactly (align_corners=False); the map's
    edge (0 or 1) is half the border pixel (zero padding); a point a pixel or more outside is 0."""
    h, w = 3, 4
    value = torch.arange(h * w, dtype=torch.float32).add(1).view(1, h * w, 1, 1)
    pts = torch.tensor(
        [
            [(1 + 0.5) / w, (2 + 0.5) / h],  # pixel (x=1, y=2) -> 10
            [0.0, 0.5 / h],  # left edge of pixel (0, 0): half of 1
            [1.0, 0.5 / h],  # right edge of pixel (3, 0): half of 4
            [-1.5 / w, 0.5 / h],  # one and a half pixels outside: 0
            [2.0 / w, 0.5 / h],  # between pixels 1 and 2 of row 0: 2.5
        ]
    )
    loc = pts.view(1, 5, 1, 1, 1, 2)
    wts = torch.ones(1, 5, 1, 1, 1)
    expected = torch.tensor([10.0, 0.5, 2.0, 0.0, 2.5]).view(1, 5, 1)
    torch.testing.assert_close(ms_deform_attn(value, ((h, w),), loc, wts, impl=impl), expected)
    torch.testing.assert_close(ms_deform_attn_reference(value, ((h, w),), loc, wts), expected)


def test_grid_sample_form_is_mmcv_pytorch_form():
    """The mmcv CPU path (grid 2*loc-1, bilinear, zeros, align_corners=False), written out for one level."""
    value, loc, weights = _inputs(n=1, q=2, heads=1, d=3, points=2)
    h, w = SHAPES[0]
    v = value[:, : h * w].permute(0, 2, 3, 1).reshape(1, 3, h, w)
    sampled = F.grid_sample(
        v, 2 * loc[0, :, 0, 0][None] - 1, mode="bilinear", padding_mode="zeros", align_corners=False
    )
    expected = (sampled * weights[0, :, 0, 0][None, None]).sum(-1).transpose(1, 2)
    one_level = ms_deform_attn(value[:, : h * w], SHAPES[:1], loc[:, :, :, :1], weights[:, :, :, :1])
    torch.testing.assert_close(one_level, expected)


def test_shape_errors_are_clear():
    value, loc, weights = _inputs()
    with pytest.raises(ValueError, match="tokens"):
        ms_deform_attn(value[:, 1:], SHAPES, loc, weights)
    with pytest.raises(ValueError, match="weights must be"):
        ms_deform_attn(value, SHAPES, loc, weights[..., 1:])
    with pytest.raises(ValueError, match="impl"):
        ms_deform_attn(value, SHAPES, loc, weights, impl="cuda")


def test_msdeformattn_module_matches_the_formula():
    torch.manual_seed(0)
    m = MSDeformAttn(16, 2, SHAPES, points=3)
    for p in m.parameters():
        torch.nn.init.normal_(p, std=0.2)
    b, q, s = 2, 4, sum(h * w for h, w in SHAPES)
    query, value, ref = torch.randn(b, q, 16), torch.randn(b, s, 16), torch.rand(b, q, 2)
    out = m(query, value, ref)
    v = m.value_proj(value).view(b, s, 2, 8)
    off = m.sampling_offsets(query).view(b, q, 2, 3, 3, 2)
    wts = m.attention_weights(query).view(b, q, 2, 9).softmax(-1).view(b, q, 2, 3, 3)
    norm = torch.tensor([[w, h] for h, w in SHAPES], dtype=torch.float32)
    loc = ref[:, :, None, None, None] + off / norm[None, None, None, :, None]
    torch.testing.assert_close(
        out, m.output_proj(ms_deform_attn_reference(v, SHAPES, loc, wts)), atol=1e-5, rtol=0
    )


def _official_window_mix(m, query, window, locs_fn):
    """The official form: a softmax per frame, each frame's output weighted by its share of sum(exp)."""
    b, q, _ = query.shape
    levels = len(m.shapes)
    v = m.value_proj(window)
    out, shares = [], []
    for i, o in enumerate(m.frame_offsets):
        logits = getattr(m, f"{FRAME_PREFIX[o]}attention_weights")(query).view(
            b, q, m.heads, levels * m.points
        )
        shares.append(logits.exp().sum(-1, keepdim=True))
        wts = logits.softmax(-1).view(b, q, m.heads, levels, m.points)
        off = getattr(m, f"{FRAME_PREFIX[o]}sampling_offsets")(query).view(b, q, m.heads, levels, m.points, 2)
        vt = v[:, i].reshape(b, -1, m.heads, m.dim // m.heads)
        out.append(ms_deform_attn_reference(vt, m.shapes, locs_fn(i, off), wts).view(b, q, m.heads, -1))
    total = sum(shares)
    mixed = sum(o * (s / total) for o, s in zip(out, shares))
    return m.output_proj(mixed.flatten(-2))


def test_frame_window_attention_equals_the_official_per_frame_mix():
    torch.manual_seed(1)
    m = FrameDeformAttn(16, 2, SHAPES, points=2, frame_offsets=(-1, 0, 1))
    assert {"pre_sampling_offsets.weight", "sampling_offsets.weight", "next_attention_weights.bias"} <= set(
        m.state_dict()
    )
    for p in m.parameters():
        torch.nn.init.normal_(p, std=0.2)
    b, q, s = 2, 3, sum(h * w for h, w in SHAPES)
    query, window, ref = torch.randn(b, q, 16), torch.randn(b, 3, s, 16), torch.rand(b, 3, q, 2)
    out = m(query, m.project_value(window), ref)
    norm = torch.tensor([[w, h] for h, w in SHAPES], dtype=torch.float32)
    expected = _official_window_mix(
        m,
        query,
        window,
        lambda i, off: ref[:, i, :, None, None, None] + off / norm[None, None, None, :, None],
    )
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)


def test_pose_aware_attention_samples_around_each_joint_scaled_by_the_pose_box():
    torch.manual_seed(2)
    k = 4
    m = PoseDeformAttn(16, 2, SHAPES, points=k, frame_offsets=(-1, 0, 1), impl="gather")
    for p in m.parameters():
        torch.nn.init.normal_(p, std=0.2)
    b, q, s = 1, 3, sum(h * w for h, w in SHAPES)
    query, window = torch.randn(b, q, 16), torch.randn(b, 3, s, 16)
    poses = torch.rand(b, 3, q, k, 2)
    out = m(query, m.project_value(window), poses)

    def locs(i, off):
        pose = poses[:, i]
        wh = torch.stack(
            [
                pose[..., 0].max(-1)[0] - pose[..., 0].min(-1)[0],
                pose[..., 1].max(-1)[0] - pose[..., 1].min(-1)[0],
            ],
            -1,
        ).clamp(min=1e-4)
        return pose[:, :, None, None] + off * wh[:, :, None, None, None] * 0.5

    torch.testing.assert_close(out, _official_window_mix(m, query, window, locs), atol=1e-5, rtol=0)


@pytest.mark.parametrize("impl", ["grid_sample", "gather"])
def test_exports_to_onnx_and_runs_in_onnxruntime(impl, tmp_path):
    ort = pytest.importorskip("onnxruntime")

    class Op(torch.nn.Module):
        def forward(self, value, loc, weights):
            return ms_deform_attn(value, SHAPES, loc, weights, impl=impl)

    value, loc, weights = _inputs(lo=-0.1, hi=1.1)
    path = tmp_path / "msda.onnx"
    torch.onnx.export(
        Op(),
        (value, loc, weights),
        str(path),
        opset_version=17,
        dynamo=False,
        input_names=["value", "loc", "weights"],
    )
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"value": value.numpy(), "loc": loc.numpy(), "weights": weights.numpy()})[0]
    torch.testing.assert_close(
        torch.from_numpy(got), ms_deform_attn_reference(value, SHAPES, loc, weights), atol=1e-5, rtol=0
    )

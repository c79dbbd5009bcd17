"""The training losses on hand-checked cases, the teacher adapters and the recipes' tables."""

import math

import pytest
import torch

from edgepose.training import losses as L
from edgepose.training.recipes import RECIPES, get_recipe, layer_decay, recipe_for, trained_part
from edgepose.training.teacher import Teacher, TokenInfo, TokenProjection, build_teacher
from edgepose.zoo import create_model, get_spec

LOG_2PI = math.log(2 * math.pi)


def _one_joint():
    """coords (0.5, 0.5), target (0.6, 0.3), sigma (0.1, 0.2): error (0.1, -0.2), residual (1, -1)."""
    coords = torch.tensor([[[0.5, 0.5]]])
    target = torch.tensor([[[0.6, 0.3]]])
    sigma = torch.tensor([[[0.1, 0.2]]])
    return coords, sigma, target, torch.ones(1, 1)


# ------------------------------------------------------------------------------------------- RLE
def test_identity_flow_is_the_gaussian_prior():
    flow = L.RealNVP().make_identity()
    x = torch.tensor([[0.0, 0.0], [1.0, -2.0], [0.3, 0.4]])
    expected = -0.5 * x.square().sum(-1) - LOG_2PI
    torch.testing.assert_close(flow.log_prob(x), expected)
    shifted = L.RealNVP(prior_mean=0.5).make_identity()  # DSTA's code centres its prior at 0.5
    torch.testing.assert_close(shifted.log_prob(x), -0.5 * (x - 0.5).square().sum(-1) - LOG_2PI)


def test_rle_with_identity_flow_is_laplace_nll_plus_prior_nll():
    coords, sigma, target, w = _one_joint()
    loss, parts = L.rle_loss(coords, sigma, target, w, L.RealNVP().make_identity())
    # Laplace NLL of the error with scale sqrt(2) * sigma, per coordinate, by hand
    laplace = sum(
        math.log(2 * math.sqrt(2) * s) + e / (math.sqrt(2) * s) for s, e in ((0.1, 0.1), (0.2, 0.2))
    )
    assert parts["rle_residual"].item() == pytest.approx(laplace, abs=1e-5)
    assert laplace == pytest.approx(-0.41837, abs=1e-5)
    # the identity flow leaves the standard normal NLL of the residual (1, -1): 1 + log(2 pi)
    assert parts["rle_flow"].item() == pytest.approx(1 + LOG_2PI, abs=1e-5)
    assert loss.item() == pytest.approx(2.41951, abs=1e-4)


def test_rle_official_broadcast_and_gaussian_residual():
    coords, sigma, target, w = _one_joint()
    flow = L.RealNVP().make_identity()
    official, _ = L.rle_loss(coords, sigma, target, w, flow, compat="official")
    # official: sum_d (log sigma_d - log G) + sum_d (log(sigma_d sqrt(2 pi)) + |e_d| / (sqrt 2 sigma_d))
    by_hand = sum(
        math.log(s) + (1 + LOG_2PI) + math.log(s * math.sqrt(2 * math.pi)) + e / (math.sqrt(2) * s)
        for s, e in ((0.1, 0.1), (0.2, 0.2))
    )
    assert official.item() == pytest.approx(by_hand, abs=1e-4)
    _, parts = L.rle_loss(coords, sigma, target, w, flow, residual="gaussian")
    gauss = sum(0.5 * LOG_2PI + math.log(s) + e * e / (2 * s * s) for s, e in ((0.1, 0.1), (0.2, 0.2)))
    assert parts["rle_residual"].item() == pytest.approx(gauss, abs=1e-4)


def test_rle_weights_batch_mean_and_flow_gradients():
    coords, sigma, target, w = _one_joint()
    flow = L.RealNVP()
    single, _ = L.rle_loss(coords, sigma, target, w, flow)
    # a second joint with weight 0 adds nothing, whatever it predicts; a second sample halves nothing
    c2 = torch.cat([coords, torch.tensor([[[5.0, -3.0]]])], 1)
    s2 = torch.cat([sigma, torch.tensor([[[0.01, 0.01]]])], 1)
    t2 = torch.cat([target, torch.zeros(1, 1, 2)], 1)
    c2.requires_grad_(True)
    s2.requires_grad_(True)
    masked, _ = L.rle_loss(c2, s2, t2, torch.tensor([[1.0, 0.0]]), flow)
    assert masked.item() == pytest.approx(single.item(), abs=1e-5)
    masked.backward()  # ... and sends its prediction no gradient, while the weighted joint gets one
    assert torch.equal(c2.grad[0, 1], torch.zeros(2)) and torch.equal(s2.grad[0, 1], torch.zeros(2))
    assert bool((c2.grad[0, 0] != 0).all() and (s2.grad[0, 0] != 0).all())
    batch, _ = L.rle_loss(
        coords.repeat(2, 1, 1), sigma.repeat(2, 1, 1), target.repeat(2, 1, 1), w.repeat(2, 1), flow
    )
    assert batch.item() == pytest.approx(single.item(), abs=1e-5)  # summed over joints, mean over the batch
    # The flow is trained by the loss: every flow parameter gets a finite, nonzero gradient. (Not at
    # the residual above: there |err / sigma| = 1 in both coordinates, where the Gaussian prior's
    # gradient 1 - z^2 on a coupling's scale vanishes, so every other coupling's scale net gets 0.)
    flow.zero_grad(set_to_none=True)
    off, _ = L.rle_loss(coords, sigma, target + torch.tensor([0.03, -0.05]), w, flow)
    off.backward()
    for n, p in flow.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, n


def test_rle_rejects_unknown_options():
    coords, sigma, target, w = _one_joint()
    with pytest.raises(ValueError, match="residual"):
        L.rle_loss(coords, sigma, target, w, L.RealNVP(), residual="cauchy")
    with pytest.raises(ValueError, match="even number"):
        L.RealNVP(couplings=3)


# -------------------------------------------------------------------------------------- heatmaps
def test_heatmap_mse_by_hand_and_ignores_zero_weight_joints():
    pred = torch.zeros(1, 2, 2, 2)
    target = torch.zeros(1, 2, 2, 2)
    target[0, 0, 0, 0] = 1.0
    w = torch.tensor([[2.0, 0.0]])
    # one pixel of 8 differs by 1, weighted 2: (2 * 1)^2 / 8
    assert L.heatmap_mse(pred, target, w).item() == pytest.approx(0.5)
    other = pred.clone()
    other[0, 1] = torch.randn(2, 2) * 10
    assert L.heatmap_mse(other, target, w).item() == pytest.approx(0.5)
    with pytest.raises(ValueError, match="differ in shape"):
        L.heatmap_mse(pred, target[:, :1], w)


def test_oks_and_quality_loss():
    size = (64, 48)
    hm = torch.zeros(1, 2, 16, 12)
    hm[0, 0, 4, 3] = 1.0  # -> crop pixel (12, 16)
    hm[0, 1, 8, 6] = 1.0  # -> crop pixel (24, 32)
    xy = L.heatmap_argmax(hm, size)
    torch.testing.assert_close(xy, torch.tensor([[[12.0, 16.0], [24.0, 32.0]]]))
    sigmas = torch.tensor([0.05, 0.1])
    gt = torch.tensor([[[12.0, 16.0], [27.0, 36.0]]])  # joint 1 off by (3, 4): d^2 = 25
    area = 64.0 * 48.0
    oks, valid = L.instance_oks(xy, gt, torch.ones(1, 2), sigmas, area)
    expected = (1.0 + math.exp(-25 / (2 * area * (2 * 0.1) ** 2))) / 2
    assert oks.item() == pytest.approx(expected, abs=1e-6) and bool(valid.all())
    oks0, valid0 = L.instance_oks(xy, gt, torch.zeros(1, 2), sigmas, area)
    assert not bool(valid0.any())
    q, mean_oks = L.quality_loss(torch.tensor([expected]), hm, gt, torch.ones(1, 2), sigmas, size)
    assert q.item() == pytest.approx(0.0, abs=1e-10) and mean_oks.item() == pytest.approx(expected, abs=1e-6)
    q2, _ = L.quality_loss(torch.tensor([expected + 0.1]), hm, gt, torch.ones(1, 2), sigmas, size)
    assert q2.item() == pytest.approx(0.01, abs=1e-6)


# ------------------------------------------------------------------------------------ DistilPose
def test_simulated_heatmap_is_the_papers_gaussian():
    coords = torch.tensor([[[5 / 12, 8 / 16]]])  # heatmap pixel (x=5, y=8) on a 16x12 grid
    sigma = torch.tensor([[[1.0, 2.0]]])
    hm, in_range = L.simulated_heatmaps(coords, sigma, (16, 12))
    assert bool(in_range.all())
    assert hm[0, 0, 8, 5].item() == pytest.approx(1.0)
    assert hm[0, 0, 8, 6].item() == pytest.approx(math.exp(-0.5))  # one sigma_x away
    assert hm[0, 0, 10, 5].item() == pytest.approx(math.exp(-0.5))  # one sigma_y (2 px) away
    far, out = L.simulated_heatmaps(torch.tensor([[[3.0, 3.0]]]), sigma, (16, 12))
    assert not bool(out.any()) and far.abs().sum().item() == 0.0


def test_distillation_terms_vanish_when_student_matches_teacher():
    g = torch.Generator().manual_seed(0)
    coords = torch.rand(2, 3, 2, generator=g) * 0.8 + 0.1
    sigma = torch.rand(2, 3, 2, generator=g) + 1.0
    w = torch.ones(2, 3)
    teacher_hm, _ = L.simulated_heatmaps(coords, sigma, (16, 12))
    assert L.simulated_heatmap_loss(coords, sigma, teacher_hm, w).item() == pytest.approx(0.0, abs=1e-12)
    assert L.simulated_heatmap_loss(coords + 0.05, sigma, teacher_hm, w).item() > 1e-4
    score = L.teacher_value_at(coords, teacher_hm)
    assert L.confidence_loss(coords, score, teacher_hm, w).item() == pytest.approx(0.0, abs=1e-12)
    tokens = torch.randn(2, 5, 8, generator=g)
    assert L.token_distill_loss(tokens, tokens.clone()).item() == 0.0
    assert L.token_distill_loss(tokens, tokens + 1).item() == pytest.approx(1.0)
    assert L.smooth_l1_regression(coords, coords.clone(), w).item() == 0.0


def test_confidence_reads_the_teacher_at_the_rounded_point():
    hm = torch.zeros(1, 2, 16, 12)
    hm[0, 0, 4, 3] = 0.7
    hm[0, 1, 4, 3] = 0.9
    coords = torch.tensor([[[3.2 / 12, 3.9 / 16], [1.5, 0.3]]])  # joint 1 leaves the crop: value 0
    torch.testing.assert_close(L.teacher_value_at(coords, hm), torch.tensor([[0.7, 0.0]]))
    loss = L.confidence_loss(coords, torch.tensor([[0.5, 0.4]]), hm, torch.ones(1, 2))
    assert loss.item() == pytest.approx((0.2 + 0.4) / 2)
    masked = L.confidence_loss(coords, torch.tensor([[0.5, 0.4]]), hm, torch.tensor([[1.0, 0.0]]))
    assert masked.item() == pytest.approx(0.2 / 2)


def test_smooth_l1_by_hand():
    coords = torch.tensor([[[0.0, 0.0]]])
    target = torch.tensor([[[0.5, 3.0]]])
    # 0.5 * 0.5^2 = 0.125 and 3 - 0.5 = 2.5, mean 1.3125
    assert L.smooth_l1_regression(coords, target, torch.ones(1, 1)).item() == pytest.approx(1.3125)


# --------------------------------------------------------------------------------------- teachers
def test_sharpose_teacher_gives_heatmaps_and_tokens():
    student = get_spec("distilpose_s_tiny")
    teacher, desc = build_teacher("sharpose_s_tiny", student)
    assert "random" in desc
    out = teacher(torch.randn(2, 3, 64, 48))
    assert out.heatmaps.shape == (2, 17, 16, 12)
    assert out.kpt_tokens.shape == (2, 17, 32)
    assert out.vis_tokens.shape == (2, 12, 32) and teacher.tokens == TokenInfo(32, (4, 3))
    assert not any(p.requires_grad for p in teacher.model.parameters())


def test_tar_teacher_maps_posetrack_joints_onto_a_coco_student():
    student = get_spec("distilpose_s_tiny")
    spec = get_spec("tar_vitpose_s_tiny")
    teacher = Teacher(create_model("tar_vitpose_s_tiny"), spec, student)
    assert set(teacher.missing_joints) == {"left_eye", "right_eye", "left_ear", "right_ear"}
    out = teacher(torch.randn(2, 3, 64, 48))  # a still image becomes a static 3-frame clip
    names = ("left_eye", "right_eye", "left_ear", "right_ear")
    from edgepose.core.keypoints import get_layout

    coco = get_layout("coco17")
    for n in names:
        assert out.heatmaps[:, coco.index(n)].abs().sum() == 0 and teacher.joint_mask[coco.index(n)] == 0
    assert out.kpt_tokens.shape == (2, 17, 32) and out.vis_tokens.shape == (2, 12, 32)


def test_teacher_from_a_checkpoint(tmp_path):
    from edgepose.zoo import save_checkpoint

    trained = create_model("sharpose_s_tiny")
    path = save_checkpoint(trained, tmp_path / "teacher.pt")
    teacher, desc = build_teacher(str(path), get_spec("distilpose_s_tiny"))
    assert str(path) in desc
    for k, v in trained.state_dict().items():
        assert torch.equal(teacher.model.state_dict()[k], v)
    with pytest.raises(KeyError, match="unknown model"):
        build_teacher("nope_s", get_spec("distilpose_s_tiny"))


def test_teacher_must_be_a_heatmap_model():
    with pytest.raises(ValueError, match="must output heatmaps"):
        Teacher(create_model("dsta_mnv2_tiny"), get_spec("dsta_mnv2_tiny"), get_spec("distilpose_s_tiny"))


def test_token_projection_bridges_width_and_grid():
    proj = TokenProjection(32, (4, 4), TokenInfo(64, (4, 3)))
    assert proj.visual(torch.randn(2, 16, 32)).shape == (2, 12, 64)
    assert proj.keypoints(torch.randn(2, 17, 32)).shape == (2, 17, 64)
    same = TokenProjection(32, (4, 3), TokenInfo(32, (4, 3)))
    x = torch.randn(2, 12, 32)
    assert torch.equal(same.visual(x), x) and not list(same.parameters())


# ---------------------------------------------------------------------------------------- recipes
def test_recipes_table_and_synthetic_variants():
    for family in ("dsta", "distilpose", "sharpose", "tar_vitpose"):
        spec = type("Spec", (), {"family": family})()
        paper, short = recipe_for(spec), recipe_for(spec, synthetic=True)
        assert short.name == f"{paper.name}_synthetic" and short.family == family
        assert short.epochs <= paper.epochs and short.batch_size == 32 and short.warmup_epochs == 1
    dsta = get_recipe("dsta")
    assert (dsta.optimizer, dsta.lr, dsta.weight_decay, dsta.epochs, dsta.milestones) == (
        "adamw",
        2e-4,
        0.01,
        40,
        (20, 30),
    )
    cfg = dsta.config(epochs=4)
    assert cfg.milestones == (0.5, 0.75) and cfg.epochs == 4 and cfg.schedule == "step"
    assert get_recipe("distilpose").config().batch_size == 512
    short = get_recipe("sharpose_synthetic").config(steps_per_epoch=10)
    assert short.warmup_steps == 10 and get_recipe("sharpose_synthetic").layer_decay == 0.8
    weights = dsta.dataset_options("posetrack17")["joint_weights"]
    from edgepose.core.keypoints import get_layout

    names = get_layout("posetrack17").names
    assert weights[names.index("left_wrist")] == 1.5 and weights[names.index("right_knee")] == 1.2
    assert weights[names.index("nose")] == 1.0 and get_recipe("distilpose").dataset_options("coco17") == {}
    with pytest.raises(KeyError, match="unknown recipe"):
        get_recipe("nope")
    papers = {"distilpose", "dsta", "pave", "sharpose", "tar_vitpose", "vitpose_s"}
    assert set(RECIPES) == papers | {f"{n}_synthetic" for n in papers} | {"tar_vitpose_finetune_synthetic"}


def test_single_frame_recipe_trains_tar_vitposes_vitpose_on_still_crops():
    """vitpose_s is the paper's COCO stage: ViTPose alone, one frame; the fine-tune recipe is TAR's."""
    model = create_model("tar_vitpose_s_tiny")
    spec = get_spec("tar_vitpose_s_tiny")
    part, part_spec = trained_part(model, spec, get_recipe("vitpose_s_synthetic"))
    assert part_spec.frame_offsets == (0,) and not part_spec.is_temporal and spec.frame_offsets == (-1, 0, 1)
    assert part.backbone is model.backbone and part.heatmap_head is model.heatmap_head
    for name in ("tar_vitpose", "tar_vitpose_synthetic", "tar_vitpose_finetune_synthetic"):
        assert trained_part(model, spec, get_recipe(name)) == (model, spec)
    fine, stage = get_recipe("tar_vitpose_finetune_synthetic"), get_recipe("vitpose_s_synthetic")
    assert fine.layer_decay is None and fine.gamma == 0.5 and stage.layer_decay == 0.8
    assert fine.lr == pytest.approx(stage.lr * (5e-6 / 16) / (5e-4 / 512))  # the paper's per-sample ratio
    with pytest.raises(ValueError, match="single-frame part, which dsta_mnv2_tiny does not have"):
        trained_part(create_model("dsta_mnv2_tiny"), get_spec("dsta_mnv2_tiny"), stage)


def test_layer_decay_follows_vitpose():
    model = create_model("tar_vitpose_s_tiny")  # 2 ViT layers: embeddings 0, layers 1..2, rest 3
    scale = layer_decay(model, "tar_vitpose", 0.8)
    assert scale("backbone.pos_embed") == pytest.approx(0.8**3)
    assert scale("backbone.patch_embed.projection.weight") == pytest.approx(0.8**3)
    assert scale("backbone.layers.0.attn.qkv.weight") == pytest.approx(0.8**2)
    assert scale("backbone.layers.1.attn.qkv.weight") == pytest.approx(0.8)
    assert scale("heatmap_head.final_layer.weight") == 1.0 and scale("task.flow.x") == 1.0
    sharp = layer_decay(create_model("sharpose_s_tiny"), "sharpose", 0.5)  # 4 blocks
    assert sharp("quality_token") == pytest.approx(0.5**5) and sharp("blocks.3.norm1.weight") == 0.5
    with pytest.raises(KeyError, match="no layer rule"):
        layer_decay(model, "dsta", 0.8)

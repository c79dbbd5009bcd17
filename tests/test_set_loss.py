"""PAVE-Net's set loss (edgepose.training.set_loss): matching, minimum at the truth, learning a toy."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("scipy")

from edgepose.core.keypoints import get_layout
from edgepose.training.losses import RealNVP
from edgepose.training.set_loss import (
    MatchWeights,
    SetCriterion,
    focal_cost,
    hungarian_match,
    keypoint_areas,
    oks,
    pose_l1_cost,
    sigmoid_focal_loss,
)

K = 17
SIGMAS = torch.as_tensor(np.asarray(get_layout("coco17").sigmas, np.float32))


def people(n: int, seed: int = 0, hidden: int = 0) -> torch.Tensor:
    """(n, K, 3) people spread over the image: a centre per person plus a small random skeleton."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.rand(n, 1, 2, generator=g) * 0.6 + 0.2
    xy = (centres + (torch.rand(n, K, 2, generator=g) - 0.5) * 0.2).clamp(0, 1)
    vis = torch.ones(n, K, 1)
    if hidden:
        vis[:, :hidden] = 0
    return torch.cat([xy, vis], -1)


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors: one thread is faster than two fighting over a busy CPU (20 ms vs 1 s a step)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def identity_criterion(**kw) -> SetCriterion:
    return SetCriterion("coco17", flow=RealNVP().make_identity(), **kw)


def test_matching_finds_the_planted_permutation():
    gt = people(3, seed=1, hidden=4)
    m = 7
    g = torch.Generator().manual_seed(2)
    poses = torch.rand(m, K, 2, generator=g)  # decoys
    perm = np.array([5, 0, 3])  # person j is predicted by query perm[j]
    for j, q in enumerate(perm):
        poses[q] = gt[j, :, :2] + 0.01 * torch.randn(K, 2, generator=g)
    logits = torch.zeros(m)
    rows, cols = hungarian_match(logits, poses, gt, SIGMAS)
    np.testing.assert_array_equal(cols, [0, 1, 2])
    np.testing.assert_array_equal(rows, perm)
    # unlabelled joints do not sway the match: wreck them in the planted predictions
    poses[perm[:, None], torch.arange(4)[None]] = 5.0
    rows, _ = hungarian_match(logits, poses, gt, SIGMAS)
    np.testing.assert_array_equal(rows, perm)


def test_matching_prefers_the_confident_of_two_equal_poses():
    gt = people(1, seed=3)
    poses = gt[:, :, :2].repeat(2, 1, 1)
    rows, _ = hungarian_match(torch.tensor([-2.0, 3.0]), poses, gt, SIGMAS)
    assert rows.tolist() == [1]
    rows, _ = hungarian_match(torch.tensor([3.0, -2.0]), poses, gt, SIGMAS)
    assert rows.tolist() == [0]


def test_costs_at_the_truth():
    gt = people(3, seed=4, hidden=2)
    poses = gt[..., :2].clone()
    l1 = pose_l1_cost(poses, gt)
    assert torch.allclose(l1.diagonal(), torch.zeros(3), atol=1e-7)
    assert (l1 - torch.diag(l1.diagonal()) >= 0).all()
    s = oks(poses, gt, SIGMAS)
    assert torch.allclose(s.diagonal(), torch.ones(3)) and (s <= 1 + 1e-6).all()
    assert (keypoint_areas(gt) > 0).all()
    # a confident prediction costs less to call a person than an unsure one
    c = focal_cost(torch.tensor([4.0, 0.0, -4.0]))
    assert c[0] < c[1] < c[2]
    assert hungarian_match(torch.zeros(2), poses[:2], gt[:0], SIGMAS)[0].size == 0


def perfect_level(gts, m: int, sigma: float = 0.01, logit: float = 9.0):
    """One level whose first N_i queries are exactly the people, confident; the rest far and unsure."""
    b = len(gts)
    poses = torch.full((b, m, K, 2), 0.5)
    logits = torch.full((b, m), -logit)
    for i, gt in enumerate(gts):
        poses[i, : len(gt)] = gt[..., :2]
        logits[i, : len(gt)] = logit
    return {"poses": poses, "sigmas": torch.full((b, m, K, 2), sigma), "logits": logits}


def test_loss_is_minimal_at_perfect_predictions():
    gts = [people(2, seed=5, hidden=3), people(1, seed=6)]
    crit = identity_criterion()
    best = perfect_level(gts, m=6)
    loss, parts = crit([best], gts)
    assert parts["l0.cls"] < 1e-3  # classification all but zero when every call is right and sure
    for scale in (0.005, 0.02, 0.1):
        worse = {**best, "poses": best["poses"] + scale * torch.randn_like(best["poses"])}
        assert crit([worse], gts)[0] > loss
    unsure = {**best, "logits": best["logits"] * 0.2}
    assert crit([unsure], gts)[0] > loss
    # at the truth, RLE is smaller with a smaller sigma (the model is rewarded for being sure)
    sure, unsure_sigma = perfect_level(gts, 6, sigma=0.005), perfect_level(gts, 6, sigma=0.05)
    assert crit([sure], gts)[0] < crit([unsure_sigma], gts)[0]
    # an unlabelled joint's prediction does not matter
    moved = {**best, "poses": best["poses"].clone()}
    moved["poses"][0, 0, 0] += 0.3  # person 0's joint 0 is hidden
    assert torch.allclose(crit([moved], gts)[0], loss)


def test_levels_parts_and_reused_matching():
    gts = [people(2, seed=7), people(0, seed=8)]
    crit = identity_criterion()
    init = perfect_level(gts, m=4)
    refine = {"poses": init["poses"].flip(1), "sigmas": init["sigmas"], "logits": init["logits"].flip(1)}
    joint = {"poses": refine["poses"], "sigmas": refine["sigmas"]}  # no logits: reuses refine's match
    total, parts = crit([init, refine, joint], gts)
    assert set(parts) == {"l0.cls", "l0.rle", "l1.cls", "l1.rle", "l2.rle"}
    assert torch.allclose(parts["l2.rle"], parts["l1.rle"])  # same poses, same (reused) matching
    assert torch.allclose(parts["l0.rle"], parts["l1.rle"], atol=1e-5)  # matching follows the permutation
    want = 0.5 * (parts["l0.cls"] + parts["l1.cls"]) + parts["l0.rle"] + parts["l1.rle"] + parts["l2.rle"]
    assert torch.allclose(total, want)
    with pytest.raises(ValueError, match="logits"):
        crit([joint], gts)
    with pytest.raises(ValueError, match="target tensors"):
        crit([init], gts[:1])


def test_no_people_only_classification():
    crit = identity_criterion()
    level = perfect_level([people(0)], m=3)
    level["logits"] = level["logits"].clone().requires_grad_(True)
    loss, parts = crit([level], [people(0)])
    assert parts["l0.rle"] == 0
    loss.backward()
    assert level["logits"].grad is not None and (level["logits"].grad > 0).all()  # pushed further down


def test_sigmoid_focal_loss_matches_definition():
    x = torch.tensor([2.0, -1.0, 0.5])
    y = torch.tensor([1.0, 0.0, 0.0])
    p = torch.sigmoid(x)
    want = (
        -0.25 * (1 - p[0]) ** 2 * torch.log(p[0])
        - 0.75 * p[1] ** 2 * torch.log(1 - p[1])
        - 0.75 * p[2] ** 2 * torch.log(1 - p[2])
    )
    assert torch.allclose(sigmoid_focal_loss(x, y), want, atol=1e-6)


def test_loss_decreases_under_gradient_steps():
    torch.manual_seed(0)
    gts = [people(2, seed=11, hidden=2), people(1, seed=12)]
    b, m = 2, 5
    pose_logit = torch.zeros(b, m, K, 2, requires_grad=True)  # poses = sigmoid(.): all start at 0.5
    sigma_logit = torch.full((b, m, K, 2), -2.0, requires_grad=True)
    cls = torch.zeros(b, m, requires_grad=True)
    delta = torch.zeros(b, m, K, 2, requires_grad=True)  # a refinement on top of the initial poses
    crit = SetCriterion("coco17", flow=RealNVP(), match=MatchWeights())
    opt = torch.optim.Adam([pose_logit, sigma_logit, cls, delta, *crit.flow.parameters()], lr=0.05)

    def levels():
        init = {"poses": pose_logit.sigmoid(), "sigmas": sigma_logit.sigmoid(), "logits": cls}
        refined = {"poses": init["poses"] + 0.1 * torch.tanh(delta), "sigmas": init["sigmas"]}
        return [init, refined]

    def error():
        with torch.no_grad():
            lv = levels()
            errs = []
            for i, gt in enumerate(gts):
                rows, cols = hungarian_match(cls[i], lv[0]["poses"][i], gt, SIGMAS)
                vis = gt[cols][..., 2] > 0
                errs.append((lv[1]["poses"][i, rows] - gt[cols][..., :2]).abs().sum(-1)[vis].mean())
            return float(torch.stack(errs).mean())

    with torch.no_grad():
        first_loss, first_err = float(crit(levels(), gts)[0]), error()
    for _ in range(40):
        opt.zero_grad()
        loss, _ = crit(levels(), gts)
        loss.backward()
        opt.step()
    with torch.no_grad():
        last_loss, last_err = float(crit(levels(), gts)[0]), error()
    assert last_loss < first_loss - 1.0
    assert last_err < 0.5 * first_err
    # the matched queries learned to call themselves people, the others background
    with torch.no_grad():
        for i, gt in enumerate(gts):
            rows, _ = hungarian_match(cls[i], levels()[0]["poses"][i], gt, SIGMAS)
            p = cls[i].sigmoid()
            others = np.setdiff1d(np.arange(m), rows)
            assert p[rows].min() > p[others].max()

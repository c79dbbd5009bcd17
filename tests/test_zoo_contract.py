"""Every zoo model honours the stage contract, its paper's size and our checkpoint format."""

import fnmatch

import pytest
import torch

from edgepose.zoo import CheckpointError, create_model, get_spec, list_models, load_weights, save_checkpoint
from edgepose.zoo.costs import measure

FULL = list_models()
TINY = [n for n in list_models(include_variants=True) if get_spec(n).variant_of]


def _window_inputs(model, batch=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, model.num_frames, 3, *model.input_size, generator=g)


def _forward(model, seed=0):
    spec = get_spec(model.spec_name)
    x = _window_inputs(model, seed=seed) if spec.is_temporal else model.example_image(batch=2, seed=seed)
    return x, model(x)


def test_every_model_has_a_tiny_variant():
    assert set(FULL) == {
        "dsta_mnv2",
        "dsta_mnv2_coco",
        "distilpose_s",
        "sharpose_s",
        "tar_vitpose_s",
        "tar_vitpose_s_coco",
        "dsta_r50",
        "pave_r50",
        "pave_mnv2",
    }
    assert {get_spec(n).variant_of for n in TINY} == set(FULL)


@pytest.mark.parametrize("name", TINY)
def test_forward_backward_and_codec_outputs(name):
    torch.manual_seed(0)
    model = create_model(name).train()
    _, out = _forward(model)
    spec = get_spec(name)
    if spec.input_kind == "frame":  # whole-frame: M people, each K joints (x, y, score), and their scores
        b, m = out["scores"].shape
        assert b == 2 and out["poses"].shape == (2, m, model.num_joints, 3)
        assert bool(((out["scores"] >= 0) & (out["scores"] <= 1)).all())
    elif spec.codec == "regression":
        assert out["coords"].shape == (2, model.num_joints, 2)
        assert out["scores"].shape == (2, model.num_joints)
    else:
        assert out["heatmaps"].shape[:2] == (2, model.num_joints)
    loss = sum(v.float().square().mean() for v in out.values() if v.is_floating_point())
    loss.backward()
    # Every parameter that should learn gets a finite, nonzero gradient from the forward's outputs.
    # A model whose forward leaves some parameters out (training-only branches, read by its loss)
    # names them in ``UNTRAINED_BY_FORWARD`` (fnmatch patterns over parameter names).
    untrained = tuple(getattr(model, "UNTRAINED_BY_FORWARD", ()))
    learns = {n: p for n, p in model.named_parameters() if p.requires_grad}
    assert learns
    for n, p in learns.items():
        assert p.grad is None or torch.isfinite(p.grad).all(), f"{name}: non-finite gradient on {n}"
    dead = sorted(n for n, p in learns.items() if p.grad is None or not bool(p.grad.abs().sum() > 0))
    assert [n for n in dead if not any(fnmatch.fnmatchcase(n, u) for u in untrained)] == [], (
        f"{name}: parameters without a gradient from forward (declare them in UNTRAINED_BY_FORWARD if meant)"
    )


@pytest.mark.parametrize("name", TINY)
def test_stages_declare_their_io_and_run_on_example_inputs(name):
    model = create_model(name).eval()
    assert model.stage_names == get_spec(name).stages
    for stage in model.stage_names:
        ins, outs = model.stage_io(stage)
        ex = model.example_inputs(stage, batch=3)
        assert tuple(ex) == ins
        res = model.stage(stage)(*ex.values())
        assert len(res) == len(outs)
        assert all(r.shape[0] == 3 for r in res)


@pytest.mark.parametrize("name", [n for n in TINY if get_spec(n).is_temporal])
def test_temporal_forward_is_frame_stage_then_temporal_stage_on_the_window(name):
    model = create_model(name).eval()
    x = _window_inputs(model, seed=3)
    with torch.no_grad():
        full = model(x)
        per_frame = [model.run_stage("frame", image=x[:, t]) for t in range(x.shape[1])]
        # a temporal input takes the frame output of its name, or of its name without "_window"
        window = {}
        for k in model.stage_io("temporal")[0]:
            src = k if k in per_frame[0] else k.removesuffix("_window")
            window[k] = torch.stack([f[src] for f in per_frame], dim=1)
        assert set(window) == set(model.stage_io("temporal")[0])
        assert {k.removesuffix("_window") for k in window} == set(per_frame[0])
        composed = model.run_stage("temporal", **window)
    assert set(full) >= set(composed)
    for k, v in composed.items():
        torch.testing.assert_close(full[k], v, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", TINY)
def test_checkpoint_round_trip(name, tmp_path):
    torch.manual_seed(1)
    a = create_model(name).eval()
    path = save_checkpoint(a, tmp_path / "ck.pt", meta={"epoch": 3})
    torch.manual_seed(2)
    b = create_model(name).eval()
    report = load_weights(b, path)
    assert report.source == "edgepose" and report.meta == {"epoch": 3}
    x, out_a = _forward(a, seed=5)
    with torch.no_grad():
        out_b = b(x)
    for k in out_a:
        torch.testing.assert_close(out_a[k], out_b[k])


def test_loading_another_models_checkpoint_names_both(tmp_path):
    a = create_model("dsta_mnv2_tiny")
    path = save_checkpoint(a, tmp_path / "dsta.pt")
    with pytest.raises(CheckpointError, match="is for model 'dsta_mnv2_tiny', not 'distilpose_s_tiny'"):
        load_weights(create_model("distilpose_s_tiny"), path)
    state = {"state_dict": a.state_dict()}  # a foreign dict without our header
    with pytest.raises(CheckpointError):
        load_weights(create_model("distilpose_s_tiny"), state)


def test_corrupt_checkpoint_is_rejected_with_a_reason(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a zip file at all")
    with pytest.raises(CheckpointError, match="weights_only=True"):
        load_weights(create_model("dsta_mnv2_tiny"), bad)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_weights(create_model("dsta_mnv2_tiny"), tmp_path / "nope.pt")


def test_bad_names_and_options_are_clear_errors():
    with pytest.raises(KeyError, match="did you mean dsta_mnv2"):
        get_spec("dsta_mnv")
    with pytest.raises(TypeError, match="unknown config option"):
        create_model("dsta_mnv2_tiny", no_such_option=1)


@pytest.mark.parametrize("name", FULL)
def test_params_and_flops_match_the_paper(name):
    spec = get_spec(name)
    cost = measure(create_model(name), name)
    if spec.paper.params_m:
        assert cost.params / 1e6 == pytest.approx(spec.paper.params_m, rel=0.10)
    for key, paper in spec.paper.gflops.items():  # the papers counted with mmcv's convention
        ours = cost.steady_state_gflops_mmcv if key == "total" else cost.stages[key].gflops_mmcv
        assert ours == pytest.approx(paper, rel=0.15), key


@pytest.mark.parametrize("name", list_models(include_variants=True))
def test_spec_agrees_with_its_built_model(name):
    """A spec's stages, codec, input size, window and layout are what its builder builds (read from
    the class, not restated)."""
    from edgepose.core.keypoints import get_layout

    spec = get_spec(name)
    model = create_model(name)
    assert spec.stages == model.stage_names
    assert spec.codec == model.codec and spec.input_kind == model.input_kind
    assert spec.input_size == model.input_size
    assert spec.frame_offsets == model.frame_offsets
    assert spec.layout == getattr(model, "layout", spec.layout)
    assert len(get_layout(spec.layout)) == model.num_joints

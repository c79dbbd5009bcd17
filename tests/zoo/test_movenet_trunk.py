"""MoveNet Lightning's trunk in the zoo's MobileNet-V2 (``--weights movenet``), checked against the original.

The reference is MoveNet's own ONNX graph cut at its last 320-channel block and run by onnxruntime
on a real crop (messi5.jpg) as MoveNet takes it (int32 RGB 0-255); the zoo trunk runs the same crop
standardised the zoo's way (ImageNet mean/std). The graph's input is made size-free so the check
runs at the DSTA input size (256x192) rather than MoveNet's 192x192.
"""

import numpy as np
import pytest
import torch

from edgepose.core.assets import asset_path
from edgepose.core.transforms import normalize
from edgepose.zoo import create_model, get_spec
from edgepose.zoo.layers.mobilenet_v2 import MobileNetV2, tf_same_pads
from edgepose.zoo.movenet_trunk import (
    ASSET,
    MoveNetTrunkError,
    calibrate_batchnorm,
    init_from_movenet,
    read_movenet_trunk,
)

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


def _asset(name):
    from edgepose.external.check import ExternalModelError, verified_path

    try:
        return verified_path(name)
    except ExternalModelError as e:
        pytest.skip(f"{name}: {e}")


@pytest.fixture(scope="module")
def movenet_path():
    return _asset(ASSET)


@pytest.fixture(scope="module")
def crop():
    """A 256x192 RGB crop around the player in messi5.jpg."""
    import cv2

    path = asset_path("messi5.jpg")
    if path is None:
        pytest.skip("messi5.jpg is not in .assets (bash scripts/fetch_assets.sh)")
    bgr = cv2.imread(str(path))
    return np.ascontiguousarray(cv2.resize(bgr[40:340, 180:405], (192, 256))[..., ::-1])


@pytest.fixture(scope="module")
def reference(movenet_path, crop, tmp_path_factory):
    """MoveNet's activations at its last 320-channel block, from its own graph in onnxruntime."""
    model = onnx.load(str(movenet_path))
    last = next(
        n.output[0]
        for n in model.graph.node
        if n.op_type == "Conv"
        and any(i.name == n.input[1] and i.dims[0] == 320 for i in model.graph.initializer)
    )
    dims = model.graph.input[0].type.tensor_type.shape.dim
    dims[1].dim_param, dims[2].dim_param = "height", "width"  # size-free: convs run at any size
    full = tmp_path_factory.mktemp("movenet") / "sized.onnx"
    onnx.save(model, str(full))
    cut = full.with_name("trunk.onnx")
    onnx.utils.extract_model(str(full), str(cut), [model.graph.input[0].name], [last])
    session = ort.InferenceSession(str(cut), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: crop[None].astype(np.int32)})[0]


def _trunk_to_last_block(trunk, x):
    x = trunk.conv1(x)
    for name in trunk.stage_names:
        x = getattr(trunk, name)(x)
    return x


def test_tf_padding_facts():
    assert tf_same_pads((256, 192), 3, 2) == (0, 1, 0, 1)  # TF pads after on even sizes
    assert tf_same_pads((3, 5), 3, 2) == (1, 1, 1, 1)  # and both sides on odd ones
    assert tf_same_pads((8, 8), 3, 1) == (1, 1, 1, 1)  # stride 1: symmetric, as PyTorch's padding=1
    torch_trunk, tf_trunk = MobileNetV2(0.25, 64), MobileNetV2(0.25, 64, pad="tf", input_size=(64, 48))
    assert set(tf_trunk.state_dict()) == set(torch_trunk.state_dict()) | {"conv1.pad.fill"}
    tf_trunk.load_state_dict(torch_trunk.state_dict(), strict=False)
    x = torch.randn(1, 3, 64, 48)
    with torch.no_grad():
        a, b = torch_trunk.eval()(x), tf_trunk.eval()(x)
    assert a.shape == b.shape == (1, 64, *MobileNetV2.output_size((64, 48)))
    assert not torch.allclose(a, b)  # the same weights sample the image one pixel apart
    with pytest.raises(ValueError, match="needs input_size"):
        MobileNetV2(pad="tf")


@pytest.mark.parametrize("calibrate", [False, True])
def test_loaded_trunk_reproduces_movenet_on_a_real_crop(reference, crop, calibrate):
    spec = get_spec("dsta_mnv2_coco")
    model = create_model("dsta_mnv2_coco").eval()
    x = torch.from_numpy(normalize(crop, spec.mean, spec.std))[None]
    note = init_from_movenet(model)
    if calibrate:  # keeps the eval-mode function
        calibrate_batchnorm(model.trunk, torch.cat([x, x.flip(-1)]))
    assert "stem and blocks 1-16" in note and "keep their random init" in note
    with torch.no_grad():
        ours = _trunk_to_last_block(model.trunk, x).numpy()
    assert ours.shape == reference.shape == (1, 320, 8, 6)
    diff = np.abs(ours - reference)
    scale = np.abs(reference).max()
    print(
        f"max abs diff {diff.max():.3g} at {np.unravel_index(diff.argmax(), diff.shape)}, ref max {scale:.3g}"
    )
    assert diff.max() <= 1e-4 * scale, (diff.max(), scale)


def test_calibrated_batchnorm_keeps_movenet_in_training_mode(reference, crop):
    """BN in training mode normalises with the batch's statistics: with MoveNet's own statistics in
    BN the trunk starts near MoveNet's function; with BN as x + bias it does not."""
    spec = get_spec("dsta_mnv2_coco")
    x = torch.from_numpy(normalize(crop, spec.mean, spec.std))[None]
    batch = torch.cat([x, x.flip(-1)])
    other = torch.cat([x.roll(8, -1), x.flip(-2)])  # other crops than the training batch's
    errors = {}
    for calibrate in (False, True):
        model = create_model("dsta_mnv2_coco")
        init_from_movenet(model)
        if calibrate:
            calibrate_batchnorm(model.trunk, other)
        model.train()
        with torch.no_grad():
            ours = _trunk_to_last_block(model.trunk, batch)[:1].numpy()
        errors[calibrate] = np.abs(ours - reference).max() / np.abs(reference).max()
    print(f"training-mode relative error: BN as x + bias {errors[False]:.3g}, calibrated {errors[True]:.3g}")
    assert errors[True] < 0.5 * errors[False] and errors[False] > 1.0


def test_what_stays_random_and_what_does_not_fit(movenet_path):
    torch.manual_seed(0)
    model = create_model("dsta_mnv2_coco")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    init_from_movenet(model)
    after = model.state_dict()
    changed = {k for k in after if not torch.equal(before[k], after[k])}
    assert "trunk.conv1.pad.fill" in changed and "trunk.layer7.0.conv.2.conv.weight" in changed
    assert not any(
        k.startswith(("trunk.conv2.", "jfd.", "spatial", "temporal", "head_", "fuse")) for k in changed
    )
    assert len(read_movenet_trunk(movenet_path).convs) == 51
    with pytest.raises(MoveNetTrunkError, match="width 1.0 and does not fit dsta_mnv2_coco_tiny"):
        init_from_movenet(create_model("dsta_mnv2_coco_tiny"))
    with pytest.raises(MoveNetTrunkError, match="pad='tf'"):
        init_from_movenet(create_model("dsta_mnv2"))
    with pytest.raises(MoveNetTrunkError, match="has none"):
        init_from_movenet(create_model("distilpose_s_tiny"))


# ---- edgepose train --weights movenet ----------------------------------------------------------


def test_cli_train_starts_dsta_from_movenet(movenet_path, tmp_path):
    """dsta_mnv2 (PyTorch padding by default) is built with TF padding for the start; the run's notes say
    what loaded, what stayed random and where BN's statistics came from; the checkpoint records pad='tf'."""
    import json

    from typer.testing import CliRunner

    from edgepose.cli import app
    from edgepose.zoo.checkpoints import read_checkpoint

    out = tmp_path / "run"
    args = [
        "train",
        "dsta_mnv2",
        "--weights",
        "movenet",
        "--data",
        "synthetic",
        "--epochs",
        "1",
        "--out",
        str(out),
        "--synthetic-videos",
        "2",
        "--synthetic-frames",
        "3",
        "--batch-size",
        "2",
        "--val-every",
        "0",
        "--no-progress",
    ]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    notes = json.loads((out / "run.json").read_text())["notes"]
    assert any("built with pad='tf' for --weights movenet" in n for n in notes), notes
    assert any("from MoveNet Lightning" in n and "keep their random init" in n for n in notes), notes
    assert any("BN statistics of the movenet trunk from" in n for n in notes), notes
    ck = read_checkpoint(out / "last.pt")
    assert ck["config"]["pad"] == "tf" and "trunk.conv1.pad.fill" in ck["state_dict"]
    assert ck["state_dict"]["trunk.conv1.pad.fill"].abs().sum() > 0


def test_cli_train_names_a_missing_or_altered_asset_in_one_line(movenet_path, tmp_path, monkeypatch):
    import shutil

    from typer.testing import CliRunner

    from edgepose.cli import app
    from edgepose.core import assets

    args = [
        "train",
        "dsta_mnv2_coco",
        "--weights",
        "movenet",
        "--data",
        str(tmp_path / "none"),
        "--out",
        str(tmp_path / "run"),
        "--no-progress",
    ]
    altered = tmp_path / "altered"
    altered.mkdir()
    shutil.copy(movenet_path.parent / "external.json", altered)
    (altered / ASSET).write_bytes(movenet_path.read_bytes()[:100_000])  # truncated
    monkeypatch.setattr(assets, "asset_dirs", lambda: [altered])
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 2 and "changed since it was converted" in res.output, res.output
    assert res.output.count("error:") == 1 and "Traceback" not in res.output
    monkeypatch.setattr(assets, "asset_dirs", lambda: [tmp_path / "empty"])
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 2 and ASSET in res.output and "Traceback" not in res.output, res.output

"""PAVE-Net's MobileNet-V2 trunk started from MoveNet Lightning's (``edgepose train pave_mnv2 --weights movenet``).

The check is the DSTA one (``test_movenet_trunk.py``) at a whole-frame input: MoveNet's own graph, made
size-free and cut at the tensors PAVE-Net taps (its stride-8, 16 and 32 block outputs), run by onnxruntime
on a real image as MoveNet takes it (int32 RGB 0-255); PAVE-Net's backbone runs the same image
standardised the zoo's way and must give the same three maps.
"""

import numpy as np
import pytest
import torch

from edgepose.core.assets import asset_path
from edgepose.core.transforms import normalize
from edgepose.zoo import create_model, get_spec
from edgepose.zoo.movenet_trunk import (
    ASSET,
    MoveNetTrunkError,
    calibrate_batchnorm,
    init_from_movenet,
)

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

SIZE = (192, 256)  # H, W: a 4:3 frame at a reduced PAVE-Net input
# Indices among MoveNet's trunk convs of the projection that ends PAVE-Net's taps (layer3, layer5, layer7):
# stem 0, block 0 convs 1-2, then three convs per block; layer3 ends at block 5, layer5 at 12, layer7 at 16.
TAP_CONVS = (2 + 3 * 5, 2 + 3 * 12, 2 + 3 * 16)


@pytest.fixture(scope="module")
def movenet_path():
    from edgepose.external.check import ExternalModelError, verified_path

    try:
        return verified_path(ASSET)
    except ExternalModelError as e:
        pytest.skip(f"{ASSET}: {e}")


@pytest.fixture(scope="module")
def image():
    import cv2

    path = asset_path("messi5.jpg")
    if path is None:
        pytest.skip("messi5.jpg is not in .assets (bash scripts/fetch_assets.sh)")
    bgr = cv2.imread(str(path))
    return np.ascontiguousarray(cv2.resize(bgr, SIZE[::-1], interpolation=cv2.INTER_AREA)[..., ::-1])


@pytest.fixture(scope="module")
def reference(movenet_path, image, tmp_path_factory):
    """MoveNet's activations at PAVE-Net's three taps, from its own graph in onnxruntime."""
    model = onnx.load(str(movenet_path))
    graph = model.graph
    consumers: dict[str, list] = {}
    for n in graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    convs = [n for n in graph.node if n.op_type == "Conv"]
    taps = []
    for k in TAP_CONVS:
        out = convs[k].output[0]
        nxt = consumers.get(out, [])
        # a residual block's output is the Add after its projection
        taps.append(nxt[0].output[0] if len(nxt) == 1 and nxt[0].op_type == "Add" else out)
    dims = graph.input[0].type.tensor_type.shape.dim
    dims[1].dim_param, dims[2].dim_param = "height", "width"
    full = tmp_path_factory.mktemp("movenet") / "sized.onnx"
    onnx.save(model, str(full))
    cut = full.with_name("taps.onnx")
    onnx.utils.extract_model(str(full), str(cut), [graph.input[0].name], taps)
    session = ort.InferenceSession(str(cut), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: image[None].astype(np.int32)})


def _pave(**kw):
    return create_model("pave_mnv2", input_size=SIZE, **kw)


@pytest.mark.parametrize("calibrate", [False, True])
def test_pave_trunk_reproduces_movenet_at_every_tap(reference, image, calibrate):
    spec = get_spec("pave_mnv2")
    model = _pave(pad="tf").eval()
    x = torch.from_numpy(normalize(image, spec.mean, spec.std))[None]
    note = init_from_movenet(model)
    assert "stem and blocks 1-16" in note and "everything after it" in note and "1280" not in note
    if calibrate:  # keeps the eval-mode function
        calibrate_batchnorm(model.trunk, torch.cat([x, x.flip(-1)]))
    with torch.no_grad():
        ours = [t.numpy() for t in model.backbone(x)]
    assert [o.shape for o in ours] == [r.shape for r in reference]
    assert [o.shape[1] for o in ours] == [32, 96, 320]
    for o, r in zip(ours, reference):
        diff, scale = np.abs(o - r).max(), np.abs(r).max()
        print(f"{o.shape}: max abs diff {diff:.3g}, ref max {scale:.3g}")
        assert diff <= 1e-4 * scale, (o.shape, diff, scale)


def test_pave_start_leaves_the_rest_and_refuses_what_does_not_fit(movenet_path):
    torch.manual_seed(0)
    model = _pave(pad="tf")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    init_from_movenet(model)
    after = model.state_dict()
    changed = {k for k in after if not torch.equal(before[k], after[k])}
    assert "backbone.conv1.pad.fill" in changed and "backbone.layer7.0.conv.2.conv.weight" in changed
    assert all(k.startswith("backbone.") for k in changed)
    assert not any(k.startswith(("neck.", "bbox_head.")) for k in changed)
    with pytest.raises(MoveNetTrunkError, match="width 1.0 and does not fit pave_mnv2_tiny"):
        init_from_movenet(create_model("pave_mnv2_tiny", pad="tf"))
    with pytest.raises(MoveNetTrunkError, match="pad='tf'"):
        init_from_movenet(_pave())
    with pytest.raises(ValueError, match="MobileNet-V2 trunk only"):
        create_model("pave_r50_tiny", pad="tf")


def test_train_cli_builds_pave_with_tf_padding_for_movenet():
    """``edgepose train`` adds pad='tf' to the build for --weights movenet (only keys the spec has)."""
    from edgepose.cli.train import _start_config

    config, notes = _start_config(get_spec("pave_mnv2"), "movenet")
    assert config == {"pad": "tf"} and "pad='tf'" in notes[0]

"""TopDownDataset(collapse_window=True): the window-ablation input (every slot = the current frame)."""

import numpy as np
import pytest
import torch

from edgepose.data.posetrack import read_posetrack
from edgepose.data.synth_dataset import write_dataset
from edgepose.data.synthetic import SynthConfig
from edgepose.data.topdown import AugmentConfig, TopDownDataset


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    out = tmp_path_factory.mktemp("collapse") / "data"
    config = SynthConfig.preset("easy", width=160, height=120, frames=5, camera_static_p=0.0, pan_px_s=200.0)
    write_dataset(out, config, videos=1, seed=5, split_val=0.0, layout="posetrack17")
    return read_posetrack(out / "annotations" / "train", layout="posetrack17")


def test_collapsed_window_holds_the_current_frame_with_the_same_targets(videos):
    kw = dict(
        input_size=(64, 48),
        layout="posetrack17",
        offsets=(-1, 0, 1),
        heatmap_size=(16, 12),
        augment=AugmentConfig(),
    )
    window = TopDownDataset(videos, **kw)
    collapsed = TopDownDataset(videos, collapse_window=True, **kw)
    assert len(window) == len(collapsed) > 0
    window.set_epoch(0, seed=3)
    collapsed.set_epoch(0, seed=3)
    inner = [i for i, s in enumerate(window.samples) if 0 < s.clip[1].frame_index < len(videos[0].frames) - 1]
    assert inner, "need a sample away from the clip ends"
    for i in inner[:3]:
        a, b = window[i], collapsed[i]
        assert a["frames"].shape == b["frames"].shape == (3, 3, 64, 48)
        for t in range(3):  # every slot is the current frame, under the same augmentation
            assert torch.equal(b["frames"][t], a["frames"][1])
        assert torch.equal(a["frames"][1], b["frames"][1])
        # the neighbours of a moving camera differ from the current frame in the real window
        assert not torch.equal(a["frames"][0], a["frames"][1])
        for key in ("keypoints", "target_weight", "coords", "heatmaps", "inverse"):
            assert torch.equal(a[key], b[key]), key
        assert np.array_equal(a["occluded"].numpy(), b["occluded"].numpy(), equal_nan=True)


def test_collapse_is_a_no_op_for_single_frames(videos):
    plain = TopDownDataset(videos, (64, 48), "posetrack17")
    collapsed = TopDownDataset(videos, (64, 48), "posetrack17", collapse_window=True)
    assert torch.equal(plain[0]["image"], collapsed[0]["image"])

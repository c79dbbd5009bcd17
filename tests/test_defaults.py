"""Sensible defaults (issue 18): the batch fits a small dataset, HOG scores are in [0, 1] like every
other score, and the timing panel stays off recorded files' videos (on for live sources)."""

from __future__ import annotations

import numpy as np
import pytest

from edgepose.cli.train import MIN_STEPS_PER_EPOCH, fit_batch
from edgepose.core.assets import asset_path, missing_reason


def test_batch_adapts_to_a_small_dataset():
    notes = []
    assert fit_batch(None, 512, 100_000, notes) == 512 and notes == []
    assert fit_batch(None, 512, 40, notes) == 40 // MIN_STEPS_PER_EPOCH
    assert "not the recipe's 512" in notes[0]
    assert fit_batch(None, 512, 2, []) == 1
    assert fit_batch(8, 512, 40, []) == 8
    with pytest.raises(ValueError, match="--batch-size 64 is larger than the 40 training crops"):
        fit_batch(64, 512, 40, [])
    with pytest.raises(ValueError, match="no person crops"):
        fit_batch(None, 512, 0, [])


def test_hog_scores_are_in_unit_range_and_keep_their_order():
    import cv2

    from edgepose.sdk.detectors import HogDetector

    path = asset_path("basketball1.png")
    if path is None:
        pytest.skip(missing_reason("basketball1.png"))
    det = HogDetector()(cv2.imread(str(path)))
    assert len(det) >= 1
    assert ((det.scores >= 0) & (det.scores < 1)).all()
    assert (np.diff(det.scores) <= 0).all()  # NMS order (by margin) is kept: highest first


def test_the_timing_panel_is_off_for_files_and_on_when_asked():
    pytest.importorskip("onnxruntime")
    torch = pytest.importorskip("torch")
    import tempfile

    from edgepose.export import export
    from edgepose.sdk import GivenBoxes, IterableSource, PoseEstimator, VideoPipeline
    from edgepose.zoo import create_model

    with tempfile.TemporaryDirectory() as d:
        torch.manual_seed(0)
        export(
            create_model("dsta_mnv2_tiny").eval(),
            out=f"{d}/b",
            format="onnx",
            onnx_exporter="torchscript",
            verify=False,
        )
        est = PoseEstimator(f"{d}/b")
        frames = [np.full((120, 160, 3), 200, np.uint8) for _ in range(3)]
        pipe = VideoPipeline(est, detector=GivenBoxes({}))
        plain = [r.image for r in pipe.run(IterableSource(frames, fps=25), draw=True)]
        assert all((img == 200).all() for img in plain)  # nobody to draw, and no panel
        panel = [r.image for r in pipe.run(IterableSource(frames, fps=25), draw=True, overlay=True)]
        assert any((img[:20, :60] != 200).any() for img in panel)

"""The stills path's person threshold as a measured property of each shipped weights file: measured on
held-out frames (``edgepose.bench.person_judge``), recorded in the weights index, carried by the
weights' bundles into the estimator; and the RLE flow shipped with the weights for continuations."""

import shutil

import numpy as np
import pytest
import torch

from edgepose.bench.bundles import bundle_key
from edgepose.bench.person_judge import JudgeMeasurement, _free_box, measure
from edgepose.sdk.estimator import PoseEstimator
from edgepose.sdk.stills import StillRefine
from edgepose.zoo import create_model, get_spec
from edgepose.zoo.checkpoints import file_sha256
from edgepose.zoo.pretrained import (
    WEIGHTS_DIR,
    load_pretrained,
    person_score,
    pretrained_info,
    record_person_score,
    write_pretrained,
)

NAME = "dsta_mnv2_coco"


def test_the_record_goes_into_the_index_only_and_keys_the_cached_bundle(tmp_path):
    copy = tmp_path / "weights"
    shutil.copytree(WEIGHTS_DIR, copy)
    info = pretrained_info(NAME, copy)
    info.pop("person_score", None)
    before = bundle_key(_stand_in(info))
    rec = record_person_score(NAME, {"min_pose_score": 0.37, "how": "a test"}, copy)
    assert rec["person_score"] == {"min_pose_score": 0.37, "how": "a test"}
    model = load_pretrained(NAME, copy)  # the .pt and its sha256 are untouched
    assert person_score(model.pretrained) == 0.37
    assert file_sha256(copy / rec["file"]) == info["sha256"]
    assert bundle_key(model) != before and "j0.370" in bundle_key(model)  # re-measured: a new bundle
    with pytest.raises(ValueError, match="min_pose_score"):
        record_person_score(NAME, {"min_pose_score": 1.5}, copy)
    assert person_score({}) is None and person_score(None) is None


def _stand_in(info):
    """A built model holding ``info`` as its shipped index entry (what load_pretrained returns)."""
    model = create_model("dsta_mnv2_tiny").eval()
    model.pretrained = info
    return model


def test_the_bundle_carries_the_threshold_to_the_estimator(tmp_path):
    from edgepose.export import export

    torch.manual_seed(0)
    model = _stand_in({"file": "stand-in.pt", "person_score": {"min_pose_score": 0.33}})
    out = tmp_path / "bundle"
    export(model, out=out, format="onnx", onnx_exporter="torchscript", verify=False)
    est = PoseEstimator(out / "onnx" if (out / "onnx").is_dir() else out)
    assert est.manifest.extra["min_pose_score"] == 0.33
    assert est.still_refine.min_pose_score == 0.33
    bundle = est.bundle
    assert PoseEstimator(bundle, min_pose_score=0.5).still_refine.min_pose_score == 0.5  # the caller's
    del est.manifest.extra["min_pose_score"]  # weights without a measurement: StillRefine's default
    assert PoseEstimator(bundle).still_refine.min_pose_score == StillRefine().min_pose_score


def test_shipped_weights_keep_the_flow_for_a_continuation(tmp_path):
    from edgepose.cli.train import _init_task
    from edgepose.training.tasks import build_task

    spec, model = get_spec("dsta_mnv2_tiny"), create_model("dsta_mnv2_tiny")
    task = build_task(spec, model)
    with torch.no_grad():
        for p in task.parameters():
            p.add_(0.01)  # a learnt flow, not the fresh one
    path = write_pretrained(model, tmp_path, "a test", task_state=task.state_dict())
    task2 = build_task(spec, create_model("dsta_mnv2_tiny"))
    note, fit = _init_task(task2, str(path))
    assert "from" in note and not fit
    assert all(torch.equal(v, task.state_dict()[k]) for k, v in task2.state_dict().items())
    load_pretrained("dsta_mnv2_tiny", tmp_path)  # the extra entry leaves loading as it was


def test_background_boxes_avoid_people_and_the_threshold_is_their_quantile(tiny_bundle, tmp_path):
    rng = np.random.default_rng(0)
    taken = np.array([[0, 0, 50, 100], [60, 0, 120, 100]], np.float32)
    for _ in range(20):
        b = _free_box(np.array([0, 0, 30, 60]), taken, 320, 240, rng)
        assert b is not None and b[2] <= 320 and b[3] <= 240
        assert not any(min(b[2], t[2]) > max(b[0], t[0]) and min(b[3], t[3]) > max(b[1], t[1]) for t in taken)
    assert _free_box(np.array([0, 0, 400, 60]), taken, 320, 240, rng) is None  # wider than the frame

    from edgepose.data.synth_dataset import write_dataset
    from edgepose.data.synthetic import SynthConfig

    labels = tmp_path / "labels"
    write_dataset(labels, SynthConfig.preset("easy", width=320, height=240, frames=6), videos=3, seed=1,
                  split_val=0.34, layout="both")  # fmt: skip
    m = measure(tiny_bundle, labels, background_kept=0.1, per_person=2)
    assert len(m.people) == 12 and 0 < len(m.background) <= 24
    assert m.threshold == pytest.approx(np.quantile(m.background, 0.9))
    assert m.kept(m.background) == pytest.approx(0.1, abs=1 / len(m.background) + 1e-9)
    rec = m.record()
    assert rec["min_pose_score"] == round(m.threshold, 3) and rec["people"] == 12
    assert rec["background_kept"] == 0.1 and str(labels) in rec["how"]
    with pytest.raises(ValueError, match="background_kept"):
        measure(tiny_bundle, labels, background_kept=0.7)
    flat = JudgeMeasurement(np.ones(3), np.zeros(5), 0.05, "x")
    assert flat.threshold == 0.0 and flat.kept(flat.people) == 1.0

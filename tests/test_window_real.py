"""benchmarks/window_real.py's measures: joint speed from the track's labelled neighbours, per-joint OKS."""

import math

import numpy as np
import pytest

from edgepose.bench.heldout import joint_oks, joint_speeds
from edgepose.core.keypoints import get_layout
from edgepose.data.posetrack import read_posetrack
from edgepose.data.synth_dataset import write_dataset
from edgepose.data.synthetic import SynthConfig
from edgepose.data.topdown import TopDownDataset
from edgepose.eval.predictions import Prediction


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("window_real") / "data"
    config = SynthConfig.preset("easy", width=160, height=120, frames=6, camera_static_p=0.0, pan_px_s=200.0)
    write_dataset(out, config, videos=1, seed=2, split_val=0.0, label_every=2)
    videos = read_posetrack(out / "annotations" / "train", layout="coco17")
    return videos, TopDownDataset(videos, (64, 48), "coco17", offsets=(-1, 0, 1))


def _scale(person):
    return math.sqrt(person.area) if person.area else math.sqrt(np.prod(person.bbox[2:] - person.bbox[:2]))


def test_speed_is_the_tracks_displacement_per_frame_in_person_scales(data):
    videos, ds = data
    speed = joint_speeds(ds.samples, videos)
    assert speed.shape == (len(ds.samples), 17)
    labelled = [f for f in videos[0].frames if f.is_labeled]
    checked = 0
    for s, v in zip(ds.samples, speed):
        i = labelled.index(s.clip[s.current])
        if not 0 < i < len(labelled) - 1:
            continue
        before = [p for p in labelled[i - 1].persons if p.track_id == s.person.track_id]
        after = [p for p in labelled[i + 1].persons if p.track_id == s.person.track_id]
        if not (before and after):
            continue
        a, b = before[0].keypoints, after[0].keypoints
        ok = (a[:, 2] > 0) & (b[:, 2] > 0) & (s.person.keypoints[:, 2] > 0)
        gap = labelled[i + 1].frame_index - labelled[i - 1].frame_index
        want = np.linalg.norm(b[:, :2] - a[:, :2], axis=1) / gap / _scale(s.person)
        np.testing.assert_allclose(v[ok], want[ok], rtol=1e-6)
        assert np.isnan(v[~ok]).all()
        checked += 1
    assert checked
    assert (speed[np.isfinite(speed)] > 0).any()  # a panning camera moves every joint


def test_joint_oks_is_one_on_the_label_and_falls_with_distance(data):
    _, ds = data
    sigmas = np.asarray(get_layout("coco17").sigmas)
    s = ds.samples[0]
    exact = Prediction(0, s.person.keypoints[:, :2].copy(), np.ones(17))
    off = Prediction(0, s.person.keypoints[:, :2] + 0.1 * _scale(s.person), np.ones(17))
    oks = joint_oks([exact, off], [s, s], sigmas)
    seen = s.person.keypoints[:, 2] > 0
    np.testing.assert_allclose(oks[0][seen], 1.0)
    assert (oks[1][seen] < 0.9).all() and np.isnan(oks[:, ~seen]).all()
    d2 = 2 * (0.1 * _scale(s.person)) ** 2
    want = np.exp(-d2 / (2 * _scale(s.person) ** 2 * (2 * sigmas) ** 2))
    np.testing.assert_allclose(oks[1][seen], want[seen], rtol=1e-5)  # float32 labels

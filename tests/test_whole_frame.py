"""Whole-frame models in the SDK (issue #17 item 4), with a tiny stand-in for PAVE-Net.

``WholeFrameToy`` follows PAVE-Net's stage contract (``input_kind = "frame"``; ``frame``: image ->
memory (B, S, C); ``temporal``: memory_window (B, T, S, C) -> poses (B, M, K, 3) in model-input
pixels, scores (B, M)) with outputs a test can predict: the poses sit at fixed model-input pixels,
the person scores are fixed (one person below the default threshold), and person 0's joint ``j``
scores ``sigmoid(mean(memory_window[:, j % T]))``, so the window the SDK handed over (its order, its
clamping at the stream's edges) can be read back. It is exported to an ONNX bundle through the
project's exporter (registered in the zoo registry for the test only) and run through
``edgepose.load`` / ``PoseEstimator`` / ``VideoPipeline(detector=None)``.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import numpy as np
import pytest
import torch
from torch import nn

import edgepose
from edgepose.core.keypoints import get_layout
from edgepose.core.manifest import read_manifest
from edgepose.sdk import (
    Frame,
    PoseEstimator,
    StreamBuffer,
    TopDownEstimator,
    VideoPipeline,
    WholeFrameEstimator,
)
from edgepose.zoo.base import PoseModel
from edgepose.zoo.spec import ModelSpec

NAME = "wholeframe_toy_test"
INPUT_SIZE = (64, 96)  # (H, W)
OFFSETS = (-1, 0, 1)
PEOPLE = 3
PERSON_SCORES = (0.9, 0.75, 0.2)  # the third is below the default threshold 0.5
JOINT_SCORE = 0.8
K = len(get_layout("coco17").names)


def toy_poses() -> np.ndarray:
    """(M, K, 2) fixed model-input pixels: person m, joint k at x = 6 + 5k + m, y = 8 + 12m + k/2."""
    k = np.arange(K, dtype=np.float32)
    return np.stack([np.stack([6 + 5 * k + m, 8 + 12 * m + k / 2], -1) for m in range(PEOPLE)])


def _logit(p: float) -> float:
    return float(np.log(p / (1 - p)))


class WholeFrameToy(PoseModel):
    """PAVE-Net's stage contract with deterministic outputs (see the module docstring)."""

    input_kind = "frame"
    codec = "regression"
    STAGES: ClassVar[dict] = {
        "frame": (("image",), ("memory",)),
        "temporal": (("memory_window",), ("poses", "scores")),
    }

    def __init__(self, num_joints: int = K, input_size=INPUT_SIZE, frame_offsets=OFFSETS, people=PEOPLE):
        super().__init__(num_joints, input_size, frame_offsets)
        self.people = int(people)
        self.pool = nn.AdaptiveAvgPool2d((2, 2))
        self.register_buffer("base", torch.from_numpy(toy_poses()))  # (M, K, 2)
        self.register_buffer("person_logits", torch.tensor([_logit(p) for p in PERSON_SCORES]))
        self.joint_logit = nn.Parameter(torch.tensor(_logit(JOINT_SCORE)))
        t = len(frame_offsets)  # (K, T) one-hot: joint j reads frame offset j % T
        self.pick = nn.Parameter(torch.eye(t)[[j % t for j in range(num_joints)]], requires_grad=False)

    def forward_frame(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        b = image.shape[0]
        return {"memory": self.pool(image).reshape(b, 3, 4).transpose(1, 2)}  # (B, S=4, C=3)

    def forward_temporal(self, memory_window: torch.Tensor) -> dict[str, torch.Tensor]:
        b = memory_window.shape[0]
        per_frame = memory_window.mean(dim=(2, 3))  # (B, T)
        first = torch.sigmoid(per_frame @ self.pick.t())  # (B, K): person 0's joint scores
        rest = torch.sigmoid(self.joint_logit).expand(b, self.people - 1, self.num_joints)
        joint = torch.cat([first[:, None], rest], 1)  # (B, M, K)
        xy = self.base[None].expand(b, -1, -1, -1)
        poses = torch.cat([xy, joint[..., None]], -1)
        return {"poses": poses, "scores": torch.sigmoid(self.person_logits)[None].expand(b, -1)}

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:  # one-frame clip
        mem = self.forward_frame(image)["memory"]
        return self.forward_temporal(mem[:, None].expand(-1, self.num_frames, -1, -1))

    def example_inputs(self, stage: str, batch: int = 2, seed: int = 0) -> dict[str, torch.Tensor]:
        self.stage_io(stage)
        g = torch.Generator().manual_seed(seed)
        if stage == "frame":
            return {"image": torch.randn(batch, 3, *self.input_size, generator=g)}
        return {"memory_window": torch.randn(batch, self.num_frames, 4, 3, generator=g)}


SPEC = ModelSpec(
    name=NAME,
    family="wholeframe_toy",
    builder=WholeFrameToy,
    config={},
    layout="coco17",
    input_size=INPUT_SIZE,
    stages=("frame", "temporal"),
    codec="regression",
    frame_offsets=OFFSETS,
    summary="test stand-in for PAVE-Net's stage contract",
)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """The toy exported to ONNX through edgepose.export, with the spec registered for the export only."""
    from edgepose.export import export
    from edgepose.zoo import registry

    out = tmp_path_factory.mktemp("wholeframe") / "toy"
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(registry._load(), NAME, SPEC)
        model = WholeFrameToy().eval()
        model.spec_name, model.config = NAME, {}
        export(model, out=out, format="onnx", onnx_exporter="torchscript", verify=True)
    return out


@pytest.fixture
def no_detectors(monkeypatch):
    """Fail the test if anything makes a person detector."""
    from edgepose.sdk import detectors, pipeline

    def refuse(*a, **k):
        raise AssertionError("a person detector was made for a whole-frame bundle")

    monkeypatch.setattr(detectors, "make_detector", refuse)
    monkeypatch.setattr(pipeline, "make_detector", refuse)
    for name, entry in list(detectors.DETECTORS.items()):
        monkeypatch.setitem(detectors.DETECTORS, name, dataclasses.replace(entry, make=refuse))
    for cls in (detectors.HogDetector, detectors.OnnxDetector):
        monkeypatch.setattr(cls, "__init__", refuse)


def count_stage_calls(est) -> dict[str, int]:
    """Wrap the bundle's run_stage to count calls per stage."""
    calls = {"frame": 0, "temporal": 0}
    inner = est.bundle.run_stage

    def counted(stage, feeds):
        calls[stage] += 1
        return inner(stage, feeds)

    est.bundle.run_stage = counted
    return calls


def expected_xy(poses_in: np.ndarray, frame_hw: tuple[int, int]) -> np.ndarray:
    """Model-input pixels -> frame pixels for a centred letterbox (OpenCV resize pixel-centre convention)."""
    h, w = frame_hw
    H, W = INPUT_SIZE
    s = min(W / w, H / h)
    nw, nh = round(w * s), round(h * s)
    sx, sy = nw / w, nh / h
    px, py = (W - nw) // 2, (H - nh) // 2
    x = (poses_in[..., 0] - px + 0.5) / sx - 0.5
    y = (poses_in[..., 1] - py + 0.5) / sy - 0.5
    return np.stack([x, y], -1)


def grey(h: int, w: int, v: int) -> np.ndarray:
    return np.full((h, w, 3), v, np.uint8)


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.asarray(x, np.float64)))


# --------------------------------------------------------------------------- manifest


def test_manifest_records_whole_frame_and_chain(bundle):
    m = read_manifest(bundle)
    assert m.input_kind == "frame" and m.is_whole_frame
    assert m.chain == {"temporal": {"memory_window": {"stage": "frame", "output": "memory", "window": True}}}
    assert m.verified  # parity against PyTorch passed in onnxruntime


def test_old_manifest_defaults_to_crop(tiny_bundle):
    import json

    data = json.loads((tiny_bundle / "manifest.json").read_text())
    m = read_manifest(tiny_bundle)
    assert m.input_kind == "crop" and not m.is_whole_frame
    # a top-down temporal bundle chains the frame outputs of the same names, windowed
    assert all(rec["window"] and rec["stage"] == "frame" for rec in m.stage_feeds("temporal").values())
    data.pop("input_kind", None)
    data.pop("chain", None)
    from edgepose.core.manifest import Manifest

    old = Manifest.from_dict({k: v for k, v in data.items() if k not in ("files", "digest")})
    assert old.input_kind == "crop" and old.chain == m.chain


def test_manifest_rejects_bad_input_kind_and_chain(bundle):
    import json

    from edgepose.core.manifest import Manifest, ManifestError

    data = json.loads((bundle / "manifest.json").read_text())
    data = {k: v for k, v in data.items() if k not in ("files", "digest")}
    with pytest.raises(ManifestError, match="input_kind"):
        Manifest.from_dict({**data, "input_kind": "crops"})
    bad = {"temporal": {"memory_window": {"stage": "frame", "output": "nope", "window": True}}}
    with pytest.raises(ManifestError, match="chain.temporal.memory_window.output"):
        Manifest.from_dict({**data, "chain": bad})


# --------------------------------------------------------------------------- estimator


def test_load_gives_whole_frame_estimator(bundle, no_detectors):
    est = edgepose.PoseEstimator(bundle)
    assert isinstance(est, WholeFrameEstimator) and isinstance(est, PoseEstimator)
    assert est.input_kind == "frame" and not est.needs_detector and est.detector is None
    est2 = PoseEstimator(edgepose.load(bundle))  # an open Bundle dispatches the same way
    assert isinstance(est2, WholeFrameEstimator)
    est.close()
    est2.close()


def test_top_down_bundle_still_gives_top_down(tiny_bundle):
    est = PoseEstimator(tiny_bundle)
    assert isinstance(est, TopDownEstimator) and est.input_kind == "crop" and est.needs_detector
    est.close()


@pytest.mark.parametrize("frame_hw", [(120, 240), (200, 90), (64, 96), (37, 51)])
def test_single_image_maps_poses_through_the_letterbox(bundle, no_detectors, frame_hw):
    est = PoseEstimator(bundle)
    calls = count_stage_calls(est)
    img = grey(*frame_hw, 128)
    res = est(img)
    assert calls == {"frame": 1, "temporal": 1}
    assert len(res) == 2  # person 2 (score 0.2) is under the threshold
    want = expected_xy(toy_poses(), frame_hw)
    for m, pose in enumerate(res):  # best first: persons 0 and 1
        np.testing.assert_allclose(pose.keypoints, want[m], atol=2e-3)
        assert pose.box_score == pytest.approx(PERSON_SCORES[m], abs=1e-5)
        assert pose.track_id == -1 and pose.layout is est.layout
        np.testing.assert_allclose(pose.box, [*want[m].min(0), *want[m].max(0)], atol=2e-3)
    np.testing.assert_allclose(res[1].scores, JOINT_SCORE, atol=1e-5)
    # a one-frame clip: every window slot is this frame's memory
    mem = est.prepare_frame(img).image.mean()
    np.testing.assert_allclose(res[0].scores, sigmoid(mem), atol=1e-5)
    assert res.to_dict()["poses"][0]["box_score"] == pytest.approx(0.9, abs=1e-4)
    with pytest.raises(ValueError, match="whole-frame"):
        est(img, boxes=np.array([[0, 0, 10, 10]]))
    low = PoseEstimator(bundle, score_threshold=0.1)
    assert len(low(img)) == 3
    est.close()
    low.close()


def test_a_frame_where_nobody_passes_the_threshold_gives_no_people(bundle, no_detectors):
    """Weak weights put every person score under the threshold: an empty result, not a reshape error,
    in the estimator and in the pipeline (tracker and sinks get an empty frame)."""
    est = PoseEstimator(bundle, score_threshold=0.95)
    res = est(grey(90, 160, 128))
    assert len(res) == 0 and res.to_dict()["poses"] == []
    pipe = VideoPipeline(est, detector=None, mode="online", smoothing=False)
    out = [r for f in frames(3) for r in pipe.process(f)] + pipe.flush()
    assert [r.index for r in out] == [0, 1, 2] and all(r.poses == [] for r in out)
    est.close()


def test_letterbox_input_is_normalised_and_padded_with_the_mean(bundle):
    est = PoseEstimator(bundle)
    img = grey(120, 240, 255)  # scale 0.4: 96x48 content, 8 rows of padding above and below
    x = est.prepare_frame(img).image
    assert x.shape == (1, 3, *INPUT_SIZE)
    np.testing.assert_allclose(x[0, :, :8], 0.0)
    np.testing.assert_allclose(x[0, :, -8:], 0.0)
    want = (1.0 - est.mean) / est.std
    np.testing.assert_allclose(x[0, :, 8:56].mean(axis=(1, 2)), want, atol=1e-5)
    est.close()


# --------------------------------------------------------------------------- pipeline


def frames(n: int, hw=(120, 240)):
    return [Frame(i, grey(*hw, 40 + 30 * i), i / 25.0) for i in range(n)]


def window_expectation(est, fs, t: int, mode: str) -> np.ndarray:
    """Person 0's joint scores for frame t: joint j reads offset j % T, clamped at the stream's edges."""
    mems = [est.prepare_frame(f.image).image.mean() for f in fs]
    last = len(fs) - 1
    src = []
    for o in OFFSETS:
        if mode == "online" and o > 0:
            src.append(t)
        else:
            src.append(min(max(t + o, 0), last))
    per_offset = np.array([mems[s] for s in src])
    return sigmoid(per_offset[[j % len(OFFSETS) for j in range(K)]])


@pytest.mark.parametrize("mode", ["offline", "online"])
def test_pipeline_without_detector(bundle, no_detectors, mode):
    pipe = VideoPipeline(bundle, detector=None, mode=mode, smoothing=False)
    assert pipe.detector is None and pipe.whole_frame
    assert isinstance(pipe.buffers, StreamBuffer)
    calls = count_stage_calls(pipe.estimator)
    fs = frames(5)
    results = []
    for i, f in enumerate(fs):
        got = pipe.process(f)
        # one frame stage per frame; the ring holds one memory per frame, clamped to its capacity
        assert calls["frame"] == i + 1 and pipe.buffers.pushes == i + 1
        assert pipe.buffers.frames() == list(range(max(0, i + 1 - pipe.buffers.capacity), i + 1))
        assert len(got) == (1 if mode == "online" else (0 if i == 0 else 1))
        results += got
    results += pipe.flush()
    assert [r.index for r in results] == list(range(5))
    assert calls == {"frame": 5, "temporal": 5}
    want = expected_xy(toy_poses(), (120, 240))
    for r in results:
        assert len(r.poses) == 2
        np.testing.assert_allclose(r.poses[0].keypoints, want[0], atol=2e-3)
        np.testing.assert_allclose(r.poses[1].keypoints, want[1], atol=2e-3)
        np.testing.assert_allclose(
            r.poses[0].scores, window_expectation(pipe.estimator, fs, r.index, mode), atol=1e-5
        )
    # the tracker keeps each person's id across frames
    ids = [[p.track_id for p in r.poses] for r in results]
    assert all(i == ids[0] for i in ids) and len(set(ids[0])) == 2 and min(ids[0]) >= 1


def test_pipeline_auto_detector_is_not_made(bundle, no_detectors, tmp_path):
    """detector='auto' (the default) still makes no detector for a whole-frame bundle; the sinks work."""
    import cv2

    from edgepose.sdk.sinks import read_jsonl

    video = tmp_path / "in.avi"
    w = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (160, 90))
    for i in range(6):
        w.write(grey(90, 160, 50 + 20 * i))
    w.release()
    pipe = VideoPipeline(bundle)  # defaults: detector="auto", smoothing on
    assert pipe.detector is None
    out = list(pipe.run(str(video), video_out=tmp_path / "out.avi", jsonl_out=tmp_path / "p.jsonl"))
    assert len(out) == 6 and all(len(r.poses) == 2 for r in out)
    recs = list(read_jsonl(tmp_path / "p.jsonl"))
    assert len(recs) == 12 and [r["frame"] for r in recs] == [i // 2 for i in range(12)]  # a line per pose
    assert {r["track_id"] for r in recs} == {p.track_id for p in out[0].poses}
    want = expected_xy(toy_poses(), (90, 160))
    np.testing.assert_allclose(out[-1].poses[0].keypoints, want[0], atol=0.05)  # smoothing of a still pose
    assert (tmp_path / "out.avi").stat().st_size > 0


def test_top_down_pipeline_refuses_detector_none(tiny_bundle):
    with pytest.raises(ValueError, match="needs a person\\s+detector"):
        VideoPipeline(tiny_bundle, detector=None)


def test_sdk_stays_torch_free():
    import subprocess
    import sys

    code = (
        "import sys, edgepose.sdk, edgepose.sdk.estimator, edgepose.sdk.pipeline, edgepose.core.manifest; "
        "from edgepose.sdk import WholeFrameEstimator, StreamBuffer; "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# --------------------------------------------------------------------------- CLI


def _write_video(path, n=5, hw=(90, 160)):
    import cv2

    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (hw[1], hw[0]))
    for i in range(n):
        w.write(grey(*hw, 50 + 20 * i))
    w.release()
    return path


def test_cli_run_and_predict_skip_the_detector(bundle, no_detectors, tmp_path):
    import json

    import cv2
    from typer.testing import CliRunner

    from edgepose.cli import app
    from edgepose.sdk.sinks import read_jsonl

    video = _write_video(tmp_path / "in.avi")
    res = CliRunner().invoke(
        app, ["run", str(video), "--bundle", str(bundle), "--json-out", str(tmp_path / "p.jsonl"), "--json"]
    )
    assert res.exit_code == 0, res.output
    recs = list(read_jsonl(tmp_path / "p.jsonl"))
    assert len(recs) == 10 and {r["frame"] for r in recs} == set(range(5))
    cv2.imwrite(str(tmp_path / "img.png"), grey(120, 240, 100))
    res = CliRunner().invoke(
        app,
        [
            "predict",
            str(tmp_path / "img.png"),
            "--bundle",
            str(bundle),
            "--out",
            str(tmp_path / "out.jpg"),
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    body = json.loads(res.stdout[res.stdout.index("{") :])
    poses = body["images"][0]["poses"]
    assert len(poses) == 2
    want = expected_xy(toy_poses(), (120, 240))
    np.testing.assert_allclose([k[:2] for k in poses[0]["keypoints"]], want[0], atol=0.01)


# --------------------------------------------------------------------------- the real PAVE-Net


def test_pave_mnv2_tiny_runs_through_the_sdk(tmp_path, no_detectors):
    """The zoo's PAVE-Net (tiny edge build, random init) exports, verifies and runs end to end."""
    from edgepose.export import export
    from edgepose.zoo import create_model, list_models

    if "pave_mnv2_tiny" not in list_models(include_variants=True):
        pytest.skip("the zoo has no pave_mnv2_tiny")
    torch.manual_seed(0)
    out = tmp_path / "pave"
    export(create_model("pave_mnv2_tiny").eval(), out=out, format="onnx", onnx_exporter="torchscript")
    m = read_manifest(out)
    assert m.input_kind == "frame" and m.verified
    feeds = m.stage_feeds("temporal")
    assert feeds == {"memory_window": {"stage": "frame", "output": "memory", "window": True}}
    pipe = VideoPipeline(out, detector=None, mode="offline")
    pipe.estimator.score_threshold = 0.0  # random weights: keep every query
    calls = count_stage_calls(pipe.estimator)
    img = np.random.default_rng(0).integers(0, 255, (90, 160, 3), dtype=np.uint8)
    res = []
    for i in range(4):
        res += pipe.process(Frame(i, img, i / 25))
    res += pipe.flush()
    m_queries = m.stage("temporal").outputs[0].shape[1]
    assert [r.index for r in res] == [0, 1, 2, 3] and all(len(r.poses) == m_queries for r in res)
    assert calls == {"frame": 4, "temporal": 4} and pipe.buffers.pushes == 4
    assert all(p.keypoints.shape == (len(m.keypoints.names), 2) for r in res for p in r.poses)


def test_the_runtime_judges_a_whole_frame_manifest_by_poses_and_scores(bundle):
    """The bundle's own manifest passes; one whose poses lose the (x, y, score) axis, or whose last
    stage gives per-joint coords instead, is refused with the reason named."""
    import dataclasses

    from edgepose.core.manifest import read_manifest
    from edgepose.runtimes.bundle import consistency_problems

    m = read_manifest(bundle)
    assert m.is_whole_frame and consistency_problems(m) == []
    last = m.stages[-1]

    def with_outputs(outputs):
        stages = [*m.stages[:-1], dataclasses.replace(last, outputs=tuple(outputs))]
        return dataclasses.replace(m, stages=tuple(stages))

    poses = next(t for t in last.outputs if t.name == "poses")
    bad = dataclasses.replace(poses, shape=(*poses.shape[:3], 2))
    others = [t for t in last.outputs if t.name != "poses"]
    assert any("'poses' shape" in p for p in consistency_problems(with_outputs([bad, *others])))
    coords = dataclasses.replace(poses, name="coords")
    assert any("not poses and scores" in p for p in consistency_problems(with_outputs([coords, *others])))

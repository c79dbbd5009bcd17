"""Issue 19 item 4: SHaRPose's coarse and fine graphs read one shared weight file (ONNX, OpenVINO).

``sharpose_s_tiny`` is exported once with sharing (the default) and once with it switched off, to
both formats; the tests compare the two: one weight file listed by both stages and hashed once,
the weight bytes about halved, both runtimes load it and match PyTorch as closely as the unshared
bundle, and a changed shared file is refused at load (with and without the manifest).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch

import edgepose
from edgepose.core.integrity import file_sha256
from edgepose.core.manifest import BundleDamagedError, read_manifest
from edgepose.export import export, verify_bundle
from edgepose.export import exporter as exporter_mod
from edgepose.export import formats as formats_mod
from edgepose.export.formats import ExportError
from edgepose.export.stages import SHARED_MAGIC, SharedWeights, read_shared_header
from edgepose.runtimes import open_session
from edgepose.runtimes.base import ModelFileError

MODEL = "sharpose_s_tiny"
FORMATS = ("onnx", "openvino")
SHARED = {"onnx": "shared_weights.data", "openvino": "shared_weights.bin"}


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    root = tmp_path_factory.mktemp("shared")
    shared = export(MODEL, out=root / "shared", format=list(FORMATS))
    with mock.patch.object(exporter_mod, "share_weights", lambda *a, **k: None):
        plain = export(MODEL, out=root / "plain", format=list(FORMATS))
    return shared, plain


def _dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.iterdir() if p.name != "manifest.json")


@pytest.mark.parametrize("fmt", FORMATS)
def test_one_weight_file_listed_by_both_stages_and_hashed_once(exports, fmt):
    b = exports[0][fmt]
    m = read_manifest(b.path)
    name = SHARED[fmt]
    assert [s.files[1:] for s in m.stages] == [(name,), (name,)]
    assert sorted(p.name for p in b.path.iterdir()) == sorted(
        ["manifest.json", name, *(s.file for s in m.stages)]
    )  # no per-stage weight file is left
    assert list(m.files).count(name) == 1 and m.files[name]["sha256"] == file_sha256(b.path / name)
    rec = m.extra["shared_weights"]
    assert (
        rec["file"] == name
        and rec["sha256"] == m.files[name]["sha256"]
        and rec["stages"] == ["coarse", "fine"]
    )
    assert rec["shared_tensors"] > 0 and "sha256" in rec["matched_by"]
    head = read_shared_header(b.path / name)  # the weight file says what it is
    assert (b.path / name).read_bytes().startswith(SHARED_MAGIC)
    assert head["model"] == MODEL and head["format"] == fmt and head["stages"] == ["coarse", "fine"]
    assert m.extra["size_bytes"]["shared_weights"] == rec["size"]
    assert b.size_bytes == _dir_bytes(b.path)  # the shared file counted once


@pytest.mark.parametrize("fmt", FORMATS)
def test_weights_about_halved(exports, fmt):
    shared, plain = exports[0][fmt], exports[1][fmt]
    rec = shared.manifest.extra["shared_weights"]
    assert "shared_weights" not in plain.manifest.extra
    assert rec["size"] <= 0.6 * rec["unshared_bytes"]  # the weights: ViT and decoder stored once
    saved = _dir_bytes(plain.path) - _dir_bytes(shared.path)
    assert saved >= 0.9 * rec["saved_bytes"], (saved, rec)
    print(f"{fmt}: {_dir_bytes(plain.path)} -> {_dir_bytes(shared.path)} bytes ({rec})")


@pytest.mark.parametrize("fmt", FORMATS)
def test_parity_unchanged_and_verify_passes(exports, fmt):
    shared, plain = exports[0][fmt], exports[1][fmt]
    for a, b in zip(shared.manifest.verification, plain.manifest.verification):
        assert a.passed is True and a.max_abs_error <= a.tolerance
        assert a.max_abs_error == pytest.approx(b.max_abs_error, rel=1e-3, abs=1e-7)
    again = verify_bundle(shared.path)[0]  # `edgepose verify`: rebuilt from the manifest's source
    assert again.passed is True


@pytest.mark.parametrize(("fmt", "backend"), [("onnx", None), ("openvino", None), ("onnx", "openvino")])
def test_pipeline_matches_torch(exports, fmt, backend):
    torch.manual_seed(0)  # the seed a weight-less export initialises with
    model = edgepose.create_model(MODEL).eval()
    x = torch.randn(3, 3, 64, 48)
    with torch.no_grad():
        ref = model(x)
    with edgepose.load(exports[0][fmt].path, backend=backend) as bundle:
        coarse = bundle.run_stage("coarse", {"image": x.numpy()})
        k = bundle.manifest.stage("fine").inputs[1].shape[1]
        index = torch.topk(torch.from_numpy(coarse["relevance"]), k, dim=1).indices.numpy()
        fine = bundle.run_stage(
            "fine", {"image": x.numpy(), "patch_index": index, "features": coarse["features"]}
        )
    assert np.abs(coarse["heatmaps"] - ref["coarse_heatmaps"].numpy()).max() < 1e-4
    assert np.abs(fine["heatmaps"] - ref["heatmaps"].numpy()).max() < 1e-4


def _damage(src: Path, dst: Path, name: str) -> Path:
    shutil.copytree(src, dst)
    p = dst / name
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one byte inside a weight
    p.write_bytes(bytes(data))
    return dst


@pytest.mark.parametrize("fmt", FORMATS)
def test_changed_shared_file_refused_at_load(exports, fmt, tmp_path):
    bad = _damage(exports[0][fmt].path, tmp_path / "bad", SHARED[fmt])
    with pytest.raises(BundleDamagedError, match=SHARED[fmt]):
        edgepose.load(bad)
    graph = bad / read_manifest(bad, check_files=False).stages[1].file
    with pytest.raises(ModelFileError, match="damaged"):  # a graph opened without its manifest
        open_session(graph)


def test_a_failed_share_leaves_the_previous_bundle(exports, tmp_path):
    out = tmp_path / "b"
    shutil.copytree(exports[0]["onnx"].path, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def boom(*a, **k):
        raise RuntimeError("disk full")

    with (
        mock.patch("edgepose.export.to_onnx.share_weights", boom),
        pytest.raises(ExportError, match="disk full"),
    ):
        export(MODEL, out=out, format="onnx")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left beside it


def test_matching_is_by_content_not_name():
    t = SharedWeights()
    w = np.arange(512, dtype=np.float32).tobytes()
    a = t.add("coarse", "f32", (16, 32), w)
    assert t.add("fine", "f32", (16, 32), w) == a  # same bytes, any name: stored once
    assert t.add("fine", "f32", (32, 16), w) != a  # same bytes, other shape: a tensor of its own
    assert t.add("fine", "f16", (16, 32), w) != a
    assert t.add("fine", "f32", (16, 32), np.ones(512, np.float32).tobytes()) != a
    assert len(t.blobs) == 4 and t.common_bytes == len(w) and t.saved_bytes == len(w)
    few = SharedWeights()  # stages that only agree on a LayerNorm of ones keep their own graphs
    few.add("frame", "f32", (32,), np.ones(32, np.float32).tobytes())
    few.add("temporal", "f32", (32,), np.ones(32, np.float32).tobytes())
    few.add("frame", "f32", (512,), w)
    few.add("temporal", "f32", (512,), np.zeros(512, np.float32).tobytes())
    assert not few.worth_sharing()


def test_formats_that_cannot_share_say_so():
    """TFLite and Core ML keep a copy per stage; the note names the SHaRPose weights they repeat."""
    sharp = edgepose.create_model(MODEL).eval()
    assert exporter_mod._common_parameter_bytes(sharp, ["coarse", "fine"]) > 0
    dsta = edgepose.create_model("dsta_mnv2_tiny").eval()  # frame and temporal: different weights
    assert exporter_mod._common_parameter_bytes(dsta, list(dsta.stage_names)) == 0
    cannot = {n for n, f in formats_mod.FORMATS.items() if getattr(f.module(), "NO_SHARING", None)}
    assert cannot == {"tflite", "coreml"}  # each converter module says why

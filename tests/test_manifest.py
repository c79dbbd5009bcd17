"""The bundle manifest: round trip, validation that names the field, versioning, atomic writes."""

from __future__ import annotations

import json

import pytest

from edgepose.core import atomic
from edgepose.core.keypoints import COCO17, POSETRACK17
from edgepose.core.manifest import (
    MANIFEST_NAME,
    SCHEMA_VERSION,
    KeypointInfo,
    Manifest,
    ManifestError,
    ManifestVersionError,
    StageEntry,
    TensorInfo,
    Verification,
    read_manifest,
    write_manifest,
)


def _manifest(**changes) -> Manifest:
    frame = StageEntry(
        "frame",
        ["frame.xml", "frame.bin"],
        inputs=[TensorInfo("image", ["batch", 3, 256, 192], "int8", scale=0.0187, zero_point=-3)],
        outputs=[TensorInfo("feat", ["batch", 96, 64, 48])],
    )
    temporal = StageEntry(
        "temporal",
        ["temporal.xml", "temporal.bin"],
        inputs=[TensorInfo("feat", ["batch", 3, 96, 64, 48])],
        outputs=[
            TensorInfo("coords", ["batch", 17, 2]),
            TensorInfo("sigma", ["batch", 17, 2]),
            TensorInfo("scores", ["batch", 17]),
        ],
    )
    base = dict(
        model="dsta_mnv2",
        family="dsta",
        format="openvino",
        precision="int8",
        keypoints="posetrack17",
        input_size=(256, 192),
        mean=(0.485, 0.456, 0.406),
        std=(0.229, 0.224, 0.225),
        codec="regression",
        frame_offsets=(-1, 0, 1),
        stages=[frame, temporal],
        weights_sha256="ab" * 32,
        verification=[
            Verification(
                "frame",
                True,
                max_abs_error=2.5e-3,
                tolerance=0.05,
                inputs="synthetic clip, batch 3",
                backend="openvino",
                device="CPU",
            ),
            Verification("temporal", None, reason="skipped: example"),
        ],
        extra={"batch": "dynamic", "quantization": {"calibration_frames": 300, "per_channel": True}},
    )
    base.update(changes)
    return Manifest(**base)


def test_round_trip_through_json_and_disk(tmp_path):
    m = _manifest()
    assert m.schema_version == SCHEMA_VERSION and m.edgepose_version and m.created
    assert m.keypoints == KeypointInfo.from_layout(POSETRACK17)
    assert Manifest.from_json(m.to_json()) == m
    path = write_manifest(tmp_path, m)
    assert path == tmp_path / MANIFEST_NAME
    for f in ("frame.xml", "frame.bin", "temporal.xml", "temporal.bin"):
        (tmp_path / f).write_bytes(b"x")
    back = read_manifest(tmp_path)
    assert back == m
    assert back.stage("temporal").input_names == ["feat"] and back.stage("frame").file == "frame.xml"
    assert back.stage_names == ["frame", "temporal"] and back.is_temporal
    assert (
        back.stage("frame").inputs[0].is_quantized and back.stage("frame").inputs[0].host_dtype == "float32"
    )
    assert not back.verified  # one stage skipped
    assert back.replace(verification=[Verification("frame", True), Verification("temporal", True)]).verified
    with pytest.raises(KeyError, match="stages"):
        back.stage("coarse")


def test_json_holds_the_documented_fields():
    d = json.loads(_manifest().to_json())
    assert list(d)[:2] == ["schema_version", "edgepose_version"]
    for key in (
        "model",
        "family",
        "format",
        "precision",
        "keypoints",
        "input_size",
        "mean",
        "std",
        "color",
        "layout",
        "frame_offsets",
        "codec",
        "stages",
        "weights_sha256",
        "created",
        "verification",
        "extra",
    ):
        assert key in d, key
    assert d["keypoints"]["names"] == list(POSETRACK17.names)
    assert d["keypoints"]["flip_pairs"] == [list(p) for p in POSETRACK17.flip_pairs]
    assert d["stages"][0]["inputs"][0] == {
        "name": "image",
        "shape": ["batch", 3, 256, 192],
        "dtype": "int8",
        "scale": 0.0187,
        "zero_point": -3,
    }
    assert "scale" not in d["stages"][0]["outputs"][0]
    assert d["verification"][1] == {"stage": "temporal", "passed": None, "reason": "skipped: example"}


def test_numpy_values_in_extra_are_written_as_json():
    np = pytest.importorskip("numpy")
    m = _manifest(extra={"report": {"err": np.float32(0.5), "hist": np.arange(3)}})
    assert json.loads(m.to_json())["extra"]["report"] == {"err": 0.5, "hist": [0, 1, 2]}


def _broken(path: str, value):
    """The manifest's dict with one field (dotted path, [i] for list items) set to ``value``, or removed."""
    d = json.loads(_manifest().to_json())
    keys = [int(k) if k.isdigit() else k for k in path.replace("[", ".").replace("]", "").split(".")]
    obj = d
    for k in keys[:-1]:
        obj = obj[k]
    if value is _REMOVE:
        del obj[keys[-1]]
    else:
        obj[keys[-1]] = value
    return json.dumps(d)


_REMOVE = object()


@pytest.mark.parametrize(
    "path,value,message",
    [
        ("format", "tensorrt", r"'format' must be one of \['onnx', 'openvino'"),
        ("precision", "int4", "'precision' must be one of"),
        ("input_size", [256], "'input_size' must be a list of 2 items"),
        ("std[1]", 0.0, r"'std\[1\]' must be a finite number > 0"),
        ("mean", "imagenet", "'mean' must be a list"),
        ("frame_offsets", [1, -1], "'frame_offsets' must be distinct offsets in ascending order including 0"),
        ("codec", "simcc", "'codec' must be one of"),
        ("layout", "CHW", "'layout' must be one of"),
        ("stages", [], "'stages' must be a non-empty list"),
        ("stages[1].inputs[0].shape[2]", -3, r"'stages\[1\].inputs\[0\].shape\[2\]' must be a size >= 0"),
        ("stages[0].inputs[0].dtype", "float8", r"'stages\[0\].inputs\[0\].dtype' must be one of"),
        ("stages[0].inputs[0].zero_point", _REMOVE, "needs both 'scale' and 'zero_point'"),
        (
            "stages[0].files[0]",
            "../frame.xml",
            r"'stages\[0\].files\[0\]' must be a path relative to the bundle",
        ),
        ("stages[1].name", "frame", "'stages' names 'frame' twice"),
        ("keypoints.flip_pairs[0]", [5, 99], r"'keypoints.flip_pairs\[0\]' must be joint indices below 17"),
        ("weights_sha256", "abc", "'weights_sha256' must be a string matching"),
        ("verification[0].stage", "backbone", r"'verification\[0\].stage' must be one of the stage names"),
        ("verification[0].max_abs_error", float("inf"), "not valid JSON|must be a finite number"),
        ("verification[1].reason", _REMOVE, r"'verification\[1\].reason' must say why the check was skipped"),
        ("created", "yesterday", "'created' must be an ISO 8601 time"),
        ("model", _REMOVE, "'model' is missing"),
        ("colour", "RGB", r"unknown field\(s\) \['colour'\].*'extra'"),
    ],
)
def test_validation_names_the_bad_field_and_what_to_do(path, value, message):
    with pytest.raises(ManifestError, match=message) as e:
        Manifest.from_json(_broken(path, value))
    assert "re-export" in str(e.value) or "extra" in str(e.value) or "upgrade" in str(e.value)


def test_to_json_validates_before_anything_is_written():
    with pytest.raises(ManifestError, match="'input_size"):
        _manifest(input_size=(256, 0)).to_json()
    with pytest.raises(ManifestError, match="'extra'"):
        _manifest(extra={"obj": object()}).to_json()


def test_newer_schema_version_is_a_clear_error():
    d = json.loads(_manifest().to_json())
    d["schema_version"] = SCHEMA_VERSION + 1
    d["a_field_from_the_future"] = True
    with pytest.raises(ManifestVersionError, match=r"schema version 2 .*upgrade edgepose"):
        Manifest.from_json(json.dumps(d))
    del d["schema_version"]
    with pytest.raises(ManifestError, match="not an edgepose bundle manifest"):
        Manifest.from_json(json.dumps(d))


def test_read_manifest_errors_name_the_file(tmp_path):
    with pytest.raises(ManifestError, match="no manifest.json.*edgepose export"):
        read_manifest(tmp_path)
    (tmp_path / MANIFEST_NAME).write_text('{"schema_version": 1, ')
    with pytest.raises(ManifestError, match=r"manifest.json is not valid JSON \(line 1"):
        read_manifest(tmp_path)
    write_manifest(tmp_path, _manifest())
    with pytest.raises(ManifestError, match="stage 'frame' needs file 'frame.xml'"):
        read_manifest(tmp_path)
    assert read_manifest(tmp_path / MANIFEST_NAME, check_files=False).model == "dsta_mnv2"
    bad = _broken("precision", "int4")
    (tmp_path / MANIFEST_NAME).write_text(bad)
    with pytest.raises(ManifestError, match=r"manifest.json.*'precision'"):
        read_manifest(tmp_path, check_files=False)


def test_failed_write_leaves_the_old_manifest(tmp_path, monkeypatch):
    old = _manifest()
    write_manifest(tmp_path, old)
    before = (tmp_path / MANIFEST_NAME).read_bytes()
    # serialisation fails (a value JSON cannot hold)
    with pytest.raises(ManifestError):
        write_manifest(tmp_path, _manifest(model="new", extra={"bad": {1, 2}}))
    assert (tmp_path / MANIFEST_NAME).read_bytes() == before

    # the write itself fails half-way (disk full at fsync)
    def boom(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic.os, "fsync", boom)
    with pytest.raises(OSError, match="No space"):
        write_manifest(tmp_path, _manifest(model="newer"))
    monkeypatch.undo()
    assert (tmp_path / MANIFEST_NAME).read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == [MANIFEST_NAME]  # no temporary files left behind
    assert read_manifest(tmp_path, check_files=False) == old


def test_keypoint_info_from_layouts():
    k = KeypointInfo.from_layout("coco17")
    assert k.num_joints == 17 and k.names == COCO17.names and k.empty == ()
    assert KeypointInfo.from_layout(POSETRACK17).empty == ("left_ear", "right_ear")
    with pytest.raises(KeyError, match="unknown keypoint layout"):
        KeypointInfo.from_layout("mpii16")

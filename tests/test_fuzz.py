"""Fuzz: damaged bundles, checkpoints and videos are refused before they run, with one line, or are
processed with the loss reported; never silently accepted, never a traceback.

Each case is generated here from a fresh export of ``dsta_mnv2_tiny`` (ONNX and OpenVINO), a saved
checkpoint and two short clips of the real ``vtest.avi``. A case ends in one of two ways:

* refused: the library raises one of its own errors (a ValueError family: ManifestError,
  ModelFileError, CheckpointError, ExportError) whose message is one line; the CLI turns that into
  one red line and exit 2;
* processed with report: it runs, and the damage is reported (a warning line for an unsealed
  bundle, poses flagged ``nonfinite`` with JSON nulls for NaN weights, ``Source.skipped`` equal
  to the frames lost).

The counts are printed (``pytest -s``): tried / refused / processed-with-report, per kind.
"""

from __future__ import annotations

import collections
import json
import logging
import shutil
import struct
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import edgepose
from edgepose.core.manifest import MANIFEST_NAME, ManifestError, TensorInfo, read_manifest, write_manifest
from edgepose.export import export
from edgepose.zoo.checkpoints import CheckpointError, load_weights, save_checkpoint

ASSETS = Path(__file__).parents[1] / ".assets"
MODEL = "dsta_mnv2_tiny"
COUNTS: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)


def _one_line(e: BaseException) -> str:
    msg = str(e)
    assert msg and "\n" not in msg and "Traceback" not in msg, f"{type(e).__name__}: {msg!r}"
    return msg


def _refused(kind: str, fn, *exc) -> str:
    """``fn`` must raise one of ``exc`` (default: the ValueError family) with a one-line message."""
    COUNTS[kind]["tried"] += 1
    with pytest.raises(exc or (ValueError,)) as info:
        fn()
    msg = _one_line(info.value)
    COUNTS[kind]["refused"] += 1
    return msg


def _processed(kind: str) -> None:
    COUNTS[kind]["tried"] += 1
    COUNTS[kind]["processed-with-report"] += 1


@pytest.fixture(scope="module", autouse=True)
def _print_counts():
    yield
    lines = ["", "fuzz counts (tried / refused / processed-with-report):"]
    for kind, c in sorted(COUNTS.items()):
        lines.append(f"  {kind:12s} {c['tried']:3d} / {c['refused']:3d} / {c['processed-with-report']:3d}")
        assert c["tried"] == c["refused"] + c["processed-with-report"], kind  # no silent acceptance
    print("\n".join(lines))


# ----------------------------------------------------------------------------- bundles


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz") / "b"
    export(MODEL, out=root, format=["onnx", "openvino"], onnx_exporter="torchscript")
    return {"onnx": root / "onnx", "openvino": root / "openvino"}


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _flip(path: Path, where: float) -> None:
    b = bytearray(path.read_bytes())
    i = min(len(b) - 1, int(len(b) * where))
    b[i] ^= 0x5A
    path.write_bytes(bytes(b))


FILE_DAMAGE = {
    "truncated-half": lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]),
    "truncated-empty": lambda p: p.write_bytes(b""),
    "flip-start": lambda p: _flip(p, 0.01),
    "flip-middle": lambda p: _flip(p, 0.5),
    "flip-end": lambda p: _flip(p, 0.999),
    "appended": lambda p: p.write_bytes(p.read_bytes() + b"\0junk"),
    "deleted": lambda p: p.unlink(),
}


def _raw_edit(key_path: list, value):
    def edit(d):
        node = d
        for k in key_path[:-1]:
            node = node[k]
        node[key_path[-1]] = value

    return edit


RAW_EDITS = {  # hand edits of manifest.json: its digest no longer matches
    "codec": _raw_edit(["codec"], "heatmap"),
    "input_size": _raw_edit(["input_size"], [128, 96]),
    "frame_offsets": _raw_edit(["frame_offsets"], [-2, -1, 0, 1, 2]),
    "model": _raw_edit(["model"], "dsta_mnv2"),
    "output_name": _raw_edit(["stages", 1, "outputs", 0, "name"], "keypoints"),
    "input_shape": _raw_edit(["stages", 0, "inputs", 0, "shape"], ["batch", 3, 128, 96]),
    "passed": _raw_edit(["verification", 0, "passed"], False),
    "weights_sha256": _raw_edit(["weights_sha256"], "0" * 64),
    "file_hash": lambda d: d["files"][sorted(d["files"])[0]].update(sha256="f" * 64),
    "file_size": lambda d: d["files"][sorted(d["files"])[0]].update(size=1),
    "no_digest": lambda d: d.pop("digest"),
    "no_files": lambda d: d.pop("files"),
    "precision": _raw_edit(["precision"], "int8"),
}


def _sealed_edit(m):
    """Edits written through the API, so the digest matches: the graphs' own I/O must catch them."""
    frame, temporal = m.stages

    def rename_output(st, old, new):
        outs = tuple(TensorInfo(new if t.name == old else t.name, t.shape, t.dtype) for t in st.outputs)
        return type(st)(st.name, st.files, st.inputs, outs)

    def reshape_input(st, shape):
        ins = (TensorInfo(st.inputs[0].name, shape, st.inputs[0].dtype), *st.inputs[1:])
        return type(st)(st.name, st.files, ins, st.outputs)

    h, w = m.input_size
    return {
        "codec": m.replace(codec="heatmap"),
        "input_size": m.replace(input_size=(h * 2, w * 2)),
        "frame_offsets": m.replace(frame_offsets=(-2, -1, 0, 1, 2)),
        "output_name": m.replace(stages=(frame, rename_output(temporal, "coords", "keypoints"))),
        "input_shape": m.replace(stages=(reshape_input(frame, ("batch", 3, h * 2, w * 2)), temporal)),
        "input_both": m.replace(
            input_size=(h * 2, w * 2), stages=(reshape_input(frame, ("batch", 3, h * 2, w * 2)), temporal)
        ),
        "keypoints": m.replace(
            keypoints="coco17", stages=(frame, reshape_input(temporal, ("batch", 3, 15, 16)))
        ),
    }


def _run_one(bundle_dir: Path, tmp: Path):
    """One frame through the estimator and the JSON-lines sink; returns (poses, parsed JSON records)."""
    from edgepose.sdk.sinks import JsonlSink, read_jsonl

    est = edgepose.PoseEstimator(bundle_dir, device="cpu")
    img = cv2.imread(str(ASSETS / "messi5.jpg"))
    poses = est(img, np.array([[100, 50, 300, 340]], np.float32))
    est.close()
    with JsonlSink(tmp / "poses.jsonl") as sink:
        sink.write(0, poses)
    return poses, list(read_jsonl(tmp / "poses.jsonl"))


def _nan_weights(bundle: Path, fmt: str) -> None:
    """NaN in a large float weight, written as an export would (resealed)."""
    if fmt == "onnx":
        import onnx
        from onnx import numpy_helper

        g = onnx.load(str(bundle / "frame.onnx"))
        init = next(t for t in g.graph.initializer if t.data_type == 1 and np.prod(t.dims) > 100)
        arr = numpy_helper.to_array(init).copy()
        arr[...] = np.nan
        init.CopyFrom(numpy_helper.from_array(arr, init.name))
        onnx.save(g, str(bundle / "frame.onnx"))
    else:
        # the head's last weight (NaN in a trunk weight can be clamped away by ReLU6 in OpenVINO)
        root = ET.parse(bundle / "temporal.xml").getroot()
        data = [
            layer.find("data").attrib
            for layer in root.iter("layer")
            if layer.get("type") == "Const"
            and layer.find("data").get("element_type") == "f32"
            and int(layer.find("data").get("size")) > 400
        ][-1]
        b = bytearray((bundle / "temporal.bin").read_bytes())
        off, size = int(data["offset"]), int(data["size"])
        b[off : off + size] = struct.pack("<f", float("nan")) * (size // 4)
        (bundle / "temporal.bin").write_bytes(bytes(b))
    write_manifest(bundle, read_manifest(bundle, check_files=False), seal=True)


@pytest.mark.parametrize("fmt", ["onnx", "openvino"])
def test_damaged_bundles_are_refused_before_running(bundles, fmt, tmp_path):
    kind = f"bundle/{fmt}"
    src = bundles[fmt]
    graph_files = sorted(p.name for p in src.iterdir() if p.name != MANIFEST_NAME)
    for name in graph_files:
        for how, damage in FILE_DAMAGE.items():
            d = _copy(src, tmp_path / f"{name}-{how}")
            damage(d / name)
            msg = _refused(kind, lambda: edgepose.load(d))
            assert name in msg, msg  # names the file
    for how, edit in RAW_EDITS.items():
        d = _copy(src, tmp_path / f"raw-{how}")
        data = json.loads((d / MANIFEST_NAME).read_text())
        edit(data)
        (d / MANIFEST_NAME).write_text(json.dumps(data, indent=2))
        msg = _refused(kind, lambda: edgepose.load(d), ManifestError)
        assert "edited" in msg or "changed after export" in msg, (how, msg)
    for how, text in {"not-json": "{not json", "truncated": None, "empty": ""}.items():
        d = _copy(src, tmp_path / f"manifest-{how}")
        full = (d / MANIFEST_NAME).read_text()
        (d / MANIFEST_NAME).write_text(full[: len(full) // 2] if text is None else text)
        _refused(kind, lambda: edgepose.load(d), ManifestError)
    d = _copy(src, tmp_path / "no-manifest")
    (d / MANIFEST_NAME).unlink()
    _refused(kind, lambda: edgepose.load(d), ManifestError)
    for how, m in _sealed_edit(read_manifest(src)).items():
        d = _copy(src, tmp_path / f"sealed-{how}")
        write_manifest(d, m)
        msg = _refused(kind, lambda: edgepose.load(d), ManifestError)
        assert "does not match its manifest" in msg, (how, msg)


@pytest.mark.parametrize("fmt", ["onnx", "openvino"])
def test_bundles_that_run_report_what_is_wrong(bundles, fmt, tmp_path, caplog):
    kind = f"bundle/{fmt}"
    # NaN weights exported as they are (sealed): the poses are flagged, the JSON holds null, not NaN
    d = _copy(bundles[fmt], tmp_path / "nan")
    _nan_weights(d, fmt)
    poses, records = _run_one(d, tmp_path)
    bad = poses[0].nonfinite_joints
    assert len(poses) == 1 and len(bad) >= 10  # the NaN reaches most joints
    assert records[0]["nonfinite"] == bad
    for j, kp in enumerate(records[0]["keypoints"]):
        if j in bad:
            assert kp == [None, None, 0.0]
        else:
            assert all(isinstance(v, float) and np.isfinite(v) for v in kp)
    _processed(kind)
    # the same NaN weights after export: the hash catches them
    d2 = _copy(bundles[fmt], tmp_path / "nan-after")
    nan_file = "frame.onnx" if fmt == "onnx" else "temporal.bin"
    shutil.copy(d / nan_file, d2 / nan_file)
    _refused(kind, lambda: edgepose.load(d2), ManifestError)
    # a bundle from before file hashes: loads with one warning line
    d3 = _copy(bundles[fmt], tmp_path / "old")
    data = json.loads((d3 / MANIFEST_NAME).read_text())
    del data["files"], data["digest"]
    (d3 / MANIFEST_NAME).write_text(json.dumps(data))
    with caplog.at_level(logging.WARNING, logger="edgepose.bundle"):
        poses, records = _run_one(d3, tmp_path)
    warned = [
        r.getMessage() for r in caplog.records if "before edgepose recorded file hashes" in r.getMessage()
    ]
    assert len(warned) == 1 and "\n" not in warned[0]
    assert len(poses) == 1 and not poses[0].nonfinite_joints
    _processed(kind)


def test_cli_verify_exit_codes(bundles, tmp_path):
    from typer.testing import CliRunner

    from edgepose.cli import app

    d = _copy(bundles["onnx"], tmp_path / "flip")
    _flip(d / "temporal.onnx", 0.5)
    res = CliRunner().invoke(app, ["verify", str(d)])
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output and "temporal.onnx" in res.output and "damaged" in res.output
    COUNTS["bundle/onnx"]["tried"] += 1
    COUNTS["bundle/onnx"]["refused"] += 1


# ----------------------------------------------------------------------------- checkpoints


def _zip_member_offset(path: Path, index: int) -> tuple[int, int]:
    z = zipfile.ZipFile(path)
    info = [i for i in z.infolist() if "/data/" in i.filename and i.file_size > 64][index]
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        head = f.read(30)
    n, e = struct.unpack("<HH", head[26:30])
    return info.header_offset + 30 + n + e, info.file_size


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("ckpt")
    torch.manual_seed(0)
    tiny = edgepose.create_model(MODEL)
    good = save_checkpoint(tiny, root / "good.pt")
    state = {k: v.clone() for k, v in tiny.state_dict().items()}
    keys = [k for k, v in state.items() if v.is_floating_point() and v.numel() > 16]
    cases: dict[str, Path] = {}

    def raw(name, obj):
        torch.save(obj, root / f"{name}.pt")
        cases[name] = root / f"{name}.pt"

    def own(state_dict, **kw):
        return {
            "format": "edgepose-checkpoint",
            "version": 1,
            "model": MODEL,
            "config": dict(tiny.config),
            "state_dict": state_dict,
            "meta": {},
            **kw,
        }

    data = good.read_bytes()
    for name, blob in {
        "trunc-half": data[: len(data) // 2],
        "trunc-10": data[:10],
        "empty": b"",
        "random": np.random.default_rng(0).bytes(4096),
        "text": b"not a checkpoint\n",
    }.items():
        (root / f"{name}.pt").write_bytes(blob)
        cases[name] = root / f"{name}.pt"
    for i in range(3):  # bit flips inside tensor data
        off, size = _zip_member_offset(good, i)
        b = bytearray(data)
        b[off + size // 2] ^= 0x10
        (root / f"flip-data-{i}.pt").write_bytes(bytes(b))
        cases[f"flip-data-{i}"] = root / f"flip-data-{i}.pt"
    b = bytearray(data)
    b[len(b) - 30] ^= 0xFF  # the zip's central directory
    (root / "flip-directory.pt").write_bytes(bytes(b))
    cases["flip-directory"] = root / "flip-directory.pt"
    for name, fill in {"nan-one": float("nan"), "inf-one": float("inf"), "huge-one": 1e30}.items():
        s = {k: v.clone() for k, v in state.items()}
        s[keys[0]].view(-1)[0] = fill
        raw(name, own(s))
        raw(f"{name}-official", s)  # a flat state dict, no hash: the values alone must be caught
    raw(
        "nan-all",
        own(
            {k: (torch.full_like(v, float("nan")) if v.is_floating_point() else v) for k, v in state.items()}
        ),
    )
    s = {k: v.clone() for k, v in state.items()}
    s[keys[1]] += 1e-3  # values changed after the hash was written
    raw("stale-hash", own(s, state_sha256=torch.zeros(1).numpy().tobytes().hex() * 16))
    raw("no-state-dict", {k: v for k, v in own(state).items() if k != "state_dict"})
    raw("state-dict-list", own(list(state.values())))
    raw("non-tensor-value", own({**state, keys[0]: 3}))
    raw("list-of-tensors", list(state.values()))
    raw("mis-shaped", {**state, keys[0]: torch.zeros(3, 3)})
    raw("other-family", {**own(state), "model": "distilpose_s_tiny"})
    full = edgepose.create_model("dsta_mnv2")
    save_checkpoint(full, root / "full-size.pt")
    cases["full-size"] = root / "full-size.pt"
    raw("pickled-object", {"state_dict": state, "payload": Path("/etc/passwd")})  # not weights-only
    (root / "a-directory.pt").mkdir()
    cases["a-directory"] = root / "a-directory.pt"
    cases["missing"] = root / "missing.pt"
    partial = dict(list(state.items())[: len(state) // 2])
    raw("missing-keys", own(partial))
    return {"good": good, "cases": cases}


def test_damaged_checkpoints_are_refused_at_every_entry_point(checkpoints):
    from edgepose.cli.evaluate import build_for_weights
    from edgepose.export.formats import ExportError
    from edgepose.export.source import build

    assert len(checkpoints["cases"]) >= 25
    build(MODEL, checkpoints["good"])  # the undamaged one loads everywhere
    build_for_weights(MODEL, str(checkpoints["good"]))
    for name, path in checkpoints["cases"].items():
        # export (edgepose.export.source.build) and eval load strictly: everything here is refused
        _refused("ckpt/export", lambda: build(MODEL, path), CheckpointError, ExportError)
        _refused("ckpt/eval", lambda: build_for_weights(MODEL, str(path)), CheckpointError)
        # train --weights loads non-strictly: only a partial (official-style) start is allowed, and reported
        model = edgepose.create_model(MODEL)
        if name == "missing-keys":
            COUNTS["ckpt/train"]["tried"] += 1
            report = load_weights(model, path, strict=False)
            assert (
                report.loaded
                == len(torch.load(path, weights_only=True)["state_dict"])
                < len(model.state_dict())
            )
            COUNTS["ckpt/train"]["processed-with-report"] += 1
        else:
            _refused("ckpt/train", lambda: load_weights(model, path, strict=False), CheckpointError)


def test_the_tiny_full_mix_up_names_both_sizes(checkpoints):
    from edgepose.export.source import build

    msg = _refused("ckpt/export", lambda: build(MODEL, checkpoints["cases"]["full-size"]), CheckpointError)
    assert "dsta_mnv2 (2.35 M parameters)" in msg and f"not {MODEL} (0.15 M parameters)" in msg


# ----------------------------------------------------------------------------- videos


FRAMES = 40


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("clips")
    cap = cv2.VideoCapture(str(ASSETS / "vtest.avi"))
    frames = []
    while len(frames) < FRAMES:
        ok, img = cap.read()
        assert ok
        frames.append(cv2.resize(img, (192, 144)))
    cap.release()
    out = {}
    for suffix, fourcc in ((".mp4", "mp4v"), (".avi", "MJPG")):
        path = root / f"clip{suffix}"
        w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 10.0, (192, 144))
        for f in frames:
            w.write(f)
        w.release()
        out[suffix] = path
    return out


def _zero(frac: float, length: float):
    def damage(b: bytearray) -> bytearray:
        a = int(len(b) * frac)
        b[a : a + int(len(b) * length)] = bytes(int(len(b) * length))
        return b

    return damage


def _scatter(b: bytearray) -> bytearray:
    rng = np.random.default_rng(1)
    for i in rng.integers(len(b) // 10, len(b), 40):
        b[i] ^= 0xFF
    return b


VIDEO_DAMAGE = {
    "zero-early": _zero(0.2, 0.08),
    "zero-middle": _zero(0.5, 0.1),
    "zero-late": _zero(0.8, 0.1),
    "zero-header": _zero(0.0, 0.02),
    "truncated-90": lambda b: b[: int(len(b) * 0.9)],
    "truncated-50": lambda b: b[: len(b) // 2],
    "truncated-1k": lambda b: b[:1024],
    "scattered-flips": _scatter,
    "empty": lambda b: bytearray(),
    "garbage": lambda b: bytearray(np.random.default_rng(2).bytes(len(b))),
}


def test_damaged_videos_are_refused_or_report_their_lost_frames(clips, tmp_path, caplog):
    from edgepose.sdk.sources import VideoFileSource

    caplog.set_level(logging.WARNING, logger="edgepose.sdk.sources")
    for suffix, clip in clips.items():
        kind = f"video{suffix}"
        for how, damage in VIDEO_DAMAGE.items():
            path = tmp_path / f"{how}{suffix}"
            path.write_bytes(bytes(damage(bytearray(clip.read_bytes()))))
            caplog.clear()
            try:
                src = VideoFileSource(path)
            except ValueError as e:  # cannot open: one line naming the file
                COUNTS[kind]["tried"] += 1
                assert str(path) in _one_line(e)
                COUNTS[kind]["refused"] += 1
                continue
            frames = list(src)
            idx = [f.index for f in frames]
            assert idx == sorted(set(idx)), how  # strictly increasing, never renumbered backwards
            stamps = [f.timestamp for f in frames]
            assert stamps == sorted(stamps), how
            if src.frame_count:
                # every frame is delivered or counted as lost: nothing disappears silently
                assert len(frames) + src.skipped == src.frame_count, (how, len(frames), src.skipped)
                assert src.frame_count == FRAMES, how
            else:  # a damaged header: the source said (when opened) that losses cannot be counted
                assert src.skipped == 0 and len(frames) <= FRAMES, how
            if len(frames) < FRAMES and src.frame_count:
                assert any("lost" in r.getMessage() for r in caplog.records), how
            if not src.frame_count:
                assert any("no usable frame count" in r.getMessage() for r in caplog.records), how
            if src.gaps:  # a placed gap: the frame after it has its true index
                first, n = src.gaps[0]
                assert first + n in idx and first not in idx
            _processed(kind)
    assert sum(COUNTS[k]["tried"] for k in ("video.mp4", "video.avi")) >= 20

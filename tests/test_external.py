"""Third-party teachers and detectors: the source table, the checks before a file runs, the fetcher,
the conversions against TF.js itself, and what the models see on real frames."""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile

import cv2
import numpy as np
import pytest

from edgepose.core.assets import asset_path, missing_reason
from edgepose.external import check, fetch, registry, sources
from edgepose.external.convert import CACHE, CONVERSIONS, TFJS_PINS, compare, reference_images
from edgepose.sdk.tracker import iou_matrix


def need(*names):
    for n in names:
        if asset_path(n) is None:
            pytest.skip(missing_reason(n))
        if not check.available(n):
            pytest.skip(f"{n} is present but does not pass its check; rerun scripts/fetch_assets.sh")


def vtest_frames(step=60, count=10):
    need("vtest.avi")
    cap = cv2.VideoCapture(str(asset_path("vtest.avi")))
    frames = []
    for i in range(0, step * count, step):
        cap.set(cv2.CAP_PROP_POS_FRAMES, i)
        ok, f = cap.read()
        if ok:
            frames.append(f)
    cap.release()
    return frames


# -- the table ------------------------------------------------------------------------------------
def test_every_file_names_its_package_hash_and_licence():
    for f in sources.FILES.values():
        assert re.fullmatch(r"[0-9a-f]{64}", f.sha256), f.name
        assert f.package in sources.PACKAGES and f.licence and f.about, f.name
    for conv in CONVERSIONS.values():
        assert conv.source in sources.FILES
        assert conv.source.replace(".json", ".bin") in sources.FILES
    for table in (registry.TEACHERS, registry.DETECTORS):
        for e in table.values():
            assert e.file in sources.FILES or e.file in CONVERSIONS, e.name


# -- refusing a file that is not the one on record -------------------------------------------------
def test_a_pinned_file_with_another_hash_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEPOSE_ASSETS", str(tmp_path))
    (tmp_path / "pose_landmark_lite.tflite").write_bytes(b"not the model")
    with pytest.raises(
        check.ExternalModelError, match=r"not the @mediapipe/pose@.* file on record.*fetch_assets"
    ):
        check.verified_path("pose_landmark_lite.tflite")
    with pytest.raises(check.ExternalModelError, match="not the"):
        registry.load_teacher("blazepose_lite")


def test_a_converted_file_needs_a_passed_record_with_its_hash(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEPOSE_ASSETS", str(tmp_path))
    onnx_file = tmp_path / "nanodet.onnx"
    onnx_file.write_bytes(b"graph bytes")
    with pytest.raises(check.ExternalModelError, match="no passed conversion check"):
        check.verified_path("nanodet.onnx")
    digest = hashlib.sha256(b"graph bytes").hexdigest()
    record = {"nanodet.onnx": {"sha256": digest, "passed": True}}
    (tmp_path / "external.json").write_text(json.dumps(record))
    assert check.verified_path("nanodet.onnx") == onnx_file
    onnx_file.write_bytes(b"graph bytez")  # same size, new mtime: the cache must not hide it
    with pytest.raises(check.ExternalModelError, match="changed since it was converted"):
        check.verified_path("nanodet.onnx")
    record["nanodet.onnx"]["passed"] = False
    onnx_file.write_bytes(b"graph bytes")
    (tmp_path / "external.json").write_text(json.dumps(record))
    with pytest.raises(check.ExternalModelError, match="no passed conversion check"):
        check.verified_path("nanodet.onnx")


# -- the fetcher ------------------------------------------------------------------------------------
def _tgz(path, members: dict[str, bytes]):
    with tarfile.open(path, "w:gz") as t:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return path


def test_fetch_keeps_only_files_with_the_pinned_hash(tmp_path, monkeypatch):
    good, bad = b"the real thing", b"a re-release"
    pkg = sources.Package("npm", "@example/files", "1.0.0", "MIT")
    monkeypatch.setitem(sources.PACKAGES, "example", pkg)
    for name, data in (("good.txt", good), ("bad.txt", good)):
        row = sources.SourceFile(
            name, "example", f"package/{name}", hashlib.sha256(data).hexdigest(), "MIT", "t"
        )
        monkeypatch.setitem(sources.FILES, name, row)
    archive = _tgz(tmp_path / "example.tgz", {"package/good.txt": good, "package/bad.txt": bad})
    monkeypatch.setattr(fetch, "package_archive", lambda key: archive)
    dest = tmp_path / "assets"
    dest.mkdir()
    warnings = fetch.fetch(["good.txt", "bad.txt"], dest, say=lambda m: None)
    assert (dest / "good.txt").read_bytes() == good
    assert not (dest / "bad.txt").exists()
    assert len(warnings) == 1 and "bad.txt" in warnings[0] and "refused" in warnings[0]
    assert not [p for p in dest.iterdir() if p.name.startswith(".")]  # no temp file left


def test_fetch_cli_refuses_unknown_names(capsys):
    assert fetch.main(["--only", "yolo.onnx", "--dest", "unused"]) == 2
    assert "unknown file(s) ['yolo.onnx']" in capsys.readouterr().err


# -- conversions against TF.js itself ---------------------------------------------------------------
@pytest.mark.parametrize("name", ["movenet-lightning.onnx", "movenet-multipose.onnx"])
def test_converted_model_matches_tfjs_on_real_frames(name):
    """The ONNX file that runs equals TF.js's own CPU backend (node) on a street frame and a photo."""
    conv = CONVERSIONS[name]
    need(name, conv.source, "vtest.avi", "messi5.jpg")
    modules = CACHE / "tfjs" / "node_modules"
    stamp = CACHE / "tfjs" / ".edgepose-pins"
    if not (stamp.exists() and stamp.read_text() == "\n".join(TFJS_PINS)):
        pytest.skip(f"TF.js is not installed in {modules}; scripts/fetch_assets.sh installs it")
    assets = asset_path(name).parent
    worst = compare(asset_path(name), conv, assets, reference_images(assets), modules)
    assert worst < 1e-4  # atol is 1e-3; the conversions measure ~2e-6


# -- what the models see on real frames -------------------------------------------------------------
def test_nanodet_grid_points_sit_at_cell_centres():
    """Against MoveNet MultiPose's boxes, cell-centre grid points fit; corner points sit ~5 px off."""
    need("nanodet.onnx", "movenet-multipose.onnx")
    frames = vtest_frames(count=4)
    multi = registry.load_detector("movenet_multipose")
    refs = [multi(f).boxes for f in frames]
    fit = {}
    for offset in (0.0, 0.5):
        det = registry.load_detector("nanodet", center_offset=offset)
        ious = [iou_matrix(r, det(f).boxes).max(1) for f, r in zip(frames, refs) if len(r)]
        fit[offset] = float(np.mean(np.concatenate(ious)))
    assert fit[0.5] > 0.8 and fit[0.5] > fit[0.0] + 0.1, fit


def test_pretrained_detectors_find_the_people_hog_misses():
    """messi5.jpg: HOG finds nobody; NanoDet and CenterNet find both players in front."""
    need("messi5.jpg", "nanodet.onnx", "centernet.onnx")
    img = cv2.imread(str(asset_path("messi5.jpg")))
    players = np.array([[72, 62, 345, 331], [212, 58, 458, 339]], np.float32)  # the two in front
    assert len(registry.load_detector("nanodet")(img)) >= 2
    for name in ("nanodet", "centernet"):
        boxes = registry.load_detector(name)(img).boxes
        assert (iou_matrix(players, boxes).max(1) > 0.7).all(), name


def test_teachers_agree_on_real_people():
    """Independent teachers put each confident joint of the same person within a few percent of its
    height: on a street frame (upright walkers) and a photo of footballers in action."""
    need("messi5.jpg", "movenet-multipose.onnx", "movenet-lightning.onnx", "movenet-thunder.onnx")
    need("pose_landmark_full.tflite")
    images = [cv2.imread(str(asset_path("messi5.jpg"))), vtest_frames(step=100, count=2)[1]]
    multi = registry.load_detector("movenet_multipose")
    teachers = {
        n: registry.load_teacher(n) for n in ("movenet_lightning", "movenet_thunder", "blazepose_full")
    }
    for img, people in zip(images, (2, 5)):
        boxes = multi(img).boxes
        assert len(boxes) == people
        heights = (boxes[:, 3] - boxes[:, 1])[:, None]
        kps = {n: t(img, boxes) for n, t in teachers.items()}
        ref = kps["movenet_thunder"]
        sure = ref[..., 2] > 0.3
        for name, kp in kps.items():
            assert kp.shape == (people, 17, 3)
            dist = (np.linalg.norm(kp[..., :2] - ref[..., :2], axis=-1) / heights)[sure]
            assert np.median(dist) < (0.03 if name.startswith("movenet") else 0.07), (name, np.median(dist))


# -- the detectors benchmark's rules ------------------------------------------------------------------
def test_a_person_is_found_only_by_a_box_that_holds_them_alone():
    from edgepose.bench.detectors import found

    person = np.zeros((1, 17, 3))
    person[0, :, 0] = np.linspace(100, 120, 17)
    person[0, :, 1] = np.linspace(50, 130, 17)
    person[0, :, 2] = 1
    tight = np.array([[95, 45, 125, 135]], np.float32)
    half = np.array([[95, 45, 125, 90]], np.float32)  # holds under 75% of the joints
    group = np.array([[0, 0, 400, 300]], np.float32)  # a box over a whole crowd
    assert found(person, tight).all() and not found(person, half).any() and not found(person, group).any()


@pytest.mark.slow
def test_detectors_benchmark_runs_on_held_out_frames(tmp_path):
    from edgepose.bench.detectors import Settings, run

    need("vtest.avi", "nanodet.onnx", "centernet.onnx", "movenet-multipose.onnx", "movenet-thunder.onnx")
    need("movenet-lightning.onnx", "pose_landmark_full.tflite")
    settings = Settings(step=4, max_frames=5, every=(1, 3), detectors=("centernet", "hog"), sizes=(416, 320))
    detectors, teachers = run(settings, progress=lambda m: None)
    recall = dict(zip(detectors.column("detector"), detectors.column("recall")))
    assert recall["nanodet:fp32,416"] > recall["hog"]  # vtest's small walkers: HOG misses most of them
    assert {"nanodet:int8,416", "nanodet:fp32,320", "nanodet:int8,320"} <= set(recall)
    assert detectors.extra["auto"] in recall
    assert set(teachers.column("teacher")) >= {"movenet_lightning", "blazepose_full"}
    assert [p.name for p in detectors.write(tmp_path)] == ["detectors.md", "detectors.json", "detectors.png"]


def test_square_tiles_cover_wide_frames_and_leave_near_square_ones_whole():
    from edgepose.external.tiling import square_tiles

    assert square_tiles(768, 576) == [(0, 0, 768, 576)]  # 4:3: one squashed pass
    tiles = square_tiles(1920, 1080)
    assert tiles == [(0, 0, 1080, 1080), (840, 0, 1080, 1080)]  # 16:9: two overlapping squares
    assert square_tiles(720, 1280) == [(0, 0, 720, 720), (0, 560, 720, 720)]  # portrait
    wide = square_tiles(4000, 500, max_tiles=3)  # 8:1 with 3 tiles: they stretch to cover the frame
    assert len(wide) == 3 and wide[-1][0] + wide[-1][2] == 4000 and wide[0][0] == 0

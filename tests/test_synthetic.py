"""The synthetic labelled video benchmark: determinism, label correctness, motion, JSON form, CLI."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math

import numpy as np
import pytest

from edgepose.core.keypoints import COCO17, POSETRACK17
from edgepose.data.synth_body import ACTIONS, SYNTH19, pose_body, sample_shape, sample_style
from edgepose.data.synth_render import (
    Camera,
    Canvas,
    Occluder,
    draw_figure,
    project_figure,
    sample_appearance,
    view_matrix,
)
from edgepose.data.synthetic import SynthConfig, SyntheticVideo, label_figure

SMALL = SynthConfig(width=192, height=144, frames=24)
J = {n: i for i, n in enumerate(SYNTH19.names)}


def _frames(cfg=SMALL, seed=0, index=0, **kw):
    return list(SyntheticVideo(cfg, seed=seed, index=index, **kw))


# ----------------------------------------------------------------------------- controlled scenes


def _camera(w=256, h=192, z=5.0):
    f = 0.8 * h * z / 1.75  # a 1.75 m person at depth z is 0.8 of the frame high
    return Camera(f, w / 2, h * 0.95 - f * 1.5 / z, 1.5, view_matrix(1.0, 0.0, (w / 2, h / 2), (w, h)), 1.0)


def _person(cam, heading, x=0.0, z=5.0, action="stand", seed=0):
    rng = np.random.default_rng(seed)
    shape = sample_shape(rng, child_p=0.0)
    app = sample_appearance(rng)
    app = dataclasses.replace(app, texture="solid", hair_style="short")
    style = sample_style(action, rng, shape)
    for k in "lr":  # arms hanging, so nothing but the torso can hide a joint
        style.update({f"{k}_flex": 0.0, f"{k}_abd": 0.2, f"{k}_elbow": 0.1, f"{k}_fore": 0.0})
    ang = ACTIONS[action].pose(0.0, 0.0, style)
    pose = pose_body(shape, ang, (x, z), heading)
    return shape, app, project_figure(pose, shape, cam)


def _draw(cam, shape, app, fig, bg=(0, 255, 0), occluder=None, size=(256, 192)):
    img = np.empty((size[1], size[0], 3), np.uint8)
    img[:] = bg
    cv = Canvas(img)
    cv.reset_box()
    draw_figure(cv, fig, shape, app, 0, 1.0, 0.0)
    box = list(cv.box)
    if occluder is not None:  # nearer than the person: drawn after it
        occluder.draw(cv, cam, 1, 0.0, 1.0)
    area = int(np.count_nonzero(cv.ids >= 32))
    return cv, label_figure(fig, shape.head_r, cv.ids, 0, box, area)


def test_left_right_and_face_follow_the_heading():
    cam = _camera()
    _, _, front = _person(cam, -math.pi / 2)  # facing the camera: the person's left is image right
    _, _, back = _person(cam, math.pi / 2)
    for a, b in (
        ("left_shoulder", "right_shoulder"),
        ("left_hip", "right_hip"),
        ("left_ankle", "right_ankle"),
    ):
        assert front.pts[J[a], 0] > front.pts[J[b], 0]
        assert back.pts[J[a], 0] < back.pts[J[b], 0]
    shape, app, fig = _person(cam, -math.pi / 2)
    _, p = _draw(cam, shape, app, fig)
    assert all(p.visibility[J[n]] == 2 for n in ("nose", "left_eye", "right_eye", "head_top", "left_wrist"))
    shape, app, fig = _person(cam, math.pi / 2)
    _, p = _draw(cam, shape, app, fig)
    assert all(p.visibility[J[n]] == 1 for n in ("nose", "left_eye", "right_eye"))  # face turned away
    assert not p.occluded.any()  # hidden by itself, not by anything else
    shape, app, fig = _person(cam, 0.0, action="walk")  # walking right: the left side is the far side
    _, p = _draw(cam, shape, app, fig)
    assert p.visibility[J["left_eye"]] == 1 and p.visibility[J["right_eye"]] == 2
    assert p.visibility[J["left_shoulder"]] == 1 and p.visibility[J["right_shoulder"]] == 2


def test_occluder_hides_legs_and_its_colour_is_where_the_joints_are():
    cam = _camera()
    shape, app, fig = _person(cam, -math.pi / 2)
    colour = np.array([200.0, 40.0, 30.0])
    box = Occluder("box", 0.0, 4.2, (1.6, 1.0, 0.2), colour, colour)
    bg = (0, 255, 0)
    cv, p = _draw(cam, shape, app, fig, bg=bg, occluder=box)
    legs = [J[n] for n in ("left_knee", "right_knee", "left_ankle", "right_ankle")]
    upper = [
        J[n] for n in ("nose", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "head_top")
    ]
    assert p.occluded[legs].all() and (p.visibility[legs] == 1).all()
    assert not p.occluded[upper].any() and (p.visibility[upper] == 2).all()
    xy = np.round(p.keypoints).astype(int)
    for j in legs:  # the occluder's flat colour, not the person
        assert np.abs(cv.image[xy[j, 1], xy[j, 0]].astype(float) - colour).max() <= 1
    for j in upper:  # the person covers its visible joints
        assert np.abs(cv.image[xy[j, 1], xy[j, 0]].astype(float) - bg).sum() > 30
    x, y, w, h = p.bbox  # the box is the whole (amodal) figure
    assert (xy[:, 0] >= x - 1).all() and (xy[:, 0] <= x + w + 1).all()
    assert (xy[:, 1] >= y - 1).all() and (xy[:, 1] <= y + h + 1).all()


# ----------------------------------------------------------------------------- videos


def test_same_seed_same_video_and_other_seeds_differ():
    a, b = _frames(seed=7), _frames(seed=7)
    assert len(a) == len(b) == SMALL.frames
    for fa, fb in zip(a, b):
        assert np.array_equal(fa.image, fb.image)
        assert [p.track_id for p in fa.persons] == [p.track_id for p in fb.persons]
        for pa, pb in zip(fa.persons, fb.persons):
            assert np.array_equal(pa.keypoints, pb.keypoints) and np.array_equal(pa.visibility, pb.visibility)
    c = _frames(seed=8)
    d = _frames(seed=7, index=1)
    assert not np.array_equal(a[0].image, c[0].image) and not np.array_equal(a[0].image, d[0].image)


def test_labels_agree_with_image_bounds_boxes_and_the_id_map():
    cfg = SynthConfig.preset(
        "clean", width=192, height=144, frames=30, props=(3, 6), max_people=6, min_people=4
    )
    n_vis = n_diff = n_occ = 0
    for index in range(2):
        for fr in SyntheticVideo(cfg, seed=3, index=index, keep_layers=True):
            H, W = fr.image.shape[:2]
            ids, bg = fr.layers["id_map"], fr.layers["background"].astype(int)
            for p in fr.persons:
                kp = p.keypoints
                inside = (kp[:, 0] >= 0) & (kp[:, 0] <= W - 1) & (kp[:, 1] >= 0) & (kp[:, 1] <= H - 1)
                assert np.array_equal(p.visibility > 0, inside)
                lab = p.visibility > 0
                x, y, w, h = p.bbox
                assert 0 <= x and 0 <= y and x + w <= W and y + h <= H
                pts = kp[lab]
                assert (pts[:, 0] >= x - 1).all() and (pts[:, 0] <= x + w + 1).all()
                assert (pts[:, 1] >= y - 1).all() and (pts[:, 1] <= y + h + 1).all()
                assert not p.occluded[~lab].any()
                assert (p.visibility[p.occluded] == 1).all()
                xi, yi = np.round(kp[:, 0]).astype(int), np.round(kp[:, 1]).astype(int)
                for j in np.flatnonzero(lab):
                    v = int(ids[yi[j], xi[j]])
                    if p.occluded[j]:  # something else is on top: an occluder (1..31) or another person
                        n_occ += 1
                        assert v != 0
                        assert v // 32 != p.layer_id // 32
                    elif p.visibility[j] == 2 and p.area > 400:
                        near = ids[max(yi[j] - 1, 0) : yi[j] + 2, max(xi[j] - 1, 0) : xi[j] + 2] // 32
                        assert v // 32 == p.layer_id // 32 or (v == 0 and (near == p.layer_id // 32).any())
                        n_vis += 1
                        n_diff += np.abs(fr.image[yi[j], xi[j]].astype(int) - bg[yi[j], xi[j]]).sum() > 12
    assert n_occ > 20, "the scenes should occlude some joints"
    assert n_vis > 100 and n_diff / n_vis > 0.95, f"visible joints must show the person: {n_diff}/{n_vis}"


def test_people_enter_and_leave_the_frame():
    cfg = SynthConfig(width=160, height=120, frames=150, spawn_per_s=1.5, max_people=4, min_people=1)
    first, last, first_box = {}, {}, {}
    for fr in SyntheticVideo(cfg, seed=1):
        for p in fr.persons:
            first.setdefault(p.track_id, fr.index)
            first_box.setdefault(p.track_id, p.bbox)
            last[p.track_id] = fr.index
    births = [t for t, f in first.items() if f > 0]
    deaths = [t for t, f in last.items() if f < cfg.frames - 1]
    assert births and deaths
    for t in births:  # newcomers walk in at a side of the frame
        x, _, w, _ = first_box[t]
        assert x <= 2 or x + w >= cfg.width - 3


def test_motion_is_smooth():
    cfg = SynthConfig(width=256, height=192, frames=80, motion_blur_p=0.0)
    seen = 0
    for index in range(3):
        prev = {}
        for fr in SyntheticVideo(cfg, seed=11, index=index):
            for p in fr.persons:
                size = max(float(np.ptp(p.keypoints[:, 1])), 20.0)
                if p.track_id in prev:
                    step = np.linalg.norm(p.keypoints - prev[p.track_id], axis=1).max()
                    # a runner's ankle at 25 fps moves about a third of the body height per frame
                    assert step < 0.45 * size + 6.0, (index, fr.index, p.track_id, p.action, step, size)
                    seen += 1
                prev[p.track_id] = p.keypoints.copy()
    assert seen > 100


def test_layout_conversions_and_flags():
    fr = next(f for f in _frames(SynthConfig.preset("hard", width=192, height=144, frames=12)) if f.persons)
    p = fr.persons[0]
    pt = p.keypoints_in("posetrack17")
    coco = p.keypoints_in("coco17")
    assert pt.shape == (17, 3) and coco.shape == (17, 3)
    assert np.all(pt[3:5] == 0)  # DCPose's empty ear slots
    for name in ("nose", "left_wrist", "right_ankle"):
        a, b = pt[POSETRACK17.index(name)], coco[COCO17.index(name)]
        assert np.array_equal(a, b)
    if p.visibility[J["head_top"]] > 0:
        assert np.allclose(pt[2, :2], p.keypoints[J["head_top"]])
    assert np.all(pt[pt[:, 2] == 0] == 0)
    fl = p.flags_in("coco17")
    assert np.array_equal(fl["occluded"].astype(bool), p.occluded[:17] & (p.visibility[:17] > 0))


def test_blur_flags_follow_the_blur():
    cfg = SMALL.replace(motion_blur_p=1.0, defocus_p=0.0)
    frames = _frames(cfg, seed=2)
    assert all(f.blurred for f in frames)
    for f in frames:
        for p in f.persons:
            assert np.array_equal(p.blurred, p.visibility > 0)
    sharp = _frames(SynthConfig.preset("clean", width=192, height=144, frames=12), seed=2)
    assert not any(f.blurred or any(p.blurred.any() for p in f.persons) for f in sharp)


def _blur_runs(flags):
    """Lengths of the maximal runs of blurred frames, and whether the last one reaches the end."""
    runs, n = [], 0
    for b in flags:
        if b:
            n += 1
        elif n:
            runs.append(n)
            n = 0
    return runs, n


def test_camera_blur_episodes_last_blur_frames():
    cfg = SMALL.replace(frames=60, motion_blur_p=0.3, defocus_p=0.0, person_blur_p=0.0, blur_frames=(3, 3))
    runs, tail = _blur_runs([f.blurred for f in _frames(cfg, seed=4)])
    assert runs and all(r % 3 == 0 for r in runs), runs  # back-to-back episodes merge into multiples
    # the "moderate" preset's one- and two-frame jerks leave sharp neighbours around blurred frames
    mod = SynthConfig.preset("moderate", width=192, height=144, frames=60, defocus_p=0.0, person_blur_p=0.0)
    runs, _ = _blur_runs([f.blurred for f in _frames(mod, seed=4)])
    assert runs and 1 in runs


def test_config_presets_and_errors():
    cfg = SynthConfig.preset("hard", width=320)
    assert cfg.width == 320 and cfg.max_people == 8
    assert SynthConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(KeyError, match="unknown synthetic preset"):
        SynthConfig.preset("extreme")
    with pytest.raises(ValueError, match="width, height >= 32"):
        SyntheticVideo(SynthConfig(width=16))
    with pytest.raises(ValueError, match="background styles"):
        SyntheticVideo(SynthConfig(backgrounds=("moon",)))


def test_renders_every_configured_frame_at_its_size_with_people_in_it():
    # (the rendering speed this test used to print is benchmarks/synthetic_speed.py now)
    cfg = SynthConfig(width=256, height=192, frames=40)
    frames = list(SyntheticVideo(cfg, seed=4))
    assert [fr.index for fr in frames] == list(range(40))
    for fr in frames:
        assert fr.image.shape == (192, 256, 3) and fr.image.dtype == np.uint8
        assert fr.image.std() > 5  # a rendered scene, not a blank canvas
    assert sum(len(fr.persons) for fr in frames) > 0
    assert any(not np.array_equal(a.image, b.image) for a, b in itertools.pairwise(frames))  # the video moves


# ----------------------------------------------------------------------------- dataset files and CLI


def test_dataset_is_posetrack18_form_and_reads_back(tmp_path):
    from edgepose.data.synth_dataset import read_meta, write_dataset

    cfg = SynthConfig(width=128, height=96, frames=10)
    out = tmp_path / "ds"
    meta = write_dataset(out, cfg, videos=3, seed=5, split_val=0.34, layout="both", label_every=2)
    assert read_meta(out)["seed"] == 5 and meta["splits"]["val"] and meta["splits"]["train"]
    files = sorted((out / "annotations").glob("*/*.json"))
    assert len(files) == 3
    n_ann = 0
    for file in files:
        text = file.read_text()
        data = json.loads(text)
        assert json.loads(json.dumps(data)) == data
        assert set(data) == {"images", "annotations", "categories"}
        cat = data["categories"][0]
        assert cat["name"] == "person" and cat["keypoints"] == list(POSETRACK17.names)
        assert all(1 <= a <= 17 and 1 <= b <= 17 for a, b in cat["skeleton"])
        imgs = {im["id"]: im for im in data["images"]}
        assert len(imgs) == cfg.frames
        for im in data["images"]:
            vid, frame = im["vid_id"], int(im["file_name"].rsplit("/", 1)[1][:-4])
            assert im["id"] == im["frame_id"] == int(f"1{vid}{frame:04d}") and im["nframes"] == cfg.frames
            assert im["is_labeled"] == (frame % 2 == 0)
            assert (out / im["file_name"]).is_file()
        for a in data["annotations"]:
            n_ann += 1
            assert imgs[a["image_id"]]["is_labeled"]
            kp = np.asarray(a["keypoints"], float).reshape(17, 3)
            assert set(kp[:, 2].tolist()) <= {0.0, 1.0, 2.0} and np.all(kp[kp[:, 2] == 0] == 0)
            assert np.all(kp[3:5] == 0) and len(a["occluded"]) == len(a["blurred"]) == 17
            assert isinstance(a["track_id"], int) and len(a["bbox"]) == len(a["bbox_head"]) == 4
    assert n_ann > 0
    coco = json.loads((out / "annotations" / "coco_train.json").read_text())
    assert coco["categories"][0]["keypoints"] == list(COCO17.names)
    assert all(len(a["keypoints"]) == 51 and a["area"] > 0 for a in coco["annotations"])

    from edgepose.data.posetrack import read_posetrack

    videos = read_posetrack(out / "annotations" / "train")
    assert len(videos) == len(meta["splits"]["train"])
    frame = videos[0].frames[0]
    assert frame.image_path.is_file() and frame.is_labeled
    person = next(p for v in videos for f in v.frames for p in f.persons)
    assert set(person.joint_flags) >= {"occluded", "blurred"}


def test_dataset_refuses_foreign_directories(tmp_path):
    from edgepose.data.synth_dataset import write_dataset

    (tmp_path / "mine.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not a synthetic dataset"):
        write_dataset(tmp_path, SynthConfig(width=64, height=48, frames=2), videos=1)
    assert (tmp_path / "mine.txt").read_text() == "keep me"
    with pytest.raises(ValueError, match="layout must be one of"):
        write_dataset(tmp_path / "new", SynthConfig(width=64, height=48, frames=2), layout="mpii")


def test_cli_data_synth(tmp_path):
    from typer.testing import CliRunner

    from edgepose.cli import app

    out = tmp_path / "synth"
    args = [
        "data",
        "synth",
        "--out",
        str(out),
        "--videos",
        "2",
        "--frames",
        "6",
        "--size",
        "96x72",
        "--seed",
        "3",
        "--split-val",
        "0.5",
        "--layout",
        "posetrack17",
        "--json",
    ]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout[r.stdout.index("{") :])
    assert summary["frames"] == 12 and summary["splits"] == {"train": 1, "val": 1}
    assert (out / "meta.json").is_file() and not (out / "annotations" / "coco_train.json").exists()
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 2 and "overwrite" in r.output
    r = CliRunner().invoke(app, args[:-1] + ["--overwrite"])
    assert r.exit_code == 0 and "frames/s" in r.output
    r = CliRunner().invoke(app, ["data", "synth", "--out", str(tmp_path / "x"), "--size", "big"])
    assert r.exit_code != 0

"""Dataset readers, clip windows and top-down crops, on tiny fixtures written here."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from edgepose.core.keypoints import COCO17, POSETRACK17, get_layout
from edgepose.core.transforms import transform_points
from edgepose.data.clips import PAPER_OFFSETS, clip_indices, iter_clips, sample_clip
from edgepose.data.coco import read_coco
from edgepose.data.posetrack import labeled_frames, read_posetrack

# ----------------------------------------------------------------- fixtures


def _pose(cx: float, cy: float, scale: float = 1.0) -> np.ndarray:
    """A standing person in posetrack17 order (ears empty), (17, 3) with v = 1."""
    rel = {
        "nose": (0, -40),
        "head_bottom": (0, -30),
        "head_top": (0, -52),
        "left_shoulder": (12, -25),
        "right_shoulder": (-12, -25),
        "left_elbow": (18, -8),
        "right_elbow": (-18, -8),
        "left_wrist": (20, 8),
        "right_wrist": (-20, 8),
        "left_hip": (8, 10),
        "right_hip": (-8, 10),
        "left_knee": (9, 30),
        "right_knee": (-9, 30),
        "left_ankle": (10, 50),
        "right_ankle": (-10, 50),
    }
    kp = np.zeros((17, 3), np.float32)
    for name, (dx, dy) in rel.items():
        kp[POSETRACK17.index(name)] = (cx + dx * scale, cy + dy * scale, 1)
    return kp


def _box(kp: np.ndarray) -> list[float]:
    pts = kp[kp[:, 2] > 0, :2]
    x1, y1 = pts.min(0) - 5
    x2, y2 = pts.max(0) + 5
    return [float(x1), float(y1), float(x2 - x1), float(y2 - y1)]


def _pt_video(vid: str, n: int, labeled=None, flavour: str = "2018", with_vid_id: bool = True) -> dict:
    """One PoseTrack video JSON in the 2018 or 2021 form; images listed in shuffled order."""
    labeled = set(range(n)) if labeled is None else set(labeled)
    images, anns = [], []
    for i in range(n):
        img_id = int(f"1{vid}{i:04d}")
        img = {
            "file_name": f"images/val/{vid}_mpii_test/{i:06d}.jpg",
            "id": img_id,
            "frame_id": img_id,
            "nframes": n,
            "is_labeled": i in labeled,
            "ignore_regions_x": [],
            "ignore_regions_y": [],
        }
        if with_vid_id:
            img["vid_id"] = vid
        if flavour == "2021":
            img["has_labeled_person"] = True
            img["image_id"] = img_id
        images.append(img)
        if i not in labeled:
            continue
        kp = _pose(100 + 2 * i, 120)
        ann = {
            "id": img_id * 100,
            "image_id": img_id,
            "track_id": 0,
            "category_id": 1,
            "bbox": _box(kp),
            "bbox_head": [90.0 + 2 * i, 62.0, 20.0, 30.0],
            "keypoints": kp.reshape(-1).tolist(),
            "scores": [],
            "occluded": [int(j == POSETRACK17.index("left_wrist")) for j in range(17)],
            "blurred": [int(j == POSETRACK17.index("right_knee")) for j in range(17)],
        }
        if flavour == "2021":
            ann["person_id"] = 1234
        anns.append(ann)
    order = np.random.default_rng(0).permutation(n)
    return {
        "images": [images[i] for i in order],
        "annotations": anns,
        "categories": [{"id": 1, "name": "person", "keypoints": list(POSETRACK17.names), "skeleton": []}],
    }


@pytest.fixture
def coco_json(tmp_path):
    kp1 = np.zeros((17, 3))
    kp1[0] = (50, 40, 2)  # nose
    kp1[1] = (48, 38, 2)  # left_eye
    kp1[5] = (60, 60, 1)  # left_shoulder (occluded)
    kp1[16] = (55, 140, 2)  # right_ankle
    data = {
        "images": [
            {"id": 7, "file_name": "b.jpg", "width": 200, "height": 160},
            {"id": 3, "file_name": "a.jpg", "width": 200, "height": 160},
        ],
        "annotations": [
            {
                "id": 11,
                "image_id": 3,
                "category_id": 1,
                "bbox": [30, 20, 50, 130],
                "area": 4000.0,
                "iscrowd": 0,
                "num_keypoints": 4,
                "keypoints": kp1.reshape(-1).tolist(),
                "segmentation": [],
            },
            {
                "id": 12,
                "image_id": 3,
                "category_id": 1,
                "bbox": [100, 20, 40, 60],
                "area": 1500.0,
                "iscrowd": 1,
                "num_keypoints": 0,
                "keypoints": [0] * 51,
                "segmentation": {"counts": [], "size": [160, 200]},
            },
            {"id": 13, "image_id": 7, "category_id": 2, "bbox": [1, 1, 2, 2], "area": 4.0},  # not a person
        ],
        "categories": [
            {"id": 1, "name": "person", "keypoints": list(COCO17.names), "skeleton": []},
            {"id": 2, "name": "dog"},
        ],
    }
    path = tmp_path / "person_keypoints_val.json"
    path.write_text(json.dumps(data))
    return path


# ----------------------------------------------------------------- readers


def test_read_coco_records_and_layout_mapping(coco_json):
    frames = read_coco(coco_json)
    assert [f.image_id for f in frames] == [3, 7]
    assert frames[0].image_path == coco_json.parent / "a.jpg" and frames[1].persons == []
    p, crowd = frames[0].persons
    assert p.layout == "coco17" and p.keypoints.shape == (17, 3) and p.id == 11
    np.testing.assert_allclose(p.bbox, [30, 20, 80, 150])
    assert p.num_keypoints == 4 and p.area == 4000.0 and not p.iscrowd
    assert crowd.iscrowd and crowd.num_keypoints == 0 and "segmentation" not in crowd.extra

    pt = read_coco(coco_json, layout="posetrack17")[0].persons[0]
    assert pt.layout == "posetrack17"
    np.testing.assert_allclose(pt.keypoints[POSETRACK17.index("nose")], [50, 40, 2])
    np.testing.assert_allclose(pt.keypoints[POSETRACK17.index("left_shoulder")], [60, 60, 1])
    np.testing.assert_allclose(pt.keypoints[POSETRACK17.index("right_ankle")], [55, 140, 2])
    assert not pt.keypoints[POSETRACK17.index("head_top")].any()  # COCO has no head_top
    assert pt.num_keypoints == 3  # the eye has no slot in posetrack17


def test_read_coco_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_coco(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"images": [], "annotations": [], "categories": [{"id": 1, "name": "car"}]}))
    with pytest.raises(ValueError, match="no 'person' category"):
        read_coco(bad)


def test_read_posetrack18_directory(tmp_path):
    d = tmp_path / "annotations" / "val"
    d.mkdir(parents=True)
    v1 = _pt_video("000342", 5, labeled={1, 3, 4})
    first = next(im for im in v1["images"] if im["id"] == 10003420001)
    first["ignore_regions_x"] = [[0, 40, 40, 0], [300, 310, 305]]
    first["ignore_regions_y"] = [[0, 0, 30, 30], [0, 0, 10]]
    (d / "000342_mpii_test.json").write_text(json.dumps(v1))
    (d / "000017_mpii_test.json").write_text(json.dumps(_pt_video("000017", 3)))

    videos = read_posetrack(d)
    assert [v.video_id for v in videos] == ["000017", "000342"]
    v = videos[1]
    assert len(v) == 5 and [f.frame_index for f in v.frames] == list(range(5))
    assert [f.file_name[-10:] for f in v.frames] == [f"{i:06d}.jpg" for i in range(5)]
    assert [f.is_labeled for f in v.frames] == [False, True, False, True, True]
    assert [f.image_id for f in v.labeled_frames] == [10003420001, 10003420003, 10003420004]
    assert len(labeled_frames(videos)) == 6

    f1 = v.frames[1]
    assert f1.nframes == 5 and f1.video_id == "000342" and len(f1.ignore_regions) == 2
    np.testing.assert_allclose(f1.ignore_regions[0], [[0, 0], [40, 0], [40, 30], [0, 30]])
    assert f1.in_ignore_region(np.array([[20.0, 15.0], [50.0, 15.0], [305.0, 3.0]])).tolist() == [
        True,
        False,
        True,
    ]
    assert v.frames[0].persons == [] and v.frames[0].ignore_regions == []

    p = f1.persons[0]
    assert p.track_id == 0 and p.layout == "posetrack17" and p.id == 1000342000100
    np.testing.assert_allclose(p.keypoints, _pose(102, 120))
    np.testing.assert_allclose(p.head_box, [92, 62, 112, 92])
    assert set(p.joint_flags) == {"occluded", "blurred"}
    assert np.flatnonzero(p.extra["occluded"]).tolist() == [POSETRACK17.index("left_wrist")]
    assert p.extra["scores"] == []
    assert p.labelled.sum() == 15 and not p.labelled[3:5].any()  # ear slots empty


def test_read_posetrack21_single_file_and_fallbacks(tmp_path):
    data = _pt_video("000586", 4, labeled={0, 2}, flavour="2021", with_vid_id=False)
    other = _pt_video("000001", 2, flavour="2021", with_vid_id=False)
    merged = {k: data[k] + other[k] for k in ("images", "annotations")}
    merged["categories"] = data["categories"]
    path = tmp_path / "val.json"
    path.write_text(json.dumps(merged))

    videos = read_posetrack(path)
    assert [v.video_id for v in videos] == ["000001", "000586"]  # from the image directory's name
    v = videos[1]
    assert [f.is_labeled for f in v.frames] == [True, False, True, False]
    assert v.frames[0].extra["has_labeled_person"] is True
    assert v.frames[0].persons[0].extra["person_id"] == 1234

    # mapping onto the 15-joint layout drops the empty ear slots, flags included
    p15 = read_posetrack(path, layout="posetrack15")[1].frames[0].persons[0]
    lay15 = get_layout("posetrack15")
    assert p15.keypoints.shape == (15, 3) and p15.layout == "posetrack15"
    np.testing.assert_allclose(
        p15.keypoints[lay15.index("left_wrist")], _pose(100, 120)[POSETRACK17.index("left_wrist")]
    )
    assert np.flatnonzero(p15.extra["occluded"]).tolist() == [lay15.index("left_wrist")]


def test_read_posetrack_warns_on_missing_frames_and_rejects_2017(tmp_path):
    data = _pt_video("000005", 4)
    data["images"] = [im for im in data["images"] if not im["file_name"].endswith("000002.jpg")]
    (tmp_path / "v.json").write_text(json.dumps(data))
    with pytest.warns(UserWarning, match="clip windows"):
        read_posetrack(tmp_path / "v.json")
    (tmp_path / "old.json").write_text(json.dumps({"annolist": []}))
    with pytest.raises(ValueError, match="annolist"):
        read_posetrack(tmp_path / "old.json")
    with pytest.raises(FileNotFoundError):
        read_posetrack(tmp_path / "nowhere")


# ----------------------------------------------------------------- clips


def test_clip_indices_clamp_at_both_ends():
    five = PAPER_OFFSETS["aux4"]
    assert clip_indices(0, 10, five).tolist() == [0, 0, 0, 1, 2]
    assert clip_indices(1, 10, five).tolist() == [0, 0, 1, 2, 3]
    assert clip_indices(5, 10, five).tolist() == [3, 4, 5, 6, 7]
    assert clip_indices(9, 10, five).tolist() == [7, 8, 9, 9, 9]
    assert clip_indices(8, 10, (-1, 0, 1)).tolist() == [7, 8, 9]
    assert clip_indices(9, 10, (-1, 0, 1)).tolist() == [8, 9, 9]
    assert clip_indices(0, 1, five).tolist() == [0] * 5
    assert clip_indices(0, 10, PAPER_OFFSETS["online"]).tolist() == [0, 0, 0]
    with pytest.raises(ValueError, match="contain 0"):
        clip_indices(0, 10, (-1, 1))
    with pytest.raises(ValueError, match="ascending"):
        clip_indices(0, 10, (1, 0, -1))
    with pytest.raises(IndexError):
        clip_indices(10, 10, (0,))


def test_sample_clip_returns_frame_records(tmp_path):
    (tmp_path / "v.json").write_text(json.dumps(_pt_video("000009", 4)))
    video = read_posetrack(tmp_path / "v.json")[0]
    clip = sample_clip(video, 3, (-2, -1, 0, 1, 2))
    assert [f.frame_index for f in clip] == [1, 2, 3, 3, 3]
    assert clip[2] is video.frames[3]
    labelled = [(i, [f.frame_index for f in c]) for _, i, c in iter_clips([video], (-1, 0, 1))]
    assert labelled == [(0, [0, 0, 1]), (1, [0, 1, 2]), (2, [1, 2, 3]), (3, [2, 3, 3])]
    video.frames[1].is_labeled = False
    assert [i for _, i, _ in iter_clips([video], (0,))] == [0, 2, 3]
    assert len(list(iter_clips([video], (0,), labeled_only=False))) == 4


# ----------------------------------------------------------------- top-down crops

H, W = 128, 96  # crop size
SIDE = {"left": 2, "right": 0, "center": 1}  # RGB channel a joint is drawn in


def _side(name: str) -> str:
    return "left" if name.startswith("left_") else "right" if name.startswith("right_") else "center"


def _blob_image(points_by_channel: dict[int, np.ndarray], size=(240, 320), sigma=1.5) -> np.ndarray:
    """An RGB uint8 image with Gaussian dots (sub-pixel centres) in the given channels."""
    img = np.zeros((*size, 3), np.float64)
    ys, xs = np.mgrid[: size[0], : size[1]]
    for ch, pts in points_by_channel.items():
        for x, y in pts:
            img[..., ch] = np.maximum(img[..., ch], np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * sigma**2)))
    return np.round(img * 255).astype(np.uint8)


def _write_video(tmp_path, kp_per_frame: list[np.ndarray], ignore=None) -> list:
    """PNG frames (written BGR by cv2) with each joint drawn in its side's channel, plus the JSON."""
    n = len(kp_per_frame)
    data = _pt_video("000777", n)
    for im in data["images"]:
        im["file_name"] = im["file_name"].replace(".jpg", ".png")
    for i, kp in enumerate(kp_per_frame):
        by_ch = {c: [] for c in SIDE.values()}
        for j, name in enumerate(POSETRACK17.names):
            if kp[j, 2] > 0:
                by_ch[SIDE[_side(name)]].append(kp[j, :2])
        rgb = _blob_image({c: np.array(v) for c, v in by_ch.items()})
        path = tmp_path / f"images/val/000777_mpii_test/{i:06d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), rgb[..., ::-1])
        ann = next(a for a in data["annotations"] if a["image_id"] == int(f"1000777{i:04d}"))
        ann["keypoints"] = kp.reshape(-1).tolist()
        ann["bbox"] = _box(kp)
    if ignore is not None:
        img = next(im for im in data["images"] if im["id"] == 10007770001)
        img["ignore_regions_x"], img["ignore_regions_y"] = [ignore[:, 0].tolist()], [ignore[:, 1].tolist()]
    (tmp_path / "posetrack_data").mkdir()
    (tmp_path / "posetrack_data" / "v.json").write_text(json.dumps(data))
    return read_posetrack(tmp_path / "posetrack_data")


def _unnormalize(chw: np.ndarray) -> np.ndarray:
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    return chw.transpose(1, 2, 0) * std + mean  # HWC in [0, 1]


def _peak(img_hwc: np.ndarray, ch: int, near, radius: int = 4):
    """Intensity-weighted centre and peak value of channel ``ch`` in a window around ``near``."""
    x0, y0 = int(round(near[0])), int(round(near[1]))
    ya, yb, xa, xb = (
        max(y0 - radius, 0),
        min(y0 + radius + 1, img_hwc.shape[0]),
        max(x0 - radius, 0),
        min(x0 + radius + 1, img_hwc.shape[1]),
    )
    win = np.clip(img_hwc[ya:yb, xa:xb, ch], 0, None)
    win = np.where(win > 0.1 * win.max(), win, 0)
    ys, xs = np.mgrid[ya:yb, xa:xb]
    total = win.sum()
    if total == 0:
        return None, 0.0
    return np.array([(xs * win).sum() / total, (ys * win).sum() / total]), float(win.max())


@pytest.fixture
def video(tmp_path):
    frames = [_pose(150 + 6 * t, 120, scale=1.2) for t in range(4)]
    return _write_video(tmp_path, frames)


def test_plain_crop_puts_dots_where_keypoints_say(video):
    from edgepose.data.topdown import TopDownDataset

    ds = TopDownDataset(video, (H, W), "posetrack17")
    assert len(ds) == 4
    item = ds[1]
    assert item["image"].shape == (3, H, W) and item["keypoints"].shape == (17, 2)
    img, kp = _unnormalize(item["image"].numpy()), item["keypoints"].numpy()
    for j, name in enumerate(POSETRACK17.names):
        if name in POSETRACK17.empty:
            continue
        centre, value = _peak(img, SIDE[_side(name)], kp[j])
        assert value > 0.5 and np.abs(centre - kp[j]).max() < 0.5, name
    np.testing.assert_allclose(item["coords"].numpy(), kp / [W, H], rtol=1e-6)
    # the inverse matrix maps crop keypoints back onto the frame's labels
    back = transform_points(kp, item["inverse"].numpy())
    labels = ds.samples[1].person.keypoints[:, :2]
    valid = POSETRACK17.valid_mask
    np.testing.assert_allclose(back[valid], labels[valid], atol=1e-4)
    assert item["target_weight"].numpy().tolist() == valid.astype(float).tolist()
    assert item["occluded"][POSETRACK17.index("left_wrist")] == 1 and item["occluded"].sum() == 1


def test_augmented_clip_shares_one_transform_and_flip_swaps_joints(video):
    from edgepose.data.topdown import Augmentation, TopDownDataset

    ds = TopDownDataset(video, (H, W), "posetrack17", offsets=(-1, 0, 1), heatmap_size=(H // 4, W // 4))
    aug = Augmentation(scale=1.15, rotation=30.0, flip=True)
    item = ds.load(2, aug)
    assert item["frames"].shape == (3, 3, H, W)
    m = ds.crop_matrix_for(2, aug)
    np.testing.assert_allclose(
        item["inverse"].numpy(), np.linalg.inv(np.vstack([m, [0, 0, 1]]))[:2], atol=1e-9
    )
    # every frame of the clip is cropped with the current frame's matrix: each frame's own
    # dots land where that matrix sends them
    lw, rw = POSETRACK17.index("left_wrist"), POSETRACK17.index("right_wrist")
    for t, frame in enumerate(ds.samples[2].clip):
        img = _unnormalize(item["frames"][t].numpy())
        truth = frame.persons[0].keypoints
        for j in (lw, rw, POSETRACK17.index("nose")):
            where = transform_points(truth[j, :2], m)
            centre, value = _peak(img, SIDE[_side(POSETRACK17.names[j])], where)
            assert value > 0.5 and np.abs(centre - where).max() < 0.5, (t, POSETRACK17.names[j])
    # flipped: the output's left wrist is the person's right wrist (drawn in the right-side channel)
    img = _unnormalize(item["frames"][1].numpy())
    kp = item["keypoints"].numpy()
    centre, value = _peak(img, SIDE["right"], kp[lw])
    assert value > 0.5 and np.abs(centre - kp[lw]).max() < 0.5
    assert _peak(img, SIDE["left"], kp[lw])[1] < 0.05
    assert item["occluded"][rw] == 1 and item["occluded"][lw] == 0  # flags follow the swap
    assert item["blurred"][POSETRACK17.index("left_knee")] == 1
    # heatmap targets peak at the keypoints (heatmap pixel i sits at crop pixel 4i)
    hm = item["heatmaps"].numpy()
    for j in (lw, rw):
        iy, ix = np.unravel_index(hm[j].argmax(), hm[j].shape)
        assert abs(ix * 4 - kp[j, 0]) <= 2 and abs(iy * 4 - kp[j, 1]) <= 2
    assert item["heatmap_weight"][3] == 0 and item["heatmap_weight"][lw] == 1


def test_clip_clamped_at_video_start_and_targets_masked(tmp_path):
    from edgepose.data.topdown import Augmentation, TopDownDataset

    kps = [_pose(150, 120, scale=1.2) for _ in range(3)]
    kps[1][POSETRACK17.index("right_ankle")] = (150 - 12, 110 - 400, 1)  # far outside the crop
    region = np.array(
        [[150.0, 170.0], [200.0, 170.0], [200.0, 200.0], [150.0, 200.0]]
    )  # around the left ankle
    videos = _write_video(tmp_path, kps, ignore=region)
    person = videos[0].frames[1].persons[0]
    person.bbox = np.array(
        [*kps[0][:, :2][POSETRACK17.valid_mask].min(0), *kps[0][:, :2].max(0)]
    )  # the body's box
    ds = TopDownDataset(videos, (H, W), "posetrack17", offsets=(-2, -1, 0))
    first = ds.load(0, Augmentation())
    np.testing.assert_array_equal(first["frames"][0], first["frames"][2])  # clamped to frame 0
    np.testing.assert_array_equal(first["frames"][1], first["frames"][2])
    second = ds.load(1)
    w = second["target_weight"].numpy()
    assert w[POSETRACK17.index("left_ankle")] == 0  # ignore region
    assert w[POSETRACK17.index("right_ankle")] == 0  # outside the crop
    assert w[3] == 0 and w[4] == 0  # empty ear slots
    assert w.sum() == 13 and second["visible"].sum() == 15


def test_random_augmentation_ranges_and_collate(video):
    import torch
    from torch.utils.data import DataLoader

    from edgepose.data.topdown import AugmentConfig, TopDownDataset

    ds = TopDownDataset(video, (H, W), "posetrack17", offsets=(-1, 0, 1), augment=AugmentConfig())
    rng = np.random.default_rng(0)
    draws = [ds.draw_augmentation(0, rng) for _ in range(2000)]
    scales = np.array([a.scale for a in draws])
    rots = np.array([a.rotation for a in draws])
    assert 0.65 <= scales.min() and scales.max() <= 1.35 and abs(scales.mean() - 1) < 0.02
    assert np.abs(rots).max() <= 45 and 0.55 < (rots != 0).mean() < 0.65
    assert 0.45 < np.mean([a.flip for a in draws]) < 0.55
    assert 0.25 < np.mean([a.center is not None for a in draws]) < 0.35  # 15 visible joints > 8

    torch.manual_seed(0)
    a = ds[0]
    torch.manual_seed(0)
    b = ds[0]
    torch.testing.assert_close(a["frames"], b["frames"])  # reproducible under torch's seed
    batch = next(iter(DataLoader(ds, batch_size=2)))
    assert batch["frames"].shape == (2, 3, 3, H, W) and batch["target_weight"].shape == (2, 17)


def test_half_body_crop_centres_on_one_body_half(video):
    from edgepose.data.topdown import LOWER_BODY, Augmentation, TopDownDataset

    ds = TopDownDataset(video, (H, W), "posetrack17")
    kp = ds.samples[0].person.keypoints
    mask = ds._joint_mask(ds.samples[0])
    lower = np.array([n in LOWER_BODY for n in POSETRACK17.names])
    halves = {"lower": lower, "upper": ~lower & POSETRACK17.valid_mask}
    far = {"lower": POSETRACK17.index("head_top"), "upper": POSETRACK17.index("left_ankle")}
    seen = set()
    for seed in range(8):
        center, size = ds._half_body(kp[:, :2], mask, np.random.default_rng(seed), 1.5)
        half = "lower" if center[1] > kp[POSETRACK17.index("left_hip"), 1] else "upper"
        seen.add(half)
        np.testing.assert_allclose(center, kp[halves[half], :2].mean(0))  # centred on that half's joints
        w = ds.load(0, Augmentation(center=center, size=size))["target_weight"].numpy().astype(bool)
        assert (
            w[halves[half]].all() and not w[far[half]]
        )  # the half in the crop, the far end of the other out
    assert seen == {"lower", "upper"}


def test_still_images_and_spec_shaped_dataset(coco_json, tmp_path):
    from edgepose.data.topdown import TopDownDataset
    from edgepose.zoo.spec import ModelSpec

    frames = read_coco(coco_json)
    cv2.imwrite(str(tmp_path / "a.jpg"), np.zeros((160, 200, 3), np.uint8))
    spec = ModelSpec(
        name="t",
        family="t",
        builder=dict,
        config={},
        layout="coco17",
        input_size=(64, 48),
        stages=("model",),
        codec="heatmap",
    )
    ds = TopDownDataset.for_spec(spec, frames, train=False)
    assert len(ds) == 1  # the crowd annotation is skipped
    item = ds[0]
    assert item["image"].shape == (3, 64, 48) and item["heatmaps"].shape == (17, 16, 12)
    assert item["image_id"] == 3
    with pytest.raises(ValueError, match="need videos"):
        TopDownDataset(frames, (64, 48), "coco17", offsets=(-1, 0, 1))
    with pytest.raises(ValueError, match="layout"):
        TopDownDataset(frames, (64, 48), "posetrack17")
    missing = TopDownDataset(read_coco(coco_json, image_root=tmp_path / "nope"), (64, 48), "coco17")
    with pytest.raises(FileNotFoundError, match="cannot read image"):
        missing[0]


def test_set_epoch_keys_augmentation_on_seed_epoch_and_index(video):
    """After set_epoch, an item's augmentation depends only on (seed, epoch, index), so resumed
    runs and any number of workers see the same draws."""
    import torch

    from edgepose.data.topdown import AugmentConfig, TopDownDataset

    ds = TopDownDataset(video, (H, W), "posetrack17", augment=AugmentConfig())
    ds.set_epoch(3, seed=7)
    a = [ds.draw_augmentation(i, ds._generator(i)) for i in range(len(ds))]
    torch.manual_seed(99)  # the global RNG must not matter
    b = [ds.draw_augmentation(i, ds._generator(i)) for i in reversed(range(len(ds)))][::-1]
    assert a == b
    ds.set_epoch(4)
    assert a != [ds.draw_augmentation(i, ds._generator(i)) for i in range(len(ds))]

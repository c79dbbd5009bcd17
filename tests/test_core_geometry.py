import numpy as np
import pytest

from edgepose.core.codecs import decode, decode_heatmaps, encode_heatmaps
from edgepose.core.transforms import (
    box_to_center_size,
    crop_matrix,
    crop_person,
    invert_affine,
    transform_points,
)


def test_crop_matrix_maps_box_centre_to_crop_centre_and_inverts():
    center, size = box_to_center_size([100, 50, 160, 250], (256, 192))
    assert size[0] / size[1] == pytest.approx(192 / 256)
    assert size[1] == pytest.approx(200 * 1.25)
    for rot, flip in [(0, False), (30, False), (-45, True)]:
        m = crop_matrix(center, size, (256, 192), rot, flip)
        assert transform_points(center, m) == pytest.approx([96, 128])
        pts = np.array([[110.0, 60.0], [150.0, 240.0]])
        back = transform_points(transform_points(pts, m), invert_affine(m))
        assert back == pytest.approx(pts)


def test_flip_mirrors_and_rotation_turns_points():
    center, size = np.array([0.0, 0.0]), np.array([192.0, 256.0])
    m = crop_matrix(center, size, (256, 192), flip=True)
    assert transform_points([10.0, 0.0], m) == pytest.approx([96 - 10, 128])
    m = crop_matrix(center, size, (256, 192), rotation_deg=90)
    x, y = transform_points([10.0, 0.0], m)
    assert x == pytest.approx(96) and abs(y - 128) == pytest.approx(10)


def test_crop_person_returns_normalised_chw():
    frame = np.full((240, 320, 3), 255, np.uint8)
    crop, m = crop_person(frame, [100, 40, 160, 200], (64, 48), mean=(0.5,) * 3, std=(0.5,) * 3)
    assert crop.shape == (3, 64, 48) and crop.dtype == np.float32
    assert crop[:, 32, 24] == pytest.approx([1.0, 1.0, 1.0])
    assert m.shape == (2, 3)


@pytest.mark.parametrize("refine,tol", [("dark", 0.25), ("shift", 2.5), ("none", 4.1)])
def test_heatmap_encode_decode_round_trip(refine, tol):
    rng = np.random.default_rng(0)
    kp = rng.uniform([16, 16], [176, 240], size=(17, 2))
    vis = np.ones(17, bool)
    vis[3] = False
    hm, w = encode_heatmaps(kp, vis, (64, 48), (256, 192))
    assert hm.shape == (17, 64, 48) and w[3] == 0 and hm[3].max() == 0
    dec, scores = decode_heatmaps(hm[None], (256, 192), refine=refine)
    err = np.linalg.norm(dec[0] - kp, axis=-1)[vis]
    assert err.max() < tol
    assert scores[0, vis].min() > 0.6


def test_regression_decode_and_errors():
    kp, sc = decode({"coords": np.full((1, 2, 2), 0.5), "scores": np.ones((1, 2))}, "regression", (256, 192))
    assert kp[0, 0].tolist() == [96, 128]
    with pytest.raises(ValueError, match="unknown codec"):
        decode({}, "simcc", (256, 192))
    with pytest.raises(KeyError, match="missing"):
        decode({"coords": np.zeros((1, 2, 2))}, "regression", (256, 192))

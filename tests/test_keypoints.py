import numpy as np
import pytest

from edgepose.core.keypoints import (
    COCO17,
    LAYOUTS,
    POSETRACK15,
    POSETRACK17,
    POSETRACK_OFFICIAL15,
    convert,
    get_layout,
)


def test_layout_sizes_and_flip_pairs_are_mirror_images():
    assert (len(COCO17), len(POSETRACK17), len(POSETRACK15), len(POSETRACK_OFFICIAL15)) == (17, 17, 15, 15)
    for lay in LAYOUTS.values():
        names = lay.names
        for a, b in lay.flip_pairs:
            assert names[a].replace("left_", "") == names[b].replace("right_", "")
        perm = lay.flip_index
        assert sorted(perm) == list(range(len(lay)))
        assert [perm[p] for p in perm] == list(range(len(lay)))  # an involution


def test_posetrack17_is_dcpose_order_with_empty_ears():
    assert POSETRACK17.names[:5] == ("nose", "head_bottom", "head_top", "left_ear", "right_ear")
    assert not POSETRACK17.valid_mask[3] and not POSETRACK17.valid_mask[4]
    assert all(3 not in e and 4 not in e for e in POSETRACK17.skeleton)


def test_convert_round_trips_through_official_order_and_fills_missing():
    kp = np.arange(17 * 3, dtype=np.float32).reshape(17, 3) + 1
    official = convert(kp, "posetrack17", "posetrack_official15")
    assert official.shape == (15, 3)
    assert official[POSETRACK_OFFICIAL15.index("head_top")].tolist() == kp[2].tolist()
    back = convert(official, POSETRACK_OFFICIAL15, POSETRACK17)
    assert np.array_equal(back[POSETRACK17.valid_mask], kp[POSETRACK17.valid_mask])
    assert np.all(back[3:5] == 0)
    coco = convert(kp, POSETRACK17, COCO17)
    assert np.all(coco[1:5] == 0) and coco[0].tolist() == kp[0].tolist()


def test_bad_layouts_and_shapes_are_named():
    with pytest.raises(KeyError, match="unknown keypoint layout 'mpii'"):
        get_layout("mpii")
    with pytest.raises(ValueError, match="expected 17 joints"):
        convert(np.zeros((15, 2)), COCO17, POSETRACK17)

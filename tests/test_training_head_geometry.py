"""Location maps for the learned component rule (training.head_geometry) and their features."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

import training.lesion_classifier as lc
from training.head_geometry import bone_contact_map, head_masks, location_maps, midline_map


def synthetic_head(slices=3, shape=(96, 96)):
    """Unit-range stack: an ellipse of brain (0.45), longer along X (rows 28-68, cols 8-88), in a
    2-pixel bone ring (1.0), on air (0.0)."""
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    r = ((yy - 48) / 20.0) ** 2 + ((xx - 48) / 40.0) ** 2
    plane = np.where(r <= 1.0, 0.45, 0.0).astype(np.float32)
    inner = ((yy - 48) / 18.0) ** 2 + ((xx - 48) / 38.0) ** 2
    plane[(r <= 1.0) & (inner > 1.0)] = 1.0
    return np.repeat(plane[None], slices, axis=0)


def test_head_mask_is_the_filled_ellipse_without_the_table():
    image = synthetic_head()
    image[:, 90:93, 10:80] = 0.5                      # a table strip below the head
    head = head_masks(image)
    assert head[0, 48, 48] and head[0, 48, 10] and not head[0, 91, 40]
    assert head.sum() == pytest.approx(3 * np.pi * 20 * 40, rel=0.05)


def test_depth_is_zero_at_the_outline_and_largest_at_the_centre():
    depth = location_maps(synthetic_head())[0]
    assert depth[1, 48, 48] == depth[1].max()
    assert depth[1, 48, 48] == pytest.approx(20 / np.sqrt(20 * 40), rel=0.1)   # 20 px over sqrt(area / pi)
    assert depth[1, 29, 48] < 0.1 and depth[1, 5, 5] == 0.0


def test_midline_distance_is_zero_on_the_long_axis_and_one_at_the_half_width():
    mid = midline_map(head_masks(synthetic_head()))
    assert mid[0, 48, 20] == pytest.approx(0.0, abs=0.05) and mid[0, 48, 80] == pytest.approx(0.0, abs=0.05)
    assert mid[0, 48 + 20, 48] == pytest.approx(1.0, rel=0.1)     # uniform ellipse: half-width = 2 sd


def test_maps_turn_with_the_slices_so_features_need_no_orientation():
    image = synthetic_head()
    image[:, 40:45, 30:36] = 0.7                       # something off-centre, so the turn shows
    maps = location_maps(image)
    for turns in (1, 2, 3):
        turned = location_maps(np.rot90(image, turns, axes=(1, 2)).copy())
        np.testing.assert_allclose(turned, np.rot90(maps, turns, axes=(2, 3)), atol=1e-4)
    np.testing.assert_allclose(location_maps(image[:, :, ::-1].copy()), maps[:, :, :, ::-1], atol=1e-4)


def test_bone_contact_marks_pixels_within_two_pixels_of_bone_in_the_same_slice():
    image = np.zeros((2, 20, 20), np.float32)
    image[0, 10, 10] = 1.0
    contact = bone_contact_map(image)
    assert contact[0, 10, 12] == 1.0 and contact[0, 10, 13] == 0.0 and contact[1].max() == 0.0


def test_location_features_are_the_component_means_of_the_maps_after_the_base_ones():
    image = synthetic_head(slices=2)
    prob = np.zeros(image.shape, np.float32)
    prob[:, 46:51, 36:60] = 0.9                        # on the midline, deep
    prob[:, 30:34, 40:56] = 0.9                        # against the bone ring, off the midline
    truth = np.zeros(image.shape, bool)
    c = lc.candidates(prob, image, truth, 0.5, scale=1.0, location=location_maps(image))
    f = c["features"]
    assert f.shape == (2, len(lc.FEATURE_SETS["location"]))
    names = list(lc.FEATURE_SETS["location"])
    depth, mid, bone = (f[:, names.index(n)] for n in lc.LOCATION_FEATURES)
    labels, _ = ndimage.label(prob >= 0.5)
    first = 0 if labels[0, 48, 48] == 1 else 1
    assert depth[first] > depth[1 - first] and mid[first] < mid[1 - first]
    assert bone[first] == 0.0 and bone[1 - first] > 0.3
    base = lc.candidates(prob, image, truth, 0.5, scale=1.0)["features"]
    np.testing.assert_allclose(f[:, :len(lc.FEATURES)], base)


def test_candidate_table_refuses_an_unknown_feature_set():
    with pytest.raises(ValueError, match="unknown feature set"):
        lc.candidate_table({}, {}, 1.0, features="everything")

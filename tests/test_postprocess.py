"""Postprocessing: threshold, hole filling, small-component removal in mm3 or voxels."""
import math

import numpy as np
import pytest

from scipy import ndimage

from model.postprocess import (binarize, bounding_box, clean_and_label, clean_mask,
                               fill_holes_per_slice, full_connectivity, label_components,
                               min_component_voxels, postprocess, remove_small_components)

SETTINGS = {"min_lesion_mm3": 100.0, "min_lesion_pixels": 10, "fill_holes": True}


def test_threshold_is_inclusive_and_output_is_uint8_01():
    prob = np.array([[[0.2, 0.5, 0.9]]], dtype=np.float32)
    assert binarize(prob, 0.5).tolist() == [[[False, True, True]]]
    out = postprocess(prob, {"threshold": 0.6, "postprocess": {"min_lesion_pixels": 0}}, None)
    assert out.dtype == np.uint8 and out.tolist() == [[[0, 0, 1]]]


def test_holes_are_filled_per_slice():
    mask = np.zeros((2, 9, 9), bool)
    mask[0, 2:7, 2:7] = True
    mask[0, 4, 4] = False              # enclosed hole
    mask[1, 0:3, 0:3] = True
    mask[1, 0, 0] = False              # notch at the border: not a hole
    out = clean_mask(mask, {**SETTINGS, "min_lesion_pixels": 0}, None)
    assert out[0, 4, 4] == 1
    assert out[1, 0, 0] == 0
    assert clean_mask(mask, {"fill_holes": False, "min_lesion_pixels": 0}, None)[0, 4, 4] == 0


def test_small_components_removed_by_pixels_when_spacing_unknown():
    mask = np.zeros((1, 20, 20), bool)
    mask[0, 1:4, 1:4] = True           # 9 pixels < 10
    mask[0, 10:14, 10:14] = True       # 16 pixels
    out = clean_mask(mask, SETTINGS, voxel_volume_mm3=None)
    assert out[0, 1:4, 1:4].sum() == 0 and out[0, 10:14, 10:14].all()


def test_small_components_removed_by_mm3_when_spacing_known():
    mask = np.zeros((3, 20, 20), bool)
    mask[0:2, 1:6, 1:6] = True         # 50 voxels * 2.5 mm3 = 125 mm3: kept
    mask[1, 12:16, 12:16] = True       # 16 voxels * 2.5 mm3 = 40 mm3: removed
    assert min_component_voxels(SETTINGS, 2.5) == 40
    out = clean_mask(mask, SETTINGS, voxel_volume_mm3=2.5)
    assert out.sum() == 50 and out[1, 12:16, 12:16].sum() == 0


def test_volume_components_use_full_3d_connectivity():
    mask = np.zeros((2, 10, 10), bool)
    mask[0, 2:4, 2:4] = True           # 4 voxels
    mask[1, 4:6, 4:6] = True           # 4 voxels touching the first only at a corner (26-conn)
    out = remove_small_components(mask, 8)
    assert out.sum() == 8              # one 8-voxel component in 3D, kept


def test_single_image_uses_8_connectivity():
    mask = np.zeros((1, 10, 10), bool)
    mask[0, 2:4, 2:4] = True
    mask[0, 4:6, 4:6] = True           # diagonal neighbour
    assert remove_small_components(mask, 8).sum() == 8


def test_rejects_non_3d():
    with pytest.raises(ValueError, match="Z, Y, X"):
        clean_mask(np.zeros((4, 4), bool), SETTINGS, None)


def random_masks(seed, count=40, shape=(3, 40, 48)):
    """Blobby and speckled random (Z, Y, X) masks, often touching the array's edges."""
    rng = np.random.default_rng(seed)
    for _ in range(count):
        density = rng.choice([0.05, 0.3, 0.5, 0.7])
        mask = rng.random(shape) < density
        if rng.random() < 0.5:         # blobs with holes: smooth, then threshold
            mask = ndimage.uniform_filter(mask.astype(float), size=(1, 5, 5)) > 0.45
        yield mask


def test_bounding_box_holds_every_set_element():
    mask = np.zeros((4, 10, 12), bool)
    assert bounding_box(mask) is None
    mask[1, 2, 3] = mask[2, 7, 10] = True
    assert bounding_box(mask) == (slice(1, 3), slice(2, 8), slice(3, 11))
    assert bounding_box(mask[2]) == (slice(7, 8), slice(10, 11))


def test_hole_filling_in_the_bounding_box_equals_the_whole_slice():
    for mask in random_masks(0):
        expected = np.stack([ndimage.binary_fill_holes(plane) for plane in mask])
        np.testing.assert_array_equal(fill_holes_per_slice(mask), expected)
    ring = np.zeros((1, 9, 9), bool)
    ring[0, 2:7, 2:7] = True
    ring[0, 3:6, 3:6] = False          # a 3x3 hole whose box edge is the ring itself
    assert fill_holes_per_slice(ring)[0, 2:7, 2:7].all()
    cup = ring.copy()
    cup[0, 2, 4] = False               # opened to the outside: not a hole
    np.testing.assert_array_equal(fill_holes_per_slice(cup), cup)


def fresh_labels(mask):
    return ndimage.label(mask, structure=full_connectivity(mask))


@pytest.mark.parametrize("min_voxels", [0, 2, 5, 40])
def test_components_equal_a_fresh_labelling_of_the_clean_mask(min_voxels):
    for mask in random_masks(1, count=25):
        settings = {"fill_holes": True, "min_lesion_pixels": min_voxels}
        cleaned, components = clean_and_label(mask, settings, None)
        expected, count = fresh_labels(cleaned)
        if count == 0:
            assert components is None and not cleaned.any()
            continue
        assert components.count == count
        full = np.zeros(mask.shape, np.int32)
        full[components.box] = components.labels
        np.testing.assert_array_equal(full, expected)     # same ids, same order


def test_remove_small_components_equals_size_filter_of_fresh_labels():
    for mask in random_masks(2, count=25):
        labels, count = fresh_labels(mask)
        sizes = np.bincount(labels.ravel(), minlength=count + 1)
        expected = (sizes >= 6)[labels] & (labels > 0)
        np.testing.assert_array_equal(remove_small_components(mask, 6), expected)


def test_empty_mask_has_no_components():
    cleaned, components = clean_and_label(np.zeros((2, 5, 5), bool), SETTINGS, None)
    assert components is None and cleaned.dtype == np.uint8 and not cleaned.any()
    assert label_components(np.zeros((2, 5, 5), bool)) is None


def test_central_slab_fraction_of_a_sphere():
    from model.postprocess import central_slab_fraction

    volume = 4.0 / 3.0 * math.pi * 10.0 ** 3                      # r = 10 mm
    assert central_slab_fraction(volume, 5.0) == pytest.approx(
        math.pi * 5.0 * (100.0 - 25.0 / 12.0) / volume)           # 0.367
    assert central_slab_fraction(volume, 20.0) == 1.0             # slab holds the sphere
    assert central_slab_fraction(0.0, 5.0) == 1.0


def test_single_slice_limits_are_the_central_slice_of_the_smallest_lesion():
    """A 3D minimum of 3200 voxels (3.24 mL at 0.45 x 0.45 x 5 mm) keeps lesions whose
    central 5 mm slice has ~40% of that; a single slice must not need the whole 3D volume."""
    from model.postprocess import single_slice_settings

    settings = {"min_lesion_mm3": 3240.0, "min_lesion_pixels": 3200, "fill_holes": True}
    one = single_slice_settings(settings, None)
    assert 1200 < one["min_lesion_pixels"] < 1350 and one["fill_holes"] is True
    assert one["min_lesion_mm3"] == pytest.approx(0.398 * 3240.0, rel=0.01)
    thin = single_slice_settings(settings, (1.0, 0.45, 0.45))    # a 1 mm slice: smaller share
    assert thin["min_lesion_mm3"] < one["min_lesion_mm3"]
    assert settings["min_lesion_pixels"] == 3200                   # input left unchanged
    mask = np.zeros((1, 100, 100), bool)
    mask[0, 10:50, 10:50] = True                                   # 1600 px: kept in 2D
    assert clean_mask(mask, one, None).sum() == 1600
    assert clean_mask(mask, settings, None).sum() == 0             # the 3D rule would drop it


CORE = {"min_lesion_mm3": 0.0, "min_lesion_pixels": 0, "fill_holes": True,
        "core_threshold": 0.9, "min_core_pixels": 3, "min_core_mm3": 6.0}


def _two_components():
    """(1, 10, 10) probabilities: a 12-voxel component with 4 voxels >= 0.9 and one of 12 with 2."""
    prob = np.zeros((1, 10, 10), np.float32)
    prob[0, 0:3, 0:4] = 0.6
    prob[0, 0, 0:4] = 0.95
    prob[0, 6:9, 6:10] = 0.6
    prob[0, 8, 8:10] = 0.95
    return prob


def test_core_rule_keeps_whole_components_with_enough_confident_voxels():
    prob = _two_components()
    config = {"threshold": 0.5, "postprocess": CORE}
    out = postprocess(prob, config, None)
    assert out.sum() == 12 and out[0, 0:3, 0:4].all() and not out[0, 6:, 6:].any()
    mask, components = clean_and_label(prob >= 0.5, CORE, None, prob >= 0.9)
    assert components.count == 1 and (components.labels > 0).sum() == 12
    # with the size rule alone both stay; a core limit of 2 keeps both
    assert postprocess(prob, {"threshold": 0.5, "postprocess": {**CORE, "core_threshold": None}}, None).sum() == 24
    assert postprocess(prob, {"threshold": 0.5, "postprocess": {**CORE, "min_core_pixels": 2}}, None).sum() == 24


def test_core_limit_is_in_mm3_when_the_voxel_volume_is_known():
    prob = _two_components()
    # 6 mm3 at 2 mm3 per voxel = 3 voxels (as min_core_pixels), at 1 mm3 = 6 voxels: neither is kept
    assert postprocess(prob, {"threshold": 0.5, "postprocess": {**CORE, "min_core_pixels": 99}}, 2.0).sum() == 12
    assert postprocess(prob, {"threshold": 0.5, "postprocess": CORE}, 1.0).sum() == 0


def test_core_rule_needs_the_confident_mask():
    with pytest.raises(ValueError, match="core rule"):
        clean_and_label(np.ones((1, 4, 4), bool), CORE, None)


def test_single_slice_scales_the_core_limit_like_the_lesion_limit():
    from model.postprocess import single_slice_settings

    settings = {**CORE, "min_lesion_pixels": 3200, "min_lesion_mm3": 3240.0,
                "min_core_pixels": 3200, "min_core_mm3": 3240.0}
    out = single_slice_settings(settings, None)
    assert out["min_core_pixels"] == out["min_lesion_pixels"] < 3200
    assert out["min_core_mm3"] == pytest.approx(out["min_lesion_mm3"]) and out["min_core_mm3"] < 3240.0
    assert "min_core_pixels" not in single_slice_settings({"min_lesion_pixels": 10}, None)


def _thin_and_compact() -> np.ndarray:
    """(24, 16, 16): a 3x3-pixel rod over 20 slices (180 voxels) and a 6x6x2 blob (72 voxels)."""
    mask = np.zeros((24, 16, 16), bool)
    mask[2:22, 1:4, 1:4] = True
    mask[10:12, 8:14, 8:14] = True
    return mask


def test_area_rule_drops_thin_components_however_many_voxels_they_hold():
    mask = _thin_and_compact()
    settings = {"min_lesion_pixels": 50, "min_lesion_area_pixels": 20, "fill_holes": False}
    out = clean_mask(mask, settings, None)
    assert out.sum() == 72 and out[10, 10, 10] == 1 and out[5, 2, 2] == 0
    # without the area rule the rod (more voxels than the bleed) stays
    assert clean_mask(mask, {"min_lesion_pixels": 50, "fill_holes": False}, None).sum() == 252


def test_area_rule_in_mm2_uses_the_in_plane_pixel_area():
    mask = _thin_and_compact()
    settings = {"min_lesion_mm3": 0.0, "min_lesion_pixels": 0, "fill_holes": False,
                "min_lesion_area_pixels": 1000, "min_lesion_area_mm2": 5.0}
    # 0.5 x 0.5 mm pixels: 5 mm2 = 20 pixels; the rod's 9-pixel cross-section is 2.25 mm2
    cleaned, components = clean_and_label(mask, settings, 1.25, None, pixel_area_mm2=0.25)
    assert cleaned.sum() == 72 and components.count == 1
    # unknown spacing: the pixel limit (1000) applies and removes both
    assert clean_and_label(mask, settings, None)[0].sum() == 0
    prob = mask.astype(np.float32)
    assert postprocess(prob, {"threshold": 0.5, "postprocess": settings}, 1.25, 0.25).sum() == 72

"""Postprocessing: threshold, hole filling, small-component removal in mm3 or voxels."""
import numpy as np
import pytest

from model.postprocess import (binarize, clean_mask, min_component_voxels, postprocess,
                               remove_small_components)

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

"""Measurements: units pinned (mL, mm, mm2), ABC/2 vs a known ellipsoid, unknown spacing."""
import math

import numpy as np
import pytest

from model import postprocess
from model.measure import diameters_mm, measure
from model.postprocess import clean_and_label
from tests.conftest import blob_volume


def test_cube_volume_is_exactly_2_ml():
    mask = np.zeros((12, 20, 20), np.uint8)
    mask[1:11, 5:15, 5:15] = 1        # 10 x 10 x 10 voxels of 2 x 1 x 1 mm = 2000 mm3
    m = measure(mask, pixel_spacing_mm=(1.0, 1.0), slice_thickness_mm=2.0)
    assert m.volume_ml == pytest.approx(2.0, abs=1e-12)
    assert m.lesion_voxels == 1000
    assert m.slice_areas_mm2[1] == pytest.approx(100.0) and m.slice_areas_pixels[1] == 100
    assert len(m.lesions) == 1 and m.lesions[0]["volume_ml"] == pytest.approx(2.0)
    assert m.lesions[0]["slices"] == [1, 10]
    assert m.lesions[0]["centroid_zyx"] == [5.5, 9.5, 9.5]
    assert m.abc2_axes_mm["c_mm"] == pytest.approx(20.0)
    assert m.warnings == []


def test_anisotropic_in_plane_spacing_scales_area_and_diameters():
    region = np.zeros((30, 30), bool)
    region[5:15, 5:25] = True          # 10 rows x 20 cols
    a_mm, b_mm = diameters_mm(region, (2.0, 0.5))  # rows 2 mm apart, cols 0.5 mm apart
    # 20 mm tall x 10 mm wide rectangle: longest diameter is its diagonal
    assert a_mm == pytest.approx(math.hypot(20.0, 10.0))
    assert 0 < b_mm < a_mm


@pytest.mark.parametrize("radii_mm", [(20.0, 15.0, 10.0), (30.0, 12.0, 25.0)])
def test_abc2_of_ellipsoid_within_10_percent(radii_mm):
    spacing = (2.0, 0.5, 0.5)          # slice, row, col mm
    radii = tuple(r / s for r, s in zip(radii_mm[::-1], spacing))  # (z, y, x) in voxels
    shape = tuple(int(2 * r + 6) for r in radii)
    _, inside = blob_volume(shape, tuple(s // 2 for s in shape), radii)
    m = measure(inside.astype(np.uint8), pixel_spacing_mm=spacing[1:], slice_thickness_mm=spacing[0])
    true_ml = 4.0 / 3.0 * math.pi * np.prod(radii_mm) / 1000.0
    assert m.volume_ml == pytest.approx(true_ml, rel=0.03)
    assert m.abc2_ml == pytest.approx(true_ml, rel=0.10)


def test_unknown_spacing_gives_none_and_says_how_to_pass_it():
    mask = np.zeros((3, 10, 10), np.uint8)
    mask[1, 2:5, 2:5] = 1
    m = measure(mask)
    assert m.volume_ml is None and m.abc2_ml is None and m.slice_areas_mm2 is None
    assert m.lesions[0]["volume_ml"] is None and m.lesion_voxels == 9
    assert len(m.warnings) == 1
    assert "--spacing" in m.warnings[0] and "spacing" in m.warnings[0].split("--spacing")[1]


def test_missing_slice_thickness_keeps_areas_but_no_volume():
    mask = np.zeros((1, 10, 10), np.uint8)
    mask[0, :4, :5] = 1
    m = measure(mask, pixel_spacing_mm=(0.5, 0.5))
    assert m.slice_areas_mm2 == [5.0] and m.volume_ml is None
    assert "slice thickness" in m.warnings[0]


def test_lesions_sorted_by_size_with_count_and_key_slice():
    mask = np.zeros((4, 20, 20), np.uint8)
    mask[0, 0:2, 0:2] = 1              # small, 4 voxels
    mask[2:4, 10:15, 10:15] = 1        # large, 50 voxels
    m = measure(mask, (1.0, 1.0), 1.0)
    assert [l["voxels"] for l in m.lesions] == [50, 4]
    assert [l["id"] for l in m.lesions] == [1, 2]
    assert m.key_slice in (2, 3) and m.slices_with_lesion == [0, 2, 3]


def test_empty_mask():
    m = measure(np.zeros((3, 8, 8), np.uint8), (1.0, 1.0), 1.0)
    assert m.volume_ml == 0.0 and m.lesions == [] and m.abc2_ml is None and m.key_slice == 1


def test_components_passed_through_give_the_same_measurements():
    rng = np.random.default_rng(3)
    settings = {"fill_holes": True, "min_lesion_pixels": 3}
    for _ in range(20):
        binary = rng.random((5, 30, 40)) < rng.choice([0.02, 0.1, 0.4])
        binary[:, :2] = False                       # lesions away from the origin: box offsets
        mask, components = clean_and_label(binary, settings, None)
        for spacing in [((0.5, 0.7), 3.0), (None, None)]:
            once = measure(mask, *spacing, components=components)
            again = measure(mask, *spacing)         # labels the mask itself
            assert once == again


def test_equal_sized_lesions_keep_their_order():
    mask = np.zeros((3, 20, 20), np.uint8)
    for y, x in [(15, 2), (2, 15), (8, 8), (2, 2)]:  # four 2x2x1 lesions, same size
        mask[1, y:y + 2, x:x + 2] = 1
    _, components = clean_and_label(mask, {"fill_holes": False, "min_lesion_pixels": 0}, None)
    table = measure(mask, (1.0, 1.0), 1.0, components=components).lesions
    assert table == measure(mask, (1.0, 1.0), 1.0).lesions
    assert [l["centroid_zyx"][1:] for l in table] == [[2.5, 2.5], [2.5, 15.5], [8.5, 8.5], [15.5, 2.5]]


def test_empty_mask_is_not_labelled(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("an empty mask must not be labelled")

    monkeypatch.setattr(postprocess.ndimage, "label", fail)
    m = measure(np.zeros((4, 8, 8), np.uint8), (1.0, 1.0), 1.0)
    assert m.lesions == [] and m.lesion_voxels == 0 and m.key_slice == 2

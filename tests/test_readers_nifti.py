"""NIfTI reader: orientation to (Z, Y, X) display, spacing, round trip, header checks."""
from __future__ import annotations

import gzip
import struct

import nibabel as nib
import numpy as np
import pytest
from nibabel.orientations import apply_orientation, axcodes2ornt, ornt_transform

from model.errors import InputError
from model.readers import read_sources
from model.types import Limits
from synthetic import ct_phantom, make_nifti

ZOOMS_ZYX = (5.0, 0.4, 0.45)


def stored_as(axcodes, display):
    """Array and affine storing a (Z, Y, X) display volume (S, P, L) with ``axcodes``."""
    target = axcodes2ornt(("S", "P", "L"))
    stored = apply_orientation(display, ornt_transform(target, axcodes2ornt(axcodes)))
    # affine: axis i of the stored array runs along the RAS axis of axcodes[i]
    affine = np.zeros((4, 4))
    affine[3, 3] = 1
    zoom_for = {"S": ZOOMS_ZYX[0], "I": ZOOMS_ZYX[0], "P": ZOOMS_ZYX[1], "A": ZOOMS_ZYX[1],
                "L": ZOOMS_ZYX[2], "R": ZOOMS_ZYX[2]}
    for i, code in enumerate(axcodes):
        ras_axis = "RAS".index(code) if code in "RAS" else "LPI".index(code)
        sign = 1 if code in "RAS" else -1
        affine[ras_axis, i] = sign * zoom_for[code]
    affine[:3, 3] = (10.0, -20.0, 30.0)
    return np.ascontiguousarray(stored), affine


def read_one(name, data, limits=None):
    return read_sources([(name, data)], limits or Limits())


@pytest.mark.parametrize("axcodes", [("R", "A", "S"), ("L", "P", "S"), ("P", "S", "R"),
                                     ("S", "P", "L"), ("A", "I", "L")])
@pytest.mark.parametrize("gz", [False, True])
def test_any_orientation_gives_display_volume_and_round_trips(axcodes, gz):
    display = ct_phantom((5, 40, 36))
    stored, affine = stored_as(axcodes, display)
    name = "scan.nii.gz" if gz else "scan.nii"
    image = read_one(name, make_nifti(stored, affine, dtype=np.int16, gz=gz))
    assert image.kind == "nifti" and image.intensity == "hu" and image.is_volume
    np.testing.assert_array_equal(image.array, display)
    assert image.pixel_spacing_mm == pytest.approx(ZOOMS_ZYX[1:])
    assert image.slice_thickness_mm == pytest.approx(ZOOMS_ZYX[0])
    assert image.spacing_source == "NIfTI header"
    np.testing.assert_allclose(image.affine, affine, atol=1e-5)
    assert image.source_shape == stored.shape
    np.testing.assert_array_equal(image.to_file_layout(image.array), stored)


def test_4d_single_volume_is_squeezed_and_round_trips():
    display = ct_phantom((4, 32, 32))
    stored, affine = stored_as(("L", "P", "S"), display)
    stored4 = stored[..., None]
    image = read_one("t.nii", make_nifti(stored4, affine, dtype=np.int16))
    np.testing.assert_array_equal(image.array, display)
    back = image.to_file_layout(image.array)
    assert back.shape == stored4.shape
    np.testing.assert_array_equal(back, stored4)


def test_mask_written_with_to_file_layout_matches_input_geometry():
    display = ct_phantom((4, 32, 32))
    stored, affine = stored_as(("P", "S", "R"), display)
    image = read_one("x.nii", make_nifti(stored, affine, dtype=np.int16))
    mask = (image.array > 50).astype(np.uint8)
    written = nib.Nifti1Image(image.to_file_layout(mask), image.affine)
    # world position of the marker voxel (display z=3, y=0, x=0) is the same in both files
    original = nib.Nifti1Image(stored, affine)
    stored_index = np.argwhere(image.to_file_layout(np.arange(mask.size).reshape(mask.shape))
                               == np.ravel_multi_index((3, 0, 0), mask.shape))[0]
    assert written.shape == original.shape
    np.testing.assert_allclose(written.affine @ [*stored_index, 1], original.affine @ [*stored_index, 1])


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int16, np.float32, np.float64])
def test_dtypes_become_float32(dtype):
    values = np.linspace(-100, 100, 4 * 16 * 16).reshape(16, 16, 4)
    if dtype == np.uint8:
        values = values + 100
    image = read_one("d.nii", make_nifti(values, np.diag([1, 1, 1, 1.0]), dtype=dtype))
    assert image.array.dtype == np.float32 and image.array.shape == (4, 16, 16)


def test_scl_slope_and_intercept_are_applied():
    raw = make_nifti(np.full((8, 8, 3), 1000, np.int16), np.eye(4))
    img = nib.Nifti1Image.from_bytes(raw)
    img.header.set_slope_inter(2.0, -1024.0)
    image = read_one("s.nii", img.to_bytes())
    assert float(image.array.max()) == pytest.approx(976.0)


@pytest.mark.parametrize("zooms", [(0.0, 0.5, 5.0), (-1.0, 1.0, 1.0), (np.nan, 1.0, 1.0)])
def test_invalid_zooms_mean_unknown_spacing(zooms):
    raw = bytearray(make_nifti(ct_phantom((3, 16, 16)).transpose(2, 1, 0),
                               np.diag([0.5, 0.5, 5, 1.0]), dtype=np.int16))
    struct.pack_into("<3f", raw, 80, *zooms)  # pixdim[1:4]; nibabel would "repair" them
    image = read_one("z.nii", bytes(raw))
    assert image.pixel_spacing_mm is None and image.slice_thickness_mm is None
    assert image.spacing_source == "unknown"
    assert any("spacing unknown" in w for w in image.warnings)


def test_non_hu_values_warn():
    values = np.random.default_rng(0).random((16, 16, 4)).astype(np.float32)
    image = read_one("norm.nii", make_nifti(values, np.eye(4)))
    assert any("do not look like Hounsfield units" in w for w in image.warnings)


def test_hu_volume_has_no_hu_warning():
    image = read_one("ok.nii", make_nifti(ct_phantom((3, 16, 16)).transpose(2, 1, 0),
                                          dtype=np.int16))
    assert not any("Hounsfield" in w for w in image.warnings)


def expect_error(name, data, status, *fragments, limits=None):
    with pytest.raises(InputError) as err:
        read_one(name, data, limits)
    assert err.value.status == status, err.value.message
    assert err.value.stage == "read"
    for fragment in (name,) + fragments:
        assert fragment in err.value.message
    return err.value


def test_nan_voxels_are_rejected():
    values = ct_phantom((3, 16, 16)).transpose(2, 1, 0).copy()
    values[3, 3, 1] = np.nan
    expect_error("nan.nii", make_nifti(values), 422, "NaN", "rejected")


@pytest.mark.parametrize("shape,fragment", [((16, 16), "2D"), ((16, 16, 4, 3), "3 volumes"),
                                            ((8, 8, 2, 1, 2), "5 dimensions")])
def test_wrong_dimensionality_is_422(shape, fragment):
    expect_error("dims.nii", make_nifti(np.zeros(shape, np.int16)), 422, fragment)


def test_rgb_nifti_is_422():
    rgb = np.zeros((8, 8, 4), dtype=[("R", "u1"), ("G", "u1"), ("B", "u1")])
    expect_error("rgb.nii", make_nifti(rgb), 422, "RGB", "not a CT volume in HU")


def test_binary_datatype_is_422():
    raw = bytearray(make_nifti(np.zeros((8, 8, 4), np.uint8)))
    raw[70:72] = struct.pack("<h", 1)  # datatype = DT_BINARY
    expect_error("bits.nii", bytes(raw), 422, "not a CT volume in HU")


def test_zero_one_volume_looks_like_a_mask():
    expect_error("mask.nii", make_nifti((ct_phantom((3, 16, 16)) > 0).astype(np.uint8)), 422,
                 "looks like a mask")


def test_header_claiming_too_many_voxels_is_413_before_loading():
    raw = bytearray(make_nifti(np.zeros((8, 8, 4), np.int16)))
    raw[40:56] = struct.pack("<8h", 3, 30000, 30000, 30000, 1, 1, 1, 1)
    expect_error("huge.nii", bytes(raw), 413, "voxels")
    expect_error("huge.nii.gz", gzip.compress(bytes(raw)), 413, "voxels")


def test_truncated_nifti_is_422():
    raw = make_nifti(np.zeros((16, 16, 8), np.int16))
    expect_error("cut.nii", raw[:-100], 422, "truncated")
    expect_error("cut.nii.gz", gzip.compress(raw)[:-40], 422, "ends early")


def test_gzip_bomb_stops_at_the_limit():
    raw = make_nifti(np.zeros((64, 64, 64), np.int16))
    expect_error("bomb.nii.gz", gzip.compress(raw), 413, "limit",
                 limits=Limits(max_decompressed_bytes=100_000))


def test_trailing_gzip_data_beyond_the_header_size_is_never_decompressed():
    raw = make_nifti(ct_phantom((3, 16, 16)).transpose(2, 1, 0), dtype=np.int16)
    bomb = gzip.compress(raw + bytes(50_000_000), compresslevel=1)
    image = read_one("padded.nii.gz", bomb, Limits(max_decompressed_bytes=1_000_000))
    assert image.array.shape == (3, 16, 16)


def test_text_named_nii_is_not_a_nifti():
    expect_error("notes.nii", b"just some text, not a volume" * 20, 422, "not a NIfTI file")


def test_gzip_without_nifti_inside_is_422():
    expect_error("other.nii.gz", gzip.compress(b"plain text inside" * 40), 422,
                 "not a NIfTI file inside")


def test_nifti2_is_read():
    display = ct_phantom((3, 16, 16))
    stored, affine = stored_as(("R", "A", "S"), display)
    image = read_one("v2.nii", make_nifti(stored, affine, dtype=np.int16, version=2))
    np.testing.assert_array_equal(image.array, display)


def test_unit_metres_are_converted_to_mm():
    raw = make_nifti(ct_phantom((3, 16, 16)).transpose(2, 1, 0), np.diag([0.0005, 0.0005, 0.005, 1]),
                     dtype=np.int16, units="meter")
    image = read_one("m.nii", raw)
    assert image.pixel_spacing_mm == pytest.approx((0.5, 0.5))
    assert image.slice_thickness_mm == pytest.approx(5.0)


def test_several_niftis_are_422():
    raw = make_nifti(ct_phantom((3, 16, 16)).transpose(2, 1, 0), dtype=np.int16)
    with pytest.raises(InputError) as err:
        read_sources([("a.nii", raw), ("b.nii", raw)], Limits())
    assert err.value.status == 422 and "one volume at a time" in err.value.message


def test_missing_orientation_and_oblique_affine_are_reported():
    raw = bytearray(make_nifti(ct_phantom((3, 16, 16)).transpose(2, 1, 0), dtype=np.int16))
    struct.pack_into("<2h", raw, 252, 0, 0)  # qform_code, sform_code = 0
    image = read_one("plain.nii", bytes(raw))
    assert any("no orientation" in w for w in image.warnings)
    angle = np.radians(20)
    tilt = np.array([[1, 0, 0, 0], [0, np.cos(angle), -np.sin(angle), 0],
                     [0, np.sin(angle), np.cos(angle), 0], [0, 0, 0, 1]]) @ np.diag([0.5, 0.5, 5, 1])
    image = read_one("tilted.nii", make_nifti(ct_phantom((3, 16, 16)).transpose(2, 1, 0), tilt,
                                              dtype=np.int16))
    assert any("oblique" in w for w in image.warnings)
    assert image.slice_thickness_mm == pytest.approx(5.0)


def nibabel_display(data: bytes) -> np.ndarray:
    """Reference: nibabel's own float32 reading of the file, reoriented to (S, P, L)."""
    image = nib.Nifti1Image.from_bytes(gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data)
    volume = np.asarray(image.dataobj, dtype=np.float32)
    volume = volume.reshape(volume.shape[:3])
    start = nib.orientations.io_orientation(image.affine)
    return apply_orientation(volume, ornt_transform(start, axcodes2ornt(("S", "P", "L"))))


@pytest.mark.parametrize("dtype", ["<i2", ">i2", "<u2", "<i4", ">f4", "<f8", "u1"])
@pytest.mark.parametrize("scaling", [None, (0.5, -1024.0)])
@pytest.mark.parametrize("gz", [False, True])
def test_voxels_equal_nibabels_reading(dtype, scaling, gz):
    display = ct_phantom((4, 20, 18))
    stored, affine = stored_as(("P", "S", "R"), display)
    unsigned = dtype[-2] == "u"
    values = np.clip(stored + (1024 if unsigned else 0), 0 if unsigned else -2000,
                     255 if dtype == "u1" else 5000)
    image = nib.Nifti1Image(values.astype(dtype), affine)
    image.set_data_dtype(np.dtype(dtype))
    if scaling:
        image.header.set_slope_inter(*scaling)
    raw = image.to_bytes()
    data = gzip.compress(raw) if gz else raw
    got = read_one("typed.nii.gz" if gz else "typed.nii", data).array
    assert got.dtype == np.float32 and got.flags.c_contiguous
    np.testing.assert_array_equal(got, nibabel_display(raw))


def test_multi_member_gzip_is_read_whole():
    raw = make_nifti(ct_phantom((3, 16, 16)).transpose(2, 1, 0), dtype=np.int16)
    split = gzip.compress(raw[:500]) + gzip.compress(raw[500:])   # e.g. bgzip-style blocks
    image = read_one("blocks.nii.gz", split)
    np.testing.assert_array_equal(image.array, read_one("one.nii", raw).array)


def test_to_file_layout_is_a_view_with_the_stored_values():
    display = ct_phantom((4, 20, 18))
    stored, affine = stored_as(("A", "I", "L"), display)
    image = read_one("v.nii", make_nifti(stored, affine, dtype=np.int16))
    back = image.to_file_layout(image.array)
    assert np.shares_memory(back, image.array)
    np.testing.assert_array_equal(back, stored)


def test_unscaled_8bit_nifti_is_read_as_display_grey_levels_with_a_warning():
    grey = np.random.default_rng(1).integers(0, 256, (16, 16, 4)).astype(np.uint8)
    image = read_one("export.nii", make_nifti(grey, dtype=np.uint8))
    assert image.intensity == "display"
    assert image.array.min() == grey.min() and image.array.max() == grey.max()   # values kept as 0..255
    assert image.pixel_spacing_mm == (0.5, 0.5) and image.slice_thickness_mm == 5.0
    assert any("8-bit values without a rescale" in w for w in image.warnings)
    assert not any("do not look like Hounsfield units" in w for w in image.warnings)


def test_8bit_nifti_with_a_rescale_to_hu_stays_hu():
    import nibabel as nib

    stored = np.random.default_rng(2).integers(0, 256, (16, 16, 4)).astype(np.uint8)
    image = nib.Nifti1Image(stored, np.diag([0.5, 0.5, 5.0, 1.0]))
    image.header.set_slope_inter(8.0, -1024.0)            # 0..255 -> -1024..1016 HU
    image.set_data_dtype(np.uint8)
    out = read_one("scaled.nii", image.to_bytes())
    assert out.intensity == "hu" and out.array.min() == -1024.0 + 8.0 * stored.min()
    assert not any("8-bit values" in w for w in out.warnings)

"""DICOM reader: HU, slice order, spacing, mask affine, fallbacks and error cases."""
from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest
from pydicom.encaps import encapsulate
from pydicom.uid import JPEGLSLossless

from model.errors import InputError
from model.readers import read_sources
from model.types import Limits
from synthetic import ct_phantom, hu_to_stored, make_dicom, make_dicom_series

SHAPE = (40, 36)


def read(sources, limits=None):
    return read_sources(sources, limits or Limits())


def expect_error(sources, status, *fragments):
    with pytest.raises(InputError) as err:
        read(sources)
    assert err.value.status == status, err.value.message
    assert err.value.stage == "read"
    for fragment in fragments:
        assert fragment in err.value.message, err.value.message
    assert "SECRET" not in err.value.message  # never patient fields
    return err.value


def edit(data: bytes, **changes) -> bytes:
    """Re-save a DICOM file with keywords changed (None deletes the element)."""
    ds = pydicom.dcmread(io.BytesIO(data))
    for keyword, value in changes.items():
        if value is None:
            delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
    buf = io.BytesIO()
    ds.save_as(buf)
    return buf.getvalue()


def test_shuffled_series_is_ordered_by_position_with_spacing_and_affine():
    sources = make_dicom_series(7, SHAPE, spacing_mm=(2.5, 0.6, 0.7), origin=(-5, 8, 40))
    image = read(sources)
    assert image.kind == "dicom" and image.intensity == "hu" and image.is_volume
    np.testing.assert_array_equal(image.array, ct_phantom((7,) + SHAPE))
    assert image.pixel_spacing_mm == pytest.approx((0.6, 0.7))
    assert image.slice_thickness_mm == pytest.approx(2.5)
    assert "PixelSpacing" in image.spacing_source and "ImagePositionPatient" in image.spacing_source
    # mask file is (X, Y, Z); voxel (i, j, k) -> RAS = LPS->RAS of IPP_k + i*col + j*row
    assert image.to_file_layout(image.array).shape == (36, 40, 7)
    for i, j, k in [(0, 0, 0), (3, 5, 6), (35, 39, 2)]:
        lps = np.array([-5 + i * 0.7, 8 + j * 0.6, 40 + k * 2.5])
        np.testing.assert_allclose(image.affine @ [i, j, k, 1], [-lps[0], -lps[1], lps[2], 1])
    assert not any("assume" in w for w in image.warnings)


def test_series_sorted_by_position_even_if_instance_numbers_disagree():
    sources = make_dicom_series(5, SHAPE, shuffle=True)
    sources = [(name, edit(data, InstanceNumber=99 - i)) for i, (name, data) in enumerate(sources)]
    image = read(sources)
    np.testing.assert_array_equal(image.array, ct_phantom((5,) + SHAPE))


def test_sagittal_series_uses_the_slice_normal_and_warns():
    sources = make_dicom_series(4, SHAPE, spacing_mm=(3.0, 0.5, 0.5), iop=(0, 1, 0, 0, 0, -1))
    image = read(sources)
    np.testing.assert_array_equal(image.array, ct_phantom((4,) + SHAPE))
    assert image.slice_thickness_mm == pytest.approx(3.0)
    assert any("not axial" in w for w in image.warnings)


def test_missing_positions_fall_back_to_instance_number_and_slice_thickness():
    sources = [(name, edit(data, ImagePositionPatient=None))
               for name, data in make_dicom_series(5, SHAPE, spacing_mm=(4.0, 0.5, 0.5))]
    image = read(sources)
    np.testing.assert_array_equal(image.array, ct_phantom((5,) + SHAPE))
    assert image.slice_thickness_mm == pytest.approx(4.0)
    assert any("InstanceNumber" in w for w in image.warnings)
    assert any("SliceThickness" in w for w in image.warnings)


def test_no_geometry_at_all_orders_by_name_and_spacing_is_unknown():
    planes = ct_phantom((3,) + SHAPE)
    sources = [(f"s{z + 1}.dcm", make_dicom(hu_to_stored(planes[z]), ipp=None, iop=None,
                                            pixel_spacing=None, instance=None,
                                            slice_thickness=None)) for z in (2, 0, 1)]
    image = read(sources)
    np.testing.assert_array_equal(image.array, planes)
    assert image.spacing_mm is None and image.spacing_source == "unknown"
    text = " ".join(image.warnings)
    assert "file name" in text and "PixelSpacing" in text and "assumes" in text


def test_duplicate_positions_are_skipped_with_a_warning():
    sources = make_dicom_series(4, SHAPE, shuffle=False)
    image = read(sources + [("copy.dcm", sources[1][1])])
    assert image.array.shape[0] == 4
    assert any("repeat the position" in w for w in image.warnings)


def test_missing_slice_gives_uneven_spacing_warning():
    sources = make_dicom_series(6, SHAPE, spacing_mm=(5.0, 0.5, 0.5), shuffle=False)
    image = read(sources[:2] + sources[3:])
    assert image.slice_thickness_mm == pytest.approx(5.0)
    assert any("uneven" in w for w in image.warnings)


def test_rescale_slope_and_intercept_give_hu():
    hu = ct_phantom((1,) + SHAPE)[0]
    data = make_dicom(hu_to_stored(hu, (2.0, -1000.0)), rescale=(2.0, -1000.0))
    image = read([("one.dcm", data)])
    np.testing.assert_allclose(image.array[0], hu, atol=1.0)


def test_single_file_is_2d_with_spacing_and_missing_rescale_warns():
    hu = ct_phantom((1,) + SHAPE)[0]
    image = read([("one.dcm", make_dicom(hu.astype(np.int16), rescale=None))])
    assert not image.is_volume and image.array.shape == (1,) + SHAPE
    np.testing.assert_array_equal(image.array[0], hu)
    assert image.pixel_spacing_mm == pytest.approx((0.5, 0.5))
    assert any("RescaleSlope" in w for w in image.warnings)


def test_file_without_preamble_or_extension_is_read():
    hu = ct_phantom((1,) + SHAPE)[0]
    data = make_dicom(hu_to_stored(hu), preamble=False)
    assert data[128:132] != b"DICM"
    image = read([("IM0001", data)])
    np.testing.assert_array_equal(image.array[0], hu)


def test_two_series_are_listed_without_patient_fields():
    a = make_dicom_series(3, SHAPE, series_uid="1.2.3.1", series_number=2, description="AXIAL")
    b = make_dicom_series(2, SHAPE, series_uid="1.2.3.2", series_number=5, description="SCOUT",
                          names="B{:02d}.dcm")
    expect_error(a + b, 422, "2 DICOM series", '#2 "AXIAL" (3 files', '#5 "SCOUT" (2 files')


def test_slices_of_different_size_are_422():
    a = make_dicom_series(2, SHAPE, shuffle=False)
    b = make_dicom_series(1, (20, 20), origin=(0, 0, 100), names="small{:d}.dcm")
    expect_error(a + b, 422, "differ in size", "small1.dcm")


def test_missing_pixel_data_is_422():
    data = edit(make_dicom(np.zeros(SHAPE, np.int16)), PixelData=None)
    expect_error([("report.dcm", data)], 422, "report.dcm", "no pixel data")


def test_undecodable_compressed_transfer_syntax_is_415():
    ds = pydicom.dcmread(io.BytesIO(make_dicom(np.zeros(SHAPE, np.int16))))
    ds.file_meta.TransferSyntaxUID = JPEGLSLossless
    ds.PixelData = encapsulate([b"\xff\xd8\xff\xf7" + bytes(64)])
    buf = io.BytesIO()
    ds.save_as(buf)
    expect_error([("jls.dcm", buf.getvalue())], 415, "jls.dcm", "JPEG-LS", JPEGLSLossless)


def test_truncated_pixel_data_is_422():
    data = make_dicom(np.zeros(SHAPE, np.int16))
    expect_error([("cut.dcm", data[:-500])], 422, "cut.dcm")


@pytest.mark.parametrize("junk", [b"not dicom at all, just text" * 10, bytes(300)])
def test_non_dicom_bytes_named_dcm_in_a_series_is_422_naming_the_file(junk):
    sources = make_dicom_series(2, SHAPE) + [("IM9999.dcm", junk)]
    expect_error(sources, 422, "IM9999.dcm", "not a DICOM file")


def test_unknown_file_in_a_dicom_upload_is_415_naming_it():
    sources = make_dicom_series(2, SHAPE) + [("readme", b"hello there" * 10)]
    expect_error(sources, 415, "readme", "unknown file type")


def test_colour_dicom_is_422():
    data = edit(make_dicom(np.zeros(SHAPE, np.int16)), SamplesPerPixel=3)
    expect_error([("rgb.dcm", data)], 422, "rgb.dcm", "colour")


def test_multiframe_file_becomes_a_volume_and_mixing_is_415():
    hu = ct_phantom((3,) + SHAPE)
    data = make_dicom(hu_to_stored(hu[0]), ipp=None)
    ds = pydicom.dcmread(io.BytesIO(data))
    ds.NumberOfFrames = 3
    ds.PixelData = hu_to_stored(hu).tobytes()
    buf = io.BytesIO()
    ds.save_as(buf)
    image = read([("multi.dcm", buf.getvalue())])
    np.testing.assert_array_equal(image.array, hu)
    assert image.is_volume and any("stored order" in w for w in image.warnings)
    expect_error([("multi.dcm", buf.getvalue()), ("one.dcm", data)], 415, "multi-frame")


def test_voxel_limit_is_checked_before_decoding():
    sources = make_dicom_series(4, SHAPE)
    with pytest.raises(InputError) as err:
        read(sources, Limits(max_voxels=3 * SHAPE[0] * SHAPE[1]))
    assert err.value.status == 413 and "voxels" in err.value.message


def test_pydicom_ct_example():
    from pydicom.data import get_testdata_file

    path = get_testdata_file("CT_small.dcm")
    with open(path, "rb") as handle:
        image = read([("CT_small.dcm", handle.read())])
    assert image.array.shape == (1, 128, 128) and not image.is_volume
    assert image.pixel_spacing_mm == pytest.approx((0.661468, 0.661468))
    assert -1100 < float(image.array.min()) < -500 < 500 < float(image.array.max())
    assert image.warnings == []

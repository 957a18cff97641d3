"""Readers on the real (read-only) development data; skipped when ../shared/data is absent."""
from __future__ import annotations

import numpy as np
import pytest

from model.errors import InputError
from model.readers import read_sources, sources_from_path
from model.types import Limits
from synthetic import SHARED_DATA, make_zip

DICOM_DIR = SHARED_DATA / "ct-ich-dicom" / "images_hu"
PNG_DIR = SHARED_DATA / "ct-ich" / "images"


def need(path):
    if not path.exists():
        pytest.skip(f"real data not available at {path} (needs ../shared/data next to the repo)")


def first_file(folder, pattern):
    files = sorted(folder.glob(pattern))
    if not files:
        pytest.skip(f"no {pattern} files in {folder}")
    return files[0]


def test_real_dicom_with_missing_tags_reads_as_2d_hu_with_warnings():
    need(DICOM_DIR)
    path = first_file(DICOM_DIR, "*.dcm")
    image = read_sources(sources_from_path(path, Limits()), Limits())
    assert image.kind == "dicom" and not image.is_volume and image.intensity == "hu"
    assert image.array.shape == (1, 512, 512) and image.array.dtype == np.float32
    assert float(image.array.min()) < -500 and float(image.array.max()) > 100  # air and bone
    assert image.pixel_spacing_mm is None and image.spacing_source == "unknown"
    text = " ".join(image.warnings)
    assert "RescaleSlope" in text and "PixelSpacing" in text and "'OT'" in text


def test_real_dicom_folder_holds_many_series_and_is_refused_clearly():
    need(DICOM_DIR)
    sources = sources_from_path(DICOM_DIR, Limits())
    assert len(sources) >= 2
    with pytest.raises(InputError) as err:
        read_sources(sources, Limits())
    assert err.value.status == 422 and "DICOM series" in err.value.message
    assert "one series at a time" in err.value.message


def test_real_dicom_in_a_zip():
    need(DICOM_DIR)
    path = first_file(DICOM_DIR, "*.dcm")
    image = read_sources([("one.zip", make_zip([(path.name, path.read_bytes())]))], Limits())
    direct = read_sources([(path.name, path.read_bytes())], Limits())
    np.testing.assert_array_equal(image.array, direct.array)


def test_real_png_slice_reads_as_display_grey():
    need(PNG_DIR)
    path = first_file(PNG_DIR, "*/*.png")
    image = read_sources(sources_from_path(path, Limits()), Limits())
    assert image.kind == "png" and image.intensity == "display" and not image.is_volume
    assert image.array.shape == (1, 512, 512)
    assert 0 <= float(image.array.min()) and float(image.array.max()) <= 255
    assert not any("colour" in w for w in image.warnings)


def test_real_png_patient_folder_stacks_into_a_volume():
    need(PNG_DIR)
    folder = first_file(PNG_DIR, "*/*.png").parent
    sources = sources_from_path(folder, Limits())
    image = read_sources(sources, Limits())
    assert image.is_volume and image.array.shape == (len(sources), 512, 512)
    names = [name for name, _ in sources]
    numbers = [int(n.split(".")[0]) for n in names]
    assert numbers == sorted(numbers)  # natural order: 2 before 10

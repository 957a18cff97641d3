"""Property tests: no bytes make a reader raise anything but InputError.

``read_sources`` gets random bytes under every supported file name, and valid PNG, JPG,
NIfTI (.nii, .nii.gz, gzip of a mutated .nii), DICOM and zip files with random byte flips,
truncations, insertions and overwrites (positions biased towards the headers). A success
must be a sane CTImage; a failure an InputError with a 4xx status and a one-line message.
Limits are small so mutated size fields cannot make an example slow. The runs are
deterministic; ICH_FUZZ_SCALE=N runs N times more random examples (exploration).
"""
from __future__ import annotations

import functools
import gzip
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from model.errors import InputError
from model.readers import read_sources
from model.types import Limits
from synthetic import ct_phantom, make_dicom_series, make_jpg, make_nifti, make_png, make_zip

LIMITS = Limits(max_upload_bytes=1 << 20, max_voxels=2_000_000, max_pixels_2d=4_000_000,
                max_files=20, max_decompressed_bytes=8 << 20)
NAMES = ["scan.png", "scan.jpg", "scan.jpeg", "scan.nii", "scan.nii.gz", "IM1.dcm", "IM1",
         "scan.zip", "scan.gz", "notes.txt", ""]
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
SCALE = max(1, int(os.environ.get("ICH_FUZZ_SCALE", "1") or 1))
FUZZ = settings(max_examples=150 * SCALE, deadline=None, derandomize=SCALE == 1,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@functools.lru_cache(maxsize=None)
def dicom_files() -> tuple:
    """A 3-file DICOM series made once (UIDs are random: strategies must see fixed bytes)."""
    return tuple(make_dicom_series(3, (16, 16)))


@functools.lru_cache(maxsize=None)
def seeds() -> dict:
    """name -> valid file bytes (small, so headers are a large share of every file)."""
    vol = ct_phantom((3, 16, 16))
    nii = make_nifti(vol.transpose(2, 1, 0), dtype=np.int16)
    dicom = list(dicom_files()[:2])
    return {
        "scan.png": make_png(shape_yx=(40, 40)),
        "scan.jpg": make_jpg(shape_yx=(40, 40)),
        "scan.nii": nii,
        "scan.nii.gz": gzip.compress(nii),
        "IM1.dcm": dicom[0][1],
        "scan.zip": make_zip(dicom),
    }


def check_outcome(sources) -> None:
    """read_sources either returns a sane image or raises a clean InputError."""
    try:
        image = read_sources(sources, LIMITS)
    except InputError as exc:
        event(f"InputError {exc.status}" + (" (generic)" if exc.detail else ""))
        assert exc.status in (400, 413, 415, 422), exc.status
        assert exc.stage == "read"
        assert exc.message and "\n" not in exc.message, exc.message
        assert "Traceback" not in exc.message and 'File "' not in exc.message
        return
    event(f"read as {image.kind}")
    array = image.array
    assert isinstance(array, np.ndarray) and array.ndim == 3 and array.dtype == np.float32
    assert 0 < array.size <= LIMITS.max_voxels
    assert np.all(np.isfinite(array))
    assert image.intensity in ("hu", "display") and image.kind in ("png", "jpg", "nifti", "dicom")


@st.composite
def mutated(draw, data: bytes) -> bytes:
    """``data`` after 1-4 random flips / truncations / insertions / overwrites."""
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        if not out:
            break
        pos = draw(st.one_of(st.integers(0, min(len(out) - 1, 600)), st.integers(0, len(out) - 1)))
        op = draw(st.sampled_from(["flip", "truncate", "insert", "overwrite", "zero"]))
        if op == "flip":
            out[pos] ^= draw(st.integers(1, 255))
        elif op == "truncate":
            del out[pos:]
        elif op == "insert":
            out[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif op == "overwrite":
            chunk = draw(st.binary(min_size=1, max_size=8))
            out[pos:pos + len(chunk)] = chunk
        else:
            out[pos:pos + draw(st.integers(1, 8))] = bytes(draw(st.integers(1, 8)))
    return bytes(out)


@FUZZ
@given(name=st.sampled_from(NAMES), data=st.binary(max_size=4096))
def test_random_bytes_under_any_name(name, data):
    check_outcome([(name, data)])


@FUZZ
@given(name=st.sampled_from(NAMES), data=st.binary(min_size=4, max_size=512),
       magic=st.sampled_from([b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"\x1f\x8b\x08", b"PK\x03\x04",
                              b"\x5c\x01\x00\x00", b"\x00" * 128 + b"DICM"]))
def test_random_bytes_behind_a_valid_signature(name, data, magic):
    check_outcome([(name, magic + data)])


@settings(FUZZ, max_examples=200 * SCALE)
@given(st.data())
def test_mutated_valid_files(data):
    name = data.draw(st.sampled_from(sorted(seeds())))
    check_outcome([(name, data.draw(mutated(seeds()[name])))])


@FUZZ
@given(st.data())
def test_gzip_of_mutated_nifti(data):
    """Header fields of a .nii.gz are fuzzed (not only its gzip CRC)."""
    raw = data.draw(mutated(seeds()["scan.nii"]))
    check_outcome([("scan.nii.gz", gzip.compress(raw, compresslevel=1))])


@FUZZ
@given(st.data())
def test_zip_of_mutated_members(data):
    """Members of a zip are fuzzed (the archive itself is valid)."""
    members = [(name, data.draw(mutated(content))) for name, content in dicom_files()[:2]]
    check_outcome([("scan.zip", make_zip(members))])


@settings(FUZZ, max_examples=60 * SCALE)
@given(st.data())
def test_mutated_dicom_series_files(data):
    """Several DICOM files of one series, one of them damaged."""
    files = list(dicom_files())
    k = data.draw(st.integers(0, 2))
    files[k] = (files[k][0], data.draw(mutated(files[k][1])))
    check_outcome(files)


@settings(FUZZ, max_examples=60 * SCALE)
@given(st.data())
def test_whole_pipeline_raises_only_input_errors(data):
    """Inputs the readers accept must not break later stages (no 500)."""
    from conftest import CentreChannelPredictor
    from model.pipeline import Segmenter

    segmenter = Segmenter(predictors={"unet": CentreChannelPredictor(size=32)}, limits=LIMITS)
    name = data.draw(st.sampled_from(sorted(seeds())))
    try:
        result = segmenter.segment_sources([(name, data.draw(mutated(seeds()[name])))])
    except InputError as exc:
        assert exc.status in (400, 413, 415, 422)
        return
    report = result.report()
    assert result.mask.shape == result.image.array.shape
    assert report["lesion_voxels"] == int(result.mask.sum())

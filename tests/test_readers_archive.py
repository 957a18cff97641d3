"""Zip uploads, type detection, local paths, input_stem and the never-another-exception rule."""
from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from model.errors import InputError
from model.readers import input_stem, read_sources, sources_from_path
from model.types import Limits
from synthetic import ct_phantom, make_dicom_series, make_nifti, make_png, make_zip

SHAPE = (40, 36)


def expect_error(sources, status, *fragments, limits=None):
    with pytest.raises(InputError) as err:
        read_sources(sources, limits or Limits())
    assert err.value.status == status, err.value.message
    assert err.value.stage == "read"
    for fragment in fragments:
        assert fragment in err.value.message, err.value.message
    assert "Traceback" not in err.value.message
    return err.value


def test_zip_of_a_dicom_series_with_junk_entries():
    series = make_dicom_series(5, SHAPE, shuffle=True)
    members = [(f"study/series/{name}", data) for name, data in series]
    members[0] = ("./" + members[0][0], members[0][1])  # "./" prefixes are harmless
    members += [("__MACOSX/._IM0001.dcm", b"junk"), ("study/.DS_Store", b"junk"),
                ("study/README.txt", b"exported by a scanner")]
    image = read_sources([("scan.zip", make_zip(members))], Limits())
    np.testing.assert_array_equal(image.array, ct_phantom((5,) + SHAPE))
    assert any("README.txt" in w and "skipped" in w for w in image.warnings)


@pytest.mark.parametrize("member,data,kind", [
    ("scan.nii.gz", make_nifti(ct_phantom((3, 16, 16)).transpose(2, 1, 0), dtype=np.int16, gz=True), "nifti"),
    ("slice.png", make_png(shape_yx=(48, 48)), "png")])
def test_zip_with_one_nifti_or_png(member, data, kind):
    image = read_sources([("up.zip", make_zip([(member, data)]))], Limits())
    assert image.kind == kind


def test_zip_bomb_is_413_while_reading():
    # The declared sizes are honest here, so shrink the limit below them: declared check.
    bomb = make_zip([("a.dcm", bytes(2_000_000))])
    expect_error([("bomb.zip", bomb)], 413, "bomb.zip", limits=Limits(max_decompressed_bytes=1_000_000))


def test_zip_lying_about_sizes_is_refused_without_expanding():
    data = make_zip([("a.dcm", bytes(3_000_000))])
    # forge the declared uncompressed size (local header and central directory) to 10 bytes:
    # zipfile then stops after 10 bytes and the CRC check fails.
    forged = bytearray(data)
    for sig, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        at = forged.find(sig)
        forged[at + offset: at + offset + 4] = (10).to_bytes(4, "little")
    expect_error([("liar.zip", bytes(forged))], 422, "liar.zip", "damaged",
                 limits=Limits(max_decompressed_bytes=1_000_000))


def test_member_reading_is_counted_and_stops_at_the_budget():
    from model.readers.archive import _read_member

    with zipfile.ZipFile(io.BytesIO(make_zip([("a.dcm", bytes(3_000_000))]))) as archive:
        with pytest.raises(InputError) as err:
            _read_member("big.zip", archive, archive.infolist()[0], budget=1_000_000)
    assert err.value.status == 413 and "zip bomb" in err.value.message


def test_too_many_members_is_413():
    members = [(f"f{i}.dcm", b"x") for i in range(6)]
    expect_error([("many.zip", make_zip(members))], 413, "6 files", limits=Limits(max_files=5))


@pytest.mark.parametrize("member", ["../evil.dcm", "/etc/passwd", "a/../../b.dcm", "C:\\x.dcm"])
def test_unsafe_member_paths_refuse_the_archive(member):
    expect_error([("evil.zip", make_zip([(member, b"x")]))], 422, "unsafe path")


def test_nested_archive_is_422():
    inner = make_zip([("a.png", make_png())])
    expect_error([("outer.zip", make_zip([("inner.zip", inner)]))], 422, "nested archives")
    expect_error([("outer.zip", make_zip([("inner.bin", inner)]))], 422, "nested archives")


def test_encrypted_zip_is_422():
    data = bytearray(make_zip([("a.png", make_png())], compression=zipfile.ZIP_STORED))
    for sig, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = data.find(sig)
        data[at + offset] |= 0x1  # the "encrypted" flag bit
    expect_error([("locked.zip", bytes(data))], 422, "encrypted")


def test_damaged_or_empty_zip_is_422():
    expect_error([("cut.zip", make_zip([("a.png", make_png())])[:40])], 422, "cut.zip")
    expect_error([("empty.zip", make_zip([]))], 422, "no files")
    expect_error([("text.zip", make_zip([("notes.txt", b"hello")]))], 415, "no supported files")


def test_empty_file_and_no_upload():
    expect_error([("blank.png", b"")], 422, "blank.png", "the file is empty")
    expect_error([], 400, "no file")


def test_unknown_type_is_415():
    expect_error([("data.bin", b"\x00\x01 some random bytes here")], 415, "data.bin", "unknown file type")


def test_magic_beats_extension():
    image = read_sources([("mislabelled.dcm", make_png(shape_yx=(40, 40)))], Limits())
    assert image.kind == "png"


def test_mixed_kinds_are_422():
    sources = make_dicom_series(2, SHAPE) + [("slice.png", make_png())]
    expect_error(sources, 422, "mixes file types", "PNG", "DICOM")


def test_upload_size_and_count_limits():
    sources = [("a.png", make_png()), ("b.png", make_png())]
    expect_error(sources, 413, "bytes", limits=Limits(max_upload_bytes=len(sources[0][1]) + 1))
    expect_error(sources, 413, "2 files", limits=Limits(max_files=1))


def test_sources_from_path_file_folder_and_errors(tmp_path):
    series = make_dicom_series(3, SHAPE)
    folder = tmp_path / "exam"
    (folder / "sub").mkdir(parents=True)
    for name, data in series:
        (folder / "sub" / name).write_bytes(data)
    (folder / "LOCKFILE").write_bytes(b"")
    (folder / "README.txt").write_bytes(b"export notes")
    (folder / ".hidden.dcm").write_bytes(b"junk")
    sources = sources_from_path(folder, Limits())
    assert sorted(name for name, _ in sources) == sorted(f"sub/{n}" for n, _ in series)
    assert read_sources(sources, Limits()).array.shape == (3,) + SHAPE
    single = tmp_path / "one.png"
    single.write_bytes(make_png())
    assert sources_from_path(single, Limits()) == [("one.png", single.read_bytes())]
    with pytest.raises(InputError) as err:
        sources_from_path(single, Limits(max_upload_bytes=10))
    assert err.value.status == 413
    with pytest.raises(InputError) as err:
        sources_from_path(tmp_path / "missing", Limits())
    assert err.value.status == 400 and "no such file" in err.value.message
    (tmp_path / "textonly").mkdir()
    (tmp_path / "textonly" / "a.txt").write_bytes(b"hello")
    with pytest.raises(InputError) as err:
        sources_from_path(tmp_path / "textonly", Limits())
    assert err.value.status == 415


@pytest.mark.parametrize("name,stem", [("scan.nii.gz", "scan"), ("a/b/IM1.DCM", "IM1"),
                                       ("x.jpeg", "x"), ("study.zip", "study"),
                                       ("noext", "noext"), (".nii", "input"), ("c:\\d\\e.png", "e")])
def test_input_stem(name, stem):
    assert input_stem(name) == stem


SEEDS = [make_png(shape_yx=(40, 40)), make_nifti(np.zeros((8, 8, 4), np.int16), gz=True),
         make_dicom_series(1, (32, 32))[0][1], make_zip([("a.png", make_png())])]


@settings(max_examples=60, deadline=None)
@given(seed=st.sampled_from(range(len(SEEDS))), cut=st.integers(0, 4000),
       flips=st.lists(st.tuples(st.integers(0, 4000), st.integers(0, 255)), max_size=6),
       name=st.sampled_from(["x.png", "x.nii", "x.nii.gz", "x.dcm", "x.zip", "x"]))
def test_damaged_bytes_only_ever_raise_input_error(seed, cut, flips, name):
    data = bytearray(SEEDS[seed][: max(len(SEEDS[seed]) - cut, 0)])
    for at, value in flips:
        if data:
            data[at % len(data)] = value
    try:
        image = read_sources([(name, bytes(data))], Limits(max_voxels=10**6))
    except InputError as exc:
        assert exc.stage == "read" and exc.status in (400, 413, 415, 422)
        assert exc.message
    else:
        assert image.array.dtype == np.float32 and image.array.ndim == 3

"""Privacy: uploads never touch the disk, nothing uploaded is logged, and DICOM patient
fields (PatientName, PatientID, PatientBirthDate) never leave the reader: not in the JSON,
the images, the CLI's files (JSON, NIfTI header/extensions, PNGs) or any error message.

Writes are traced with an audit hook (``open`` for writing, mkstemp/mkdtemp, mkdir, rename)
while a request runs; logs are captured from the root logger, Python warnings and the
process's stdout/stderr file descriptors.
"""
from __future__ import annotations

import base64
import functools
import gzip
import io
import logging
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, PngImagePlugin

from app import create_app
from conftest import CentreChannelPredictor
from model.pipeline import Segmenter
from synthetic import ct_phantom, make_dicom_series, make_zip
from writetrace import trace_writes

PATIENT = {"PatientName": "SECRET^MARKER", "PatientID": "PIDMARKER4242",
           "PatientBirthDate": "19230405"}
PATIENT_WORDS = (b"MARKER", b"PIDMARKER4242", b"19230405")
FILE_MARKER = "FNAMEMARK93"        # in uploaded file names
CONTENT_MARKER = "CONTENTMARK57"   # inside uploaded file contents
ALL_WORDS = PATIENT_WORDS + (FILE_MARKER.encode(), CONTENT_MARKER.encode())


# ---------- uploads ----------

def series(**extra) -> list:
    """3-file DICOM series (40x40) carrying the patient markers."""
    return make_dicom_series(3, (40, 40), names=FILE_MARKER + "_{:02d}.dcm", **PATIENT, **extra)


def png_with_text(shape=(64, 64), noise=False) -> bytes:
    """PNG whose tEXt chunk holds CONTENT_MARKER (noise makes it ~1 byte per pixel)."""
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, shape, dtype=np.uint8) if noise else np.full(shape, 40, np.uint8)
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", CONTENT_MARKER)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


def nifti_with_descrip() -> bytes:
    import nibabel as nib

    img = nib.Nifti1Image(ct_phantom((4, 40, 40)).transpose(2, 1, 0).astype(np.int16),
                          np.diag([0.5, 0.5, 5.0, 1.0]))
    img.header["descrip"] = CONTENT_MARKER.encode()
    return gzip.compress(img.to_bytes())


def damaged_dicom() -> bytes:
    """DICOM with patient markers whose SOPInstanceUID length is corrupted so that the UID's
    value swallows the following elements (a damaged file: parsers quote such values)."""
    data = bytearray(series()[0][1])
    tag = data.find(b"\x08\x00\x18\x00UI")       # (0008,0018) explicit VR little endian
    data[tag + 6: tag + 8] = (400).to_bytes(2, "little")
    return bytes(data)


def mixed_series() -> list:
    other = make_dicom_series(2, (40, 40), series_uid="1.2.826.0.1.3680043.8.498.99",
                              series_number=9, names=FILE_MARKER + "_b{:02d}.dcm", **PATIENT)
    return series() + other


SUCCESS_UPLOADS = {
    "png": lambda: [(f"{FILE_MARKER}.png", png_with_text())],
    "nifti": lambda: [(f"{FILE_MARKER}.nii.gz", nifti_with_descrip())],
    "dicom_series": series,
    "dicom_zip": lambda: [(f"{FILE_MARKER}.zip", make_zip(series()))],
}
ERROR_UPLOADS = {
    "truncated_png": lambda: [(f"{FILE_MARKER}.png", png_with_text()[:60])],
    "unknown_type": lambda: [(f"{FILE_MARKER}.txt", CONTENT_MARKER.encode() * 10)],
    "mixed_series": mixed_series,
    "damaged_dicom": lambda: [(f"{FILE_MARKER}.dcm", damaged_dicom())],
    "truncated_dicom": lambda: [(f"{FILE_MARKER}.dcm", series()[0][1][:900])],
    "unsafe_zip": lambda: [("a.zip", make_zip([(f"../{FILE_MARKER}.dcm", series()[0][1])]))],
}


@pytest.fixture(scope="module")
def client():
    segmenter = Segmenter(predictors={"unet": CentreChannelPredictor()})
    return create_app({"SEGMENTER": segmenter}).test_client()


def post(client, files, **headers):
    """POST /segment with a multipart body built in memory (the test client's own encoder
    spools bodies over 500 KiB to a temporary file, which would be the client's write)."""
    from werkzeug.datastructures import FileStorage, MultiDict
    from werkzeug.test import encode_multipart

    values = MultiDict([("file", FileStorage(io.BytesIO(content), filename=name))
                        for name, content in files])
    boundary, body = encode_multipart(values)
    return client.post("/segment", data=body, headers=headers,
                       content_type=f"multipart/form-data; boundary={boundary}")


def decoded_payload(response) -> bytes:
    """The raw body plus every base64 field decoded (and the gzipped mask decompressed)."""
    parts = [response.data]
    body = response.get_json(silent=True) or {}
    values = [v for v in body.values() if isinstance(v, str)] + (body.get("slice_overlays") or [])
    for value in values:
        try:
            blob = base64.b64decode(value, validate=True)
        except ValueError:
            continue
        parts.append(blob)
        if blob[:2] == b"\x1f\x8b":
            parts.append(gzip.decompress(blob))
    return b"\n".join(parts)


def leaked(blob: bytes, words=PATIENT_WORDS) -> list:
    return [w.decode() for w in words if w.lower() in blob.lower()]


# ---------- disk ----------

@pytest.mark.parametrize("label, files", [
    ("large_png", lambda: [("big.png", png_with_text((1100, 1100), noise=True))]),
    *SUCCESS_UPLOADS.items(), *ERROR_UPLOADS.items()])
def test_uploads_are_never_written_to_disk(client, label, files, tmp_path, monkeypatch):
    temp_dir = tmp_path / "tmp"
    temp_dir.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp_dir))
    monkeypatch.setenv("TMPDIR", str(temp_dir))
    uploads = files()
    post(client, uploads)                       # warm-up (lazy imports, caches)
    with trace_writes() as writes:
        response = post(client, uploads)
    assert response.status_code in (200, 413, 415, 422)
    assert writes == [], writes
    assert list(temp_dir.iterdir()) == []
    if label == "large_png":                     # larger than Werkzeug's 500 KiB spool limit
        assert len(uploads[0][1]) > 1_000_000 and response.status_code == 200


def test_write_tracer_sees_werkzeug_spooling(monkeypatch, tmp_path):
    """Control: with Flask's default request class a large upload IS spooled to disk, and
    the tracer reports it (so the test above can fail)."""
    import flask

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    app = create_app({"SEGMENTER": Segmenter(predictors={"unet": CentreChannelPredictor()})})
    app.request_class = flask.Request
    with trace_writes() as writes:
        response = post(app.test_client(), [("big.png", png_with_text((1100, 1100), noise=True))])
    assert response.status_code == 200
    assert writes and writes[0][1] == str(tmp_path)     # an O_TMPFILE file in the temp dir


def test_cli_writes_only_its_output_files(tmp_path, monkeypatch):
    import model.cli
    import model.pipeline

    source = tmp_path / "in"
    source.mkdir()
    for name, data in series():
        (source / name).write_bytes(data)
    out = tmp_path / "out"
    monkeypatch.setattr(model.pipeline, "Segmenter",
                        lambda *a, **k: Segmenter(predictors={"unet": CentreChannelPredictor()}))
    with trace_writes() as writes:
        assert model.cli.main(["segment", str(source), "--out", str(out)]) == 0
    written = {Path(path) for _, path in writes}
    assert written and all(p == out or p.parent == out for p in written), written


# ---------- logs ----------

@pytest.mark.parametrize("label, files", [*SUCCESS_UPLOADS.items(), *ERROR_UPLOADS.items()])
def test_nothing_uploaded_is_logged(client, label, files, caplog, capfd):
    caplog.set_level(logging.DEBUG)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        response = post(client, files())
    assert response.status_code in (200, 413, 415, 422)
    out, err = capfd.readouterr()
    logged = "\n".join([caplog.text, out, err, *(str(w.message) for w in caught)]).encode()
    assert caplog.records, "the service logs each request (sizes and timings only)"
    assert leaked(logged, ALL_WORDS) == [], logged[-2000:]


def test_unexpected_errors_are_logged_without_their_message(caplog, capfd):
    class Exploding:
        limits = None
        default_model = "unet"

        def models(self):
            return [{"name": "unet"}]

        def segment_sources(self, sources, **kwargs):
            raise ValueError(f"cannot handle {sources[0][0]} ({PATIENT['PatientName']})")

    caplog.set_level(logging.DEBUG)
    client = create_app({"SEGMENTER": Exploding()}).test_client()
    response = post(client, [(f"{FILE_MARKER}.png", png_with_text())])
    assert response.status_code == 500 and response.get_json()["error"] == "internal error"
    out, err = capfd.readouterr()
    assert "ValueError" in caplog.text                   # the failure itself is logged
    logged = "\n".join([caplog.text, out, err]).encode() + response.data
    assert leaked(logged, ALL_WORDS) == [], logged[-2000:]


# ---------- patient fields ----------

@pytest.mark.parametrize("accept", ["application/json", "image/png"])
@pytest.mark.parametrize("label", ["dicom_series", "dicom_zip"])
def test_patient_fields_are_not_in_the_response(client, label, accept):
    response = post(client, SUCCESS_UPLOADS[label](), Accept=accept)
    assert response.status_code == 200
    assert leaked(decoded_payload(response)) == []


@pytest.mark.parametrize("label", sorted(ERROR_UPLOADS))
def test_patient_fields_are_not_in_error_messages(client, label):
    response = post(client, ERROR_UPLOADS[label]())
    assert response.status_code in (413, 415, 422), response.data[:300]
    assert response.get_json()["error"]
    assert leaked(response.data) == [], response.data[:500]


def test_patient_fields_are_not_in_cli_outputs(tmp_path, monkeypatch, capsys):
    import nibabel as nib

    import model.cli
    import model.pipeline

    monkeypatch.setattr(model.pipeline, "Segmenter",
                        lambda *a, **k: Segmenter(predictors={"unet": CentreChannelPredictor()}))
    good, bad = tmp_path / "good", tmp_path / "bad"
    for folder, files in ((good, series()), (bad, mixed_series())):
        folder.mkdir()
        for name, data in files:
            (folder / name).write_bytes(data)
    out = tmp_path / "out"
    assert model.cli.main(["segment", str(good), str(bad), "--out", str(out)]) == 1
    printed = capsys.readouterr()
    assert "2 DICOM series" in printed.err
    blobs = [printed.out.encode(), printed.err.encode()]
    for path in out.iterdir():
        blobs.append(path.read_bytes())
        if path.name.endswith(".nii.gz"):
            blobs.append(gzip.decompress(path.read_bytes()))
            header = nib.load(str(path)).header
            assert not header.extensions and b"MARKER" not in bytes(header["descrip"])
    assert {p.name for p in out.iterdir()} >= {"good.json", "good.mask.nii.gz", "good.overlay.png"}
    assert leaked(b"\n".join(blobs)) == []


@functools.lru_cache(maxsize=None)
def marked_dicom() -> bytes:
    return series()[0][1]


@settings(max_examples=150, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_damaged_dicom_never_puts_patient_fields_in_logs(data, caplog):
    """Random corruption of a DICOM file with patient markers: read it, and whatever the
    parser says (warnings, the pydicom logger) and the error message hold no marker."""
    from model.errors import InputError
    from model.readers import read_sources

    blob = bytearray(marked_dicom())
    for _ in range(data.draw(st.integers(1, 3))):
        pos = data.draw(st.integers(0, len(blob) - 1))
        if data.draw(st.booleans()):
            blob[pos] ^= data.draw(st.integers(1, 255))
        else:
            blob[pos:pos + 2] = data.draw(st.binary(min_size=2, max_size=2))
    caplog.clear()
    caplog.set_level(logging.DEBUG)
    message = ""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            read_sources([("x.dcm", bytes(blob))])
        except InputError as exc:
            message = f"{exc.message} {exc.detail}"
    said = "\n".join([caplog.text, message, *(str(w.message) for w in caught)]).encode()
    assert leaked(said) == [], said[-1500:]

"""POST /segment, /health, /models through Flask's test client.

The segmenter is the real pipeline (readers, post-processing, measurement, rendering) with the
deterministic CentreChannelPredictor from conftest as its model, so responses are the real
report of a known mask: a bright (80 HU / 220 grey) block on a dark background.
"""
from __future__ import annotations

import base64
import gzip
import io
import json
import tempfile

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from app import create_app
from conftest import CentreChannelPredictor
from model.pipeline import Segmenter

TRACE_WORDS = ("Traceback", 'File "', "/work/", "site-packages", "line ")


# ---------- helpers shared by the web tests ----------

def png_bytes(array: np.ndarray) -> bytes:
    """PNG of a uint8 (Y, X) array."""
    buffer = io.BytesIO()
    Image.fromarray(array.astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def block_png(rows: int = 64, cols: int = 80) -> bytes:
    """Dark image with a 20 x 30 pixel bright block (rows 20-39, cols 30-59)."""
    array = np.zeros((rows, cols), np.uint8)
    array[20:40, 30:60] = 220
    return png_bytes(array)


def block_nifti(depth: int = 6, lesion_slices=(2, 3), spacing_mm=(0.5, 0.5, 4.0)) -> bytes:
    """Gzipped NIfTI, stored (X=48, Y=40, Z=depth), 0 HU with an 80 HU 10x10 block on some slices.

    spacing_mm is (x, y, z) in the NIfTI header (diagonal affine).
    """
    data = np.zeros((48, 40, depth), np.int16)
    for z in lesion_slices:
        data[10:20, 15:25, z] = 80
    image = nib.Nifti1Image(data, np.diag([*spacing_mm, 1.0]))
    return gzip.compress(image.to_bytes())


def make_segmenter(*names: str) -> Segmenter:
    """Real Segmenter whose models are the centre-channel fake (64 x 64 grid)."""
    return Segmenter(predictors={name: CentreChannelPredictor(name=name) for name in names})


def make_client(segmenter=None, **config):
    app = create_app({"SEGMENTER": segmenter or make_segmenter("unet", "two_branch"),
                      "TESTING": True, **config})
    return app.test_client()


def post(client, files, headers=None, query="", **fields):
    """POST /segment with files = [(name, bytes)] in the multipart field 'file'."""
    data = {"file": [(io.BytesIO(content), name) for name, content in files], **fields}
    return client.post("/segment" + query, data=data, headers=headers or {},
                       content_type="multipart/form-data")


def assert_error(response, status: int, *words: str) -> dict:
    """JSON error body {"error", "detail"} with ``status``, no stack trace, naming ``words``."""
    assert response.status_code == status, response.data[:300]
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) >= {"error", "detail"} and body["error"]
    text = response.get_data(as_text=True)
    assert not any(word in text for word in TRACE_WORDS), text
    for word in words:
        assert word.lower() in text.lower(), (word, text)
    return body


@pytest.fixture
def client():
    return make_client()


# ---------- success ----------

def test_png_upload_returns_report_images_and_mask(client):
    response = post(client, [("head.png", block_png())], spacing="0.5,0.5")
    assert response.status_code == 200
    body = response.get_json()
    assert body["lesion_voxels"] == 20 * 30
    assert body["slice_areas_mm2"][0] == pytest.approx(20 * 30 * 0.25)
    assert body["volume_ml"] is None and body["is_volume"] is False   # no slice thickness
    assert body["model"]["name"] == "unet" and "total" in body["timings_ms"]
    assert body["slice_overlays"] is None and body["montage"] is None
    assert body["mask_filename"] == "head.mask.png" and body["mask_media_type"] == "image/png"
    mask = np.asarray(Image.open(io.BytesIO(base64.b64decode(body["mask"]))))
    assert mask.shape == (64, 80) and set(np.unique(mask)) == {0, 255}
    assert np.array_equal(mask[20:40, 30:60], np.full((20, 30), 255))
    overlay = Image.open(io.BytesIO(base64.b64decode(body["overlay"])))
    assert overlay.format == "PNG" and overlay.size == (80, 64)


def test_nifti_volume_has_slice_overlays_montage_and_nifti_mask(client):
    response = post(client, [("scan.nii.gz", block_nifti())])
    assert response.status_code == 200
    body = response.get_json()
    assert body["is_volume"] and body["shape"][0] == 6
    assert body["volume_ml"] == pytest.approx(2 * 100 * 0.5 * 0.5 * 4.0 / 1000.0, rel=1e-3)
    assert body["slices_with_lesion"] == [2, 3] and body["key_slice"] in (2, 3)
    assert len(body["slice_overlays"]) == 6 and body["montage"]
    assert body["mask_filename"] == "scan.mask.nii.gz"
    mask = nib.Nifti1Image.from_bytes(gzip.decompress(base64.b64decode(body["mask"])))
    assert mask.shape == (48, 40, 6) and int(np.asarray(mask.dataobj).sum()) == 200


def test_slice_overlays_can_be_left_out(client):
    for response in (post(client, [("scan.nii.gz", block_nifti())], slice_overlays="0"),
                     post(client, [("scan.nii.gz", block_nifti())], query="?slice_overlays=false")):
        assert response.status_code == 200
        assert response.get_json()["slice_overlays"] is None


def test_accept_png_returns_the_overlay_image(client):
    response = post(client, [("head.png", block_png())], headers={"Accept": "image/png"})
    assert response.status_code == 200 and response.mimetype == "image/png"
    assert Image.open(io.BytesIO(response.data)).size == (80, 64)
    both = post(client, [("head.png", block_png())], headers={"Accept": "*/*"})
    assert both.mimetype == "application/json"


@pytest.mark.parametrize("requested, used", [("two_branch", "two_branch"),
                                             ("two-branch", "two_branch"), ("UNET", "unet")])
def test_model_choice(client, requested, used):
    response = post(client, [("head.png", block_png())], model=requested)
    assert response.status_code == 200
    assert response.get_json()["model"]["name"] == used


def test_several_dicom_like_png_slices_become_a_volume(client):
    response = post(client, [(f"s{i}.png", block_png()) for i in (2, 1, 10)])
    assert response.status_code == 200
    assert response.get_json()["shape"] == [3, 64, 80]


def test_uploads_never_touch_disk(client, monkeypatch):
    """A 3 MB upload must be parsed without SpooledTemporaryFile/TemporaryFile spilling to disk."""
    def refuse(*args, **kwargs):
        raise AssertionError("upload written to a temporary file")

    monkeypatch.setattr(tempfile, "SpooledTemporaryFile", refuse)
    monkeypatch.setattr(tempfile, "TemporaryFile", refuse)
    noise = np.random.default_rng(0).integers(0, 255, (1200, 1200), dtype=np.uint8)
    big = png_bytes(noise)
    assert len(big) > 1_000_000
    response = post(client, [("big.png", big)], slice_overlays="0")
    assert response.status_code == 200


# ---------- health and models ----------

def test_health_and_models_list_loaded_models(client):
    health = client.get("/health")
    assert health.status_code == 200
    assert health.get_json()["models"] == ["unet", "two_branch"]
    models = client.get("/models").get_json()
    assert {m["name"] for m in models["models"]} == {"unet", "two_branch"}
    assert all(m["input_size"] == [64, 64] and "metrics" in m for m in models["models"])
    assert models["default_model"] in ("unet", "two_branch")


def test_without_weights_health_and_segment_answer_503(tmp_path):
    client = make_client(Segmenter(weights_dir=tmp_path))
    assert_error(client.get("/health"), 503, "no trained model")
    assert client.get("/models").get_json() == {"default_model": None, "models": []}
    assert_error(post(client, [("head.png", block_png())]), 503, "weights")
    page = client.get("/").get_data(as_text=True)
    assert "no trained model" in page.lower()


# ---------- client errors ----------

def test_no_file_is_400(client):
    assert_error(client.post("/segment", data={"model": "unet"},
                             content_type="multipart/form-data"), 400, "no file")
    assert_error(client.post("/segment"), 400, "no file")
    # an empty file picker: a part with neither a name nor bytes
    assert_error(client.post("/segment", data={"file": (io.BytesIO(b""), "")},
                             content_type="multipart/form-data"), 400, "no file")


def test_empty_named_file_is_422_naming_it(client):
    assert_error(post(client, [("empty.png", b"")]), 422, "empty.png: the file is empty")


@pytest.mark.parametrize("spacing", ["0,0.5", "-1,1", "nan,1", "inf,1", "a,b", "1", "1,2,3,4",
                                     "1,,2", "1e9,1"])
def test_bad_spacing_is_400(client, spacing):
    assert_error(post(client, [("head.png", block_png())], spacing=spacing), 400, "spacing")


def test_unknown_model_is_400(client):
    body = assert_error(post(client, [("head.png", block_png())], model="resnet"), 400,
                        "unknown model")
    assert "unet" in body["error"] + body["detail"]
    assert_error(post(client, [("head.png", block_png())], model="x" * 5000), 400, "unknown")


def test_known_model_without_weights_is_503():
    client = make_client(make_segmenter("unet"))
    assert_error(post(client, [("head.png", block_png())], model="two-branch"), 503, "two_branch")


def test_too_large_upload_is_413():
    client = make_client(MAX_CONTENT_LENGTH=10_000)
    noise = np.random.default_rng(1).integers(0, 255, (200, 200), dtype=np.uint8)
    body = assert_error(post(client, [("noise.png", png_bytes(noise))]), 413, "too large")
    assert "MB" in body["detail"]


def test_too_many_files_is_413():
    client = make_client(MAX_FORM_PARTS=3)
    assert_error(post(client, [(f"s{i}.png", block_png()) for i in range(5)]), 413, "too large")


def test_not_multipart_is_415(client):
    response = client.post("/segment", data=b'{"file": 1}', content_type="application/json")
    assert_error(response, 415, "multipart")


def test_unsupported_file_type_is_415(client):
    assert_error(post(client, [("notes.txt", b"hello, this is not an image")]), 415)


def test_corrupt_image_is_422(client):
    broken = block_png()[:60]
    assert_error(post(client, [("head.png", broken)]), 422)


def test_wrong_method_and_unknown_path_are_json(client):
    assert_error(client.get("/segment"), 405)
    assert_error(client.get("/no-such-page"), 404)


# ---------- server errors ----------

class ExplodingSegmenter:
    """Segmenter stand-in whose segmentation fails with an unexpected exception."""

    default_model = "unet"

    def models(self):
        return [{"name": "unet", "input_size": [64, 64], "metrics": {}}]

    def segment_sources(self, sources, **kwargs):
        name, content = sources[0]
        raise RuntimeError(f"cannot parse /tmp/uploads/{name}: {content[:8]!r}")


def test_unexpected_error_is_json_500_without_details(caplog):
    client = make_client(ExplodingSegmenter())
    body = assert_error(post(client, [("Doe_John.dcm", b"DICM" * 40)]), 500)
    assert body == {"error": "internal error", "detail": None}
    assert "Doe_John" not in response_text(body)
    assert "RuntimeError" in caplog.text   # logged for the operator
    assert "Doe_John" not in caplog.text   # ... without the message (may quote uploads)


def response_text(body: dict) -> str:
    return json.dumps(body)


def test_busy_worker_answers_503_with_retry_after():
    client = make_client(BUSY_TIMEOUT_S=0.01)
    slots = client.application.extensions["ich_slots"]
    assert slots.acquire(timeout=1)
    try:
        response = post(client, [("head.png", block_png())])
    finally:
        slots.release()
    assert_error(response, 503, "busy")
    assert response.headers["Retry-After"] == "10"

"""A seed-style baseline service, for comparison only: Flask + TensorFlow Keras, no ONNX.

It mimics a naive first version of the app: it builds the networks with Keras and loads the
SAME ``NAME.weights.h5`` files as the real service, and per request decodes the upload,
windows it, resizes the slices with ``tf.image.resize``, calls ``model.predict`` on the batch
of slices, thresholds, resizes back and returns JSON with the volume, the mask and ONE overlay
PNG (the key slice). It does less than the real service (no hole filling, no component
analysis, no per-slice overlays), so the comparison favours the baseline.

Run: ``gunicorn -c gunicorn.conf.py "bench.baseline:create_app()"`` with ICH_MODEL_DIR set.
"""
from __future__ import annotations

import base64
import gzip
import io
import json
import os
import time
from pathlib import Path

import numpy as np
from flask import Flask, jsonify, request
from PIL import Image

from model.config import default_model


def load_models(weights_dir: Path) -> dict:
    """{name: (config, keras model)} for every NAME.json with a NAME.weights.h5 in ``weights_dir``."""
    from model.networks import build_model

    models = {}
    for json_file in sorted(weights_dir.glob("*.json")):
        weights = weights_dir / f"{json_file.stem}.weights.h5"
        if weights.is_file():
            config = json.loads(json_file.read_text())
            model = build_model(config)
            model.load_weights(str(weights))
            models[json_file.stem] = (config, model)
    return models


def decode(filename: str, data: bytes, window: dict) -> tuple[np.ndarray, tuple]:
    """Upload -> ((Z, Y, X) float in [0, 1], (slice_mm, row_mm, col_mm) or None)."""
    if filename.endswith((".nii", ".nii.gz")):
        import nibabel as nib

        raw = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
        nifti = nib.Nifti1Image.from_bytes(raw)
        hu = nifti.get_fdata().transpose(2, 1, 0)                      # (X, Y, Z) -> (Z, Y, X)
        col, row, thick = (float(v) for v in nifti.header.get_zooms()[:3])
        low = window["level"] - window["width"] / 2
        return np.clip((hu - low) / window["width"], 0, 1), (thick, row, col)
    grey = np.asarray(Image.open(io.BytesIO(data)).convert("L"), dtype=np.float64) / 255.0
    return grey[None], None


def predict_mask(config: dict, model, unit: np.ndarray) -> np.ndarray:
    """(Z, Y, X) in [0, 1] -> (Z, Y, X) bool: resize, 2.5D channels, model.predict, threshold."""
    import tensorflow as tf

    rows, cols = config["input_size"]
    context = int(config.get("context_slices", 0))
    small = tf.image.resize(unit[..., None].astype(np.float32), (rows, cols)).numpy()[..., 0]
    index = np.clip(np.arange(len(small))[:, None] + np.arange(-context, context + 1), 0, len(small) - 1)
    prob = model.predict(small[index].transpose(0, 2, 3, 1), verbose=0)
    big = tf.image.resize(prob, unit.shape[1:]).numpy()[..., 0]
    return big >= config.get("threshold", 0.5)


def overlay_png(unit2d: np.ndarray, mask2d: np.ndarray) -> bytes:
    """Grey slice with the mask in translucent red, as PNG bytes."""
    rgb = np.repeat((unit2d * 255)[..., None], 3, axis=2)
    rgb[mask2d] = 0.6 * rgb[mask2d] + 0.4 * np.array([255, 0, 0])
    buffer = io.BytesIO()
    Image.fromarray(rgb.astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def mask_bytes(mask: np.ndarray, spacing) -> bytes:
    """PNG for one slice, gzipped NIfTI (X, Y, Z) for a volume."""
    if mask.shape[0] == 1:
        buffer = io.BytesIO()
        Image.fromarray(mask[0].astype(np.uint8) * 255).save(buffer, format="PNG")
        return buffer.getvalue()
    import nibabel as nib

    thick, row, col = spacing or (1.0, 1.0, 1.0)
    image = nib.Nifti1Image(mask.transpose(2, 1, 0).astype(np.uint8), np.diag([col, row, thick, 1]))
    return gzip.compress(image.to_bytes())


def create_app() -> Flask:
    """The baseline app: loads the Keras models once per worker."""
    app = Flask(__name__)
    models = load_models(Path(os.environ.get("ICH_MODEL_DIR", "model/weights")))
    # the model the service under test serves by default, so both sides run the same weights
    name = default_model(models, os.environ.get("ICH_DEFAULT_MODEL"))

    @app.post("/segment")
    def segment():
        start = time.perf_counter()
        upload = request.files["file"]
        config, model = models[name]
        unit, spacing = decode(upload.filename or "", upload.read(), config["window"])
        mask = predict_mask(config, model, unit)
        areas = mask.sum(axis=(1, 2))
        key = int(np.argmax(areas))
        voxel_ml = float(np.prod(spacing)) / 1000.0 if spacing else None
        return jsonify({"model": name, "lesion_voxels": int(areas.sum()),
                        "volume_ml": None if voxel_ml is None else float(areas.sum()) * voxel_ml,
                        "overlay": base64.b64encode(overlay_png(unit[key], mask[key])).decode(),
                        "mask": base64.b64encode(mask_bytes(mask, spacing)).decode(),
                        "timings_ms": {"total": round((time.perf_counter() - start) * 1000, 1)}})

    return app

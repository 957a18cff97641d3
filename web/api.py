"""REST API: POST /segment, GET /health, GET /models, GET /openapi.json.

Routes only parse the request, call the pipeline (``current_app.config["SEGMENTER"]``) and
format its result; they hold no image or inference logic. Logs carry sizes, kinds and
timings only: never file names or content.
"""
from __future__ import annotations

import logging
import time
from contextlib import contextmanager

from flask import Blueprint, Response, current_app, jsonify, request

from .errors import ApiError, error_response
from .openapi import openapi_spec
from .payload import segment_payload
from .uploads import flag, model_name, parse_spacing, uploaded_sources

api = Blueprint("api", __name__)
log = logging.getLogger("ich.web")


def segmenter():
    """The pipeline object built once per worker in ``create_app``."""
    return current_app.config["SEGMENTER"]


@contextmanager
def segmentation_slot():
    """Bound concurrent segmentations per worker (memory); 503 + Retry-After when busy."""
    slots = current_app.extensions["ich_slots"]
    if not slots.acquire(timeout=current_app.config["BUSY_TIMEOUT_S"]):
        raise ApiError(503, "server busy", "too many segmentations running; retry shortly",
                       headers={"Retry-After": "10"})
    try:
        yield
    finally:
        slots.release()


def wants_png() -> bool:
    """True when the client prefers the overlay image itself (``Accept: image/png``)."""
    return request.accept_mimetypes.best_match(["application/json", "image/png"]) == "image/png"


@api.post("/segment")
def segment():
    """Segment the uploaded file(s); JSON report + images, or the overlay PNG."""
    start = time.perf_counter()
    sources = uploaded_sources(request)
    files, size = len(sources), sum(len(data) for _, data in sources)
    model = model_name(request.form.get("model"))
    options = {"spacing_mm": parse_spacing(request.form.get("spacing")),
               "export_window": request.form.get("export_window")}    # checked by the pipeline (400)
    with segmentation_slot():
        result = segmenter().segment_sources(sources, model=model, **options)
        sources.clear()                        # free the upload before rendering images
        if wants_png():
            response = Response(result.overlay_png(), mimetype="image/png")
        else:
            response = jsonify(segment_payload(result, with_slices=flag(request, "slice_overlays")))
    log.info("segment: files=%d bytes=%d kind=%s shape=%s model=%s total_ms=%.0f",
             files, size, result.image.kind,
             list(result.mask.shape), model or "default", (time.perf_counter() - start) * 1e3)
    return response


@api.get("/health")
def health():
    """200 with the loaded model names; 503 when no trained model is loaded."""
    names = [m["name"] for m in segmenter().models()]
    if not names:
        return error_response(503, "no trained model loaded",
                              "the service has no model weights; see README (training)")
    return jsonify({"status": "ok", "models": names, "default_model": segmenter().default_model})


@api.get("/models")
def models():
    """Every loaded model: name, architecture, input size, threshold, version, metrics."""
    return jsonify({"default_model": segmenter().default_model if segmenter().models() else None,
                    "models": segmenter().models()})


@api.get("/openapi.json")
def openapi():
    """The OpenAPI 3.1 description of this API."""
    return jsonify(openapi_spec(current_app.config["LIMITS"]))

"""OpenAPI 3.1 description of the service (served at GET /openapi.json).

tests/test_web_openapi.py checks that every path here is a route of the app and vice versa,
that the document is valid OpenAPI, and that real responses match these schemas.
"""
from __future__ import annotations

from model.types import Limits

MIB = 1024 * 1024
NUM = {"type": "number"}
NUM_OR_NULL = {"type": ["number", "null"]}
INT = {"type": "integer"}
STR = {"type": "string"}
STR_OR_NULL = {"type": ["string", "null"]}
INT_LIST = {"type": "array", "items": INT}


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict:
    return _json(_ref("Error"), description)


SCHEMAS = {
    "Error": {"type": "object", "required": ["error", "detail"], "properties": {
        "error": {**STR, "description": "short message"},
        "detail": {**STR_OR_NULL, "description": "what to change, when known"}}},
    "ModelInfo": {"type": "object", "required": ["name", "input_size"], "properties": {
        "name": STR, "architecture": STR, "version": STR, "runtime": STR, "threshold": NUM,
        "input_size": INT_LIST,
        "metrics": {"type": "object", "description": "validation metrics from training"}}},
    "Models": {"type": "object", "required": ["models", "default_model"], "properties": {
        "default_model": STR_OR_NULL, "models": {"type": "array", "items": _ref("ModelInfo")}}},
    "Health": {"type": "object", "required": ["status", "models"], "properties": {
        "status": {"const": "ok"}, "models": {"type": "array", "items": STR},
        "default_model": STR}},
    "Lesion": {"type": "object", "required": ["id", "voxels", "slices"], "properties": {
        "id": INT, "voxels": INT, "volume_ml": NUM_OR_NULL,
        "slices": {**INT_LIST, "description": "[first, last] slice index"},
        "centroid_zyx": {"type": "array", "items": NUM}}},
    "SegmentResult": {
        "type": "object",
        "required": ["name", "model", "volume_ml", "lesion_count", "shape", "is_volume",
                     "key_slice", "warnings", "timings_ms", "overlay", "mask",
                     "mask_filename"],
        "properties": {
            "name": STR,
            "model": {"type": "object", "properties": {
                "name": STR, "version": STR, "runtime": STR, "threshold": NUM}},
            "input_kind": {**STR, "description": "png, jpg, nifti or dicom"},
            "orientation": {"type": "object", "description": "how the upload was turned into the model's frame",
                            "properties": {
                                "model_frame": {**STR, "description": "any (used as uploaded) or anterior_right"},
                                "quarter_turns": {**INT, "description": "counter-clockwise, undone on the mask"},
                                "source": {**STR, "description": "not needed, file geometry, estimated or no head found"},
                                "confidence": {**NUM_OR_NULL, "description": "of an estimate"}}},
            "pixel_spacing_mm": {"type": ["array", "null"], "items": NUM,
                                 "description": "[row, col] in mm"},
            "abc2_axes_mm": {"type": ["object", "null"],
                             "description": "A, B, C axes of the ABC/2 estimate in mm"},
            "volume_ml": {**NUM_OR_NULL, "description": "null when the spacing is unknown"},
            "abc2_ml": NUM_OR_NULL, "largest_lesion_ml": NUM_OR_NULL,
            "lesion_voxels": INT, "lesion_count": INT,
            "lesions": {"type": "array", "items": _ref("Lesion")},
            "spacing_mm": {"type": ["array", "null"], "items": NUM,
                           "description": "[slice, row, col] in mm"},
            "spacing_source": STR,
            "slice_areas_mm2": {"type": ["array", "null"], "items": NUM},
            "slice_areas_pixels": INT_LIST, "slices_with_lesion": INT_LIST,
            "key_slice": {**INT, "description": "slice with the largest lesion area"},
            "shape": {**INT_LIST, "description": "[Z, Y, X]"},
            "is_volume": {"type": "boolean"},
            "warnings": {"type": "array", "items": STR},
            "timings_ms": {"type": "object", "additionalProperties": NUM},
            "encode_ms": NUM,
            "overlay": {**STR, "contentEncoding": "base64", "contentMediaType": "image/png",
                        "description": "key slice with the mask overlaid"},
            "montage": {**STR_OR_NULL, "contentEncoding": "base64",
                        "description": "PNG grid of the lesion slices (volumes)"},
            "slice_overlays": {"type": ["array", "null"],
                               "items": {**STR, "contentEncoding": "base64"},
                               "description": "one PNG per slice, z = 0..Z-1 (volumes; "
                                              "longer side <= 512 px, smaller for long series; "
                                              "null with slice_overlays=0)"},
            "mask": {**STR, "contentEncoding": "base64",
                     "description": "PNG 0/255 (2D) or NIfTI .nii.gz 0/1 (volumes)"},
            "mask_filename": STR, "mask_media_type": STR,
            "overlay_filename": STR, "report_filename": STR}},
}


def _segment_operation(limits: Limits) -> dict:
    form = {"type": "object", "required": ["file"], "properties": {
        "file": {"type": "array", "items": {"type": "string", "contentMediaType":
                                            "application/octet-stream"},
                 "description": "one PNG/JPG/NIfTI/DICOM/zip, or the DICOM files of one series"},
        "model": {**STR, "description": "model name from GET /models (default: most accurate)"},
        "spacing": {**STR, "pattern": r"^\s*[^,]+,[^,]+(,[^,]+)?\s*$",
                    "description": "'row_mm,col_mm' or 'row_mm,col_mm,slice_mm' (PNG/JPG)"},
        "export_window": {**STR, "pattern": r"^\s*[^,]+,[^,]+\s*$",
                          "description": "'level,width' in HU that PNG/JPG slices were exported with, e.g. "
                                         "'40,80' (default: the training PNGs' 40,120); ignored for HU inputs"},
        "slice_overlays": {**STR, "enum": ["1", "0", "true", "false"],
                           "description": "0/false: leave out the per-slice overlays"}}}
    return {
        "summary": "Segment intracranial hemorrhage in an uploaded CT image or series",
        "parameters": [{"name": "slice_overlays", "in": "query", "required": False,
                        "schema": {**STR, "enum": ["1", "0", "true", "false"]}}],
        "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": form}},
                        "description": f"at most {limits.max_upload_bytes / MIB:g} MB, "
                                       f"{limits.max_files} files"},
        "responses": {
            "200": {"description": "segmentation (JSON), or the overlay with Accept: image/png",
                    "content": {"application/json": {"schema": _ref("SegmentResult")},
                                "image/png": {"schema": {**STR, "contentMediaType": "image/png"}}}},
            "400": _error("no file, bad spacing, bad export window or unknown model"),
            "413": _error("upload, file count, voxel count or decompressed size too large"),
            "415": _error("not multipart/form-data, or an unsupported file type"),
            "422": _error("file is readable but unusable (corrupt, wrong dimensions)"),
            "500": _error("internal error (no details)"),
            "503": _error("no trained model weights, or server busy")}}


def openapi_spec(limits: Limits) -> dict:
    """The OpenAPI 3.1.0 document; request limits come from the running configuration."""
    return {
        "openapi": "3.1.0",
        "info": {"title": "ICH segmentation service", "version": "1.0.0",
                 "description": "Research use only; not a medical device."},
        "paths": {
            "/": {"get": {"summary": "Upload page", "responses": {"200": {
                "description": "HTML page", "content": {"text/html": {"schema": STR}}}}}},
            "/segment": {"post": _segment_operation(limits)},
            "/health": {"get": {"summary": "Readiness", "responses": {
                "200": _json(_ref("Health"), "at least one model is loaded"),
                "503": _error("no trained model loaded")}}},
            "/models": {"get": {"summary": "Loaded models", "responses": {
                "200": _json(_ref("Models"), "models with their validation metrics")}}},
            "/openapi.json": {"get": {"summary": "This document", "responses": {
                "200": _json({"type": "object"}, "OpenAPI 3.1 document")}}},
        },
        "components": {"schemas": SCHEMAS},
    }

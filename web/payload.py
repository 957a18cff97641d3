"""JSON body of a successful POST /segment, built from a pipeline SegmentationResult.

Images and the mask travel base64-encoded so a browser can show them (``data:`` URLs) and
offer them for download (Blob) without storing anything on the server.
"""
from __future__ import annotations

import base64
import re
import time

SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
MASK_MEDIA_TYPES = {".nii.gz": "application/gzip", ".png": "image/png"}


def b64(data: bytes | None) -> str | None:
    """Standard base64 text of ``data`` (None stays None)."""
    return None if data is None else base64.b64encode(data).decode("ascii")


def safe_stem(name: str | None) -> str:
    """File-name-safe stem for downloads: ASCII letters, digits, '.', '_', '-'; <= 80 chars."""
    stem = SAFE_NAME.sub("_", name or "").strip("._")[:80]
    return stem or "scan"


def media_type(suffix: str) -> str:
    """MIME type of a mask file with ``suffix`` (".mask.nii.gz" or ".mask.png")."""
    for ending, kind in MASK_MEDIA_TYPES.items():
        if suffix.endswith(ending):
            return kind
    return "application/octet-stream"


def slice_max_size(depth: int) -> int:
    """Longer side (px) of the per-slice overlays: smaller for long series to bound the JSON."""
    return 512 if depth <= 64 else 384 if depth <= 160 else 256


def segment_payload(result, *, with_slices: bool) -> dict:
    """report() fields + base64 overlay, montage, per-slice overlays (volumes) and mask.

    ``with_slices=False`` omits ``slice_overlays`` (one PNG per slice can be megabytes).
    ``encode_ms`` is the time spent rendering and encoding images and the mask here.
    """
    start = time.perf_counter()
    payload = dict(result.report())
    stem = safe_stem(payload.get("name"))
    suffix, mask_bytes = result.mask_file()
    payload["overlay"] = b64(result.overlay_png())
    payload["montage"] = b64(result.montage_png())
    payload["slice_overlays"] = None
    if with_slices and payload.get("is_volume"):
        payload["slice_overlays"] = [b64(png) for png in result.slice_overlays_png(
            max_size=slice_max_size(int(payload["shape"][0])))]
    payload["mask"] = b64(mask_bytes)
    payload["mask_filename"] = stem + suffix
    payload["mask_media_type"] = media_type(suffix)
    payload["overlay_filename"] = stem + ".overlay.png"
    payload["report_filename"] = stem + ".report.json"
    payload["encode_ms"] = round((time.perf_counter() - start) * 1000.0, 1)
    return payload

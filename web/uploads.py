"""Turn a multipart request into pipeline arguments (files as bytes, spacing, model name).

Only parsing and validation of form fields happens here; reading images is the pipeline's.
"""
from __future__ import annotations

import math
from typing import Optional

from flask import Request

from .errors import ApiError

MAX_SPACING_MM = 100.0   # larger values are typos (CT pixels ~0.4-1 mm, slices <= ~10 mm)
FALSE_WORDS = {"0", "false", "no", "off"}
MAX_MODEL_NAME = 40
NO_FILE_HINT = "attach one or more files in the multipart/form-data field 'file'"


def uploaded_sources(req: Request) -> list[tuple[str, bytes]]:
    """(filename, bytes) of every part named ``file``, read into memory.

    A part without a name and without bytes (what a browser sends for an empty file picker)
    is skipped; a named 0-byte file is kept so that the reader names it as empty (422).
    Raises ApiError 400 when no file was sent (empty body, no 'file' part) and 415 when a
    body is sent that is not multipart/form-data.
    """
    if not req.content_length and req.mimetype != "multipart/form-data":
        raise ApiError(400, "no file uploaded", NO_FILE_HINT)
    if req.mimetype != "multipart/form-data":
        raise ApiError(415, "expected multipart/form-data",
                       "send the image as a multipart form field named 'file'")
    sources = []
    for part in req.files.getlist("file"):
        data = part.stream.read()
        part.stream.close()
        if data or part.filename:
            sources.append((part.filename or "upload", data))
    if not sources:
        raise ApiError(400, "no file uploaded", NO_FILE_HINT)
    return sources


def parse_spacing(text: Optional[str]) -> Optional[tuple[float, ...]]:
    """"row,col" or "row,col,slice" in mm -> tuple of floats; empty/None -> None.

    Raises ApiError 400 for a wrong count, non-numbers, NaN/inf, zero, negative or > 100 mm.
    """
    if text is None or not text.strip():
        return None
    parts = [p.strip() for p in text.replace(";", ",").split(",")]
    if len(parts) not in (2, 3):
        raise ApiError(400, "invalid spacing",
                       "spacing must be 'row_mm,col_mm' or 'row_mm,col_mm,slice_mm'")
    values = []
    for part in parts:
        try:
            value = float(part)
        except ValueError:
            raise ApiError(400, "invalid spacing", f"{part[:20]!r} is not a number") from None
        if not math.isfinite(value) or value <= 0 or value > MAX_SPACING_MM:
            raise ApiError(400, "invalid spacing",
                           f"each spacing must be a finite number in (0, {MAX_SPACING_MM:g}] mm")
        values.append(value)
    return tuple(values)


def model_name(text: Optional[str]) -> Optional[str]:
    """The requested model name, stripped; None when empty (= the default model).

    The pipeline resolves aliases and answers 400 (unknown) or 503 (no weights); names longer
    than MAX_MODEL_NAME characters are rejected here so error messages stay short.
    """
    if text is None or not text.strip():
        return None
    if len(text.strip()) > MAX_MODEL_NAME:
        raise ApiError(400, "unknown model", "model names are short, e.g. 'unet'")
    return text.strip()


def flag(req: Request, name: str, default: bool = True) -> bool:
    """Boolean form or query field: "0", "false", "no", "off" mean False."""
    raw = req.form.get(name, req.args.get(name))
    if raw is None or raw.strip() == "":
        return default
    return raw.strip().lower() not in FALSE_WORDS

"""Errors raised by the pipeline. Each names the stage that failed.

The web layer maps ``InputError.status`` to the HTTP status code and returns
``{"error": message, "detail": detail}``; the CLI prints one line ``NAME: message``.
"""
from __future__ import annotations


class PipelineError(Exception):
    """Base class. ``stage`` is one of: read, orient, preprocess, predict, postprocess, measure, render."""

    status = 500

    def __init__(self, message: str, *, stage: str = "read", detail: str | None = None,
                 status: int | None = None):
        super().__init__(message)
        self.message = message
        self.stage = stage
        self.detail = detail
        if status is not None:
            self.status = status

    def __str__(self) -> str:
        return f"{self.stage}: {self.message}"

    def to_json(self) -> dict:
        return {"error": self.message, "detail": self.detail, "stage": self.stage}


class InputError(PipelineError):
    """The user's input cannot be processed (malformed, unsupported, too large).

    status: 400 bad request (missing/invalid parameters), 413 too large (bytes, voxels,
    files in a zip, decompressed size), 415 unsupported file type, 422 well-formed but
    unusable content (corrupt image, wrong dimensionality, NaN voxels, ...).
    """

    status = 422


class ModelUnavailableError(PipelineError):
    """No trained weights for the requested model (never fall back to random weights)."""

    status = 503

    def __init__(self, message: str, *, detail: str | None = None):
        super().__init__(message, stage="predict", detail=detail)

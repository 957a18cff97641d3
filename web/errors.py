"""JSON error responses: ``{"error": message, "detail": detail}`` for every failure.

Pipeline errors keep their status (400/413/415/422/503); HTTP errors (404, 405, 413 from
MAX_CONTENT_LENGTH) keep theirs; anything else is a JSON 500 without details, logged
without request content. No HTML error page or stack trace is ever sent.
"""
from __future__ import annotations

import logging
import re
import traceback

from flask import Flask, Response, current_app, jsonify, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from model.errors import PipelineError

log = logging.getLogger("ich.web")
# An absolute path: a "/" not preceded by a word character, ")", "]" or "." (so that relative
# names a user sent, like "../../etc/x.dcm", are quoted as they are).
SERVER_PATH = re.compile(r"(?<![\w.)\]])(?:/[\w.\-]+)*/([\w.\-]+)")


class ApiError(Exception):
    """An error the web layer detects itself (missing file, bad form field, busy)."""

    def __init__(self, status: int, message: str, detail: str | None = None,
                 headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.detail = status, message, detail
        self.headers = headers or {}


def error_response(status: int, message: str, detail: str | None = None,
                   headers: dict | None = None) -> Response:
    """The one JSON error shape used everywhere."""
    response = jsonify({"error": message, "detail": detail})
    response.status_code = status
    response.headers.update(headers or {})
    return response


def handle_api_error(error: ApiError) -> Response:
    log.info("request rejected: %s %s -> %d", request.method, request.path, error.status)
    return error_response(error.status, error.message, error.detail, error.headers)


def redact_paths(text: str | None) -> str | None:
    """Replace absolute server paths by their last component ("/srv/x/weights" -> "weights")."""
    return None if text is None else SERVER_PATH.sub(r"\1", text)


def handle_pipeline_error(error: PipelineError) -> Response:
    log.info("pipeline error at %s -> %d", error.stage, error.status)
    if error.status >= 500 and error.status != 503:
        return error_response(500, "internal error")
    return error_response(error.status, redact_paths(error.message), redact_paths(error.detail))


def handle_too_large(error: RequestEntityTooLarge) -> Response:
    limit_mb = (current_app.config.get("MAX_CONTENT_LENGTH") or 0) / (1024 * 1024)
    return error_response(413, "upload too large",
                          f"the request exceeds the limit of {limit_mb:g} MB or "
                          f"{current_app.config.get('MAX_FORM_PARTS')} form parts")


def handle_http_error(error: HTTPException) -> Response:
    return error_response(error.code or 500, error.name, error.description)


def handle_unexpected(error: Exception) -> Response:
    """JSON 500. The log gets the exception type and stack frames, not its message, which
    may quote uploaded file names or content."""
    frames = "".join(traceback.format_tb(error.__traceback__))
    log.error("unhandled %s on %s %s\n%s", type(error).__name__, request.method, request.path,
              frames)
    return error_response(500, "internal error")


def register_error_handlers(app: Flask) -> None:
    """Attach the handlers above; the most specific class wins in Flask's lookup."""
    app.register_error_handler(ApiError, handle_api_error)
    app.register_error_handler(PipelineError, handle_pipeline_error)
    app.register_error_handler(RequestEntityTooLarge, handle_too_large)
    app.register_error_handler(HTTPException, handle_http_error)
    app.register_error_handler(Exception, handle_unexpected)

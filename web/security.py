"""Security headers on every response, and a request class that keeps uploads in memory."""
from __future__ import annotations

import io

from flask import Flask, Request, Response, request

CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'self'",
    "img-src 'self' data: blob:",
    "script-src 'self'",
    "style-src 'self'",
    "connect-src 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
    "object-src 'none'",
    "base-uri 'none'",
])

SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}


class MemoryRequest(Request):
    """Flask request whose uploaded files are parsed into ``BytesIO``, never temp files.

    Werkzeug's default spools parts larger than 500 KiB to a temporary file on disk; the
    service must not write uploads anywhere, and MAX_CONTENT_LENGTH bounds the memory used.
    """

    def _get_file_stream(self, total_content_length, content_type, filename=None,
                         content_length=None):
        return io.BytesIO()


def add_security_headers(response: Response) -> Response:
    """Set the fixed security headers; results of /segment are never cached."""
    for name, value in SECURITY_HEADERS.items():
        response.headers[name] = value
    if request.endpoint and request.endpoint.startswith("api.segment"):
        response.headers["Cache-Control"] = "no-store"
    return response


def register_security_headers(app: Flask) -> None:
    """Install :func:`add_security_headers` as an after-request hook (errors included)."""
    app.after_request(add_security_headers)

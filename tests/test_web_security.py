"""Security headers on every response (pages, API, static files, errors); no debug mode."""
from __future__ import annotations

import pytest

from test_web_api import block_png, make_client, post

EXPECTED = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
CSP_PARTS = ["default-src 'self'", "img-src 'self' data: blob:", "script-src 'self'",
             "style-src 'self'", "frame-ancestors 'none'", "object-src 'none'", "base-uri 'none'"]


def check_headers(response) -> None:
    for name, value in EXPECTED.items():
        assert response.headers.get(name) == value, (name, response.status_code)
    csp = response.headers["Content-Security-Policy"]
    for part in CSP_PARTS:
        assert part in csp, part
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp


@pytest.mark.parametrize("method, path", [("GET", "/"), ("GET", "/health"), ("GET", "/models"),
                                          ("GET", "/openapi.json"), ("GET", "/static/js/app.js"),
                                          ("GET", "/static/css/app.css"), ("GET", "/missing"),
                                          ("GET", "/segment"), ("POST", "/segment")])
def test_headers_on_every_route_and_error(method, path):
    response = make_client().open(path, method=method)
    check_headers(response)


def test_headers_on_segment_results_and_no_caching():
    client = make_client()
    for accept in ("application/json", "image/png"):
        response = post(client, [("a.png", block_png())], headers={"Accept": accept})
        assert response.status_code == 200
        check_headers(response)
        assert response.headers["Cache-Control"] == "no-store"


def test_no_debug_mode_by_default(monkeypatch):
    monkeypatch.delenv("FLASK_DEBUG", raising=False)
    assert make_client().application.debug is False

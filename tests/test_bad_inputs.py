"""Every catalogued bad input (tests/badinputs.py) on POST /segment and on the CLI.

The service is built by ``create_app()`` from environment variables only (limits lowered
so bombs stay small) with a tiny random-init test model. Each case must get its expected
status and a JSON error naming the problem (no stack trace, security headers set), the CLI
its exit code and one clear stderr line (no partial outputs), and /health must still
answer 200 afterwards. Also: limits come from the environment, hardening headers and the
absence of debug mode.
"""
from __future__ import annotations

import io
import re

import pytest

from badinputs import CASES, TEST_ENV
from badinputs_runner import TRACE_WORDS, build_service, environment, run_cli, run_web
from conftest import REPO, write_tiny_model

MIB = 1 << 20
REQUIRED = {"empty_file", "truncated_png", "truncated_jpg", "truncated_nii", "truncated_nii_gz",
            "truncated_dicom", "truncated_zip", "missing_extension", "wrong_extension",
            "text_named_nii", "photo_not_ct", "nifti_billions_of_voxels", "nifti_2d",
            "nifti_4d", "nifti_nan", "nifti_inf", "nifti_int8", "nifti_float64", "nifti_rgb",
            "nifti_boolean_mask", "nifti_zero_spacing", "nifti_negative_spacing", "png_bomb",
            "gzip_bomb_nifti", "zip_bomb", "zip_path_traversal", "zip_10000_files",
            "zip_nested", "dicom_no_pixel_data", "dicom_compressed_undecodable",
            "dicom_mixed_series", "image_20000x20000", "image_1x1", "upload_over_limit",
            "no_file", "unknown_model", "spacing_zero", "spacing_negative",
            "spacing_not_a_number"}


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    """create_app() configured by ICH_* variables, with a tiny 'unet' only (no two_branch)."""
    weights = tmp_path_factory.mktemp("weights_unet_only")
    write_tiny_model(weights, "unet")
    return build_service(weights)


@pytest.fixture(scope="module")
def client(service):
    return service.test_client()


def has_words(text: str, words) -> bool:
    """True when every entry of ``words`` ("a|b" = a or b) occurs in ``text`` (case-insensitive)."""
    text = text.lower()
    return all(any(alt in text for alt in word.split("|")) for word in words)


def assert_security_headers(headers: dict) -> None:
    csp = headers.get("Content-Security-Policy", "")
    script_src = re.search(r"script-src([^;]*)", csp)
    assert script_src and "'self'" in script_src.group(1)
    assert "unsafe-inline" not in script_src.group(1) and "unsafe-eval" not in csp
    assert "frame-ancestors 'none'" in csp and "object-src 'none'" in csp
    assert headers.get("X-Content-Type-Options") == "nosniff"
    assert headers.get("X-Frame-Options") == "DENY"
    assert headers.get("Referrer-Policy") == "no-referrer"


def test_catalogue_covers_the_required_cases():
    names = {case.name for case in CASES}
    assert len(CASES) >= 40
    assert not REQUIRED - names, sorted(REQUIRED - names)


def test_limits_are_read_from_the_environment(service):
    limits = service.config["LIMITS"]
    assert limits.max_upload_bytes == int(TEST_ENV["ICH_MAX_UPLOAD_MB"]) * MIB
    assert limits.max_voxels == int(TEST_ENV["ICH_MAX_VOXELS"])
    assert limits.max_files == int(TEST_ENV["ICH_MAX_FILES"])
    assert limits.max_decompressed_bytes == int(TEST_ENV["ICH_MAX_DECOMPRESSED_MB"]) * MIB
    assert service.config["MAX_CONTENT_LENGTH"] == limits.max_upload_bytes
    assert service.config["SEGMENTER"].limits == limits   # the pipeline enforces the same


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_web(client, case):
    outcome = run_web(client, case)
    assert outcome.code == case.status, outcome.message
    assert not any(word in outcome.raw for word in TRACE_WORDS), outcome.raw[:500]
    assert_security_headers(outcome.headers)
    if case.status == 200:
        report = outcome.report
        assert report["model"]["name"] == "unet" and report["mask"]
        assert has_words(" ".join(report["warnings"]), case.words), report["warnings"]
        for key, value in case.report.items():
            assert report[key] == value, key
    else:
        assert outcome.headers["Content-Type"].startswith("application/json")
        assert outcome.message and has_words(outcome.message, case.words), outcome.message
    assert client.get("/health").status_code == 200


@pytest.mark.parametrize("case", [c for c in CASES if c.cli_exit is not None],
                         ids=[c.name for c in CASES if c.cli_exit is not None])
def test_cli(service, case, tmp_path):
    outcome = run_cli(case, tmp_path, service.config["SEGMENTER"])
    assert outcome.code == case.cli_exit, outcome.raw[-500:]
    assert not any(word in outcome.raw for word in TRACE_WORDS), outcome.raw[-500:]
    if case.cli_exit == 0:
        assert any(name.endswith(".json") for name in outcome.outputs)
        assert any(".mask." in name for name in outcome.outputs)
        assert has_words(" ".join(outcome.report["warnings"]), case.words)
        for key, value in case.report.items():
            assert outcome.report[key] == value, key
        return
    lines = [line for line in outcome.raw.splitlines() if line.strip()]
    assert re.match(r"^(python -m model segment: )?error: ", outcome.message), outcome.raw
    assert has_words(outcome.message, case.expected_cli_words), outcome.message
    if not outcome.message.startswith("python -m model"):   # argparse adds a usage line
        assert len(lines) == 1, lines
    assert outcome.outputs == (), outcome.outputs             # nothing half-written


def test_service_still_serves_after_the_catalogue(client):
    from badinputs import png

    assert client.get("/health").get_json()["status"] == "ok"
    response = client.post("/segment", data={"file": [(io.BytesIO(png()), "ok.png")]},
                           content_type="multipart/form-data")
    assert response.status_code == 200


def test_docs_table_lists_every_case():
    doc = (REPO / "docs" / "bad_inputs.md").read_text()
    missing = [case.name for case in CASES if f"`{case.name}`" not in doc]
    assert not missing, f"regenerate docs/bad_inputs.md (tests/badinputs_runner.py): {missing}"


# ---------- hardening ----------

@pytest.mark.parametrize("method, path", [
    ("GET", "/"), ("GET", "/health"), ("GET", "/models"), ("GET", "/openapi.json"),
    ("GET", "/static/js/app.js"), ("GET", "/static/css/app.css"),
    ("GET", "/static/../app.py"), ("GET", "/nope"), ("DELETE", "/segment"), ("GET", "/segment")])
def test_security_headers_and_json_errors_everywhere(client, method, path):
    response = client.open(path, method=method)
    assert_security_headers(dict(response.headers))
    text = response.get_data(as_text=True)
    assert not any(word in text for word in TRACE_WORDS)
    if response.status_code >= 400:
        assert response.get_json()["error"]
    if path.startswith("/static/.."):
        assert response.status_code == 404 and "create_app" not in text


def test_debug_is_off_and_unexpected_errors_are_plain_json(monkeypatch):
    from app import create_app

    class Exploding:
        limits = None
        default_model = "unet"

        def models(self):
            return [{"name": "unet"}]

        def segment_sources(self, *args, **kwargs):
            raise RuntimeError("boom at /srv/secret/path.py line 12")

    monkeypatch.delenv("FLASK_DEBUG", raising=False)
    with environment({}):
        app = create_app({"SEGMENTER": Exploding()})
    assert app.debug is False and not app.config.get("PROPAGATE_EXCEPTIONS")
    from badinputs import png

    response = app.test_client().post("/segment", data={"file": [(io.BytesIO(png()), "a.png")]},
                                      content_type="multipart/form-data")
    assert response.status_code == 500
    assert response.get_json() == {"error": "internal error", "detail": None}
    assert_security_headers(dict(response.headers))


# ---------- messages that must quote what the user sent ----------

def _case(name: str):
    return next(case for case in CASES if case.name == name)


def test_web_names_an_empty_file(client):
    outcome = run_web(client, _case("empty_file"))
    assert outcome.code == 422 and "scan.png" in outcome.message and "empty" in outcome.message


def test_web_quotes_an_unsafe_zip_member_verbatim(client):
    outcome = run_web(client, _case("zip_path_traversal"))
    assert "../../etc/cron.d/x.dcm" in outcome.message


def test_loadtest_request_mix_gets_the_statuses_it_expects(client):
    """scripts/loadtest.py counts a reply as unexpected when its status differs from these."""
    import sys

    sys.path.insert(0, str(REPO / "scripts"))
    from loadtest import loopback_target
    from loadtest_inputs import multipart, request_kinds

    for kind in request_kinds():
        content_type, body = multipart(kind["files"], kind["fields"])
        response = client.post("/segment", data=body, content_type=content_type)
        assert response.status_code == kind["expect"], (kind["kind"], response.get_json())
    assert loopback_target("http://127.0.0.1:8000") == ("127.0.0.1", 8000)
    with pytest.raises(SystemExit, match="refusing"):
        loopback_target("http://10.1.2.3:8000")

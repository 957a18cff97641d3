"""GET /openapi.json: a valid OpenAPI 3.1 document that matches the app's routes and responses."""
from __future__ import annotations

import pytest

from test_web_api import block_nifti, block_png, make_client, post

PARAM = "<"


@pytest.fixture(scope="module")
def client():
    return make_client()


@pytest.fixture(scope="module")
def spec(client):
    response = client.get("/openapi.json")
    assert response.status_code == 200
    return response.get_json()


def app_routes(app) -> dict[str, set[str]]:
    """{path: methods} of the app's own routes (static files excluded)."""
    routes: dict[str, set[str]] = {}
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        routes.setdefault(rule.rule, set()).update(rule.methods - {"HEAD", "OPTIONS"})
    return routes


def test_spec_paths_match_app_routes(client, spec):
    documented = {path: {m.upper() for m in ops} for path, ops in spec["paths"].items()}
    assert documented == app_routes(client.application)


def test_spec_is_valid_openapi(spec):
    validator = pytest.importorskip("openapi_spec_validator")
    assert spec["openapi"].startswith("3.1")
    validator.validate(spec)


def test_every_error_status_uses_the_error_schema(spec):
    segment = spec["paths"]["/segment"]["post"]["responses"]
    assert {"200", "400", "413", "415", "422", "500", "503"} <= set(segment)
    for status, response in segment.items():
        if status != "200":
            schema = response["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/Error"}
    assert set(spec["components"]["schemas"]["Error"]["required"]) == {"error", "detail"}


def validate(spec, name: str, instance) -> None:
    """Validate ``instance`` against components/schemas/NAME (JSON Schema 2020-12)."""
    jsonschema = pytest.importorskip("jsonschema")
    schema = {"$ref": f"#/components/schemas/{name}", "components": spec["components"]}
    jsonschema.Draft202012Validator(schema).validate(instance)


def test_responses_match_their_schemas(client, spec):
    validate(spec, "Health", client.get("/health").get_json())
    validate(spec, "Models", client.get("/models").get_json())
    validate(spec, "SegmentResult", post(client, [("a.png", block_png())]).get_json())
    validate(spec, "Error", post(client, [("a.png", block_png())], spacing="x").get_json())


def test_volume_response_matches_schema(client, spec):
    response = post(client, [("scan.nii.gz", block_nifti())])
    assert response.status_code == 200
    validate(spec, "SegmentResult", response.get_json())

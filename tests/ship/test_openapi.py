"""The OpenAPI schema validates, documents every route with its auth, bodies and error shape, and
Swagger UI works with no network (assets served by the app itself)."""

from __future__ import annotations

import re

import pytest
from django.core.management import call_command
from django.urls import get_resolver
from django.urls.resolvers import URLPattern, URLResolver
from openapi_spec_validator import validate

pytestmark = pytest.mark.django_db

DOCUMENTED = {
    ("/orgs", "post"),
    ("/orgs/{organization}", "get"),
    ("/orgs/{organization}", "patch"),
    ("/orgs/{organization}/api-key", "post"),
    ("/orgs/{organization}/api-key", "delete"),
    ("/register/{organization}", "post"),
    ("/recognize/{organization}", "post"),
    ("/verify/{organization}", "post"),
    ("/orgs/{organization}/people", "get"),
    ("/orgs/{organization}/people/{person_id}", "get"),
    ("/orgs/{organization}/people/{person_id}", "patch"),
    ("/orgs/{organization}/people/{person_id}", "delete"),
    ("/orgs/{organization}/people/{person_id}/faces/{face_id}", "delete"),
    ("/orgs/{organization}/people/{person_id}/merge", "post"),
    ("/orgs/{organization}/people/{person_id}/faces/{face_id}/move", "post"),
    ("/orgs/{organization}/unknown-faces", "get"),
    ("/orgs/{organization}/unknown-faces", "delete"),
    ("/orgs/{organization}/unknown-faces/{unknown_id}", "delete"),
    ("/orgs/{organization}/unknown-clusters", "get"),
    ("/orgs/{organization}/unknown-clusters/{cluster_id}/assign", "post"),
    ("/orgs/{organization}/unknown-clusters/{cluster_id}/dismiss", "post"),
    ("/healthz", "get"),
    ("/readyz", "get"),
}
MULTIPART_ROUTES = {"/register/{organization}", "/recognize/{organization}", "/verify/{organization}"}


@pytest.fixture(scope="module")
def schema(django_db_blocker):
    from rest_framework.test import APIClient

    with django_db_blocker.unblock():
        response = APIClient().get("/api/schema/?format=json")
    assert response.status_code == 200
    return response.json()


def api_routes() -> set[str]:
    """Every DRF view in the URLconf, as an OpenAPI path."""

    def walk(patterns, prefix=""):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                yield from walk(pattern.url_patterns, prefix + str(pattern.pattern))
            elif isinstance(pattern, URLPattern) and hasattr(pattern.callback, "cls"):
                if pattern.callback.cls.__module__.startswith(("drf_spectacular", "faceportal.schema_view")):
                    continue  # the schema and docs views themselves
                yield "/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", prefix + str(pattern.pattern))

    return set(walk(get_resolver().url_patterns))


def test_schema_validates_with_drf_spectacular_and_openapi_spec_validator(schema, tmp_path):
    # --fail-on-warn: an undocumented authenticator, a colliding operation id or an unresolvable
    # serializer fails here instead of silently producing a poorer schema.
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"))
    validate(schema)


def test_schema_lists_every_documented_route_and_every_api_view(schema):
    operations = {(path, method) for path, item in schema["paths"].items() for method in item if method != "parameters"}
    assert DOCUMENTED <= operations, DOCUMENTED - operations
    assert api_routes() <= set(schema["paths"]), api_routes() - set(schema["paths"])


def test_security_schemes_cover_api_keys_and_staff(schema):
    schemes = schema["components"]["securitySchemes"]
    assert schemes["apiKeyBearer"] == {**schemes["apiKeyBearer"], "type": "http", "scheme": "bearer"}
    assert schemes["apiKeyHeader"] == {**schemes["apiKeyHeader"], "type": "apiKey", "in": "header", "name": "X-API-Key"}
    assert schemes["basicAuth"]["scheme"] == "basic"
    assert "cookieAuth" not in schemes  # a session cookie is nothing to type into Swagger's Authorize dialog
    recognize = schema["paths"]["/recognize/{organization}"]["post"]
    assert recognize["security"] == [{"apiKeyBearer": []}, {"apiKeyHeader": []}]
    create_org = schema["paths"]["/orgs"]["post"]
    assert create_org["security"] == [{"basicAuth": []}]
    assert "security" not in schema["paths"]["/healthz"]["get"] or schema["paths"]["/healthz"]["get"]["security"] == []


def test_every_operation_documents_its_bodies_and_error_shape(schema):
    error = schema["components"]["schemas"]["Error"]
    assert error["required"] == ["error"]
    body = schema["components"]["schemas"]["ErrorBody"]
    assert set(body["required"]) == {"code", "message", "details"}
    for path, method in DOCUMENTED:
        operation = schema["paths"][path][method]
        responses = operation["responses"]
        success = [code for code in responses if code.startswith("2")]
        assert success, (path, method)
        for code in success:
            if code != "204":
                assert "$ref" in responses[code]["content"]["application/json"]["schema"], (path, method, code)
        errors = {code: r for code, r in responses.items() if code[0] in "45"}
        if path not in {"/healthz"}:
            assert errors, (path, method)
        for code, response in errors.items():
            content = response["content"]["application/json"]
            assert content["schema"] == {"$ref": "#/components/schemas/Error"}, (path, method, code)
            (example,) = content["examples"].values()
            assert set(example["value"]["error"]) == {"code", "message", "details"}
        if method in {"post", "patch"} and path not in {"/healthz", "/readyz"}:
            assert "application/json" in operation["requestBody"]["content"], (path, method)


def test_image_routes_accept_json_and_multipart_uploads(schema):
    components = schema["components"]["schemas"]
    for path in MULTIPART_ROUTES:
        content = schema["paths"][path]["post"]["requestBody"]["content"]
        assert {"application/json", "multipart/form-data"} <= set(content)
        multipart = components[content["multipart/form-data"]["schema"]["$ref"].rsplit("/", 1)[-1]]
        file_fields = [
            name for name, prop in multipart["properties"].items()
            if prop.get("format") == "binary" or prop.get("items", {}).get("format") == "binary"
        ]
        assert file_fields, path
    people = schema["paths"]["/orgs/{organization}/people"]["get"]
    assert {p["name"] for p in people["parameters"]} >= {"organization", "search", "page", "page_size"}
    page = people["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    assert set(components[page]["properties"]) == {"count", "next", "previous", "results"}


def test_swagger_ui_renders_with_locally_served_assets(client):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "cdn" not in html.lower() and "jsdelivr" not in html.lower()
    assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', html)
    assert any("swagger-ui-bundle" in asset for asset in assets), assets
    for asset in assets:
        asset_response = client.get(asset)
        assert asset_response.status_code == 200, asset

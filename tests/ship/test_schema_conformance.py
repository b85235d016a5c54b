"""Real answers of every route, successes and errors, match the OpenAPI schema the server serves.

The schema and the answers come from the same serializers; schemathesis' response checks
(status code documented, content type, body against the response schema) prove it for real
calls: the real model on real photos, through the WSGI app.
"""

from __future__ import annotations

import base64
import io
import zipfile

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from django.test import override_settings
from schemathesis.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from faces.engine import get_engine
from faces.enrolment_jobs import enrolment_jobs_run

pytestmark = pytest.mark.django_db(transaction=True)

# What an answer must hold to; not the checks that judge the server's behaviour (auth and the
# like have tests of their own).
RESPONSE_CHECKS = [status_code_conformance, content_type_conformance, response_schema_conformance,
                   response_headers_conformance]


@pytest.fixture
def api(settings, django_user_model):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    django_user_model.objects.create_user("staff", password="staff-pass-123", is_staff=True)
    get_engine().warm()  # /readyz answers 200 once the models are loaded
    return Api(schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application()))


class Api:
    STAFF = {"Authorization": "Basic " + base64.b64encode(b"staff:staff-pass-123").decode()}

    def __init__(self, schema):
        self.schema = schema
        self.key_headers: dict[str, str] = {}
        self.checked: set[tuple[str, str, int]] = set()

    def call(self, method: str, path: str, *, status: int, headers: dict | None = None,
             path_parameters: dict | None = None, body=None, query: dict | None = None,
             media_type: str = "application/json"):
        operation = self.schema[path][method.upper()]
        case = operation.Case(path_parameters=path_parameters or {}, query=query,
                              **({"body": body, "media_type": media_type} if body is not None else {}))
        response = case.call(headers=headers if headers is not None else self.key_headers)
        assert response.status_code == status, f"{method} {path}: {response.status_code} {response.text[:500]}"
        # Raises when the status is undocumented, the content type differs or the body breaks the schema.
        case.validate_response(response, checks=RESPONSE_CHECKS)
        self.checked.add((method.upper(), path, status))
        return response.json() if response.content else None


def test_real_answers_of_every_route_match_the_schema(api, manifest):
    blair, obama = manifest["Tony_Blair"], manifest["Barack_Obama"]
    org = {"organization": "acme"}

    api.call("post", "/orgs", headers=api.STAFF, body={"organization": "acme"}, status=201)
    api.call("post", "/orgs", headers=api.STAFF, body={"organization": "not a slug!"}, status=400)
    issued = api.call("post", "/orgs/{organization}/api-key", headers=api.STAFF, path_parameters=org,
                      body={"user": "alice", "api_key_name": "laptop"}, status=201)
    api.key_headers = {"Authorization": f"Bearer {issued['api_key']}"}

    images = [blair[0].b64(), "not base64!!", blair[3].b64(), blair[4].b64()]
    registered = api.call("post", "/register/{organization}", path_parameters=org, status=201,
                          body={"name": "Tony Blair", "images": images})
    assert registered["faces_added"] == 3 and registered["images"][1]["code"] == "invalid_image"
    api.call("post", "/register/{organization}", path_parameters=org, status=201,
             body={"name": "Barack Obama", "images": [obama[0].b64()]})
    api.call("post", "/register/{organization}", path_parameters=org, status=422,
             body={"name": "Nobody", "images": [manifest["_noface"][0].b64()]})
    api.call("post", "/register/{organization}", path_parameters=org, status=400,
             body={"name": "", "images": [blair[1].b64()]})

    calibrated = api.call("post", "/recognize/{organization}", path_parameters=org, status=200,
                          body={"image": blair[1].b64()})
    assert calibrated["threshold_source"] == "calibrated" and "gallery_size" in calibrated
    assert [(face["match"] or {}).get("name") for face in calibrated["faces"]] == ["Tony Blair"], calibrated
    requested = api.call("post", "/recognize/{organization}", path_parameters=org, status=200,
                         body={"image": blair[1].b64(), "threshold": 0.5, "max_results": 2})
    assert requested["threshold_source"] == "request" and "gallery_size" not in requested
    api.call("post", "/recognize/{organization}", path_parameters=org, status=400,
             body={"image": blair[1].b64(), "threshold": "high"})

    person_id = registered["person"]["id"]
    api.call("post", "/verify/{organization}", path_parameters=org, status=200,
             body={"image": blair[1].b64(), "image2": blair[2].b64()})
    against_person = api.call("post", "/verify/{organization}", path_parameters=org, status=200,
                              body={"image": blair[1].b64(), "person": person_id})
    assert against_person["verified"] and against_person["person"]["name"] == "Tony Blair"
    api.call("post", "/verify/{organization}", path_parameters=org, status=400, body={"image": blair[1].b64()})

    person = {**org, "person_id": person_id}
    listing = api.call("get", "/orgs/{organization}/people", path_parameters=org, query={"search": "tony"},
                       status=200)
    assert [row["name"] for row in listing["results"]] == ["Tony Blair"]
    detail = api.call("get", "/orgs/{organization}/people/{person_id}", path_parameters=person, status=200)
    api.call("patch", "/orgs/{organization}/people/{person_id}", path_parameters=person, status=200,
             body={"name": "Tony Blair (PM)"})
    api.call("get", "/orgs/{organization}/people/{person_id}", path_parameters={**org, "person_id": 999999},
             status=404)
    # Curating people: look one up by external_id, move a face to another person, merge two.
    obama_id = api.call("get", "/orgs/{organization}/people", path_parameters=org, query={"search": "obama"},
                        status=200)["results"][0]["id"]
    api.call("patch", "/orgs/{organization}/people/{person_id}", path_parameters={**org, "person_id": obama_id},
             status=200, body={"external_id": "emp-44", "metadata": {"team": "east"}})
    by_external = api.call("get", "/orgs/{organization}/people", path_parameters=org,
                           query={"external_id": "emp-44"}, status=200)
    assert [row["id"] for row in by_external["results"]] == [obama_id]
    moved_face = detail["faces"][1]["id"]
    api.call("post", "/orgs/{organization}/people/{person_id}/faces/{face_id}/move",
             path_parameters={**person, "face_id": moved_face}, status=200, body={"to": obama_id})
    api.call("post", "/orgs/{organization}/people/{person_id}/merge", path_parameters=person, status=200,
             body={"from": obama_id})
    api.call("post", "/orgs/{organization}/people/{person_id}/merge", path_parameters=person, status=404,
             body={"from": 999999})

    # Unknown faces: the organisation keeps them (staff), strangers' faces are kept and grouped.
    api.call("get", "/orgs/{organization}", headers=api.STAFF, path_parameters=org, status=200)
    api.call("patch", "/orgs/{organization}", headers=api.STAFF, path_parameters=org, status=200,
             body={"keep_unknown_faces": True})
    api.call("patch", "/orgs/{organization}", headers=api.STAFF, path_parameters=org, status=400,
             body={"unknown_retention_days": -1})
    for stranger in (manifest["Angelina_Jolie"][0], manifest["Arnold_Schwarzenegger"][0]):
        kept = api.call("post", "/recognize/{organization}", path_parameters=org, status=200,
                        body={"image": stranger.b64()})
        assert kept["keep_unknown_faces"] and kept["faces"][0]["unknown_face"] is not None, kept
    inbox = api.call("get", "/orgs/{organization}/unknown-faces", path_parameters=org, status=200)
    assert len(inbox["results"]) == 2
    clusters = api.call("get", "/orgs/{organization}/unknown-clusters", path_parameters=org, status=200)["results"]
    assert len(clusters) == 2
    api.call("post", "/orgs/{organization}/unknown-clusters/{cluster_id}/assign",
             path_parameters={**org, "cluster_id": clusters[0]["id"]}, status=200, body={"name": "Kept Stranger"})
    api.call("post", "/orgs/{organization}/unknown-clusters/{cluster_id}/dismiss",
             path_parameters={**org, "cluster_id": clusters[1]["id"]}, status=200, body={})
    api.call("post", "/recognize/{organization}", path_parameters=org, status=200,
             body={"image": manifest["Ariel_Sharon"][0].b64()})
    newest = api.call("get", "/orgs/{organization}/unknown-faces", path_parameters=org, status=200)["results"][0]
    api.call("delete", "/orgs/{organization}/unknown-faces/{unknown_id}",
             path_parameters={**org, "unknown_id": newest["id"]}, status=204, body={})
    api.call("delete", "/orgs/{organization}/unknown-faces/{unknown_id}",
             path_parameters={**org, "unknown_id": newest["id"]}, status=404, body={})
    api.call("delete", "/orgs/{organization}/unknown-faces", path_parameters=org, status=200, body={})

    face = {**person, "face_id": detail["faces"][0]["id"]}
    api.call("delete", "/orgs/{organization}/people/{person_id}/faces/{face_id}", path_parameters=face, status=204)
    api.call("delete", "/orgs/{organization}/people/{person_id}", path_parameters=person, status=204)

    # Webhooks: a private target is refused unless the deployment allows them (docs/WEBHOOKS.md).
    hook_body = {"url": "http://127.0.0.1:9/hook", "events": ["person.created"], "secret": "s" * 20}
    api.call("post", "/orgs/{organization}/webhooks", path_parameters=org, status=400, body=hook_body)
    with override_settings(FACEPORTAL_WEBHOOK_ALLOW_PRIVATE=True):
        hook = api.call("post", "/orgs/{organization}/webhooks", path_parameters=org, status=201, body=hook_body)
    api.call("get", "/orgs/{organization}/webhooks", path_parameters=org, status=200)
    api.call("post", "/register/{organization}", path_parameters=org, status=201,
             body={"name": "Hooked Person", "images": [blair[1].b64()], "allow_duplicate": True})
    hooked = {**org, "webhook_id": hook["id"]}
    assert api.call("get", "/orgs/{organization}/webhooks/{webhook_id}/deliveries", path_parameters=hooked,
                    status=200)["results"][0]["status"] == "pending"
    api.call("delete", "/orgs/{organization}/webhooks/{webhook_id}", path_parameters=hooked, status=204, body={})
    api.call("delete", "/orgs/{organization}/webhooks/{webhook_id}", path_parameters=hooked, status=404, body={})
    api.call("get", "/orgs/{organization}/webhooks/{webhook_id}/deliveries", path_parameters=hooked, status=404)
    # Bulk enrolment jobs: a zip is taken (202), a second one waits (409), progress is read.
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("Ada Lovelace/1.jpg", manifest["Kaley_Cuoco"][0].path.read_bytes())
        zipped.writestr("ext:emp-9/1.jpg", manifest["_noface"][0].path.read_bytes())
    jobs = "/orgs/{organization}/enrolment-jobs"
    job = api.call("post", jobs, path_parameters=org, status=202, body={"archive": archive.getvalue()},
                   media_type="multipart/form-data")
    api.call("post", jobs, path_parameters=org, status=409, body={"archive": archive.getvalue()},
             media_type="multipart/form-data")
    enrolment_jobs_run()
    progress = api.call("get", jobs + "/{job_id}", path_parameters={**org, "job_id": job["id"]}, status=200)
    assert (progress["done"], progress["total"]) == (2, 2)
    assert [image["code"] for image in progress["images"]] == [None, "no_face"]
    api.call("get", jobs + "/{job_id}", path_parameters={**org, "job_id": 999999}, status=404)
    api.call("post", jobs, path_parameters=org, status=400, body={"archive": b"not a zip"},
             media_type="multipart/form-data")
    # Gallery export (the key) and import (staff): a zip each way.
    exported = call_binary(api, "get", "/orgs/{organization}/export", path_parameters=org, status=200)
    imported = call_binary(api, "post", "/orgs/{organization}/import", path_parameters=org, status=200,
                           headers=api.STAFF, body=exported.content).json()
    assert {person["status"] for person in imported["people"]} <= {"updated"}
    call_binary(api, "post", "/orgs/{organization}/import", path_parameters=org, status=400, headers=api.STAFF,
                body=b"not a zip")
    # Provisioning: organisations and keys (staff), scopes, rotation.
    listing = api.call("get", "/orgs", headers=api.STAFF, query={"page_size": 10}, status=200)
    assert listing["results"][0]["organization"] == "acme" and "people_count" in listing["results"][0]
    kiosk = api.call("post", "/orgs/{organization}/api-key", headers=api.STAFF, path_parameters=org, status=201,
                     body={"user": "lobby", "api_key_name": "kiosk", "scopes": ["recognize"],
                           "expires_at": "2999-01-01T00:00:00Z"})
    api.call("post", "/orgs/{organization}/api-key", headers=api.STAFF, path_parameters=org, status=400,
             body={"user": "lobby", "api_key_name": "bad", "scopes": ["everything"]})
    kiosk_headers = {"Authorization": f"Bearer {kiosk['api_key']}"}
    denied = api.call("get", "/orgs/{organization}/people", headers=kiosk_headers, path_parameters=org, status=403)
    assert denied["error"]["code"] == "scope_denied"
    keys = api.call("get", "/orgs/{organization}/api-keys", headers=api.STAFF, path_parameters=org, status=200)
    assert {row["api_key_name"] for row in keys["results"]} >= {"laptop", "kiosk"}
    rotated = api.call("post", "/orgs/{organization}/api-keys/{key_id}/rotate", headers=api.STAFF,
                       path_parameters={**org, "key_id": kiosk["id"]}, body={"grace_seconds": 60}, status=200)
    assert rotated["previous_valid_until"] is not None and rotated["api_key"] != kiosk["api_key"]
    api.call("post", "/orgs/{organization}/api-keys/{key_id}/rotate", headers=api.STAFF,
             path_parameters={**org, "key_id": kiosk["id"]}, body={"grace_seconds": 90000}, status=400)
    api.call("post", "/orgs/{organization}/api-keys/{key_id}/rotate", headers=api.STAFF,
             path_parameters={**org, "key_id": 999999}, body={}, status=404)
    api.call("post", "/orgs", headers=api.STAFF, body={"organization": "short-lived"}, status=201)
    api.call("delete", "/orgs/{organization}", headers=api.STAFF, path_parameters={"organization": "short-lived"},
             status=204)
    api.call("delete", "/orgs/{organization}", headers=api.STAFF, path_parameters={"organization": "short-lived"},
             status=404)

    api.call("get", "/healthz", headers={}, status=200)
    api.call("get", "/readyz", headers={}, status=200)
    api.call("delete", "/orgs/{organization}/api-key", path_parameters=org, status=200,
             body={"api_auth": {"user": "alice", "api_key_name": "laptop"}})
    api.call("post", "/recognize/{organization}", path_parameters=org, status=401, body={"image": blair[1].b64()})

    routes = {(method, path) for method, path, _ in api.checked}
    documented = {(operation.ok().method.upper(), operation.ok().path) for operation in api.schema.get_all_operations()}
    # Every documented JSON route was called (the thumbnail is a JPEG: its bytes are checked elsewhere).
    assert documented - routes <= {("GET", "/orgs/{organization}/people/{person_id}/faces/{face_id}/thumbnail"),
                                   ("GET", "/orgs/{organization}/unknown-faces/{unknown_id}/thumbnail")}, \
        documented - routes




def call_binary(api: Api, method: str, path: str, *, status: int, path_parameters: dict,
                headers: dict | None = None, body: bytes | None = None):
    """A route whose request or answer is a zip rather than JSON, checked against the schema the same way."""
    operation = api.schema[path][method.upper()]
    case = operation.Case(path_parameters=path_parameters,
                          **({"body": body, "media_type": "application/zip"} if body is not None else {}))
    response = case.call(headers=headers if headers is not None else api.key_headers)
    assert response.status_code == status, f"{method} {path}: {response.status_code} {response.text[:500]}"
    case.validate_response(response, checks=RESPONSE_CHECKS)
    api.checked.add((method.upper(), path, status))
    return response

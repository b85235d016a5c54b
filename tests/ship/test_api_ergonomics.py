"""API ergonomics: route shapes, the Authorization scheme, size errors, per-image outcomes,
/verify details, face thumbnails, the Swagger schema and the metrics labels."""

from __future__ import annotations

import io

import pytest
import yaml
from django.test import Client
from django.urls import reverse
from PIL import Image
from rest_framework.test import APIClient

from faces.models import Face, Person
from tests.conftest import key_client

pytestmark = pytest.mark.django_db


def test_routes_answer_with_and_without_a_trailing_slash_and_are_documented_once(acme, manifest):
    issued = acme.issued
    client = key_client(issued)
    photo = manifest["Tony_Blair"][0].b64()
    assert client.post("/register/acme/", {"name": "Blair", "images": [photo]}, format="json").status_code == 201
    recognized = client.post("/recognize/acme/", {"image": photo}, format="json")
    assert recognized.status_code == 200
    assert recognized.json()["faces"][0]["match"]["name"] == "Blair"
    assert client.get("/orgs/acme/people/").json()["count"] == 1
    assert client.get("/orgs/acme/people").json()["count"] == 1
    assert client.get("/orgs/acme/people?search=%00").status_code == 400  # not a 500 from PostgreSQL
    assert reverse("recognize", kwargs={"organization": "acme"}) == "/recognize/acme"  # canonical form
    paths = yaml.safe_load(Client().get("/api/schema/").content)["paths"]
    assert "/recognize/{organization}" in paths and "/recognize/{organization}/" not in paths


def test_an_authorization_header_without_its_scheme_says_so(acme):
    issued = acme.issued
    bare = APIClient()
    bare.credentials(HTTP_AUTHORIZATION=issued.plaintext)
    response = bare.get("/orgs/acme/people")
    assert response.status_code == 401
    assert "missing its scheme" in response.json()["error"]["message"]
    assert "Bearer <key>" in response.json()["error"]["message"]
    token = APIClient()
    token.credentials(HTTP_AUTHORIZATION=f"Token {issued.plaintext}")
    assert "Unsupported Authorization scheme 'Token'" in token.get("/orgs/acme/people").json()["error"]["message"]
    assert key_client(issued).get("/orgs/acme/people").status_code == 200
    assert key_client(issued, header="x-api-key").get("/orgs/acme/people").status_code == 200


def test_an_oversized_image_is_413_in_megabytes(acme, settings):
    issued = acme.issued
    client = key_client(issued)
    too_big = io.BytesIO(b"\xff\xd8" + b"\0" * (settings.FACEPORTAL_MAX_IMAGE_BYTES + 1))
    too_big.name = "huge.jpg"
    response = client.post("/recognize/acme", {"image": too_big}, format="multipart")
    assert response.status_code == 413
    error = response.json()["error"]
    assert error["code"] == "image_too_large"
    assert "10 MB" in error["message"] and "10485760" not in error["message"]


def test_register_reports_every_image_the_same_way(acme, manifest):
    org, issued, _ = acme
    client = key_client(issued)
    images = [manifest["Tony_Blair"][0].b64(), "not base64 at all!!", manifest["_noface"][0].b64()]
    response = client.post("/register/acme", {"name": "Blair", "images": images}, format="json")
    assert response.status_code == 201, response.content
    outcomes = response.json()["images"]
    assert [(o["index"], o["accepted"], o["code"]) for o in outcomes] == [
        (0, True, None), (1, False, "invalid_image"), (2, False, "no_face")]
    assert outcomes[1]["reason"] == "not valid base64"
    assert Face.objects.filter(organization=org).count() == 1
    # Nothing usable at all: still refused as before, and nothing stored.
    only_bad = client.post("/register/acme", {"name": "X", "images": ["not base64 at all!!"]}, format="json")
    assert only_bad.status_code == 400 and only_bad.json()["error"]["code"] == "invalid_image"
    no_face = client.post("/register/acme", {"name": "X", "images": [manifest["_noface"][0].b64(), "@@"]},
                          format="json")
    assert no_face.status_code == 422
    assert [i["code"] for i in no_face.json()["error"]["details"]["images"]] == ["no_face", "invalid_image"]
    assert not Person.objects.filter(name="X").exists()


def test_verify_returns_the_boxes_it_compared_and_the_person(acme, manifest):
    issued = acme.issued
    client = key_client(issued)
    obama = manifest["Barack_Obama"]
    registered = client.post("/register/acme", {"name": "Obama", "images": [obama[0].b64()]}, format="json").json()
    person_id = registered["person"]["id"]
    against_person = client.post("/verify/acme", {"image": obama[1].b64(), "person": person_id}, format="json")
    body = against_person.json()
    assert against_person.status_code == 200 and body["verified"] is True
    assert body["person"]["name"] == "Obama" and body["person"]["id"] == person_id
    assert body["person"]["face_id"] == registered["images"][0]["face_id"]
    assert body["person"]["box"] == registered["images"][0]["box"]
    assert set(body["image_box"]) == {"x", "y", "w", "h"} and body["image2_box"] is None
    two_images = client.post("/verify/acme", {"image": obama[1].b64(), "image2": obama[0].b64()}, format="json")
    assert two_images.json()["image2_box"] == registered["images"][0]["box"]
    assert two_images.json()["person"] is None


def test_person_detail_gives_each_face_a_tenant_scoped_thumbnail(make_org, make_key, manifest):
    acme, globex = make_org("acme"), make_org("globex")
    client, other = key_client(make_key(acme)), key_client(make_key(globex))
    photos = [photo.b64() for photo in manifest["Barack_Obama"][:2]]
    person = client.post("/register/acme", {"name": "Obama", "images": photos}, format="json").json()["person"]
    detail = client.get(f"/orgs/acme/people/{person['id']}").json()
    urls = [face["thumbnail_url"] for face in detail["faces"]]
    assert len(urls) == 2 and all(url.startswith(f"/orgs/acme/people/{person['id']}/faces/") for url in urls)
    listed = client.get("/orgs/acme/people").json()["results"][0]
    assert listed["thumbnail_url"] == urls[0]
    thumbnail = client.get(urls[0])
    assert thumbnail.status_code == 200 and thumbnail["Content-Type"] == "image/jpeg"
    assert Image.open(io.BytesIO(thumbnail.content)).size[0] > 20
    assert APIClient().get(urls[0]).status_code == 401
    assert other.get(urls[0]).status_code == 403  # another tenant's key
    missing = client.get(f"/orgs/acme/people/{person['id']}/faces/999999/thumbnail")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "face_not_found"


def test_swagger_offers_key_schemes_a_revocation_body_and_multipart_uploads():
    schema = yaml.safe_load(Client().get("/api/schema/").content)
    schemes = schema["components"]["securitySchemes"]
    assert {"apiKeyBearer", "apiKeyHeader"} <= set(schemes) and "cookieAuth" not in schemes
    assert "sessionid" not in yaml.safe_dump(schema)
    revoke = schema["paths"]["/orgs/{organization}/api-key"]["delete"]
    body = revoke["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    assert "api_auth" in schema["components"]["schemas"][body]["properties"]
    for route in ("/recognize/{organization}", "/register/{organization}", "/verify/{organization}"):
        content = schema["paths"][route]["post"]["requestBody"]["content"]
        assert next(iter(content)) == "multipart/form-data", route  # Swagger UI's default: the file picker
    assert next(iter(revoke["requestBody"]["content"])) == "application/json"


def test_static_files_are_labelled_static_in_the_metrics():
    client = Client()
    assert client.get("/static/recognition/webcam.js").status_code == 200
    assert client.get("/no/such/page").status_code == 404
    metrics = client.get("/metrics").content.decode()
    assert 'route="static"' in metrics and 'route="unmatched"' in metrics



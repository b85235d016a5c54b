import pytest

from organizations.models import Organization

pytestmark = pytest.mark.django_db


def test_staff_creates_organization(staff_client):
    response = staff_client.post("/orgs", {"organization": "acme-corp_1"}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["organization"] == "acme-corp_1"
    assert Organization.objects.filter(slug="acme-corp_1", is_active=True).exists()


def test_anonymous_cannot_create_organization(anon_client):
    response = anon_client.post("/orgs", {"organization": "acme"}, format="json")
    assert response.status_code in (401, 403)
    assert response.json()["error"]["code"] in ("not_authenticated", "forbidden")
    assert not Organization.objects.exists()


def test_api_key_cannot_create_organization(make_org, make_key):
    from tests.conftest import key_client

    issued = make_key(make_org("acme"))
    response = key_client(issued).post("/orgs", {"organization": "other"}, format="json")
    assert response.status_code == 403
    assert not Organization.objects.filter(slug="other").exists()


def test_non_staff_user_cannot_create_organization(db, anon_client, django_user_model):
    django_user_model.objects.create_user("bob", password="bob-pass-123")
    anon_client.login(username="bob", password="bob-pass-123")
    response = anon_client.post("/orgs", {"organization": "acme"}, format="json")
    assert response.status_code == 403


@pytest.mark.parametrize(
    "slug, reason",
    [("", "non-empty"), ("x" * 65, "at most 64"), ("Acme", "a-z"), ("a b", "a-z"), ("a/b", "a-z"), ("é", "a-z")],
)
def test_bad_slugs_are_refused_with_400(staff_client, slug, reason):
    response = staff_client.post("/orgs", {"organization": slug}, format="json")
    assert response.status_code == 400
    body = response.json()["error"]
    assert reason in body["message"]
    assert not Organization.objects.exists()


def test_duplicate_organization_is_a_conflict(staff_client):
    assert staff_client.post("/orgs", {"organization": "acme"}, format="json").status_code == 201
    response = staff_client.post("/orgs", {"organization": "acme"}, format="json")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "organization_exists"


@pytest.mark.parametrize(
    "body, content_type",
    [
        ("{not json", "application/json"),
        ("[1, 2]", "application/json"),
        ('{"organization": 5}', "application/json"),
        ('{"organization": ["a"]}', "application/json"),
        ("{}", "application/json"),
        ("organization=acme", "text/plain"),
    ],
)
def test_bad_bodies_get_json_400(staff_client, body, content_type):
    response = staff_client.generic("POST", "/orgs", body, content_type=content_type)
    assert 400 <= response.status_code < 500
    assert response["Content-Type"].startswith("application/json")
    assert "error" in response.json()
    assert not Organization.objects.exists()


def test_oversized_body_gets_413(staff_client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    body = '{"organization": "acme", "name": "' + "x" * 4096 + '"}'
    response = staff_client.generic("POST", "/orgs", body, content_type="application/json")
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert not Organization.objects.exists()


def test_unknown_route_is_json_404(anon_client):
    response = anon_client.get("/no/such/route")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_basic_auth_with_nul_byte_is_401_not_500(db, anon_client):
    import base64

    anon_client.credentials(HTTP_AUTHORIZATION="Basic " + base64.b64encode(b"st\x00aff:pw").decode())
    response = anon_client.post("/orgs", {"organization": "acme"}, format="json")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"
    assert not Organization.objects.exists()

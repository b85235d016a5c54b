"""API keys: issue, authenticate, refuse, revoke, and survive a Redis outage (real Redis, real PostgreSQL)."""

import pytest
from django.conf import settings
from django.core.cache import cache

from apikeys.models import APIKey
from apikeys.services import _cache_key
from tests.conftest import api_auth, key_client
from tests.redis_server import redis_cache_settings

pytestmark = pytest.mark.django_db(transaction=True)


def people_url(org: str) -> str:
    return f"/orgs/{org}/people"


def test_staff_issues_key_shown_once(staff_client, make_org):
    make_org("acme")
    response = staff_client.post("/orgs/acme/api-key", {"user": "alice", "api_key_name": "ci"}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    secret = body["api_key"]
    assert secret.startswith("fp_") and len(secret) > 40
    assert body["api_key_name"] == "ci" and body["organization"] == "acme"
    # Only a hash is stored: the secret appears in no column of any key row.
    row = APIKey.objects.values().get()
    assert all(secret not in str(value) and secret.split("_", 2)[2] not in str(value) for value in row.values())
    # Never shown again: the key listing in the revoke answer has no secret.
    response = staff_client.delete("/orgs/acme/api-key", {"api_auth": {"user": "alice", "api_key_name": "ci"}},
                                   format="json")
    assert response.status_code == 200 and "api_key" not in response.json()


def test_anonymous_and_key_holders_cannot_issue_keys(anon_client, make_org, make_key):
    org = make_org("acme")
    assert anon_client.post("/orgs/acme/api-key", {"user": "a", "api_key_name": "b"}, format="json").status_code in (
        401, 403)
    issued = make_key(org)
    response = key_client(issued).post("/orgs/acme/api-key", {"user": "a", "api_key_name": "b"}, format="json")
    assert response.status_code == 403
    assert APIKey.objects.count() == 1


def test_duplicate_active_key_name_conflicts(staff_client, make_org):
    make_org("acme")
    body = {"user": "alice", "api_key_name": "ci"}
    assert staff_client.post("/orgs/acme/api-key", body, format="json").status_code == 201
    response = staff_client.post("/orgs/acme/api-key", body, format="json")
    assert response.status_code == 409


@pytest.mark.parametrize(
    "body", [{}, {"user": "alice"}, {"user": 5, "api_key_name": "x"}, {"user": "", "api_key_name": "x"}]
)
def test_bad_key_bodies_get_400(staff_client, make_org, body):
    make_org("acme")
    response = staff_client.post("/orgs/acme/api-key", body, format="json")
    assert response.status_code == 400
    assert "error" in response.json()
    assert not APIKey.objects.exists()


def test_key_for_unknown_org_is_404(staff_client, db):
    response = staff_client.post("/orgs/nope/api-key", {"user": "a", "api_key_name": "b"}, format="json")
    assert response.status_code == 404


@pytest.mark.parametrize("header", ["bearer", "x-api-key"])
def test_key_authenticates_data_route(make_org, make_key, header):
    issued = make_key(make_org("acme"))
    response = key_client(issued, header=header).get(people_url("acme"))
    assert response.status_code == 200, response.content
    assert response.json()["results"] == []


def test_wrong_and_malformed_keys_are_refused(make_org, make_key, anon_client):
    issued = make_key(make_org("acme"))
    prefix = issued.api_key.prefix
    for bad in [f"fp_{prefix}_wrongsecret", "fp_000000000000_x", "garbage", issued.plaintext + "x"]:
        anon_client.credentials(HTTP_AUTHORIZATION=f"Bearer {bad}")
        response = anon_client.get(people_url("acme"))
        assert response.status_code == 401, bad
        assert response.json()["error"]["code"] == "authentication_failed"
    anon_client.credentials()
    assert anon_client.get(people_url("acme")).status_code in (401, 403)


def test_key_of_another_org_is_refused_without_leaking(make_org, make_key):
    make_org("acme")
    other = make_key(make_org("globex"))
    existing = key_client(other).get(people_url("acme"))
    missing = key_client(other).get(people_url("does-not-exist"))
    assert existing.status_code == missing.status_code == 403
    assert existing.json() == missing.json()


def test_mismatching_api_auth_is_refused(make_org, make_key):
    issued = make_key(make_org("acme"), user="alice", name="k1")
    client = key_client(issued)
    body = {"images": ["x"], "name": "n", "api_auth": {"user": "alice", "api_key_name": "other"}}
    response = client.post("/register/acme", body, format="json")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"


def test_revoked_key_fails_on_next_request_even_when_cached(make_org, make_key, staff_client):
    issued = make_key(make_org("acme"))
    client = key_client(issued)
    assert client.get(people_url("acme")).status_code == 200
    assert cache.get(_cache_key(issued.api_key.prefix)) is not None  # it is cached now
    response = staff_client.delete("/orgs/acme/api-key", {"api_auth": api_auth(issued)}, format="json")
    assert response.status_code == 200
    refused = client.get(people_url("acme"))
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "authentication_failed"


def test_key_may_revoke_itself_but_not_another(make_org, make_key):
    org = make_org("acme")
    first = make_key(org, user="alice", name="one")
    second = make_key(org, user="bob", name="two")
    response = key_client(first).delete("/orgs/acme/api-key", {"api_auth": api_auth(second)}, format="json")
    assert response.status_code == 403
    assert key_client(second).get(people_url("acme")).status_code == 200
    response = key_client(first).delete("/orgs/acme/api-key", {"api_auth": api_auth(first)}, format="json")
    assert response.status_code == 200
    assert key_client(first).get(people_url("acme")).status_code == 401


def test_deactivated_organization_keys_fail_at_once(make_org, make_key):
    from organizations.services import organization_deactivate

    org = make_org("acme")
    issued = make_key(org)
    assert key_client(issued).get(people_url("acme")).status_code == 200
    organization_deactivate(organization=org)
    assert key_client(issued).get(people_url("acme")).status_code == 401


def test_cache_holds_no_plaintext_secret(make_org, make_key):
    import redis

    issued = make_key(make_org("acme"))
    assert key_client(issued).get(people_url("acme")).status_code == 200
    client = redis.Redis.from_url(settings.CACHES["default"]["LOCATION"])
    secret = issued.plaintext.split("_", 2)[2]
    for key in client.scan_iter("*"):
        assert secret.encode() not in key
        assert secret.encode() not in (client.get(key) or b"")




def test_redis_outage_falls_back_to_database(private_redis, make_org, make_key, staff_client):
    org = make_org("acme")
    valid = make_key(org, name="valid")
    revoked = make_key(org, name="revoked")
    assert key_client(valid).get(people_url("acme")).status_code == 200
    assert key_client(revoked).get(people_url("acme")).status_code == 200  # both cached now
    assert staff_client.delete("/orgs/acme/api-key", {"api_auth": api_auth(revoked)}, format="json").status_code == 200

    private_redis.stop()  # Redis goes away mid-run

    assert key_client(valid).get(people_url("acme")).status_code == 200
    assert key_client(revoked).get(people_url("acme")).status_code == 401
    # Revoking while Redis is down still takes effect at once.
    assert staff_client.delete("/orgs/acme/api-key", {"api_auth": api_auth(valid)}, format="json").status_code == 200
    assert key_client(valid).get(people_url("acme")).status_code == 401


def test_unreachable_redis_address_falls_back_to_database(settings, make_org, make_key):
    from tests.redis_server import free_port

    settings.CACHES = redis_cache_settings(f"redis://127.0.0.1:{free_port()}/0")
    issued = make_key(make_org("acme"))
    assert key_client(issued).get(people_url("acme")).status_code == 200
    assert key_client(issued).get(people_url("acme")).status_code == 200

"""Key expiry and rotation, through the real Redis cache: an expired key is refused like a revoked
one (REST and WebSocket) even while cached; a rotated key's old secret stops at once, or at the end
of its grace and not a cache lifetime later; listing keys shows no secret."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.core.cache import cache
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from apikeys.models import APIKey
from apikeys.services import IssuedKey, _cache_key, api_key_issue, api_key_revoke
from apikeys.websocket import CLOSE_UNAUTHORIZED
from organizations.models import Organization
from tests.conftest import key_client
from tests.websocket import ORIGIN, application, socket_path

pytestmark = pytest.mark.django_db(transaction=True)

PEOPLE = "/orgs/acme/people"


@pytest.fixture
def staff_client(staff_user) -> APIClient:
    """Staff by session (as the admin's pages): no password hash per call (Basic has its own tests)."""
    client = APIClient()
    client.force_login(staff_user)
    return client


def status_of(issued: IssuedKey | str) -> int:
    plaintext = issued if isinstance(issued, str) else issued.plaintext
    client = key_client(IssuedKey(api_key=None, plaintext=plaintext))  # type: ignore[arg-type]
    return client.get(PEOPLE).status_code


def cached(prefix: str):
    return cache.get(_cache_key(prefix))


def wait_until(moment) -> None:
    time.sleep(max(0.0, (moment - timezone.now()).total_seconds()) + 0.05)


def test_an_expired_key_is_refused_like_a_revoked_one_even_while_cached(make_org):
    org = make_org("acme")
    ends = timezone.now() + timedelta(seconds=1.2)
    expiring = api_key_issue(organization=org, user="alice", name="soon", expires_at=ends)
    revoked = api_key_issue(organization=org, user="alice", name="gone")
    assert status_of(expiring) == 200 and status_of(expiring) == 200
    assert isinstance(cached(expiring.api_key.prefix), dict)  # the second call was a cache hit
    api_key_revoke(api_key=revoked.api_key)
    wait_until(ends)
    assert isinstance(cached(expiring.api_key.prefix), dict)  # still cached: the TTL has not run out
    late = key_client(expiring).get(PEOPLE)
    refused = key_client(revoked).get(PEOPLE)
    assert late.status_code == refused.status_code == 401
    assert late.content == refused.content
    # And from the database, once the entry is gone.
    cache.delete(_cache_key(expiring.api_key.prefix))
    assert status_of(expiring) == 401


def test_a_key_issued_through_the_api_with_scopes_and_expiry_lists_them(make_org, staff_client):
    make_org("acme")
    ends = (timezone.now() + timedelta(days=30)).replace(microsecond=0)
    answer = staff_client.post("/orgs/acme/api-key", {"user": "lobby", "api_key_name": "kiosk",
                                                      "scopes": ["recognize"], "expires_at": ends.isoformat()},
                               format="json")
    assert answer.status_code == 201, answer.content
    issued = answer.json()
    assert issued["scopes"] == ["recognize"] and issued["api_key"].startswith("fp_")
    assert issued["expires_at"].startswith(ends.strftime("%Y-%m-%dT%H:%M:%S"))
    default = staff_client.post("/orgs/acme/api-key", {"user": "alice", "api_key_name": "laptop"}, format="json")
    assert default.json()["scopes"] == ["recognize", "enrol", "manage"] and default.json()["expires_at"] is None

    listing = staff_client.get("/orgs/acme/api-keys")
    assert listing.status_code == 200
    rows = {row["api_key_name"]: row for row in listing.json()["results"]}
    assert rows["kiosk"]["id"] == issued["id"] and rows["kiosk"]["scopes"] == ["recognize"]
    assert rows["kiosk"]["prefix"] == issued["prefix"] and rows["kiosk"]["user"] == "lobby"
    assert {"created_at", "last_used_at", "expires_at", "revoked_at"} <= set(rows["kiosk"])
    secret = issued["api_key"].split("_", 2)[2]
    assert secret not in listing.content.decode() and "api_key\"" not in listing.content.decode()
    assert "secret_hash" not in listing.content.decode()
    assert key_client(IssuedKey(api_key=None, plaintext=issued["api_key"])).get(
        "/orgs/acme/api-keys").status_code == 403  # staff only


BAD_EXPIRY = st.one_of(
    st.integers(), st.booleans(), st.text(max_size=12), st.lists(st.integers(), max_size=2),
    st.timedeltas(min_value=timedelta(days=-3650), max_value=timedelta(seconds=-1)).map(
        lambda ago: (timezone.now() + ago).isoformat()),
)
BAD_SCOPES = st.one_of(
    st.just([]), st.text(max_size=8), st.integers(),
    st.lists(st.text(max_size=10), min_size=1, max_size=4).filter(
        lambda items: not set(items) <= {"recognize", "enrol", "manage"}),
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.one_of(st.fixed_dictionaries({"expires_at": BAD_EXPIRY}),
                      st.fixed_dictionaries({"scopes": BAD_SCOPES})))
def test_bad_scopes_or_expiry_are_a_400_and_issue_nothing(make_org, staff_client, body):
    make_org_once(make_org)
    answer = staff_client.post("/orgs/acme/api-key", {"user": "alice", "api_key_name": "x", **body}, format="json")
    assert answer.status_code == 400, (body, answer.content)
    assert answer.json()["error"]["code"] == "invalid_input"
    assert answer.json()["error"]["details"]["field"] in {"expires_at", "scopes"}
    assert not APIKey.objects.exists()


def make_org_once(make_org):
    if not Organization.objects.filter(slug="acme").exists():
        make_org("acme")


def rotate(staff_client, issued: IssuedKey, **body):
    return staff_client.post(f"/orgs/acme/api-keys/{issued.api_key.pk}/rotate", body, format="json")


def test_rotation_without_grace_stops_the_old_secret_at_once_even_while_cached(make_org, staff_client):
    org = make_org("acme")
    issued = api_key_issue(organization=org, user="alice", name="laptop", scopes=["recognize", "manage"])
    assert status_of(issued) == 200 and isinstance(cached(issued.api_key.prefix), dict)
    answer = rotate(staff_client, issued)
    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert body["id"] == issued.api_key.pk and body["api_key_name"] == "laptop"
    assert body["scopes"] == ["recognize", "manage"] and body["previous_valid_until"] is None
    assert body["prefix"] != issued.api_key.prefix and answer["Cache-Control"] == "no-store"
    assert status_of(issued) == 401
    assert status_of(body["api_key"]) == 200
    # The new secret is shown in that answer only.
    assert body["api_key"].split("_", 2)[2] not in staff_client.get("/orgs/acme/api-keys").content.decode()


@pytest.mark.parametrize("read_from", ["cache", "database"])
def test_with_grace_the_old_secret_works_until_the_grace_ends_then_401(make_org, staff_client, read_from):
    org = make_org("acme")
    issued = api_key_issue(organization=org, user="alice", name="laptop")
    assert status_of(issued) == 200  # cached before the rotation, with no end of its own
    answer = rotate(staff_client, issued, grace_seconds=2)
    assert answer.status_code == 200, answer.content
    body = answer.json()
    ends = APIKey.objects.get(pk=issued.api_key.pk).previous_valid_until
    assert body["previous_valid_until"] is not None
    if read_from == "database":
        cache.delete(_cache_key(issued.api_key.prefix))
    assert status_of(issued) == 200 and status_of(body["api_key"]) == 200
    wait_until(ends)
    assert status_of(issued) == 401  # at the end of the grace, not a cache TTL later
    assert status_of(body["api_key"]) == 200


def test_a_second_rotation_ends_the_first_ones_grace_at_once(make_org, staff_client):
    org = make_org("acme")
    issued = api_key_issue(organization=org, user="alice", name="laptop")
    first = rotate(staff_client, issued, grace_seconds=3600).json()
    assert status_of(issued) == 200
    second = rotate(staff_client, issued, grace_seconds=3600).json()
    assert status_of(issued) == 401
    assert status_of(first["api_key"]) == 200 and status_of(second["api_key"]) == 200
    # Revoking ends both the current secret and the one in its grace.
    api_key_revoke(api_key=APIKey.objects.get(pk=issued.api_key.pk))
    assert status_of(first["api_key"]) == 401 and status_of(second["api_key"]) == 401


@pytest.mark.parametrize("grace", [-1, 86401, "60", 1.5, True, None, [60]])
def test_a_bad_grace_is_a_400_and_changes_nothing(make_org, staff_client, grace):
    org = make_org("acme")
    issued = api_key_issue(organization=org, user="alice", name="laptop")
    answer = rotate(staff_client, issued, grace_seconds=grace)
    assert answer.status_code == 400 and answer.json()["error"]["details"]["field"] == "grace_seconds"
    assert APIKey.objects.get(pk=issued.api_key.pk).prefix == issued.api_key.prefix
    assert status_of(issued) == 200


def test_revoked_or_expired_keys_cannot_be_rotated_and_missing_ones_are_404(make_org, staff_client):
    org = make_org("acme")
    revoked = api_key_issue(organization=org, user="alice", name="old")
    api_key_revoke(api_key=revoked.api_key)
    assert rotate(staff_client, revoked).json()["error"]["code"] == "api_key_revoked"
    expired = api_key_issue(organization=org, user="alice", name="exp", expires_at=timezone.now() + timedelta(1))
    APIKey.objects.filter(pk=expired.api_key.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    answer = rotate(staff_client, expired)
    assert answer.status_code == 409 and answer.json()["error"]["code"] == "api_key_expired"
    missing = staff_client.post("/orgs/acme/api-keys/987654321/rotate", {}, format="json")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "api_key_not_found"
    assert key_client(api_key_issue(organization=org, user="a", name="k")).post(
        f"/orgs/acme/api-keys/{revoked.api_key.pk}/rotate", {}, format="json").status_code == 403


async def close_of(path: str) -> dict:
    communicator = WebsocketCommunicator(application, path, headers=[ORIGIN])
    connected, _ = await communicator.connect(timeout=30)
    assert connected
    message = await communicator.receive_output(timeout=30)
    while message["type"] != "websocket.close":
        message = await communicator.receive_output(timeout=30)
    await communicator.wait()
    return message


async def test_the_socket_refuses_an_expired_key_like_a_revoked_one(make_org):
    org = await database_sync_to_async(make_org)("acme")
    ends = timezone.now() + timedelta(seconds=1)
    expiring = await database_sync_to_async(api_key_issue)(organization=org, user="alice", name="k", expires_at=ends)
    revoked = await database_sync_to_async(api_key_issue)(organization=org, user="alice", name="r")
    await database_sync_to_async(api_key_revoke)(api_key=revoked.api_key)
    await database_sync_to_async(status_of)(expiring)  # cached while valid
    await database_sync_to_async(wait_until)(ends)
    late, gone = await close_of(socket_path(expiring)), await close_of(socket_path(revoked))
    assert late["code"] == gone["code"] == CLOSE_UNAUTHORIZED

"""Brute force and floods are throttled through the cache: per API key, per client address, and
failed authentications per address. Refusals are 429 in the one error shape, with Retry-After."""

import base64

import pytest

from tests.conftest import key_client

pytestmark = pytest.mark.django_db(transaction=True)

PEOPLE = "/orgs/acme/people"




def assert_throttled(response) -> None:
    assert response.status_code == 429, response.content
    error = response.json()["error"]
    assert error["code"] == "throttled"
    retry_after = int(response["Retry-After"])
    assert 1 <= retry_after <= 60
    assert error["details"]["retry_after"] == retry_after


def test_guessing_keys_is_throttled_per_address_before_any_key_is_checked(rates, make_org, make_key, anon_client):
    rates(auth_failure="5/min")
    valid = make_key(make_org("acme"))
    prefix = valid.api_key.prefix
    for attempt in range(5):
        anon_client.credentials(HTTP_AUTHORIZATION=f"Bearer fp_{prefix}_guess{attempt}")
        response = anon_client.get(PEOPLE)
        assert response.status_code == 401
    anon_client.credentials(HTTP_AUTHORIZATION=f"Bearer fp_{prefix}_guess-six")
    assert_throttled(anon_client.get(PEOPLE))
    # Blocked means blocked: even the right key from that address learns nothing until it clears.
    assert_throttled(key_client(valid).get(PEOPLE))
    # A spoofed X-Forwarded-For is not a fresh address (no proxy is trusted by default).
    assert_throttled(key_client(valid).get(PEOPLE, HTTP_X_FORWARDED_FOR="203.0.113.9"))
    # Other addresses, and so the key's owner elsewhere, are unaffected: prefixes are public, so
    # failures never lock out a key itself.
    assert key_client(valid).get(PEOPLE, REMOTE_ADDR="10.0.0.2").status_code == 200


def test_successful_requests_do_not_count_as_failures(rates, make_org, make_key):
    rates(auth_failure="3/min")
    client = key_client(make_key(make_org("acme")))
    for _ in range(10):
        assert client.get(PEOPLE).status_code == 200


def test_staff_password_guessing_is_throttled_too(rates, staff_user, anon_client, db):
    rates(auth_failure="3/min")
    for attempt in range(3):
        token = base64.b64encode(f"staff:wrong{attempt}".encode()).decode()
        anon_client.credentials(HTTP_AUTHORIZATION=f"Basic {token}")
        assert anon_client.post("/orgs", {"organization": "x"}, format="json").status_code == 401
    anon_client.credentials(HTTP_AUTHORIZATION="Basic " + base64.b64encode(b"staff:staff-pass-123").decode())
    assert_throttled(anon_client.post("/orgs", {"organization": "x"}, format="json"))
    assert anon_client.post("/orgs", {"organization": "x"}, format="json", REMOTE_ADDR="10.0.0.3").status_code == 201


def test_each_key_has_its_own_budget(rates, make_org, make_key):
    rates(api_key="3/min")
    org = make_org("acme")
    busy, quiet = key_client(make_key(org, name="busy")), key_client(make_key(org, name="quiet"))
    for _ in range(3):
        assert busy.get(PEOPLE).status_code == 200
    assert_throttled(busy.get(PEOPLE))
    # The same key from another address is still the same key.
    assert_throttled(busy.get(PEOPLE, REMOTE_ADDR="10.0.0.4"))
    assert quiet.get(PEOPLE).status_code == 200


def test_each_address_has_its_own_budget(rates, make_org, make_key):
    rates(address="4/min")
    org = make_org("acme")
    first, second = key_client(make_key(org, name="one")), key_client(make_key(org, name="two"))
    assert first.get(PEOPLE).status_code == 200
    assert second.get(PEOPLE).status_code == 200
    assert first.get(PEOPLE).status_code == 200
    assert second.get(PEOPLE).status_code == 200
    assert_throttled(second.get(PEOPLE))
    assert second.get(PEOPLE, REMOTE_ADDR="10.0.0.5").status_code == 200


@pytest.mark.parametrize("position", [0, 10, -1])
def test_a_secret_off_by_one_character_is_refused(make_org, make_key, anon_client, position):
    # Verification compares keyed hashes with hmac.compare_digest (apikeys/services.py); what a
    # client can observe is that near misses anywhere in the secret are refused alike.
    issued = make_key(make_org("acme"))
    scheme, prefix, secret = issued.plaintext.split("_", 2)
    chars = list(secret)
    chars[position] = "A" if chars[position] != "A" else "B"
    anon_client.credentials(HTTP_AUTHORIZATION=f"Bearer {scheme}_{prefix}_{''.join(chars)}")
    response = anon_client.get(PEOPLE)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"

"""Staff passwords: refused before the password hasher once the budget is spent, and the admin
login form locks out with django-axes."""

from __future__ import annotations

import base64

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from tests.security.counting_hasher import CountingHasher

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def hasher(settings):
    settings.PASSWORD_HASHERS = ["tests.security.counting_hasher.CountingHasher"]
    CountingHasher.calls = 0
    return CountingHasher


@pytest.fixture
def staff(hasher, db):
    user = get_user_model().objects.create_user("staff", password="staff-pass-123", is_staff=True)
    hasher.calls = 0
    return user


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def post_org(client: APIClient, authorization: str, address: str, slug: str = "neworg") -> int:
    return client.post("/orgs", {"organization": slug}, format="json", HTTP_AUTHORIZATION=authorization,
                       REMOTE_ADDR=address).status_code


def test_after_n_wrong_passwords_the_next_attempt_is_refused_without_hashing(rates, staff, hasher):
    rates(auth_failure="3/min")
    client = APIClient()
    for attempt in range(3):
        assert post_org(client, basic("staff", f"wrong{attempt}"), "192.0.2.10") == 401
    assert hasher.calls == 3  # each wrong guess cost one hash
    # Spent: the right password and an unknown user alike are refused before any hash.
    assert post_org(client, basic("staff", "staff-pass-123"), "192.0.2.10") == 429
    assert post_org(client, basic("nobody", "whatever"), "192.0.2.10") == 429
    assert hasher.calls == 3
    # Another address still signs in (one hash).
    assert post_org(client, basic("staff", "staff-pass-123"), "192.0.2.11") == 201
    assert hasher.calls == 4


@pytest.mark.parametrize(
    "addresses", [["198.51.100.{n}"], ["2001:db8:{n:x}::1"], ["10.9.{n}.1", "2001:db8:a:{n:x}::2"]]
)
def test_guesses_at_one_user_from_many_addresses_are_bounded_without_locking_the_user_out(
    rates, staff, hasher, addresses
):
    rates(auth_failure="5/min", password_failure_user="4/min")
    client = APIClient()
    # The staff member signed in from home before the attack.
    assert post_org(client, basic("staff", "staff-pass-123"), "192.0.2.99", slug="before") == 201
    hasher.calls = 0
    sources = [pattern.format(n=n) for n in range(1, 13) for pattern in addresses]
    codes = [post_org(client, basic("staff", f"guess{n}"), address) for n, address in enumerate(sources)]
    assert codes == [401] * 4 + [429] * (len(sources) - 4)
    assert hasher.calls == 4  # the username's budget bounds the hashes, whatever the source
    # The sources are refused, the right password included; the user from a known network is not.
    assert post_org(client, basic("staff", "staff-pass-123"), sources[-1]) == 429
    assert post_org(client, basic("staff", "staff-pass-123"), "192.0.2.99", slug="during") == 201
    assert hasher.calls == 5


@pytest.mark.parametrize("wrong", [30, 41])
def test_wrong_passwords_from_one_address_lock_out_no_other_staff_member(default_rates, staff, hasher, wrong):
    get_user_model().objects.create_user("other", password="other-pass-456", is_staff=True)
    default_rates(auth_failure=f"{wrong}/min")  # the shipped rates otherwise
    client = APIClient()
    codes = [post_org(client, basic(f"user{n}", "x"), "203.0.113.8") for n in range(wrong + 3)]
    assert codes == [401] * wrong + [429] * 3
    # Every other staff member signs in from anywhere else, known network or not.
    assert post_org(client, basic("other", "other-pass-456"), "203.0.113.9") == 201
    assert post_org(client, basic("staff", "staff-pass-123"), "2001:db8:77::1", slug="neworg2") == 201


def test_successful_staff_requests_give_their_reservation_back(rates, staff, hasher):
    rates(auth_failure="2/min", password_failure_user="2/min")
    client = APIClient()
    for n in range(5):
        assert post_org(client, basic("staff", "staff-pass-123"), "127.0.0.1", slug=f"org{n}") == 201
    assert post_org(client, basic("staff", "wrong"), "127.0.0.1") == 401


def admin_login(client, password: str, address: str):
    return client.post(
        "/admin/login/?next=/admin/", {"username": "staff", "password": password}, REMOTE_ADDR=address
    )


def test_admin_login_locks_out_an_address_after_repeated_wrong_passwords(settings, staff, hasher, client):
    settings.AXES_FAILURE_LIMIT = 3
    for attempt in range(2):
        response = admin_login(client, f"wrong{attempt}", "203.0.113.50")
        assert response.status_code == 200  # the form again, with its error
        assert "_auth_user_id" not in client.session
    assert admin_login(client, "wrong2", "203.0.113.50").status_code == 429  # the limit reached
    assert hasher.calls == 3
    locked = admin_login(client, "staff-pass-123", "203.0.113.50")
    assert locked.status_code == 429
    assert "_auth_user_id" not in client.session
    assert hasher.calls == 3  # refused before the password was hashed
    # Any username from the locked address is refused too (no walking through usernames).
    other = client.post("/admin/login/", {"username": "other", "password": "x"}, REMOTE_ADDR="203.0.113.50")
    assert other.status_code == 429
    assert hasher.calls == 3
    # The locked-out address does not lock out staff elsewhere.
    elsewhere = admin_login(client, "staff-pass-123", "203.0.113.51")
    assert elsewhere.status_code == 302
    assert client.session["_auth_user_id"] == str(staff.pk)


def test_admin_login_counts_an_ipv6_64_as_one_address(settings, staff, hasher, client):
    settings.AXES_FAILURE_LIMIT = 2
    assert admin_login(client, "wrong0", "2001:db8:5:6::1").status_code == 200
    assert admin_login(client, "wrong1", "2001:db8:5:6::2").status_code == 429
    assert admin_login(client, "staff-pass-123", "2001:db8:5:6:ffff::9").status_code == 429
    assert hasher.calls == 2
    assert admin_login(client, "staff-pass-123", "2001:db8:5:7::1").status_code == 302


def test_test_client_login_without_a_request_still_works(staff, client):
    assert client.login(username="staff", password="staff-pass-123")

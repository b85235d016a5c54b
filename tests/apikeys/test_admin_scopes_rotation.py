"""The admin offers what the API does: scopes and expiry at issue, rotation with an optional grace,
the new secret shown once in the answer to the POST."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from apikeys.models import APIKey
from apikeys.services import IssuedKey, api_key_issue
from tests.conftest import key_client

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def admin_browser(db) -> Client:
    browser = Client()
    browser.force_login(get_user_model().objects.create_superuser("root", password="root-pass-123"))
    return browser


def works(plaintext: str, path: str = "/orgs/acme/people") -> int:
    return key_client(IssuedKey(api_key=None, plaintext=plaintext)).get(path).status_code  # type: ignore[arg-type]


def test_a_key_issued_in_the_admin_carries_its_scopes_and_expiry(admin_browser, make_org):
    org = make_org("acme")
    form = admin_browser.get("/admin/apikeys/apikey/add/").content.decode()
    assert 'name="scopes"' in form and 'name="expires_at' in form
    ends = timezone.localtime() + timedelta(days=3)
    added = admin_browser.post("/admin/apikeys/apikey/add/", {
        "organization": org.pk, "user": "lobby", "name": "kiosk", "scopes": ["recognize"],
        "expires_at_0": ends.strftime("%Y-%m-%d"), "expires_at_1": ends.strftime("%H:%M:%S"),
    })
    assert added.status_code == 200, added.content.decode()[:2000]
    key = APIKey.objects.get(name="kiosk")
    assert key.scopes == ["recognize"] and abs((key.expires_at - ends).total_seconds()) < 1
    plaintext = added.context["plaintext"]
    assert works(plaintext) == 403  # people need `manage`
    assert works(plaintext, "/orgs/acme/unknown-faces") == 403


@pytest.mark.parametrize("body", [{"user": "a", "name": "none"},  # no scope ticked
                                  {"user": "a", "name": "odd", "scopes": ["root"]},
                                  {"user": "a", "name": "past", "scopes": ["manage"],
                                   "expires_at_0": "2001-01-01", "expires_at_1": "00:00:00"}])
def test_the_admin_refuses_a_key_without_scopes_or_with_a_past_expiry(admin_browser, make_org, body):
    org = make_org("acme")
    refused = admin_browser.post("/admin/apikeys/apikey/add/", {"organization": org.pk, **body})
    assert refused.status_code == 200 and refused.context["adminform"].form.errors
    assert not APIKey.objects.exists()


@pytest.mark.parametrize("grace", [0, 3600])
def test_rotating_in_the_admin_shows_the_new_secret_once(admin_browser, make_org, grace):
    org = make_org("acme")
    issued = api_key_issue(organization=org, user="alice", name="laptop")
    page = admin_browser.get(f"/admin/apikeys/apikey/{issued.api_key.pk}/change/").content.decode()
    rotate_url = f"/admin/apikeys/apikey/{issued.api_key.pk}/rotate/"
    assert rotate_url in page
    assert 'name="grace_seconds"' in admin_browser.get(rotate_url).content.decode()
    rotated = admin_browser.post(rotate_url, {"grace_seconds": grace})
    assert rotated.status_code == 200 and "no-store" in rotated["Cache-Control"]
    plaintext = rotated.context["plaintext"]
    assert plaintext != issued.plaintext and plaintext in rotated.content.decode()
    assert works(plaintext) == 200
    assert works(issued.plaintext) == (200 if grace else 401)
    assert ("works until" in rotated.content.decode()) is bool(grace)
    # Never shown again.
    assert plaintext not in admin_browser.get(f"/admin/apikeys/apikey/{issued.api_key.pk}/change/").content.decode()


@pytest.mark.parametrize("grace", ["-1", "86401", "soon"])
def test_a_bad_grace_in_the_admin_rotates_nothing(admin_browser, make_org, grace):
    org = make_org("acme")
    issued = api_key_issue(organization=org, user="alice", name="laptop")
    answer = admin_browser.post(f"/admin/apikeys/apikey/{issued.api_key.pk}/rotate/", {"grace_seconds": grace})
    assert answer.status_code == 200 and "plaintext" not in answer.context
    assert works(issued.plaintext) == 200

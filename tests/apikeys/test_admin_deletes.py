"""Deletes and revocation in the Django admin go through the services.

Real Redis as the key cache (a private redis-server): each key is used once first so it is cached,
then the admin acts, and the very next request must fail.
"""

from __future__ import annotations

import threading

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db import connections
from django.db.models.signals import post_delete
from django.test import Client

from apikeys.models import APIKey
from apikeys.services import ABSENT, _cache_key, api_key_verify
from faces.models import EmbeddedVector, IndexState
from organizations.models import Organization
from organizations.services import organization_delete
from organizations.signals import organization_deleted
from tests.conftest import key_client

pytestmark = pytest.mark.django_db(transaction=True)

PEOPLE = "/orgs/acme/people"


@pytest.fixture
def admin_browser(db) -> Client:
    user = get_user_model().objects.create_superuser("root", password="root-pass-123")
    browser = Client()
    browser.force_login(user)
    return browser


@pytest.fixture
def cached_key(private_redis, make_org, make_key):
    issued = make_key(make_org("acme"))
    assert key_client(issued).get(PEOPLE).status_code == 200
    assert cache.get(_cache_key(issued.api_key.prefix)) is not None  # served from Redis from now on
    return issued


def test_a_key_deleted_on_its_admin_page_fails_on_the_very_next_request(admin_browser, cached_key):
    url = f"/admin/apikeys/apikey/{cached_key.api_key.pk}/delete/"
    response = admin_browser.post(url, {"post": "yes"})
    assert response.status_code == 302
    assert not APIKey.objects.filter(pk=cached_key.api_key.pk).exists()
    assert key_client(cached_key).get(PEOPLE).status_code == 401


def test_keys_deleted_in_bulk_in_the_admin_fail_at_once(admin_browser, cached_key, make_key):
    other = make_key(cached_key.api_key.organization, name="second")
    assert key_client(other).get(PEOPLE).status_code == 200
    response = admin_browser.post(
        "/admin/apikeys/apikey/",
        {"action": "delete_selected", "_selected_action": [cached_key.api_key.pk, other.api_key.pk], "post": "yes"},
    )
    assert response.status_code == 302
    assert not APIKey.objects.exists()
    assert key_client(cached_key).get(PEOPLE).status_code == 401
    assert key_client(other).get(PEOPLE).status_code == 401


def test_the_revoke_button_on_the_key_page_revokes_at_once(admin_browser, cached_key):
    page = admin_browser.get(f"/admin/apikeys/apikey/{cached_key.api_key.pk}/change/")
    assert page.status_code == 200
    revoke_url = f"/admin/apikeys/apikey/{cached_key.api_key.pk}/revoke/"
    assert f'formaction="{revoke_url}"' in page.content.decode()
    assert admin_browser.get(revoke_url).status_code == 405  # a GET (a prefetch, a link) changes nothing
    assert key_client(cached_key).get(PEOPLE).status_code == 200
    response = admin_browser.post(revoke_url)
    assert response.status_code == 302
    assert key_client(cached_key).get(PEOPLE).status_code == 401
    cached_key.api_key.refresh_from_db()
    assert cached_key.api_key.revoked_at is not None
    assert "Revoked" in admin_browser.get(f"/admin/apikeys/apikey/{cached_key.api_key.pk}/change/").content.decode()


def test_the_revoke_view_needs_the_change_permission(cached_key, db):
    viewer = get_user_model().objects.create_user("viewer", password="viewer-pass-123", is_staff=True)
    browser = Client()
    browser.force_login(viewer)
    response = browser.post(f"/admin/apikeys/apikey/{cached_key.api_key.pk}/revoke/")
    assert response.status_code == 403
    assert key_client(cached_key).get(PEOPLE).status_code == 200


def test_an_organisation_deleted_in_the_admin_goes_through_organization_delete(
    admin_browser, cached_key, manifest
):
    organization = cached_key.api_key.organization
    client = key_client(cached_key)
    photo = manifest["Barack_Obama"][0]
    assert client.post("/register/acme", {"name": "Obama", "images": [photo.b64()]}, format="json").status_code == 201
    assert EmbeddedVector.objects.filter(organization_id=organization.pk).exists()
    signalled: list[int] = []

    def record(sender, organization, **kwargs):
        signalled.append(organization.pk)

    organization_deleted.connect(record)
    try:
        response = admin_browser.post(f"/admin/organizations/organization/{organization.pk}/delete/", {"post": "yes"})
    finally:
        organization_deleted.disconnect(record)
    assert response.status_code == 302
    assert signalled == [organization.pk]  # the vector store's receiver ran (Atlas drops its collection)
    assert not Organization.objects.filter(pk=organization.pk).exists()
    assert not EmbeddedVector.objects.filter(organization_id=organization.pk).exists()
    assert not IndexState.objects.filter(organization_id=organization.pk).exists()
    assert client.get(PEOPLE).status_code == 401


def test_organization_delete_evicts_the_key_cache_after_its_commit(private_redis, make_org, make_key):
    issued = make_key(make_org("acme"))
    assert key_client(issued).get(PEOPLE).status_code == 200  # cached, and last_used_at is fresh
    recached: list[object] = []

    def request_from_another_connection() -> None:
        try:
            recached.append(api_key_verify(raw_key=issued.plaintext))
        finally:
            connections.close_all()

    def meanwhile(sender, instance, **kwargs) -> None:
        # Inside organization_delete's transaction, rows deleted but not committed: a request on
        # another worker still sees the key, and caches it (again) if it is not cached.
        worker = threading.Thread(target=request_from_another_connection)
        worker.start()
        worker.join(timeout=30)

    post_delete.connect(meanwhile, sender=Organization)
    try:
        organization_delete(organization=issued.api_key.organization)
    finally:
        post_delete.disconnect(meanwhile, sender=Organization)
    assert recached and recached[0] is not None  # it really was served, and cached, meanwhile
    # The tombstone came with the commit, after that request: the very next request fails.
    assert cache.get(_cache_key(issued.api_key.prefix)) == ABSENT
    assert api_key_verify(raw_key=issued.plaintext) is None

"""The landing page and the staff admin: dashboards per organisation, search, filters, revocation."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from apikeys.models import APIKey
from faces.index import get_index
from faces.models import Face, Person
from tests.conftest import key_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client():
    user = get_user_model().objects.create_superuser("root", password="root-pass-123")
    client = Client()
    client.force_login(user)
    return client


def test_landing_page_says_what_the_service_is_and_links_demo_docs_and_admin(client):
    response = client.get("/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "face recognition" in html.lower()
    for link in ('href="/demo/"', 'href="/api/docs/"', 'href="/admin/"', 'href="/readyz"'):
        assert link in html


def test_organization_dashboard_counts_people_faces_keys_and_last_request(
    admin_client, make_org, make_key, manifest
):
    acme, other = make_org("acme"), make_org("globex")
    issued = make_key(acme, name="laptop")
    make_key(acme, name="phone")
    api = key_client(issued)
    photos = manifest["Barack_Obama"][:2]
    assert api.post("/register/acme", {"name": "Obama", "images": [p.b64() for p in photos]},
                    format="json").status_code == 201
    response = admin_client.get("/admin/organizations/organization/")
    assert response.status_code == 200
    rows = {org.slug: org for org in response.context["cl"].result_list}
    assert (rows["acme"]._people, rows["acme"]._faces, rows["acme"]._keys, rows["acme"]._active_keys) == (1, 2, 2, 2)
    assert rows["acme"]._last_request is not None
    assert (rows["globex"]._people, rows["globex"]._faces, rows["globex"]._keys) == (0, 0, 0)
    assert rows["globex"]._last_request is None
    searched = admin_client.get("/admin/organizations/organization/?q=glob")
    assert [org.slug for org in searched.context["cl"].result_list] == [other.slug]


def test_keys_are_revoked_from_the_list_and_stop_working(
    admin_client, make_org, make_key, django_capture_on_commit_callbacks
):
    org = make_org("acme")
    issued = make_key(org, name="laptop")
    api = key_client(issued)
    assert api.get("/orgs/acme/people").status_code == 200
    listing = admin_client.get("/admin/apikeys/apikey/?q=laptop")
    assert [key.pk for key in listing.context["cl"].result_list] == [issued.api_key.pk]
    assert issued.plaintext not in listing.content.decode()
    with django_capture_on_commit_callbacks(execute=True):  # the cached key is evicted on commit
        response = admin_client.post(
            "/admin/apikeys/apikey/",
            {"action": "revoke", "_selected_action": [issued.api_key.pk], "index": 0},
            follow=True,
        )
    assert response.status_code == 200
    assert "Revoked 1 key(s)." in response.content.decode()
    assert APIKey.objects.get(pk=issued.api_key.pk).revoked_at is not None
    assert api.get("/orgs/acme/people").status_code == 401
    active = admin_client.get("/admin/apikeys/apikey/?revoked_at__isempty=1")
    assert list(active.context["cl"].result_list) == []


def test_a_key_created_in_the_admin_is_shown_once_and_never_again(admin_client, make_org):
    org = make_org("acme")
    created = admin_client.post(
        "/admin/apikeys/apikey/add/", {"organization": org.pk, "user": "bob", "name": "ci"}, follow=True
    )
    assert created.status_code == 200
    shown = [str(m) for m in created.context["messages"] if "shown once" in str(m)]
    assert len(shown) == 1
    plaintext = shown[0].rsplit(" ", 1)[-1]
    key = APIKey.objects.get(organization=org, name="ci")
    assert plaintext.startswith(f"fp_{key.prefix}_")
    detail = admin_client.get(f"/admin/apikeys/apikey/{key.pk}/change/").content.decode()
    assert plaintext not in detail and key.secret_hash not in detail
    again = admin_client.get("/admin/apikeys/apikey/").content.decode()
    assert plaintext not in again


def test_deleting_a_person_in_the_admin_removes_their_vectors(admin_client, make_org, make_key, manifest):
    org = make_org("acme")
    api = key_client(make_key(org))
    api.post("/register/acme", {"name": "Obama", "images": [manifest["Barack_Obama"][0].b64()]}, format="json")
    person = Person.objects.get(organization=org)
    people = admin_client.get("/admin/faces/person/?q=oba")
    assert [p.pk for p in people.context["cl"].result_list] == [person.pk]
    assert people.context["cl"].result_list[0]._faces == 1
    admin_client.post(
        "/admin/faces/person/", {"action": "delete_selected", "_selected_action": [person.pk], "post": "yes"}
    )
    assert not Person.objects.filter(pk=person.pk).exists() and not Face.objects.exists()
    assert get_index().count(organization_id=org.pk) == 0

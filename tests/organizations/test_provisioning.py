"""Staff provisioning: list organisations with their counts (paginated), change one, delete one
with everything in it (rows, vectors, keys, kept faces), and the keys stop working at once."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from apikeys.models import APIKey
from apikeys.services import api_key_issue
from faces.index import get_index
from faces.models import EmbeddedVector, Face, Person, UnknownFace
from faces.services import person_register
from organizations.models import Organization
from recognition.services import recognize
from tests.conftest import key_client

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def staff(staff_user) -> APIClient:
    client = APIClient()
    client.force_login(staff_user)
    return client


@pytest.mark.parametrize("how_many,page_size", [(1, 50), (5, 2), (7, 3)])
def test_the_list_is_paginated_and_counts_people_faces_and_active_keys(make_org, staff, manifest, how_many,
                                                                       page_size):
    orgs = [make_org(f"org-{i:02d}") for i in range(how_many)]
    first = orgs[0]
    person_register(organization=first, name="Tony Blair", images=[p.b64() for p in manifest["Tony_Blair"][:2]])
    for name in ("a", "b", "c"):
        api_key_issue(organization=first, user="alice", name=name)
    APIKey.objects.filter(organization=first, name="c").update(revoked_at="2025-01-01T00:00:00Z")
    orgs[-1].is_active = False
    orgs[-1].save()
    seen, url = [], f"/orgs?page_size={page_size}"
    while url:
        page = staff.get(url)
        assert page.status_code == 200, page.content
        body = page.json()
        assert body["count"] == how_many and len(body["results"]) <= page_size
        seen += body["results"]
        url = body["next"]
    assert [row["organization"] for row in seen] == [org.slug for org in orgs]
    counts = {row["organization"]: (row["people_count"], row["face_count"], row["api_key_count"]) for row in seen}
    assert counts[first.slug] == (1, 2, 2)
    assert all(counts[org.slug] == (0, 0, 0) for org in orgs[1:])
    assert seen[-1]["is_active"] is False  # inactive organisations are listed too


def test_only_staff_list_organizations(make_org, anon_client):
    org = make_org("acme")
    assert anon_client.get("/orgs").status_code == 401
    assert key_client(api_key_issue(organization=org, user="a", name="k")).get("/orgs").status_code == 403


def test_patch_deactivates_and_reactivates_and_the_key_follows(make_org, staff):
    org = make_org("acme")
    issued = api_key_issue(organization=org, user="alice", name="k")
    assert key_client(issued).get("/orgs/acme/people").status_code == 200
    changed = staff.patch("/orgs/acme", {"is_active": False, "name": "Acme Ltd", "false_match_rate": 0.01,
                                         "keep_unknown_faces": True, "unknown_max_kept": 50}, format="json")
    assert changed.status_code == 200, changed.content
    assert changed.json() | {"created_at": None} == {
        "organization": "acme", "name": "Acme Ltd", "is_active": False, "false_match_rate": 0.01,
        "keep_unknown_faces": True, "unknown_retention_days": 30, "unknown_max_kept": 50, "created_at": None}
    assert key_client(issued).get("/orgs/acme/people").status_code == 401
    assert staff.patch("/orgs/acme", {"is_active": True}, format="json").status_code == 200
    assert key_client(issued).get("/orgs/acme/people").status_code == 200


def test_delete_removes_everything_of_that_organization_only(make_org, staff, manifest):
    acme, globex = make_org("acme"), make_org("globex")
    for org in (acme, globex):
        person_register(organization=org, name="Tony Blair", images=[p.b64() for p in manifest["Tony_Blair"][:2]])
        org.keep_unknown_faces = True
        org.save()
        recognize(organization=org, image=manifest["Simon_Helberg"][0].b64())
    acme_key, globex_key = (api_key_issue(organization=org, user="alice", name="k") for org in (acme, globex))
    assert key_client(acme_key).get("/orgs/acme/people").status_code == 200  # cached before the delete
    assert UnknownFace.objects.filter(organization=acme).exists()
    acme_id = acme.pk

    assert staff.delete("/orgs/acme").status_code == 204
    assert staff.get("/orgs/acme").status_code == 404
    assert staff.delete("/orgs/acme").status_code == 404
    assert key_client(acme_key).get("/orgs/acme/people").status_code == 401
    for model in (Person, Face, UnknownFace, APIKey, EmbeddedVector):
        assert not model.objects.filter(organization_id=acme_id).exists(), model
    assert get_index().count(organization_id=acme_id) == 0
    # The other organisation is whole.
    assert Organization.objects.filter(slug="globex").exists()
    assert get_index().count(organization_id=globex.pk) == 2
    assert UnknownFace.objects.filter(organization=globex).count() == 1
    assert key_client(globex_key).get("/orgs/globex/people").json()["count"] == 1


def test_only_staff_delete(make_org, anon_client):
    org = make_org("acme")
    issued = api_key_issue(organization=org, user="a", name="k")
    assert anon_client.delete("/orgs/acme").status_code == 401
    assert key_client(issued).delete("/orgs/acme").status_code == 403
    assert Organization.objects.filter(slug="acme").exists()

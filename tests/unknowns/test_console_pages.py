"""The staff console's Unknown faces page over real kept faces: what staff see, who may act, and
bad input answered in the page in the house error shape without changing anything. The browser
flow (naming, then recognition by name) is tests/e2e/test_unknown_faces.py."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client

from faces.models import Person, UnknownFace

pytestmark = pytest.mark.django_db(transaction=True)

STRANGERS = ("Simon_Helberg", "Kunal_Nayyar")


def keep(tenant, photos) -> list[int]:
    tenant.org.keep_unknown_faces = True
    tenant.org.save()
    ids = []
    for photo in photos:
        (face,) = tenant.client.post(f"/recognize/{tenant.org.slug}", {"image": photo.b64()}, format="json"
                                     ).json()["faces"]
        assert face["unknown_face"] is not None
        ids.append(face["unknown_face"])
    return ids


@pytest.fixture
def kept(acme, manifest):
    return {identity: keep(acme, manifest[identity][:2]) for identity in STRANGERS}


def staff(*, codenames: list[str]) -> Client:
    user = get_user_model().objects.create_user(f"staff-{len(codenames)}", password="x", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="organizations",
                                                        codename__in=codenames))
    client = Client()
    client.force_login(user)
    return client


def page_url(org) -> str:
    return f"/admin/organizations/organization/{org.pk}/unknown-faces/"


def cards(html: str) -> list[tuple[int, int]]:
    return [(int(c), int(s)) for c, s in re.findall(r'data-cluster="(\d+)" data-size="(\d+)"', html)]


def test_the_page_shows_each_cluster_with_its_crops_and_only_this_organisations(acme, kept, make_tenant, manifest):
    other = make_tenant("globex")
    (foreign,) = keep(other, manifest["Jim_Parsons"][:1])
    client = staff(codenames=["view_organization"])
    response = client.get(page_url(acme.org))
    assert response.status_code == 200
    html = response.content.decode()
    assert sorted(cards(html)) == sorted((min(ids), 2) for ids in kept.values())
    for ids in kept.values():
        for face_id in ids:
            crop = client.get(f"{page_url(acme.org)}{face_id}/thumbnail/")
            assert crop.status_code == 200 and crop["Content-Type"] == "image/jpeg" and crop.content[:2] == b"\xff\xd8"
    # Another organisation's face through this organisation's page: the same answer as a missing one.
    for missing in (foreign, 987654):
        answer = client.get(f"{page_url(acme.org)}{missing}/thumbnail/")
        assert answer.status_code == 404 and answer.json()["error"]["code"] == "unknown_face_not_found"
    assert f"{page_url(other.org)}{foreign}/thumbnail/" not in html
    # Viewing gives no buttons, and posting is refused without change permission.
    assert "fp-name-form" not in html
    cluster = min(kept[STRANGERS[0]])
    assert client.post(f"/admin/organizations/organization/{acme.org.pk}/unknown-clusters/{cluster}/dismiss/"
                       ).status_code == 403
    assert UnknownFace.objects.filter(organization=acme.org).count() == 4


def test_staff_without_view_permission_see_nothing(acme, kept):
    client = staff(codenames=[])
    assert client.get(page_url(acme.org)).status_code == 403
    assert client.get(f"{page_url(acme.org)}{kept[STRANGERS[0]][0]}/thumbnail/").status_code == 403


@pytest.mark.parametrize("form, status, code", [
    ({"name": ""}, 400, "invalid_input"),
    ({"name": "   "}, 400, "invalid_input"),
    ({"name": "A" * 201}, 400, "invalid_input"),
    ({"person": ""}, 400, "invalid_input"),
    ({"person": "abc"}, 400, "invalid_input"),
    ({"person": "987654"}, 404, "person_not_found"),
    ({"name": "A", "person": "1"}, 400, "invalid_input"),
    ({}, 400, "invalid_input"),
])
def test_bad_naming_is_shown_in_the_page_and_changes_nothing(acme, kept, form, status, code):
    client = staff(codenames=["view_organization", "change_organization"])
    cluster = min(kept[STRANGERS[0]])
    response = client.post(f"/admin/organizations/organization/{acme.org.pk}/unknown-clusters/{cluster}/assign/", form)
    assert response.status_code == status
    html = response.content.decode()
    assert f'data-code="{code}"' in html and len(cards(html)) == 2
    assert UnknownFace.objects.count() == 4 and not Person.objects.exists()


def test_a_missing_cluster_and_another_organisations_person_are_404s(acme, kept, make_tenant, manifest):
    other = make_tenant("globex")
    stranger = other.client.post("/register/globex", {"name": "Jim", "images": [manifest["Jim_Parsons"][0].b64()]},
                                 format="json").json()["person"]["id"]
    client = staff(codenames=["view_organization", "change_organization"])
    base = f"/admin/organizations/organization/{acme.org.pk}/unknown-clusters"
    cluster = min(kept[STRANGERS[0]])
    not_a_cluster = max(kept[STRANGERS[0]])
    for url, form, code in [
        (f"{base}/{cluster}/assign/", {"person": str(stranger)}, "person_not_found"),
        (f"{base}/{not_a_cluster}/assign/", {"name": "X"}, "unknown_cluster_not_found"),
        (f"{base}/{not_a_cluster}/dismiss/", {}, "unknown_cluster_not_found"),
    ]:
        response = client.post(url, form)
        assert response.status_code == 404 and f'data-code="{code}"' in response.content.decode()
    assert UnknownFace.objects.filter(organization=acme.org).count() == 4
    assert Person.objects.filter(organization=acme.org).count() == 0
    assert client.get(f"{base}/{cluster}/dismiss/").status_code == 405


def test_naming_adding_to_someone_and_dismissing_from_the_page(acme, kept, manifest):
    (third,) = keep(acme, manifest["Jack_Dorsey"][:1])
    kunal = acme.client.post("/register/acme", {"name": "Kunal", "images": [manifest[STRANGERS[1]][4].b64()]},
                             format="json").json()["person"]["id"]
    client = staff(codenames=["view_organization", "change_organization"])
    base = f"/admin/organizations/organization/{acme.org.pk}/unknown-clusters"
    response = client.post(f"{base}/{min(kept[STRANGERS[0]])}/assign/", {"name": "Simon Helberg"}, follow=True)
    assert response.status_code == 200 and "2 faces added to Simon Helberg (new person)" in response.content.decode()
    assert sorted(cards(response.content.decode())) == sorted([(min(kept[STRANGERS[1]]), 2), (third, 1)])
    assert Person.objects.get(organization=acme.org, name="Simon Helberg").faces.count() == 2
    # The select offers the organisation's people; adding a cluster to one of them.
    assert f'<option value="{kunal}">Kunal</option>' in response.content.decode()
    response = client.post(f"{base}/{min(kept[STRANGERS[1]])}/assign/", {"person": str(kunal)}, follow=True)
    assert "2 faces added to Kunal." in response.content.decode()
    assert Person.objects.get(pk=kunal).faces.count() == 3
    response = client.post(f"{base}/{third}/dismiss/", follow=True)
    assert "Dismissed: 1 face deleted." in response.content.decode()
    assert not UnknownFace.objects.exists() and Person.objects.count() == 2

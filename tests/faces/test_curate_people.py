"""Curating people: merge two people, move a face, and the client's own external_id and metadata.
The vector store follows every change (`manage.py vectors check`, and each vector's person)."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from faces.index import get_index
from faces.models import EmbeddedVector, Face, Person

pytestmark = pytest.mark.django_db(transaction=True)


def register(client, name, photos, **extra):
    response = client.post("/register/acme", {"name": name, "images": [p.b64() for p in photos], **extra},
                           format="json")
    assert response.status_code == 201, response.content
    return response.json()["person"]


def assert_store_agrees(org):
    out = StringIO()
    call_command("vectors", "check", "--org", org.slug, stdout=out)  # raises when they differ
    assert "in step" in out.getvalue()
    owners = dict(Face.objects.filter(organization=org).values_list("id", "person_id"))
    stored = dict(EmbeddedVector.objects.filter(organization=org).values_list("face_id", "person_id"))
    assert stored == owners
    assert get_index().face_ids(organization_id=org.pk) == set(owners)


def test_merge_moves_every_face_and_deletes_the_other(acme, manifest):
    client = acme.client
    photos = manifest["Tony_Blair"]
    keep = register(client, "Tony Blair", photos[:3], external_id=None)
    other = register(client, "T. Blair", photos[3:5], allow_duplicate=True, external_id="tb-2",
                     metadata={"source": "badge", "team": "x"})
    client.patch(f"/orgs/acme/people/{keep['id']}", {"metadata": {"team": "y"}}, format="json")
    response = client.post(f"/orgs/acme/people/{keep['id']}/merge", {"from": other["id"]}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["face_count"] == 5 and body["external_id"] == "tb-2"
    assert body["metadata"] == {"source": "badge", "team": "y"}
    assert not Person.objects.filter(pk=other["id"]).exists()
    assert_store_agrees(acme.org)
    answer = client.post("/recognize/acme", {"image": photos[6].b64()}, format="json").json()
    assert answer["faces"][0]["match"]["name"] == "Tony Blair"
    assert answer["faces"][0]["match"]["external_id"] == "tb-2"


def test_move_one_face_to_another_person(acme, manifest):
    client = acme.client
    bush = register(client, "George W Bush", manifest["George_W_Bush"][:3])
    # A photo of Bush filed under the wrong person, then put right.
    wrong = register(client, "Colin Powell", manifest["Colin_Powell"][:2] + manifest["George_W_Bush"][3:4],
                     allow_duplicate=True)
    misfiled = Face.objects.filter(person_id=wrong["id"]).order_by("-id").first()
    response = client.post(f"/orgs/acme/people/{wrong['id']}/faces/{misfiled.pk}/move", {"to": bush["id"]},
                           format="json")
    assert response.status_code == 200, response.content
    assert response.json()["id"] == bush["id"] and response.json()["face_count"] == 4
    assert Face.objects.get(pk=misfiled.pk).person_id == bush["id"]
    assert Face.objects.filter(person_id=wrong["id"]).count() == 2
    assert_store_agrees(acme.org)


@pytest.mark.parametrize("body", [{}, {"from": "1"}, {"from": 0}, {"from": None}, {"from": [1]}, {"from": 1.5}])
def test_bad_merge_bodies_are_400s(acme, manifest, body):
    person = register(acme.client, "Tony Blair", manifest["Tony_Blair"][:1])
    response = acme.client.post(f"/orgs/acme/people/{person['id']}/merge", body, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "invalid_input"
    assert Person.objects.count() == 1


def test_merging_into_oneself_and_moving_to_the_same_person_are_refused(acme, manifest):
    person = register(acme.client, "Tony Blair", manifest["Tony_Blair"][:1])
    face = Face.objects.get(person_id=person["id"])
    assert acme.client.post(f"/orgs/acme/people/{person['id']}/merge", {"from": person["id"]},
                            format="json").status_code == 400
    assert acme.client.post(f"/orgs/acme/people/{person['id']}/faces/{face.pk}/move", {"to": person["id"]},
                            format="json").status_code == 400
    assert acme.client.post(f"/orgs/acme/people/{person['id']}/faces/{face.pk}/move", {"to": 987654},
                            format="json").status_code == 404
    assert Face.objects.get(pk=face.pk).person_id == person["id"]


def test_external_id_and_metadata_are_set_found_and_answered(acme, manifest):
    client = acme.client
    photos = manifest["Hugo_Chavez"]
    person = register(client, "Hugo Chavez", photos[:3], external_id="emp-7", metadata={"desk": 4})
    assert person["external_id"] == "emp-7" and person["metadata"] == {"desk": 4}
    found = client.get("/orgs/acme/people", {"external_id": "emp-7"}).json()
    assert [p["id"] for p in found["results"]] == [person["id"]]
    assert client.get("/orgs/acme/people", {"external_id": "emp-8"}).json()["count"] == 0
    recognized = client.post("/recognize/acme", {"image": photos[5].b64()}, format="json").json()
    assert recognized["faces"][0]["match"]["external_id"] == "emp-7"
    assert recognized["faces"][0]["candidates"][0]["external_id"] == "emp-7"
    verified = client.post("/verify/acme", {"image": photos[5].b64(), "person": person["id"]}, format="json").json()
    assert verified["verified"] is True and verified["person"]["external_id"] == "emp-7"
    # Another person may not take it; the owner may drop it.
    other = register(client, "Someone", manifest["Colin_Powell"][:1])
    taken = client.patch(f"/orgs/acme/people/{other['id']}", {"external_id": "emp-7"}, format="json")
    assert taken.status_code == 409 and taken.json()["error"]["code"] == "external_id_exists"
    refused = client.post("/register/acme", {"name": "Third", "images": [manifest["Ariel_Sharon"][0].b64()],
                                             "external_id": "emp-7"}, format="json")
    assert refused.status_code == 409 and not Person.objects.filter(name="Third").exists()
    cleared = client.patch(f"/orgs/acme/people/{person['id']}", {"external_id": None}, format="json")
    assert cleared.status_code == 200 and cleared.json()["external_id"] is None
    assert client.patch(f"/orgs/acme/people/{other['id']}", {"external_id": "emp-7"}, format="json").status_code == 200


@pytest.mark.parametrize("change", [
    {"external_id": "x" * 201}, {"external_id": 7}, {"external_id": "a\nb"}, {"metadata": []}, {"metadata": "x"},
    {"metadata": {"k": "v" * 9000}}, {"metadata": {"k": "\u0000"}}, {"metadata": None}, {"name": ""}, {},
])
def test_bad_person_changes_are_400s_that_change_nothing(acme, manifest, change):
    person = register(acme.client, "Hugo Chavez", manifest["Hugo_Chavez"][:1], external_id="e1",
                      metadata={"a": 1})
    response = acme.client.patch(f"/orgs/acme/people/{person['id']}", change, format="json")
    assert response.status_code == 400, (change, response.content)
    assert response.json()["error"]["code"] == "invalid_input"
    stored = Person.objects.get(pk=person["id"])
    assert (stored.name, stored.external_id, stored.metadata) == ("Hugo Chavez", "e1", {"a": 1})


def test_ids_past_the_database_range_are_404s(acme, manifest):
    person = register(acme.client, "Tony Blair", manifest["Tony_Blair"][:1])
    face = Face.objects.get(person_id=person["id"])
    huge = 10**20
    assert acme.client.post(f"/orgs/acme/people/{person['id']}/merge", {"from": huge},
                            format="json").status_code == 404
    assert acme.client.post(f"/orgs/acme/people/{huge}/merge", {"from": person["id"]}, format="json").status_code == 404
    assert acme.client.post(f"/orgs/acme/people/{person['id']}/faces/{face.pk}/move", {"to": huge},
                            format="json").status_code == 404
    assert Face.objects.get(pk=face.pk).person_id == person["id"]

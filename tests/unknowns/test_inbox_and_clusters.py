"""The inbox (list, thumbnail, delete), its clusters, and naming or dismissing a cluster, with the
real model on real photos."""

from __future__ import annotations

import pytest

from faces.models import Face, Person, UnknownFace

pytestmark = pytest.mark.django_db(transaction=True)

STRANGERS = ("Simon_Helberg", "Kunal_Nayyar")


@pytest.fixture
def kept(acme, manifest):
    """Three photos each of two strangers, kept as unknowns: {identity: [unknown ids]}."""
    acme.org.keep_unknown_faces = True
    acme.org.save()
    ids = {}
    for identity in STRANGERS:
        for photo in manifest[identity][:3]:
            body = acme.client.post("/recognize/acme", {"image": photo.b64()}, format="json").json()
            (face,) = body["faces"]
            assert face["decision"] == "unknown" and face["unknown_face"] is not None
            ids.setdefault(identity, []).append(face["unknown_face"])
    return ids


def clusters(client):
    response = client.get("/orgs/acme/unknown-clusters")
    assert response.status_code == 200, response.content
    return response.json()


def test_inbox_lists_newest_first_serves_crops_and_deletes(acme, kept):
    client = acme.client
    body = client.get("/orgs/acme/unknown-faces", {"page_size": 4}).json()
    every = [i for identity in STRANGERS for i in kept[identity]]
    assert body["count"] == 6
    assert [face["id"] for face in body["results"]] == every[::-1][:4]
    thumbnail = client.get(body["results"][0]["thumbnail_url"])
    assert thumbnail.status_code == 200 and thumbnail["Content-Type"] == "image/jpeg"
    assert thumbnail.content[:2] == b"\xff\xd8"
    assert client.delete(f"/orgs/acme/unknown-faces/{every[0]}", format="json").status_code == 204
    assert client.get(f"/orgs/acme/unknown-faces/{every[0]}/thumbnail").status_code == 404
    assert client.get("/orgs/acme/unknown-faces").json()["count"] == 5
    gone = client.delete("/orgs/acme/unknown-faces", format="json")
    assert gone.status_code == 200 and gone.json() == {"faces_removed": 5}
    assert not UnknownFace.objects.exists() and clusters(client)["count"] == 0


def test_two_strangers_three_photos_each_are_two_clusters_of_three(acme, kept):
    body = clusters(acme.client)
    groups = sorted(sorted(face["id"] for face in acme.client.get(c["faces_url"]).json()["results"])
                    for c in body["results"])
    assert groups == sorted(sorted(ids) for ids in kept.values())
    for cluster in body["results"]:
        assert cluster["size"] == 3 and len(cluster["sample_faces"]) == 3
        assert cluster["first_seen"] <= cluster["last_seen"]
    # Most recently seen first: the second stranger was seen last.
    assert body["results"][0]["id"] == min(kept[STRANGERS[1]])


def test_naming_a_cluster_enrols_it_and_the_next_photo_is_recognised(acme, kept, manifest):
    client = acme.client
    cluster_id = min(kept[STRANGERS[0]])
    response = client.post(f"/orgs/acme/unknown-clusters/{cluster_id}/assign", {"name": "Simon Helberg"},
                           format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["created"] is True and body["faces_added"] == 3
    assert sorted(f["unknown_face"] for f in body["faces"]) == sorted(kept[STRANGERS[0]])
    assert all(f["accepted"] and f["face_id"] for f in body["faces"])
    person = Person.objects.get(organization=acme.org, name="Simon Helberg")
    assert Face.objects.filter(person=person).count() == 3
    # They left the inbox; the other stranger's cluster is still there.
    assert sorted(UnknownFace.objects.values_list("id", flat=True)) == sorted(kept[STRANGERS[1]])
    assert [c["size"] for c in clusters(client)["results"]] == [3]
    fourth = client.post("/recognize/acme", {"image": manifest[STRANGERS[0]][3].b64()}, format="json").json()
    assert fourth["faces"][0]["decision"] == "match"
    assert fourth["faces"][0]["match"]["name"] == "Simon Helberg"
    assert fourth["faces"][0]["unknown_face"] is None


def test_assigning_to_an_existing_person_adds_faces(acme, kept, manifest):
    client = acme.client
    registered = client.post("/register/acme", {"name": "Kunal", "images": [manifest[STRANGERS[1]][4].b64()]},
                             format="json").json()
    person_id = registered["person"]["id"]
    cluster_id = min(kept[STRANGERS[1]])
    body = client.post(f"/orgs/acme/unknown-clusters/{cluster_id}/assign", {"person": person_id},
                       format="json").json()
    assert body["created"] is False and body["person"]["id"] == person_id and body["faces_added"] == 3
    assert Face.objects.filter(person_id=person_id).count() == 4


def test_a_cluster_of_someone_else_is_refused_with_409_and_changes_nothing(acme, kept, manifest):
    client = acme.client
    # The first stranger is enrolled under a name now; assigning their cluster to another name is refused.
    client.post("/register/acme", {"name": "Simon", "images": [p.b64() for p in manifest[STRANGERS[0]][3:5]]},
                format="json")
    cluster_id = min(kept[STRANGERS[0]])
    response = client.post(f"/orgs/acme/unknown-clusters/{cluster_id}/assign", {"name": "Someone Else"},
                           format="json")
    assert response.status_code == 409 and response.json()["error"]["code"] == "face_matches_existing_person"
    assert not Person.objects.filter(name="Someone Else").exists()
    assert UnknownFace.objects.count() == 6


def test_dismissing_a_cluster_removes_its_faces_without_enrolling(acme, kept):
    client = acme.client
    cluster_id = min(kept[STRANGERS[1]])
    response = client.post(f"/orgs/acme/unknown-clusters/{cluster_id}/dismiss", {}, format="json")
    assert response.status_code == 200 and response.json() == {"cluster": cluster_id, "faces_removed": 3}
    assert not Person.objects.exists()
    assert sorted(UnknownFace.objects.values_list("id", flat=True)) == sorted(kept[STRANGERS[0]])


@pytest.mark.parametrize("body", [{}, {"name": "A", "person": 1}, {"name": ""}, {"name": 5}, {"person": "x"},
                                  {"person": 0}, {"name": "A" * 201}, {"name": "A", "allow_duplicate": "yes"}])
def test_bad_assign_bodies_are_400s_that_change_nothing(acme, kept, body):
    cluster_id = min(kept[STRANGERS[0]])
    response = acme.client.post(f"/orgs/acme/unknown-clusters/{cluster_id}/assign", body, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "invalid_input"
    assert UnknownFace.objects.count() == 6 and not Person.objects.exists()


def test_missing_ids_are_404s(acme, kept):
    client = acme.client
    assert client.get("/orgs/acme/unknown-faces", {"cluster": 987654}).status_code == 404
    assert client.post("/orgs/acme/unknown-clusters/987654/assign", {"name": "X"}, format="json").status_code == 404
    assert client.post("/orgs/acme/unknown-clusters/987654/dismiss", {}, format="json").status_code == 404
    # A face id that is not its cluster's id is no cluster.
    not_a_cluster = max(kept[STRANGERS[0]])
    assert client.post(f"/orgs/acme/unknown-clusters/{not_a_cluster}/dismiss", {}, format="json").status_code == 404
    # Ids past what the database can hold are missing ids too, never a 500.
    huge = 10**20
    assert client.get(f"/orgs/acme/unknown-faces/{huge}/thumbnail").status_code == 404
    assert client.delete(f"/orgs/acme/unknown-faces/{huge}", format="json").status_code == 404
    assert client.post(f"/orgs/acme/unknown-clusters/{huge}/assign", {"name": "X"}, format="json").status_code == 404
    assert client.get("/orgs/acme/unknown-faces", {"cluster": huge}).status_code in (400, 404)
    assert UnknownFace.objects.count() == 6

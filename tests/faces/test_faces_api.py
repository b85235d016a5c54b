"""Registration, people, deletion and tenant isolation on the embedded index, with the real model."""

import pytest

from faces.index import get_index
from faces.models import EmbeddedVector, Face, Person
from tests.conftest import api_auth

pytestmark = pytest.mark.django_db


@pytest.fixture
def globex(make_tenant):
    return make_tenant("globex")


def register(client, org_slug, name, photos):
    return client.post(f"/register/{org_slug}", {"name": name, "images": [p.b64() for p in photos]}, format="json")


def test_register_reports_per_image_outcomes(acme, manifest):
    org, _, client = acme
    photos = manifest["Barack_Obama"][:2] + manifest["_noface"][:1]
    response = register(client, "acme", "Barack Obama", photos)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["created"] is True and body["faces_added"] == 2
    assert [image["accepted"] for image in body["images"]] == [True, True, False]
    assert body["images"][2]["reason"] == "no face detected"
    box = body["images"][0]["box"]
    assert box["w"] > 20 and box["h"] > 20
    assert body["person"]["face_count"] == 2
    assert Face.objects.filter(organization=org).count() == 2
    assert get_index().count(organization_id=org.pk) == 2


def test_registering_existing_name_adds_faces(acme, manifest):
    client = acme.client
    first = register(client, "acme", "Obama", manifest["Barack_Obama"][:1]).json()
    second = register(client, "acme", "Obama", manifest["Barack_Obama"][1:3]).json()
    assert second["created"] is False
    assert second["person"]["id"] == first["person"]["id"]
    assert second["person"]["face_count"] == 3


def test_all_images_without_faces_is_422_and_stores_nothing(acme, manifest):
    org, _, client = acme
    response = register(client, "acme", "Nobody", manifest["_noface"][:3])
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "no_face"
    assert not Person.objects.exists() and not Face.objects.exists()
    assert get_index().count(organization_id=org.pk) == 0


def test_noface_images_give_no_faces(acme, manifest):
    client = acme.client
    for photo in manifest["_noface"]:
        response = client.post("/recognize/acme", {"image": photo.b64()}, format="json")
        assert response.status_code == 200
        assert response.json()["faces"] == [], photo.path


def test_group_photo_names_both_people(acme, manifest, faces_dir):
    client = acme.client
    register(client, "acme", "Barack Obama", manifest["Barack_Obama"][:1])
    register(client, "acme", "Joe Biden", manifest["Joe_Biden"][:1])
    group = faces_dir / "_group" / "two_people.jpg"
    import base64

    response = client.post("/recognize/acme", {"image": base64.b64encode(group.read_bytes()).decode()}, format="json")
    assert response.status_code == 200
    faces = response.json()["faces"]
    assert len(faces) == 2
    assert {face["match"]["name"] for face in faces if face["match"]} == {"Barack Obama", "Joe Biden"}
    for face in faces:
        assert 0.0 <= face["match"]["similarity"] <= 1.0
        assert face["candidates"][0]["name"] == face["match"]["name"]
    assert set(response.json()["timings_ms"]) >= {"decode", "detect", "embed", "search", "total"}


def test_tenant_a_people_never_returned_to_tenant_b(acme, globex, manifest):
    acme_client = acme.client
    globex_client = globex.client
    register(acme_client, "acme", "Obama", manifest["Barack_Obama"][:1])
    probe = manifest["Barack_Obama"][1].b64()
    own = acme_client.post("/recognize/acme", {"image": probe}, format="json").json()
    assert own["faces"][0]["match"]["name"] == "Obama"
    other = globex_client.post("/recognize/globex", {"image": probe}, format="json").json()
    assert other["faces"][0]["match"] is None and other["faces"][0]["candidates"] == []
    assert globex_client.get("/orgs/globex/people").json()["results"] == []
    # Using B's key on A's routes is refused outright.
    assert globex_client.post("/recognize/acme", {"image": probe}, format="json").status_code == 403


def test_people_list_detail_rename_delete(acme, globex, manifest):
    org, issued, client = acme
    globex_client = globex.client
    obama = register(client, "acme", "Barack Obama", manifest["Barack_Obama"][:2]).json()["person"]
    register(client, "acme", "Joe Biden", manifest["Joe_Biden"][:1])

    listing = client.get("/orgs/acme/people?search=bid").json()
    assert [p["name"] for p in listing["results"]] == ["Joe Biden"]
    assert client.get("/orgs/acme/people?page_size=1").json()["count"] == 2

    detail = client.get(f"/orgs/acme/people/{obama['id']}").json()
    assert len(detail["faces"]) == 2 and "created_at" in detail["faces"][0] and "box" in detail["faces"][0]

    # Another tenant sees "not found" for the same id, the same as for an id that does not exist.
    assert globex_client.get(f"/orgs/globex/people/{obama['id']}").status_code == 404
    assert globex_client.get("/orgs/globex/people/999999").status_code == 404

    renamed = client.patch(f"/orgs/acme/people/{obama['id']}", {"name": "Obama"}, format="json")
    assert renamed.status_code == 200 and renamed.json()["name"] == "Obama"
    assert client.patch(f"/orgs/acme/people/{obama['id']}", {"name": "Joe Biden"}, format="json").status_code == 409

    face_id = detail["faces"][0]["id"]
    assert client.delete(f"/orgs/acme/people/{obama['id']}/faces/{face_id}").status_code == 204
    assert get_index().count(organization_id=org.pk) == 2

    remaining = Face.objects.get(person_id=obama["id"])
    get_index().search(organization_id=org.pk, vectors=remaining.vector, k=1)  # this worker holds a copy
    assert client.delete(f"/orgs/acme/people/{obama['id']}", {"api_auth": api_auth(issued)},
                         format="json").status_code == 204
    assert not Person.objects.filter(pk=obama["id"]).exists()
    assert get_index().count(organization_id=org.pk) == 1
    assert not EmbeddedVector.objects.filter(person_id=obama["id"]).exists()
    # Asked of the index itself: a recognition would hide a stale copy, since its join with the
    # people table drops faces that are gone.
    hits = get_index().search(organization_id=org.pk, vectors=remaining.vector, k=10)[0]
    assert remaining.pk not in {hit.face_id for hit in hits}


def test_verify_two_images_and_image_against_person(acme, manifest):
    client = acme.client
    same = client.post("/verify/acme", {"image": manifest["Tony_Blair"][0].b64(),
                                        "image2": manifest["Tony_Blair"][1].b64()}, format="json")
    assert same.status_code == 200, same.content
    assert same.json()["verified"] is True
    different = client.post("/verify/acme", {"image": manifest["Tony_Blair"][0].b64(),
                                             "image2": manifest["Colin_Powell"][0].b64()}, format="json").json()
    assert different["verified"] is False and different["similarity"] < same.json()["similarity"]
    person = register(client, "acme", "Blair", manifest["Tony_Blair"][:1]).json()["person"]
    against = client.post("/verify/acme", {"image": manifest["Tony_Blair"][2].b64(), "person": person["id"]},
                          format="json").json()
    assert against["verified"] is True


def test_multipart_upload_registers_and_recognises(acme, manifest):
    client = acme.client
    photo = manifest["Tony_Blair"][0]
    with open(photo.path, "rb") as handle:
        response = client.post("/register/acme", {"name": "Blair", "images": [handle]}, format="multipart")
    assert response.status_code == 201, response.content
    with open(manifest["Tony_Blair"][1].path, "rb") as handle:
        response = client.post("/recognize/acme", {"image": handle, "threshold": "0.9"}, format="multipart")
    assert response.status_code == 200, response.content
    assert response.json()["faces"][0]["match"]["name"] == "Blair"
    assert response.json()["threshold"] == 0.9

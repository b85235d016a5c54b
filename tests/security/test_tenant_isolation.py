"""Tenant isolation matrix: organisation A's key against B's organisation slug, people ids, face ids
and names, on every REST route and the WebSocket. Every attempt is refused and leaks nothing: the
answer for B's real resource is identical to the answer for one that does not exist, and B's data
is untouched afterwards."""

from __future__ import annotations

import io
import zipfile

import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from faces.enrolment_jobs import enrolment_job_create
from faces.index import get_index
from faces.models import EnrolmentJob, Face, Person, UnknownFace
from faces.services import person_register
from faces.unknowns.clustering import unknown_grouping
from recognition.connections import CLOSE_FORBIDDEN
from recognition.models import Webhook
from recognition.services import recognize
from tests.conftest import api_auth, key_client
from tests.websocket import close_of, socket_path

pytestmark = pytest.mark.django_db(transaction=True)

MISSING_ID = 987654321


@pytest.fixture
def tenants(make_org, make_key, manifest):
    acme, globex = make_org("acme"), make_org("globex")
    photos = manifest["Angelina_Jolie"]
    registered = person_register(organization=globex, name="Angelina Jolie", images=[p.b64() for p in photos[:2]],
                                 external_id="b-1")
    own = person_register(organization=acme, name="Tony Blair", images=[manifest["Tony_Blair"][0].b64()])
    b_person = registered.person
    # B keeps unknowns: a stranger's face is in B's inbox (and is its own cluster).
    globex.keep_unknown_faces = True
    globex.save()
    (seen,) = recognize(organization=globex, image=manifest["Simon_Helberg"][0].b64()).faces
    b_unknown = seen.unknown_face
    assert b_unknown is not None
    archive = zipped_person("Zed", manifest["Tony_Blair"][0].path.read_bytes())
    b_job = enrolment_job_create(organization=globex, archive=SimpleUploadedFile("b.zip", archive))
    return {
        "b_job": b_job.pk,
        "b_unknown": b_unknown,
        "b_cluster": unknown_grouping(organization=globex).clusters[0].id,
        "a_key": make_key(acme, user="alice", name="a-key"),
        "b_key": make_key(globex, user="bob", name="b-key"),
        "a_person": own.person,
        "b_person": b_person,
        "b_face": b_person.faces.first(),
        "b_probe": photos[2],
        "globex": globex,
        "b_webhook": Webhook.objects.create(organization=globex, url="https://b.example/hook",
                                            events=["person.created"], secret="b-secret-b-secret").pk,
    }


def zipped_person(name: str, photo: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(f"{name}/1.jpg", photo)
    return buffer.getvalue()


def snapshot_of_b(tenants) -> dict:
    globex = tenants["globex"]
    return {
        "people": sorted(Person.objects.filter(organization=globex).values_list("id", "name")),
        "faces": sorted(Face.objects.filter(organization=globex).values_list("id", flat=True)),
        "vectors": sorted(get_index().face_ids(organization_id=globex.pk)),
        "unknowns": sorted(UnknownFace.objects.filter(organization=globex).values_list("id", flat=True)),
        "webhooks": sorted(Webhook.objects.filter(organization=globex).values_list("id", "url")),
        "enrolment jobs": sorted(EnrolmentJob.objects.filter(organization=globex).values_list("id", "done")),
    }


def same_answer(first, second) -> None:
    """Status and body must be byte-for-byte the same: nothing tells the caller which one exists."""
    assert first.status_code == second.status_code, (first.content, second.content)
    assert first.content == second.content


def requests_against(org: str, *, person_id: int, face_id: int, tenants, probe_b64: str) -> dict:
    client = key_client(tenants["a_key"])
    auth = api_auth(tenants["a_key"])
    unknown, cluster = tenants["b_unknown"], tenants["b_cluster"]
    return {
        "merge people": client.post(f"/orgs/{org}/people/{person_id}/merge", {"from": person_id}, format="json"),
        "move a face": client.post(f"/orgs/{org}/people/{person_id}/faces/{face_id}/move", {"to": person_id},
                                   format="json"),
        "find by external_id": client.get(f"/orgs/{org}/people", {"external_id": "b-1"}),
        "list unknown faces": client.get(f"/orgs/{org}/unknown-faces"),
        "list a cluster's faces": client.get(f"/orgs/{org}/unknown-faces", {"cluster": cluster}),
        "unknown thumbnail": client.get(f"/orgs/{org}/unknown-faces/{unknown}/thumbnail"),
        "delete unknown": client.delete(f"/orgs/{org}/unknown-faces/{unknown}", format="json"),
        "delete all unknowns": client.delete(f"/orgs/{org}/unknown-faces", format="json"),
        "list clusters": client.get(f"/orgs/{org}/unknown-clusters"),
        "list webhooks": client.get(f"/orgs/{org}/webhooks"),
        "create webhook": client.post(f"/orgs/{org}/webhooks", {"url": "https://a.example/", "events": ["face.unknown"],
                                                                "secret": "x" * 20}, format="json"),
        "delete webhook": client.delete(f"/orgs/{org}/webhooks/{tenants['b_webhook']}", format="json"),
        "webhook deliveries": client.get(f"/orgs/{org}/webhooks/{tenants['b_webhook']}/deliveries"),
        "assign cluster": client.post(f"/orgs/{org}/unknown-clusters/{cluster}/assign", {"name": "X"},
                                      format="json"),
        "dismiss cluster": client.post(f"/orgs/{org}/unknown-clusters/{cluster}/dismiss", {}, format="json"),
        "list people": client.get(f"/orgs/{org}/people"),
        "search people": client.get(f"/orgs/{org}/people", {"search": "Angelina"}),
        "get person": client.get(f"/orgs/{org}/people/{person_id}"),
        "rename person": client.patch(f"/orgs/{org}/people/{person_id}", {"name": "Renamed"}, format="json"),
        "delete face": client.delete(f"/orgs/{org}/people/{person_id}/faces/{face_id}", format="json"),
        "delete person": client.delete(f"/orgs/{org}/people/{person_id}", format="json"),
        "register": client.post(f"/register/{org}", {"name": "Intruder", "images": [probe_b64]}, format="json"),
        "recognize": client.post(f"/recognize/{org}", {"image": probe_b64}, format="json"),
        "verify": client.post(f"/verify/{org}", {"image": probe_b64, "person": person_id}, format="json"),
        "revoke b's key": client.delete(f"/orgs/{org}/api-key", {"api_auth": api_auth(tenants["b_key"])},
                                        format="json"),
        "issue a key": client.post(f"/orgs/{org}/api-key", {"user": "x", "api_key_name": "y", "api_auth": auth},
                                   format="json"),
        "start an enrolment job": client.post(
            f"/orgs/{org}/enrolment-jobs",
            {"archive": SimpleUploadedFile("a.zip", zipped_person("Intruder", tenants["b_probe"].path.read_bytes()))},
            format="multipart"),
        "enrolment job progress": client.get(f"/orgs/{org}/enrolment-jobs/{tenants['b_job']}"),
        "export the gallery": client.get(f"/orgs/{org}/export"),
        "import a gallery": client.generic("POST", f"/orgs/{org}/import", b"PK\x05\x06" + bytes(18),
                                           content_type="application/zip"),
        "list keys": client.get(f"/orgs/{org}/api-keys"),
        "rotate b's key": client.post(f"/orgs/{org}/api-keys/{tenants['b_key'].api_key.pk}/rotate", {},
                                      format="json"),
        "get the organization": client.get(f"/orgs/{org}"),
        "delete the organization": client.delete(f"/orgs/{org}"),
    }


def test_a_key_on_b_slug_is_refused_exactly_like_a_missing_slug(tenants):
    before = snapshot_of_b(tenants)
    probe = tenants["b_probe"].b64()
    ids = {"person_id": tenants["b_person"].pk, "face_id": tenants["b_face"].pk}
    against_b = requests_against("globex", tenants=tenants, probe_b64=probe, **ids)
    against_nothing = requests_against("no-such-org", tenants=tenants, probe_b64=probe, **ids)
    for route, response in against_b.items():
        assert response.status_code == 403, (route, response.content)
        assert response.json()["error"]["code"] == "forbidden", route
        same_answer(response, against_nothing[route])
    assert snapshot_of_b(tenants) == before
    assert key_client(tenants["b_key"]).get("/orgs/globex/people").status_code == 200  # B's key still works


def test_b_ids_under_a_slug_answer_exactly_like_missing_ids(tenants):
    before = snapshot_of_b(tenants)
    client = key_client(tenants["a_key"])
    b_person, b_face, a_person = tenants["b_person"].pk, tenants["b_face"].pk, tenants["a_person"].pk
    a_face = tenants["a_person"].faces.first().pk
    probe = tenants["b_probe"].b64()
    pairs = {
        "get person": lambda pid: client.get(f"/orgs/acme/people/{pid}"),
        "rename person": lambda pid: client.patch(f"/orgs/acme/people/{pid}", {"name": "Renamed"}, format="json"),
        "delete person": lambda pid: client.delete(f"/orgs/acme/people/{pid}", format="json"),
        "delete b's face under b's person id": lambda pid: client.delete(
            f"/orgs/acme/people/{pid}/faces/{b_face if pid == b_person else MISSING_ID}", format="json"),
        "verify against person": lambda pid: client.post("/verify/acme", {"image": probe, "person": pid},
                                                         format="json"),
        "merge b's person into a's": lambda pid: client.post(f"/orgs/acme/people/{a_person}/merge", {"from": pid},
                                                             format="json"),
        "merge a's person into b's": lambda pid: client.post(f"/orgs/acme/people/{pid}/merge", {"from": a_person},
                                                             format="json"),
        "move a's face to b's person": lambda pid: client.post(
            f"/orgs/acme/people/{a_person}/faces/{a_face}/move", {"to": pid}, format="json"),
        "move b's face under b's person id": lambda pid: client.post(
            f"/orgs/acme/people/{pid}/faces/{b_face if pid == b_person else MISSING_ID}/move", {"to": a_person},
            format="json"),
        "b's enrolment job": lambda pid: client.get(
            f"/orgs/acme/enrolment-jobs/{tenants['b_job'] if pid == b_person else MISSING_ID}"),
        "assign a cluster to b's person": lambda pid: client.post(
            f"/orgs/acme/unknown-clusters/{a_cluster}/assign", {"person": pid}, format="json"),
    }
    # A keeps unknowns too, so A's own cluster exists for the assign-to-B's-person attempt.
    acme = tenants["a_person"].organization
    acme.keep_unknown_faces = True
    acme.save()
    recognize(organization=acme, image=probe)
    a_cluster = unknown_grouping(organization=acme).clusters[0].id
    for route, call in pairs.items():
        real, missing = call(b_person), call(MISSING_ID)
        assert real.status_code == 404, (route, real.content)
        same_answer(real, missing)
    # B's unknown face and cluster ids under A's slug answer exactly like missing ones.
    unknown_routes = {
        "unknown thumbnail": lambda uid: client.get(f"/orgs/acme/unknown-faces/{uid}/thumbnail"),
        "delete unknown": lambda uid: client.delete(f"/orgs/acme/unknown-faces/{uid}", format="json"),
        "a cluster's faces": lambda cid: client.get("/orgs/acme/unknown-faces", {"cluster": cid}),
        "assign cluster": lambda cid: client.post(f"/orgs/acme/unknown-clusters/{cid}/assign", {"name": "X"},
                                                  format="json"),
        "dismiss cluster": lambda cid: client.post(f"/orgs/acme/unknown-clusters/{cid}/dismiss", {}, format="json"),
    }
    webhook_routes = {
        "delete webhook": lambda wid: client.delete(f"/orgs/acme/webhooks/{wid}", format="json"),
        "webhook deliveries": lambda wid: client.get(f"/orgs/acme/webhooks/{wid}/deliveries"),
    }
    for route, call in webhook_routes.items():
        real, missing = call(tenants["b_webhook"]), call(MISSING_ID)
        assert real.status_code == 404, (route, real.content)
        same_answer(real, missing)
    for route, call in unknown_routes.items():
        b_id = tenants["b_unknown"] if "unknown" in route else tenants["b_cluster"]
        real, missing = call(b_id), call(MISSING_ID)
        assert real.status_code == 404, (route, real.content)
        same_answer(real, missing)
    # Staff provisioning: B's key id under A's slug is "no such key", exactly like a missing id.
    staff = APIClient()
    staff.force_login(get_user_model().objects.create_user("iso-staff", is_staff=True))
    b_key_id = tenants["b_key"].api_key.pk
    real = staff.post(f"/orgs/acme/api-keys/{b_key_id}/rotate", {}, format="json")
    assert real.status_code == 404, real.content
    same_answer(real, staff.post(f"/orgs/acme/api-keys/{MISSING_ID}/rotate", {}, format="json"))
    listed = staff.get("/orgs/acme/api-keys").json()["results"]
    assert b_key_id not in {row["id"] for row in listed} and {row["api_key_name"] for row in listed} == {"a-key"}
    assert key_client(tenants["b_key"]).get("/orgs/globex/people").status_code == 200  # not rotated
    # B's face id under A's own person is "no such face", exactly like a missing face id.
    same_answer(client.delete(f"/orgs/acme/people/{a_person}/faces/{b_face}", format="json"),
                client.delete(f"/orgs/acme/people/{a_person}/faces/{MISSING_ID}", format="json"))
    assert snapshot_of_b(tenants) == before


def test_b_names_and_faces_never_surface_in_a(tenants):
    before = snapshot_of_b(tenants)
    client = key_client(tenants["a_key"])
    # Searching A for B's person's name or external_id finds nothing.
    assert client.get("/orgs/acme/people", {"search": "Angelina"}).json()["results"] == []
    assert client.get("/orgs/acme/people", {"external_id": "b-1"}).json()["results"] == []
    # Recognising B's person's photo in A names nobody of B, not even as a candidate.
    result = client.post("/recognize/acme", {"image": tenants["b_probe"].b64()}, format="json").json()
    names = {c["name"] for face in result["faces"] for c in face["candidates"]}
    ids = {c["person"] for face in result["faces"] for c in face["candidates"]}
    assert "Angelina Jolie" not in names and tenants["b_person"].pk not in ids
    # B's kept unknowns never appear in A's inbox or clusters.
    assert client.get("/orgs/acme/unknown-faces").json()["count"] == 0
    assert client.get("/orgs/acme/unknown-clusters").json()["count"] == 0
    # Registering B's person's name in A makes a new person of A; B's is untouched.
    response = client.post("/register/acme", {"name": "Angelina Jolie", "images": [tenants["b_probe"].b64()]},
                           format="json")
    assert response.status_code == 201 and response.json()["created"] is True
    assert response.json()["person"]["id"] != tenants["b_person"].pk
    assert snapshot_of_b(tenants) == before





async def test_a_key_cannot_open_b_socket_and_learns_nothing(tenants):
    key = tenants["a_key"]
    into_b = await close_of(socket_path(key, organization="globex"))
    into_nothing = await close_of(socket_path(key, organization="no-such-org"))
    assert into_b["type"] == "websocket.close" and into_b["code"] == CLOSE_FORBIDDEN
    assert into_b == into_nothing


@pytest.mark.parametrize("route", ["/recognize/acme", "/verify/acme", "/orgs/acme/people"])
@pytest.mark.parametrize("spelling", ["{p}", "/{p}", "globex/{p}", "/globex/{p}", "../globex/{p}", "./globex/{p}"])
def test_a_server_path_never_reaches_another_organisations_folder(make_org, make_key, manifest, settings, tmp_path,
                                                                  route, spelling):
    acme = make_org("acme")
    make_org("globex")
    client = key_client(make_key(acme))
    (tmp_path / "acme").mkdir()
    (tmp_path / "globex").mkdir()
    photo = manifest["Angelina_Jolie"][0]
    (tmp_path / "globex" / "jolie.jpg").write_bytes(photo.path.read_bytes())
    settings.FACEPORTAL_IMAGE_ROOT = str(tmp_path)

    def answer(name: str):
        path = spelling.format(p=name)
        body = {"image": {"path": path}}
        if route.startswith("/verify"):
            body["other_image"] = photo.b64()
        if route.endswith("/people"):
            body = {"name": "Jolie", "images": [{"path": path}]}
        return client.post(route, body, format="json")

    existing, missing = answer("jolie.jpg"), answer("nobody.jpg")
    assert existing.status_code == missing.status_code and 400 <= existing.status_code < 500, existing.content
    assert existing.json() == missing.json()  # globex's file exists or not: the same refusal
    assert not Person.objects.filter(organization=acme).exists()

"""Gallery export and import: the zip round trip (embedded store out, Atlas code path in), people
updated by external_id rather than duplicated, re-embedding from crops when the model differs, and
hostile archives (zip-slip, zip bombs, lying sizes) refused with a 400 and nothing written."""

from __future__ import annotations

import functools
import io
import json
import stat
import struct
import threading
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from asgiref.sync import sync_to_async
from asgiref.testing import ApplicationCommunicator
from django.conf import settings as django_settings
from django.core.asgi import get_asgi_application
from django.core.management import CommandError, call_command
from django.db import connections
from PIL import Image

from faceportal.server import body_limit
from faces.engine import get_engine
from faces.index import get_index, reset_index
from faces.index.atlas import AtlasVectorIndex
from faces.index.base import vector_from_bytes
from faces.models import Face, Person
from faces.services import face_delete, person_register
from faces.transfer import gallery_export_chunks
from faces.vector_maintenance import vectors_check
from organizations.services import organization_create
from recognition.services import recognize
from tests.faces.test_atlas_wire import FakeAtlasWire

pytestmark = pytest.mark.django_db

# (folder, name, external_id, metadata): two enrolment photos each, the third is the probe.
PEOPLE = [
    ("Tony_Blair", "Tony Blair", "emp-1", {"team": "east"}),
    ("Angelina_Jolie", "Angelina Jolie", "emp-2", {"team": "west", "floor": 3}),
    ("Arnold_Schwarzenegger", "Arnold Schwarzenegger", None, {}),
]
STRANGER = "Ariel_Sharon"


class StoringAtlasWire(FakeAtlasWire):
    """The wire fake, keeping what it is sent: upserts are stored, deletes remove, counts and
    `$vectorSearch` (exact cosine, scored as Atlas scores it) answer from the stored documents."""

    def __init__(self) -> None:
        super().__init__()
        self.stored: dict[Any, dict[str, Any]] = {}
        self._docs_lock = threading.Lock()

    def _answer(self, request) -> bool | None:
        name = request.command_name
        if name in {"update", "delete", "find"} or (name == "aggregate" and "$listSearchIndexes"
                                                     not in request.doc["pipeline"][0]):
            with self._docs_lock:
                if name == "update":
                    for statement in request.doc["updates"]:
                        document = dict(statement["u"])
                        self.stored[document["_id"]] = document
                    return request.ok(n=len(request.doc["updates"]), nModified=0, upserted=[
                        {"index": i, "_id": statement["q"]["_id"]}
                        for i, statement in enumerate(request.doc["updates"])])
                if name == "delete":
                    removed = 0
                    for statement in request.doc["deletes"]:
                        for key in [k for k, doc in self.stored.items() if _matches(doc, statement["q"])]:
                            del self.stored[key]
                            removed += 1
                    return request.ok(n=removed)
                if name == "find":
                    self.documents = [dict(doc) for doc in self.stored.values()]
                    self.count = len(self.stored)
                else:
                    self.count = len(self.stored)
                    self.hits = self._search(request.doc["pipeline"][0].get("$vectorSearch"))
        return super()._answer(request)

    def _search(self, stage: dict[str, Any] | None) -> list[dict[str, Any]]:
        if stage is None:
            return []
        query = np.asarray(stage["queryVector"], dtype=np.float32)
        scored = []
        for doc in self.stored.values():
            vector = np.asarray(doc["vector"], dtype=np.float32)
            cosine = float(query @ vector / (np.linalg.norm(query) * np.linalg.norm(vector)))
            scored.append({"_id": doc["_id"], "person_id": doc["person_id"], "score": (1 + cosine) / 2})
        return sorted(scored, key=lambda hit: -hit["score"])[: stage["limit"]]


def _matches(doc: dict[str, Any], query: dict[str, Any]) -> bool:
    for key, condition in query.items():
        if isinstance(condition, dict) and "$in" in condition:
            if doc.get(key) not in condition["$in"]:
                return False
        elif isinstance(condition, dict) and "$ne" in condition:
            if doc.get(key) == condition["$ne"]:
                return False
        elif doc.get(key) != condition:
            return False
    return True


@pytest.fixture
def storing_atlas(settings):
    """The whole service on the Atlas backend, against a fake that keeps and searches vectors."""
    fake = StoringAtlasWire().start()

    def switch() -> StoringAtlasWire:
        settings.FACEPORTAL_VECTOR_STORE = "atlas"
        settings.MONGODB_URI = fake.uri
        settings.MONGODB_DATABASE = "faceportal_atlas"
        settings.MONGODB_LAYOUT = "per_org"
        settings.MONGODB_TIMEOUT_MS = 2000
        reset_index()
        return fake

    yield switch
    index = get_index()
    if isinstance(index, AtlasVectorIndex):
        index.close()
    reset_index()
    fake.stop()


@pytest.fixture
def gallery(make_tenant, manifest):
    tenant = make_tenant("acme")
    for folder, name, external_id, metadata in PEOPLE:
        person_register(organization=tenant.org, name=name, images=[p.b64() for p in manifest[folder][:2]],
                        external_id=external_id, metadata=metadata)
    return tenant


def export_bytes(tenant) -> bytes:
    response = tenant.client.get(f"/orgs/{tenant.org.slug}/export")
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/zip" and response.streaming
    return b"".join(response)


def names_seen(org, manifest) -> list[str | None]:
    probes = [manifest[folder][2] for folder, *_ in PEOPLE] + [manifest[STRANGER][0]]
    answers = []
    for probe in probes:
        (face,) = recognize(organization=org, image=probe.b64()).faces
        answers.append(face.match.name if face.match else None)
    return answers


def import_file(staff_client, slug: str, data: bytes):
    return staff_client.generic("POST", f"/orgs/{slug}/import", data, content_type="application/zip")


def org_contents(org) -> dict[str, Any]:
    return {"people": Person.objects.filter(organization=org).count(),
            "faces": Face.objects.filter(organization=org).count(),
            "vectors": len(get_index().face_ids(organization_id=org.pk))}


# --- export ---------------------------------------------------------------------------------


def test_export_holds_every_person_crop_and_embedding(gallery, staff_client, tmp_path):
    data = export_bytes(gallery)
    archive = zipfile.ZipFile(io.BytesIO(data))
    assert archive.testzip() is None
    manifest = json.loads(archive.read("manifest.json"))
    engine = get_engine()
    assert (manifest["format"], manifest["version"]) == ("faceportal-gallery", 1)
    assert (manifest["model_name"], manifest["detector"]) == (engine.model_name, engine.detector_name)
    exported = {p["name"]: p for p in manifest["people"]}
    for _, name, external_id, metadata in PEOPLE:
        person = Person.objects.get(organization=gallery.org, name=name)
        assert (exported[name]["external_id"], exported[name]["metadata"]) == (external_id, metadata)
        stored = sorted((bytes(f.crop), bytes(f.embedding)) for f in person.faces.all())
        in_file = sorted((archive.read(f["crop"]), archive.read(f["embedding"])) for f in exported[name]["faces"])
        assert in_file == stored and len(stored) == 2
    # Staff may export too, and `manage.py export_org` writes the same gallery.
    by_staff = staff_client.get(f"/orgs/{gallery.org.slug}/export")
    assert by_staff.status_code == 200
    path = tmp_path / "acme.zip"
    call_command("export_org", "acme", str(path), stdout=io.StringIO())
    from_command = zipfile.ZipFile(path)
    assert sorted(from_command.namelist()) == sorted(archive.namelist())
    assert [p["name"] for p in json.loads(from_command.read("manifest.json"))["people"]] == \
        [p["name"] for p in manifest["people"]]


@pytest.mark.django_db(transaction=True)  # the ASGI handler's thread must see the gallery
async def test_an_asgi_server_gets_the_export_piece_by_piece(gallery):
    application = get_asgi_application()
    communicator = ApplicationCommunicator(application, {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
        "path": "/orgs/acme/export", "raw_path": b"/orgs/acme/export", "query_string": b"", "root_path": "",
        "headers": [(b"host", b"testserver"), (b"authorization", f"Bearer {gallery.issued.plaintext}".encode())],
        "client": ("127.0.0.1", 5000), "server": ("testserver", 80),
    })
    await communicator.send_input({"type": "http.request", "body": b"", "more_body": False})
    start = await communicator.receive_output(timeout=30)
    assert start["status"] == 200 and (b"Content-Type", b"application/zip") in start["headers"]
    pieces = []
    while True:
        message = await communicator.receive_output(timeout=30)
        if message["type"] != "http.response.body":
            continue
        pieces.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    await communicator.wait()
    faces = await sync_to_async(Face.objects.filter(organization=gallery.org).count)()
    await sync_to_async(connections.close_all)()  # the handler thread's: the test database is dropped later
    assert len([piece for piece in pieces if piece]) > faces, "sent face by face, never built whole first"
    archive = zipfile.ZipFile(io.BytesIO(b"".join(pieces)))
    assert archive.testzip() is None and len(archive.namelist()) == 1 + 2 * faces


def test_a_face_deleted_while_exporting_is_left_out_not_named_without_its_crop(gallery, staff_client, make_org):
    pieces = gallery_export_chunks(organization=gallery.org)  # the manifest's list of faces is read now
    gone = Face.objects.filter(organization=gallery.org).first()
    face_delete(face=gone)
    data = b"".join(pieces)
    listed = [face for person in json.loads(zipfile.ZipFile(io.BytesIO(data)).read("manifest.json"))["people"]
              for face in person["faces"]]
    assert len(listed) == 2 * len(PEOPLE) - 1
    target = make_org("target")
    assert import_file(staff_client, "target", data).status_code == 200
    assert org_contents(target)["faces"] == 2 * len(PEOPLE) - 1


def test_export_and_import_refuse_the_wrong_callers(gallery, make_tenant, anon_client):
    other = make_tenant("globex", user="bob")
    assert anon_client.get("/orgs/acme/export").status_code == 401
    assert other.client.get("/orgs/acme/export").status_code == 403
    # Import is staff only: not even the organisation's own key.
    refused = gallery.client.generic("POST", "/orgs/acme/import", export_bytes(gallery),
                                     content_type="application/zip")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"


def test_import_route_takes_the_large_body_limit():
    assert body_limit(b"/orgs/acme/import") == django_settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    assert body_limit(b"/orgs/acme/export") == django_settings.FACEPORTAL_MAX_SMALL_BODY_BYTES


# --- round trip -----------------------------------------------------------------------------


def test_round_trip_into_the_atlas_backend_recognises_every_probe_the_same(gallery, staff_client, manifest,
                                                                           storing_atlas):
    before = names_seen(gallery.org, manifest)
    assert before == [name for _, name, *_ in PEOPLE] + [None]
    data = export_bytes(gallery)

    fake = storing_atlas()
    fresh = organization_create(slug="fresh")
    response = import_file(staff_client, "fresh", data)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["reembedded"] is False and body["faces_added"] == 2 * len(PEOPLE)
    assert sorted((p["name"], p["status"], p["faces_added"]) for p in body["people"]) == \
        sorted((name, "created", 2) for _, name, *_ in PEOPLE)
    assert len(fake.stored) == 2 * len(PEOPLE), "the vectors went to the Atlas store"
    assert vectors_check(organization=fresh).consistent
    assert names_seen(fresh, manifest) == before
    by_id = {p.external_id: p for p in Person.objects.filter(organization=fresh)}
    assert by_id["emp-2"].metadata == {"team": "west", "floor": 3}


# --- updates, not duplicates ----------------------------------------------------------------


def test_importing_again_updates_people_by_external_id_and_duplicates_nothing(gallery, staff_client, make_org):
    data = export_bytes(gallery)
    target = make_org("target")
    # Someone already there under the same external_id but another name: renamed, not doubled.
    Person.objects.create(organization=target, name="T. Blair", external_id="emp-1", metadata={"old": True})
    first = import_file(staff_client, "target", data).json()["people"]
    statuses = {p["name"]: p["status"] for p in first}
    assert statuses == {"Tony Blair": "updated", "Angelina Jolie": "created", "Arnold Schwarzenegger": "created"}
    blair = Person.objects.get(organization=target, external_id="emp-1")
    assert (blair.name, blair.metadata) == ("Tony Blair", {"team": "east"})
    counts = org_contents(target)
    assert counts == {"people": 3, "faces": 6, "vectors": 6}

    # Changed metadata in the file: the second import updates it and adds no face.
    archive = zipfile.ZipFile(io.BytesIO(data))
    manifest = json.loads(archive.read("manifest.json"))
    manifest["people"][0]["metadata"] = {"changed": 1}
    again = import_file(staff_client, "target", rezip(archive, manifest)).json()["people"]
    assert {p["status"] for p in again} == {"updated"}
    assert all(p["faces_added"] == 0 and p["faces_skipped"] == 2 for p in again)
    assert org_contents(target) == counts
    name = manifest["people"][0]["name"]
    assert Person.objects.get(organization=target, name=name).metadata == {"changed": 1}


def test_results_come_per_person_and_one_refused_person_does_not_stop_the_others(gallery, staff_client,
                                                                                 make_org):
    data = export_bytes(gallery)
    target = make_org("target")
    # The name is taken by a person with another external_id: that person alone fails.
    Person.objects.create(organization=target, name="Angelina Jolie", external_id="someone-else")
    people = import_file(staff_client, "target", data).json()["people"]
    by_name = {p["name"]: p for p in people}
    assert by_name["Angelina Jolie"]["status"] == "failed"
    assert by_name["Angelina Jolie"]["code"] == "person_exists" and by_name["Angelina Jolie"]["faces_added"] == 0
    assert by_name["Tony Blair"]["status"] == "created" and by_name["Tony Blair"]["faces_added"] == 2
    assert [p["index"] for p in people] == list(range(len(PEOPLE)))
    assert org_contents(target) == {"people": 3, "faces": 4, "vectors": 4}


def test_import_org_command_reads_the_file_into_a_new_organisation(gallery, tmp_path):
    path = tmp_path / "acme.zip"
    path.write_bytes(export_bytes(gallery))
    out = io.StringIO()
    call_command("import_org", "copy", str(path), "--create", stdout=out)
    assert "3 people, 6 faces added (embeddings kept), 0 failed" in out.getvalue()
    with pytest.raises(CommandError, match="No organisation"):
        call_command("import_org", "missing", str(path), stdout=io.StringIO())


# --- another model: re-embedded from the crops ----------------------------------------------


def test_a_file_from_another_model_is_re_embedded_from_its_crops(gallery, staff_client, make_org, manifest):
    data = export_bytes(gallery)
    archive = zipfile.ZipFile(io.BytesIO(data))
    file_manifest = json.loads(archive.read("manifest.json"))
    originals = {face["crop"]: vector_from_bytes(archive.read(face["embedding"]))
                 for person in file_manifest["people"] for face in person["faces"]}
    # Another model's vectors: another size and meaningless to ours.
    file_manifest["model_name"], file_manifest["dimension"] = "OtherNet", 64
    noise = np.random.default_rng(3).normal(size=64).astype(np.float32).tobytes()
    replaced = {face["embedding"]: noise for person in file_manifest["people"] for face in person["faces"]}
    target = make_org("target")
    body = import_file(staff_client, "target", rezip(archive, file_manifest, replace=replaced)).json()
    assert body["reembedded"] is True and body["model_name"] == "OtherNet" and body["faces_added"] == 6
    engine = get_engine()
    for face in Face.objects.filter(organization=target):
        assert face.model_name == engine.model_name and len(bytes(face.embedding)) == engine.dimension * 4
        best = max(float(face.vector @ vector) for vector in originals.values())
        assert best > 0.9, "the crop gives back (nearly) the exported embedding"
    assert names_seen(target, manifest) == [name for _, name, *_ in PEOPLE] + [None]


# --- hostile archives -------------------------------------------------------------------------


def rezip(archive: zipfile.ZipFile, manifest: dict[str, Any], *, replace: dict[str, bytes] | None = None,
          extra: list[tuple[zipfile.ZipInfo | str, bytes]] = ()) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as new:
        new.writestr("manifest.json", json.dumps(manifest))
        for name in archive.namelist():
            if name != "manifest.json":
                new.writestr(name, (replace or {}).get(name, archive.read(name)))
        for info, content in extra:
            new.writestr(info, content)
    return out.getvalue()


def symlink_entry(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


def lying_size(data: bytes) -> bytes:
    """The archive with its first crop's sizes in the central directory and local header halved."""
    archive = zipfile.ZipFile(io.BytesIO(data))
    info = next(i for i in archive.infolist() if i.filename.endswith(".jpg"))
    patched = bytearray(data)
    central = data.index(b"PK\x01\x02")
    while True:  # the central directory entry of that member
        name_length = struct.unpack_from("<H", data, central + 28)[0]
        if data[central + 46:central + 46 + name_length].decode() == info.filename:
            break
        central = data.index(b"PK\x01\x02", central + 4)
    struct.pack_into("<I", patched, central + 24, info.file_size // 2)
    struct.pack_into("<I", patched, central + 20, info.compress_size)
    return bytes(patched)


def bomb(size: int):
    # One crop replaced by zeros: they deflate over 1000:1.
    def build(archive, manifest) -> bytes:
        name = manifest["people"][0]["faces"][0]["crop"]
        return rezip(archive, manifest, replace={name: b"\xff\xd8\xff" + bytes(size)})

    return build


def manifest_text(text: bytes):
    def build(archive, manifest) -> bytes:
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w") as new:
            new.writestr("manifest.json", text)
        return out.getvalue()

    return build


def too_many_members(archive, manifest) -> bytes:
    return rezip(archive, manifest, extra=[(f"faces/{900000 + i}.f32", b"") for i in range(40_001)])


HOSTILE = {
    "dot-dot name": lambda a, m: rezip(a, m, extra=[("../evil.jpg", b"x")]),
    "dot-dot inside": lambda a, m: rezip(a, m, extra=[("faces/../../etc/passwd", b"x")]),
    "absolute name": lambda a, m: rezip(a, m, extra=[("/tmp/evil.jpg", b"x")]),
    "backslash name": lambda a, m: rezip(a, m, extra=[("faces\\..\\evil.jpg", b"x")]),
    "drive letter": lambda a, m: rezip(a, m, extra=[("C:/evil.jpg", b"x")]),
    "symlink entry": lambda a, m: rezip(a, m, extra=[(symlink_entry("faces/999.jpg"), b"/etc/passwd")]),
    "folder entry": lambda a, m: rezip(a, m, extra=[("faces/sub/", b"")]),
    "stranger member": lambda a, m: rezip(a, m, extra=[("notes.txt", b"hello")]),
    "manifest path escapes": lambda a, m: rezip(a, {**m, "people": [
        {**m["people"][0], "faces": [{"crop": "../../etc/passwd"}]}]}),
    "member the manifest names is missing": lambda a, m: rezip(a, {**m, "people": [
        {**m["people"][0], "faces": [{"crop": "faces/777.jpg"}]}]}),
    "not a jpeg crop": lambda a, m: rezip(a, m, replace={m["people"][0]["faces"][0]["crop"]: b"GIF89a" * 10}),
    "wrong embedding size": lambda a, m: rezip(a, m, replace={m["people"][0]["faces"][0]["embedding"]: b"\0" * 12}),
    "zip bomb (large)": bomb(60 * 1024 * 1024),
    "zip bomb (ratio, under the size cap)": bomb(400 * 1024),
    "too many members": too_many_members,
    "sizes that lie": lambda a, m: lying_size(rezip(a, m)),
    "not a zip": lambda a, m: b"PK\x03\x04 this is not a zip",
    "bad manifest": lambda a, m: rezip(a, {**m, "version": 99}),
    "manifest not json": manifest_text(b"{not json"),
    "manifest not an object": manifest_text(b"[1, 2]"),
    "no manifest": lambda a, m: rezip(a, m).replace(b"manifest.json", b"manifest.jsox"),
    "empty file": lambda a, m: b"",
}


@functools.cache
def sound_gallery_file() -> bytes:
    """A well-formed gallery file of our model, made without the engine: noise crops, random vectors."""
    engine = get_engine()
    rng = np.random.default_rng(11)
    out, people, number = io.BytesIO(), [], 0
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, external_id in (("Ann Example", "x-1"), ("Bo Example", None)):
            faces = []
            for _ in range(2):
                crop = io.BytesIO()
                Image.fromarray(rng.integers(0, 255, (96, 96, 3), dtype=np.uint8)).save(crop, "JPEG")
                vector = rng.normal(size=engine.dimension).astype(np.float32)
                archive.writestr(f"faces/{number}.jpg", crop.getvalue())
                archive.writestr(f"faces/{number}.f32", (vector / np.linalg.norm(vector)).tobytes())
                faces.append({"crop": f"faces/{number}.jpg", "embedding": f"faces/{number}.f32"})
                number += 1
            people.append({"name": name, "external_id": external_id, "metadata": {}, "faces": faces})
        archive.writestr("manifest.json", json.dumps({
            "format": "faceportal-gallery", "version": 1, "model_name": engine.model_name,
            "dimension": engine.dimension, "people": people}))
    return out.getvalue()


def test_the_sound_file_imports(staff_client, make_org):
    """The file the attacks below start from is accepted: each refusal is the attack's doing."""
    target = make_org("target")
    assert import_file(staff_client, "target", sound_gallery_file()).status_code == 200
    assert org_contents(target) == {"people": 2, "faces": 4, "vectors": 4}


@pytest.mark.parametrize("attack", sorted(HOSTILE))
def test_hostile_archives_are_refused_with_400_and_nothing_is_written(staff_client, make_org, attack):
    archive = zipfile.ZipFile(io.BytesIO(sound_gallery_file()))
    manifest = json.loads(archive.read("manifest.json"))
    target = make_org("target")
    response = import_file(staff_client, "target", HOSTILE[attack](archive, manifest))
    assert response.status_code == 400, (attack, response.content)
    assert response.json()["error"]["code"] in {"invalid_archive", "unsafe_archive_path", "archive_too_large",
                                                "invalid_input"}, response.json()
    assert org_contents(target) == {"people": 0, "faces": 0, "vectors": 0}
    assert not any(Path(django_settings.BASE_DIR).glob("evil*")), "nothing was extracted"

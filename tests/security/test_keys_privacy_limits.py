"""Keys (revocation seen by every worker, admin never shows a secret, rotation loses no request),
limits (body size, images per request, pixels per image), privacy (deleting a person or a whole
organisation leaves no copy anywhere) and logs free of secrets and image data."""

from __future__ import annotations

import base64
import logging
import os
import subprocess
import sys
import threading

import pytest
import redis
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db import connection, connections
from django.test import Client

from apikeys.models import APIKey
from apikeys.services import ABSENT, _cache_key, api_key_issue, api_key_revoke
from faces.index import get_index
from faces.index.embedded import EmbeddedVectorIndex
from faces.models import EmbeddedVector, Face, IndexState, Person
from faces.services import person_register
from organizations.models import Organization
from organizations.services import organization_delete
from tests.conftest import REPO_ROOT, api_auth, key_client
from tests.image_samples import png_claiming

pytestmark = pytest.mark.django_db(transaction=True)

PEOPLE = "/orgs/acme/people"


# --- keys ------------------------------------------------------------------------------------------

def test_key_revoked_by_another_process_fails_here_at_once(make_org, make_key):
    issued = make_key(make_org("acme"))
    client = key_client(issued)
    assert client.get(PEOPLE).status_code == 200  # cached in the shared Redis now
    params = connection.settings_dict
    env = {**os.environ, "DATABASE_URL": f"postgres://{params['USER']}@{params['HOST']}:{params['PORT'] or 5432}/"
           f"{params['NAME']}"}
    other_worker = (
        "import django, os; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'faceportal.settings'); django.setup()\n"
        "from apikeys.models import APIKey; from apikeys.services import api_key_revoke\n"
        f"api_key_revoke(api_key=APIKey.objects.get(pk={issued.api_key.pk}))\n"
    )
    subprocess.run([sys.executable, "-c", other_worker], cwd=REPO_ROOT, env=env, check=True, timeout=120,
                   capture_output=True)
    assert client.get(PEOPLE).status_code == 401


def test_admin_never_shows_a_secret(make_org, manifest):
    org = make_org("acme")
    person_register(organization=org, name="Tony Blair", images=[manifest["Tony_Blair"][0].b64()])
    staff = get_user_model().objects.create_superuser("root", password="root-pass-123")
    browser = Client()
    browser.force_login(staff)
    added = browser.post("/admin/apikeys/apikey/add/", {"organization": org.pk, "user": "alice", "name": "ci",
                                                     "scopes": ["recognize", "enrol", "manage"]},
                         follow=True)
    assert added.status_code == 200
    api_key = APIKey.objects.get(name="ci")
    secret = added.context["plaintext"]  # the "copy this now" page, answered to the POST itself
    assert secret.startswith(f"fp_{api_key.prefix}_")
    pages = [
        "/admin/apikeys/apikey/", f"/admin/apikeys/apikey/{api_key.pk}/change/",
        "/admin/organizations/organization/", f"/admin/organizations/organization/{org.pk}/change/",
        "/admin/faces/person/", "/admin/faces/face/",
    ]
    for page in pages:
        response = browser.get(page)
        assert response.status_code == 200, page
        html = response.content.decode()
        assert secret not in html and secret.split("_", 2)[2] not in html, page
        assert api_key.secret_hash not in html, page
    # The secret is not in any message shown again on a later page either.
    assert secret not in browser.get("/admin/").content.decode()


def test_rotating_a_key_under_load_loses_no_request(make_org, make_key):
    org = make_org("acme")
    old = make_key(org, name="old")
    current = {"key": old}
    switched: set[int] = set()
    failures: list[str] = []
    counts = [0] * 6
    stop = threading.Event()

    def client_loop(worker: int) -> None:
        try:
            while not stop.is_set():
                issued = current["key"]
                response = key_client(issued).get(PEOPLE)
                if response.status_code != 200:
                    failures.append(f"{issued.api_key.name}: {response.status_code}")
                counts[worker] += 1
                if issued is not old:
                    switched.add(worker)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=client_loop, args=(n,)) for n in range(len(counts))]
    for thread in threads:
        thread.start()
    try:
        while sum(counts) < 30:
            threading.Event().wait(0.02)
        new = api_key_issue(organization=org, user="alice", name="new")  # 1. issue the new key
        current["key"] = new  # 2. clients move over, some still sending with the old one
        while len(switched) < len(counts):
            threading.Event().wait(0.02)
        api_key_revoke(api_key=old.api_key)  # 3. every client uses the new one: revoke the old
        settled = sum(counts)
        while sum(counts) < settled + 30:
            threading.Event().wait(0.02)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    assert failures == []
    assert key_client(old).get(PEOPLE).status_code == 401
    assert key_client(new).get(PEOPLE).status_code == 200


# --- limits ------------------------------------------------------------------------------------------



def test_each_limit_is_a_clear_4xx_and_stores_nothing(make_org, make_key, manifest, settings):
    client = key_client(make_key(make_org("acme")))
    photo = manifest["Tony_Blair"][0].b64()

    settings.FACEPORTAL_MAX_IMAGES_PER_REQUEST = limit = 3  # not the default: the setting is what counts
    too_many = client.post("/register/acme", {"name": "X", "images": [photo] * (limit + 1)}, format="json")
    assert too_many.status_code == 400
    error = too_many.json()["error"]
    assert error["details"]["field"] == "images" and f"At most {limit} images" in error["message"], error

    bomb = base64.b64encode(png_claiming(20000, 20000)).decode()
    for response in (client.post("/register/acme", {"name": "X", "images": [bomb]}, format="json"),
                     client.post("/recognize/acme", {"image": bomb}, format="json")):
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "image_too_large"
        assert "20000x20000" in response.json()["error"]["message"]

    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 32 * 1024  # FACEPORTAL_MAX_BODY_BYTES
    big = client.post("/register/acme", {"name": "X", "images": [photo] * 3}, format="json")
    assert big.status_code == 413
    assert big.json()["error"]["code"] == "payload_too_large"
    assert Person.objects.count() == Face.objects.count() == EmbeddedVector.objects.count() == 0


# --- privacy ---------------------------------------------------------------------------------------

def test_deleting_a_person_removes_every_copy(make_org, make_key, manifest):
    org = make_org("acme")
    issued = make_key(org)
    client = key_client(issued)
    blair = manifest["Tony_Blair"]
    registered = client.post("/register/acme", {"name": "Tony Blair", "images": [p.b64() for p in blair[:2]]},
                             format="json").json()
    person_id = registered["person"]["id"]
    face = Face.objects.filter(person_id=person_id).first()
    vector = face.vector.copy()
    assert face.crop and get_index().count(organization_id=org.pk) == 2
    probe = {"image": blair[2].b64()}
    assert client.post("/recognize/acme", probe, format="json").json()["faces"][0]["match"]["name"] == "Tony Blair"

    assert client.delete(f"/orgs/acme/people/{person_id}", {"api_auth": api_auth(issued)},
                         format="json").status_code == 204

    assert not Person.objects.filter(pk=person_id).exists()
    assert not Face.objects.filter(person_id=person_id).exists()  # embeddings and crops live on these rows
    assert not EmbeddedVector.objects.filter(person_id=person_id).exists()
    hits = get_index().search(organization_id=org.pk, vectors=vector[None, :], k=10)
    assert hits == [[]]  # this worker's in-memory copy forgot them too
    # A worker starting now (its copy from the table and any saved graph) has never heard of them.
    fresh = EmbeddedVectorIndex(directory=get_index().files.directory)
    assert fresh.search(organization_id=org.pk, vectors=vector[None, :], k=10) == [[]]
    assert client.get(f"/orgs/acme/people/{person_id}/faces/{face.pk}/thumbnail").status_code == 404
    faces = client.post("/recognize/acme", probe, format="json").json()["faces"]
    assert faces[0]["match"] is None and faces[0]["candidates"] == []
    assert client.get(f"/orgs/acme/people/{person_id}").status_code == 404


def test_an_organisation_can_be_deleted_completely(make_org, make_key, manifest):
    acme, other = make_org("acme"), make_org("globex")
    issued = make_key(acme)
    person_register(organization=acme, name="Tony Blair", images=[p.b64() for p in manifest["Tony_Blair"][:2]])
    person_register(organization=other, name="Barack Obama", images=[manifest["Barack_Obama"][0].b64()])
    assert key_client(issued).get(PEOPLE).status_code == 200  # its key is in the cache
    acme_id = acme.pk

    organization_delete(organization=acme)

    assert not Organization.objects.filter(pk=acme_id).exists()
    for model in (APIKey, Person, Face, EmbeddedVector, IndexState):
        assert not model.objects.filter(organization_id=acme_id).exists(), model.__name__
    assert get_index().count(organization_id=acme_id) == 0
    # The key's cached identity is gone; what may still name its public prefix is a throttle
    # counter (timestamps only) or the key's tombstone (the absent marker), both expiring within
    # the minute.
    assert cache.get(_cache_key(issued.api_key.prefix)) == ABSENT
    cache_client = redis.Redis.from_url(django_settings.CACHES["default"]["LOCATION"])
    for key in cache_client.scan_iter(f"*{issued.api_key.prefix}*"):
        assert b"throttle_" in key or key.endswith(_cache_key(issued.api_key.prefix).encode()), key
        assert 0 < cache_client.ttl(key) <= 60, key
    assert key_client(issued).get(PEOPLE).status_code == 401
    # The other tenant is whole.
    assert Face.objects.filter(organization=other).count() == 1
    assert get_index().count(organization_id=other.pk) == 1


# --- logs ------------------------------------------------------------------------------------------

def test_logs_carry_no_secret_and_no_image(make_org, make_key, manifest, caplog, capfd):
    issued = make_key(make_org("acme"))
    client = key_client(issued)
    photo = manifest["Tony_Blair"][0].b64()
    caplog.set_level(logging.DEBUG)
    client.post("/register/acme", {"name": "Tony Blair", "images": [photo, "not-an-image"]}, format="json")
    client.post("/register/acme", {"name": "Tony Blair", "images": [photo]}, format="json")
    client.post("/recognize/acme", {"image": photo}, format="json")
    client.post("/recognize/acme", {"image": "data:image/png;base64," + photo[:4000]}, format="json")
    client.delete("/orgs/acme/api-key", {"api_auth": api_auth(issued)}, format="json")
    key_client(issued).get(PEOPLE)  # a revoked key, refused and logged as a 401
    logged = "\n".join(f"{record.getMessage()} {record.__dict__}" for record in caplog.records)
    logged += "\n".join(capfd.readouterr())
    assert caplog.records, "the requests were logged"
    secret = issued.plaintext.split("_", 2)[2]
    assert secret not in logged and issued.api_key.secret_hash not in logged
    for start in range(0, 4000, 500):  # no stretch of the image's base64 anywhere
        assert photo[start:start + 64] not in logged

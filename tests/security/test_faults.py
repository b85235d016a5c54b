"""Faults in the real dependencies, caused for real: Redis stopped mid-run, the database
unreachable or cut off mid-registration, the vector store unavailable, a worker SIGKILLed while
registering. The service answers 503 JSON (never 500, never a false 401), nothing is half-written,
and the database and the vector store agree afterwards."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from contextlib import contextmanager

import psycopg
import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import connection, connections

from faces.index import get_index, reset_index
from faces.models import EmbeddedVector, Face, Person
from faces.vector_maintenance import vectors_check
from tests.conftest import REPO_ROOT, key_client
from tests.redis_server import free_port
from tests.websocket import ORIGIN, application, socket_path

pytestmark = pytest.mark.django_db(transaction=True)


def assert_503(response, code: str | None = None) -> None:
    assert response.status_code == 503, response.content
    error = response.json()["error"]
    assert set(error) == {"code", "message", "details"}
    if code:
        assert error["code"] == code


def database_counts() -> tuple[int, int, int]:
    return Person.objects.count(), Face.objects.count(), EmbeddedVector.objects.count()


def admin_connection() -> psycopg.Connection:
    params = connection.settings_dict
    return psycopg.connect(host=params["HOST"], port=params["PORT"] or 5432, user=params["USER"],
                           dbname=params["NAME"], autocommit=True)


# --- Redis -----------------------------------------------------------------------------------------



async def test_redis_stopped_mid_run_keeps_rest_and_open_websockets_going(private_redis, acme, manifest):
    org, issued, _ = acme
    photo = manifest["Barack_Obama"][0]

    @sync_to_async
    def get_people() -> int:
        try:
            return key_client(issued).get("/orgs/acme/people").status_code
        finally:
            connections.close_all()  # this helper thread's connection, so the test database can be dropped
    socket = WebsocketCommunicator(application, socket_path(issued), headers=[ORIGIN])
    assert (await socket.connect(timeout=60))[0]
    assert (await socket.receive_json_from(timeout=60))["type"] == "ready"
    assert await get_people() == 200

    private_redis.stop()  # Redis goes away while a socket is open and requests keep coming

    assert await get_people() == 200  # key checked against the database; throttles let it through
    for _ in range(2):  # each frame re-checks the key, now from the database
        await socket.send_to(bytes_data=photo.path.read_bytes())
        reply = await socket.receive_json_from(timeout=60)
        assert reply["type"] == "result", reply
        assert len(reply["faces"]) == 1
    await socket.disconnect()


# --- the database -------------------------------------------------------------------------------

@contextmanager
def database_unreachable():
    """Point this process's connection at a port where nothing listens: every query now fails to
    connect, as when PostgreSQL is down or the network to it is cut."""
    saved = connection.settings_dict["PORT"]
    connection.close()
    connection.settings_dict["PORT"] = str(free_port())
    try:
        yield
    finally:
        connection.close()
        connection.settings_dict["PORT"] = saved


def test_database_unreachable_answers_503_and_writes_nothing(acme, make_key, manifest):
    org, used, _ = acme
    never_used = make_key(org, name="cold")  # not in the cache: its check must reach the database
    client = key_client(used)
    assert client.get("/orgs/acme/people").status_code == 200  # its key is cached now
    photo = manifest["Tony_Blair"][0].b64()
    with database_unreachable():
        assert_503(client.get("/orgs/acme/people"), "database_unavailable")
        assert_503(client.post("/register/acme", {"name": "Tony Blair", "images": [photo]}, format="json"),
                   "database_unavailable")
        assert_503(client.post("/recognize/acme", {"image": photo}, format="json"), "database_unavailable")
        # A key that cannot be checked is "unavailable", never "invalid": clients must not drop it.
        assert_503(key_client(never_used).get("/orgs/acme/people"), "database_unavailable")
    assert database_counts() == (0, 0, 0)
    assert client.post("/register/acme", {"name": "Tony Blair", "images": [photo]}, format="json").status_code == 201


def test_connection_cut_mid_registration_rolls_everything_back(acme, manifest):
    org, issued, _ = acme
    photos = [p.b64() for p in manifest["Tony_Blair"][:2]]

    def cut_connection_at_vector_write(execute, sql, params, many, context):
        # The face rows are written by now; PostgreSQL drops this session before the vectors are.
        if 'INSERT INTO "faces_embeddedvector"' in sql:
            with admin_connection() as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", [connection.connection.info.backend_pid])
        return execute(sql, params, many, context)

    client = key_client(issued)
    with connection.execute_wrapper(cut_connection_at_vector_write):
        response = client.post("/register/acme", {"name": "Tony Blair", "images": photos}, format="json")
    assert_503(response, "database_unavailable")
    connection.close()
    assert database_counts() == (0, 0, 0)
    assert vectors_check(organization=org).consistent
    assert client.post("/register/acme", {"name": "Tony Blair", "images": photos}, format="json").status_code == 201


# --- the vector store ---------------------------------------------------------------------------

@contextmanager
def tables_locked(*tables: str):
    """Another session holds an exclusive lock, and this process waits at most 300 ms for a lock:
    the embedded store's tables answer nothing, as an overloaded or hung store would."""
    saved = dict(connection.settings_dict.get("OPTIONS", {}))
    connection.close()
    connection.settings_dict["OPTIONS"] = {**saved, "options": "-c lock_timeout=300"}
    admin = admin_connection()
    admin.autocommit = False
    admin.execute(f"LOCK TABLE {', '.join(tables)} IN ACCESS EXCLUSIVE MODE")
    try:
        yield
    finally:
        admin.rollback()
        admin.close()
        connection.close()
        connection.settings_dict["OPTIONS"] = saved


def test_vector_store_unavailable_answers_503_then_agrees_with_the_database(acme, manifest):
    org, issued, _ = acme
    client = key_client(issued)
    blair = [p.b64() for p in manifest["Tony_Blair"][:2]]
    assert client.post("/register/acme", {"name": "Tony Blair", "images": blair}, format="json").status_code == 201
    before = database_counts()
    obama = [p.b64() for p in manifest["Barack_Obama"][:2]]
    with tables_locked('"faces_embeddedvector"'):
        assert_503(client.post("/register/acme", {"name": "Barack Obama", "images": obama}, format="json"))
    with tables_locked('"faces_embeddedvector"', '"faces_indexstate"'):
        assert_503(client.post("/recognize/acme", {"image": manifest["Tony_Blair"][2].b64()}, format="json"))
    assert database_counts() == before
    diff = vectors_check(organization=org)
    assert diff.consistent and diff.faces == diff.vectors == 2
    recognised = client.post("/recognize/acme", {"image": manifest["Tony_Blair"][2].b64()}, format="json")
    assert recognised.json()["faces"][0]["match"]["name"] == "Tony Blair"


def test_atlas_unreachable_answers_503_and_stores_nothing(acme, manifest, settings):
    org, issued, _ = acme
    client = key_client(issued)
    settings.FACEPORTAL_VECTOR_STORE = "atlas"
    settings.MONGODB_URI = f"mongodb://127.0.0.1:{free_port()}/?directConnection=true"
    settings.MONGODB_TIMEOUT_MS = 300
    reset_index()
    try:
        photo = manifest["Tony_Blair"][0].b64()
        assert_503(client.post("/register/acme", {"name": "Tony Blair", "images": [photo]}, format="json"),
                   "vector_store_unavailable")
        assert_503(client.post("/recognize/acme", {"image": photo}, format="json"), "vector_store_unavailable")
        assert database_counts() == (0, 0, 0)
    finally:
        reset_index()


# --- a worker killed mid-registration -------------------------------------------------------------

WORKER = textwrap.dedent("""
    import base64, os, sys, time
    import django
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "faceportal.settings")
    django.setup()
    from django.db import connection, connections
    from faces.services import person_register
    from organizations.models import Organization

    org = Organization.objects.get(slug="acme")
    photos = lambda paths: [base64.b64encode(open(p, "rb").read()).decode() for p in paths]
    person_register(organization=org, name="Committed", images=photos(sys.argv[1:3]))
    print("COMMITTED", flush=True)

    def hold_inside_the_transaction(execute, sql, params, many, context):
        if 'INSERT INTO "faces_embeddedvector"' in sql:
            print("IN_TRANSACTION", flush=True)
            time.sleep(300)  # the parent kills us here
        return execute(sql, params, many, context)

    with connection.execute_wrapper(hold_inside_the_transaction):
        person_register(organization=org, name="Killed", images=photos(sys.argv[3:5]))
    print("NOT_KILLED", flush=True)
""")


def test_worker_killed_mid_registration_leaves_no_orphan(acme, manifest):
    org = acme.org
    env = {**os.environ, "DATABASE_URL": "postgres://{USER}@{HOST}:{PORT}/{NAME}".format(**{
        **connection.settings_dict, "PORT": connection.settings_dict["PORT"] or 5432}),
        "FACEPORTAL_WARM_ENGINE": "false"}
    paths = [str(p.path) for p in manifest["Tony_Blair"][:2] + manifest["Barack_Obama"][:2]]
    worker = subprocess.Popen([sys.executable, "-c", WORKER, *paths], cwd=REPO_ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        lines = []
        for line in worker.stdout:
            lines.append(line.strip())
            if line.strip() == "IN_TRANSACTION":
                break
        assert lines[-2:] == ["COMMITTED", "IN_TRANSACTION"], lines
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=30)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert worker.returncode == -signal.SIGKILL
    connection.close()  # read what a fresh worker would see
    assert list(Person.objects.values_list("name", flat=True)) == ["Committed"]
    assert Face.objects.count() == 2
    diff = vectors_check(organization=org)
    assert diff.consistent and diff.vectors == 2, diff
    assert get_index().count(organization_id=org.pk) == 2

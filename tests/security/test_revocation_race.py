"""A key revoked while a request is reading it stops working at the revocation's commit.

Real PostgreSQL, two connections: the revoking transaction holds the key's row while a request on
another connection has read the row as active and waits on the lock for its last-used update; the
revocation then commits. Before tombstones, that request cached the key again after the eviction
and kept it working for the whole cache TTL.
"""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection, connections, transaction

from apikeys.models import APIKey
from apikeys.services import api_key_delete, api_key_revoke, api_key_revoke_by_name
from organizations.services import organization_deactivate
from tests.conftest import key_client

pytestmark = pytest.mark.django_db(transaction=True)

PEOPLE = "/orgs/acme/people"


def revoke(issued, org):
    api_key_revoke(api_key=APIKey.objects.get(pk=issued.api_key.pk))


def revoke_by_name(issued, org):
    api_key_revoke_by_name(organization=org, user=issued.api_key.user, name=issued.api_key.name)


def delete(issued, org):
    api_key_delete(api_key=APIKey.objects.get(pk=issued.api_key.pk))


def deactivate(issued, org):
    organization_deactivate(organization=org)


def waiting_on_a_lock() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")  # else a transaction sees its first snapshot
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                       "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()")
        return cursor.fetchone()[0]


@pytest.mark.parametrize("how", [revoke, revoke_by_name, delete, deactivate], ids=lambda f: f.__name__)
@pytest.mark.parametrize("header", ["bearer", "x-api-key"])
def test_a_request_that_read_the_key_before_the_revocation_cannot_revive_it(make_org, make_key, how, header):
    org = make_org("acme")
    issued = make_key(org)  # never used: the cache does not hold it, and its last-used time is old
    answered = {}

    def request_in_flight() -> None:
        try:
            answered["status"] = key_client(issued, header=header).get(PEOPLE).status_code
        finally:
            connections.close_all()

    reader = threading.Thread(target=request_in_flight)
    with transaction.atomic():
        APIKey.objects.select_for_update().filter(pk=issued.api_key.pk).exists()  # the key's row, held
        how(issued, org)
        reader.start()
        deadline = time.monotonic() + 20
        while waiting_on_a_lock() == 0:  # the request has read the row and waits to update it
            assert time.monotonic() < deadline, "the request never reached the key's row lock"
            time.sleep(0.01)
    reader.join(timeout=30)
    assert "status" in answered
    for _ in range(3):
        response = key_client(issued, header=header).get(PEOPLE)
        assert response.status_code == 401, response.content
        assert response.json()["error"]["code"] == "authentication_failed"

"""Deleting a person while a registration adds a face to them leaves no orphan vector.
Real PostgreSQL, two connections (one thread each), interleaved explicitly: one side is
held inside its transaction by a signal until the other is seen waiting on a row lock."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from django.db import connection, connections
from django.db.models.signals import post_save, pre_delete

from faces.models import Face, Person
from faces.services import person_delete, person_register
from faces.vector_maintenance import vectors_check

pytestmark = pytest.mark.django_db(transaction=True)


def lock_waiters() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return cursor.fetchone()[0]


def wait_for_a_lock_waiter(timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if lock_waiters():
            return True
        time.sleep(0.05)
    return False


class Side(threading.Thread):
    """Runs `work` on its own database connection and keeps its result or exception."""

    def __init__(self, name: str, work: Callable[[], object]) -> None:
        super().__init__(name=name, daemon=True)
        self.work = work
        self.result: object = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = self.work()
        except BaseException as exc:  # reported by the test
            self.error = exc
        finally:
            connections.close_all()


def hold_inside(signal, sender, thread_name: str) -> tuple[threading.Event, threading.Event, Callable[[], None]]:
    """Pause the named thread the first time `signal` fires in it (inside its transaction)."""
    reached, release = threading.Event(), threading.Event()

    def receiver(**kwargs) -> None:
        if threading.current_thread().name == thread_name and not reached.is_set():
            reached.set()
            release.wait(timeout=120)

    signal.connect(receiver, sender=sender, weak=False)
    return reached, release, lambda: signal.disconnect(receiver, sender=sender)


def test_delete_waits_for_a_registration_that_is_adding_a_face(make_org, manifest):
    organization = make_org("acme")
    photos = manifest["Barack_Obama"]
    person = person_register(organization=organization, name="Obama", images=[photos[0].b64()]).person
    # The registration creates its face row and is held there, its transaction open (person locked).
    reached, release, disconnect = hold_inside(post_save, Face, "register")
    try:
        register = Side("register", lambda: person_register(organization=organization, name="Obama",
                                                              images=[photos[1].b64()]))
        register.start()
        assert reached.wait(timeout=300), register.error
        delete = Side("delete", lambda: person_delete(person=Person.objects.get(pk=person.pk)))
        delete.start()
        # The delete is seen blocked on the registration's row lock, then the registration goes on.
        assert wait_for_a_lock_waiter()
        release.set()
        register.join(timeout=120)
        delete.join(timeout=120)
    finally:
        release.set()
        disconnect()
    assert register.error is None, register.error
    assert delete.error is None, delete.error
    assert delete.result == 2  # both faces, the one that committed meanwhile included
    assert not Person.objects.filter(organization=organization).exists()
    assert not Face.objects.filter(organization=organization).exists()
    diff = vectors_check(organization=organization)
    assert diff.consistent and diff.vectors == 0, diff


def test_a_registration_waits_for_a_delete_that_holds_the_person(make_org, manifest):
    organization = make_org("acme")
    photos = manifest["Barack_Obama"]
    person = person_register(organization=organization, name="Obama", images=[photos[0].b64()]).person
    # The delete has locked the person and read its faces, and is held just before deleting.
    reached, release, disconnect = hold_inside(pre_delete, Person, "delete")
    try:
        delete = Side("delete", lambda: person_delete(person=Person.objects.get(pk=person.pk)))
        delete.start()
        assert reached.wait(timeout=60), delete.error
        register = Side("register", lambda: person_register(organization=organization, name="Obama",
                                                              images=[photos[1].b64()]))
        register.start()
        assert wait_for_a_lock_waiter(timeout=120), register.error
        release.set()
        delete.join(timeout=120)
        register.join(timeout=120)
    finally:
        release.set()
        disconnect()
    assert delete.error is None, delete.error
    assert register.error is None, register.error
    assert delete.result == 1
    # The registration made the person anew, with its one face and that face's vector.
    survivor = Person.objects.get(organization=organization)
    assert survivor.pk != person.pk
    assert Face.objects.filter(person=survivor).count() == 1
    diff = vectors_check(organization=organization)
    assert diff.consistent and diff.vectors == 1, diff

"""Renaming a person while their deletion commits answers 404, never 500. Real PostgreSQL, two
connections: the delete is held inside its transaction (person row locked, rows gone but not yet
committed) until the rename is seen waiting on that row, then commits."""

from __future__ import annotations

import pytest
from django.db.models.signals import post_delete

from faces.models import Face, Person
from tests.conftest import key_client
from tests.faces.test_person_delete_race import Side, hold_inside, wait_for_a_lock_waiter

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("new_name", ["Ada King", "Zoë Ångström", "李小龍", "O'Brien-Smith", "a" * 100])
@pytest.mark.parametrize("header", ["bearer", "x-api-key"])
def test_a_rename_racing_a_delete_of_the_same_person_is_a_404(make_org, make_key, new_name, header):
    organization = make_org("acme")
    issued = make_key(organization)
    person = Person.objects.create(organization=organization, name="Ada Lovelace")
    url = f"/orgs/acme/people/{person.pk}"
    reached, release, disconnect = hold_inside(post_delete, Person, "delete")
    try:
        delete = Side("delete", lambda: key_client(issued, header=header).delete(url).status_code)
        delete.start()
        assert reached.wait(timeout=60), delete.error
        rename = Side("rename", lambda: key_client(issued, header=header).patch(
            url, {"name": new_name}, format="json"))
        rename.start()
        waited = wait_for_a_lock_waiter(timeout=20)  # the rename read the person, then met the row lock
        release.set()
        delete.join(timeout=60)
        rename.join(timeout=60)
    finally:
        release.set()
        disconnect()
    assert waited
    assert delete.error is None and delete.result == 204
    assert rename.error is None
    response = rename.result
    assert response.status_code == 404, response.content
    assert response.json()["error"]["code"] == "person_not_found"
    assert not Person.objects.filter(pk=person.pk).exists()
    assert not Face.objects.filter(person_id=person.pk).exists()

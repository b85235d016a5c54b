"""GET/PATCH /orgs/{org}: staff read and change an organisation's name, state and settings."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from organizations.models import Organization
from tests.conftest import key_client

pytestmark = pytest.mark.django_db


def test_staff_read_and_change_the_settings(staff_client, make_org):
    make_org("acme")
    body = staff_client.get("/orgs/acme").json()
    assert body["keep_unknown_faces"] is False and body["unknown_retention_days"] == 30
    changed = staff_client.patch("/orgs/acme", {"keep_unknown_faces": True, "unknown_retention_days": 7,
                                                "unknown_max_kept": 500, "name": "Acme Corp"}, format="json")
    assert changed.status_code == 200, changed.content
    org = Organization.objects.get(slug="acme")
    assert (org.keep_unknown_faces, org.unknown_retention_days, org.unknown_max_kept, org.name) == (
        True, 7, 500, "Acme Corp")
    assert changed.json()["keep_unknown_faces"] is True


def test_deactivating_stops_its_keys(staff_client, make_org, make_key):
    org = make_org("acme")
    client = key_client(make_key(org))
    assert client.get("/orgs/acme/people").status_code == 200
    assert staff_client.patch("/orgs/acme", {"is_active": False}, format="json").status_code == 200
    assert client.get("/orgs/acme/people").status_code in (401, 403, 404)
    assert staff_client.patch("/orgs/acme", {"is_active": True}, format="json").json()["is_active"] is True


def test_not_staff_and_missing_org(make_org, make_key, staff_client, anon_client):
    org = make_org("acme")
    assert key_client(make_key(org)).patch("/orgs/acme", {"keep_unknown_faces": True}, format="json").status_code \
        in (401, 403)
    assert anon_client.get("/orgs/acme").status_code in (401, 403)
    assert staff_client.get("/orgs/nope").status_code == 404
    assert Organization.objects.get(slug="acme").keep_unknown_faces is False


# The staff client and organisation are set up once; each example restores what it changed.
@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(field=st.sampled_from(["keep_unknown_faces", "unknown_retention_days", "unknown_max_kept",
                              "false_match_rate", "is_active", "name"]),
       value=st.one_of(st.text(max_size=5), st.integers(min_value=-10**9, max_value=0), st.none(),
                       st.floats(allow_nan=True), st.lists(st.integers(), max_size=2), st.integers(10**6, 10**12)))
def test_bad_values_are_a_400_and_change_nothing(staff_client, make_org, field, value):
    org = Organization.objects.filter(slug="acme").first() or make_org("acme")
    before = Organization.objects.filter(pk=org.pk).values().get()
    response = staff_client.patch("/orgs/acme", {field: value}, format="json")
    if response.status_code == 200:  # a value that happens to be valid (a short name, a float rate)
        Organization.objects.filter(pk=org.pk).update(**{k: v for k, v in before.items() if k != "id"})
        return
    assert response.status_code == 400, (field, value, response.content)
    assert response.json()["error"]["code"] == "invalid_input"
    assert Organization.objects.filter(pk=org.pk).values().get() == before


def test_staff_turn_keeping_on_in_the_admin(admin_client, make_org):
    org = make_org("acme")
    change = f"/admin/organizations/organization/{org.pk}/change/"
    page = admin_client.get(change)
    for field in (b"keep_unknown_faces", b"unknown_retention_days", b"unknown_max_kept"):
        assert b'name="' + field + b'"' in page.content
    form = {"slug": "acme", "name": org.name, "is_active": "on", "false_match_rate": "0.001",
            "keep_unknown_faces": "on", "unknown_retention_days": "14", "unknown_max_kept": "2000"}
    assert admin_client.post(change, form).status_code == 302
    org.refresh_from_db()
    assert (org.keep_unknown_faces, org.unknown_retention_days, org.unknown_max_kept) == (True, 14, 2000)
    assert admin_client.post(change, {**form, "unknown_retention_days": "0"}).status_code == 200  # refused
    org.refresh_from_db()
    assert org.unknown_retention_days == 14

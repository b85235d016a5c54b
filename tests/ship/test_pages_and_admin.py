"""The landing page and the staff admin: dashboards per organisation, search, filters, revocation."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from apikeys.models import APIKey
from faces.index import get_index
from faces.models import Face, Person
from tests.conftest import key_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client():
    user = get_user_model().objects.create_superuser("root", password="root-pass-123")
    client = Client()
    client.force_login(user)
    return client


def test_landing_page_says_what_the_service_is_and_links_demo_docs_and_admin(client):
    response = client.get("/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "face recognition" in html.lower()
    for link in ('href="/demo/"', 'href="/api/docs/"', 'href="/admin/"', 'href="/readyz"'):
        assert link in html


def test_landing_snippets_use_this_host_and_the_visitors_organisation(client, settings):
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "faces.example.org"]
    html = client.get("/?org=globex", HTTP_HOST="faces.example.org").content.decode()
    assert 'http://faces.example.org</span>/recognize/<span class="org">globex</span>' in html
    assert "Authorization: Bearer $FACEPORTAL_KEY" in html
    hostile = client.get("/?org=<script>x</script>").content.decode()
    assert "<script>x" not in hostile and '<span class="org">acme</span>' in hostile  # not a slug: the default


def test_organization_dashboard_counts_people_faces_keys_and_last_request(
    admin_client, make_org, make_key, manifest
):
    acme, other = make_org("acme"), make_org("globex")
    issued = make_key(acme, name="laptop")
    make_key(acme, name="phone")
    api = key_client(issued)
    photos = manifest["Barack_Obama"][:2]
    assert api.post("/register/acme", {"name": "Obama", "images": [p.b64() for p in photos]},
                    format="json").status_code == 201
    response = admin_client.get("/admin/organizations/organization/")
    assert response.status_code == 200
    rows = {org.slug: org for org in response.context["cl"].result_list}
    assert (rows["acme"]._people, rows["acme"]._faces, rows["acme"]._keys, rows["acme"]._active_keys) == (1, 2, 2, 2)
    assert rows["acme"]._last_request is not None
    assert (rows["globex"]._people, rows["globex"]._faces, rows["globex"]._keys) == (0, 0, 0)
    assert rows["globex"]._last_request is None
    searched = admin_client.get("/admin/organizations/organization/?q=glob")
    assert [org.slug for org in searched.context["cl"].result_list] == [other.slug]


def test_keys_are_revoked_from_the_list_and_stop_working(
    admin_client, make_org, make_key, django_capture_on_commit_callbacks
):
    org = make_org("acme")
    issued = make_key(org, name="laptop")
    api = key_client(issued)
    assert api.get("/orgs/acme/people").status_code == 200
    listing = admin_client.get("/admin/apikeys/apikey/?q=laptop")
    assert [key.pk for key in listing.context["cl"].result_list] == [issued.api_key.pk]
    assert issued.plaintext not in listing.content.decode()
    with django_capture_on_commit_callbacks(execute=True):  # the cached key is evicted on commit
        response = admin_client.post(
            "/admin/apikeys/apikey/",
            {"action": "revoke", "_selected_action": [issued.api_key.pk], "index": 0},
            follow=True,
        )
    assert response.status_code == 200
    assert "Revoked 1 key(s)." in response.content.decode()
    assert APIKey.objects.get(pk=issued.api_key.pk).revoked_at is not None
    assert api.get("/orgs/acme/people").status_code == 401
    active = admin_client.get("/admin/apikeys/apikey/?revoked_at__isempty=1")
    assert list(active.context["cl"].result_list) == []


def test_a_key_created_in_the_admin_is_shown_once_and_never_again(admin_client, make_org):
    org = make_org("acme")
    form = admin_client.get(f"/admin/apikeys/apikey/add/?organization={org.pk}").content.decode()
    assert "API key name" in form
    created = admin_client.post("/admin/apikeys/apikey/add/", {"organization": org.pk, "user": "bob", "name": "ci",
                                                            "scopes": ["recognize", "enrol", "manage"]})
    assert created.status_code == 200  # the key page answers the POST: no redirect that could carry it
    assert "no-store" in created["Cache-Control"]
    html = created.content.decode()
    plaintext = created.context["plaintext"]
    key = APIKey.objects.get(organization=org, name="ci")
    assert plaintext.startswith(f"fp_{key.prefix}_")
    assert "will not be shown again" in html and 'id="copy-secret"' in html
    assert f"Authorization: Bearer {plaintext}" in html.replace("&quot;", '"')
    assert not [m for m in created.context["messages"] if plaintext in str(m)]  # never in a flash message
    detail = admin_client.get(f"/admin/apikeys/apikey/{key.pk}/change/").content.decode()
    assert plaintext not in detail and key.secret_hash not in detail
    again = admin_client.get("/admin/apikeys/apikey/").content.decode()
    assert plaintext not in again


def test_deleting_a_person_in_the_admin_removes_their_vectors(admin_client, make_org, make_key, manifest):
    org = make_org("acme")
    api = key_client(make_key(org))
    api.post("/register/acme", {"name": "Obama", "images": [manifest["Barack_Obama"][0].b64()]}, format="json")
    person = Person.objects.get(organization=org)
    people = admin_client.get("/admin/faces/person/?q=oba")
    assert [p.pk for p in people.context["cl"].result_list] == [person.pk]
    assert people.context["cl"].result_list[0]._faces == 1
    admin_client.post(
        "/admin/faces/person/", {"action": "delete_selected", "_selected_action": [person.pk], "post": "yes"}
    )
    assert not Person.objects.filter(pk=person.pk).exists() and not Face.objects.exists()
    assert get_index().count(organization_id=org.pk) == 0


def test_organization_overview_shows_counts_keys_traffic_settings_and_an_issue_key_button(
    admin_client, make_org, make_key, manifest
):
    org = make_org("acme")
    laptop = make_key(org, name="laptop")
    make_key(org, name="phone")
    api = key_client(laptop)
    assert api.post("/register/acme", {"name": "Obama", "images": [manifest["Barack_Obama"][0].b64()]},
                    format="json").status_code == 201
    assert api.get("/orgs/acme/people").status_code == 200
    assert api.get("/orgs/acme/people/").status_code == 200
    response = admin_client.get(f"/admin/organizations/organization/{org.pk}/change/")
    assert response.status_code == 200
    overview = response.context["overview"]
    assert (overview["people"], overview["faces"], overview["active_keys"]) == (1, 1, 2)
    assert overview["requests_today"] == 3  # every authenticated call to the tenant is counted
    assert {key.name for key in overview["keys"]} == {"laptop", "phone"}
    html = response.content.decode()
    assert f'href="/admin/apikeys/apikey/add/?organization={org.pk}"' in html
    assert f'href="/admin/organizations/organization/{org.pk}/try/"' in html
    assert "Match threshold" in html and overview["model"] in html
    # What decides is the organisation's rate for its gallery now, exactly as REST decides.
    fields = ("threshold", "threshold_source", "false_match_rate", "gallery_size")
    rest = api.post("/recognize/acme", {"image": manifest["Barack_Obama"][1].b64()}, format="json").json()
    assert {name: overview["decision"][name] for name in fields} == {name: rest[name] for name in fields}
    assert rest["threshold_source"] == "calibrated"
    assert "false-match rate 0.1% with 1 person enrolled" in html
    assert f"<b id=\"overview-threshold\">{rest['threshold']:.3f}</b>" in html


def test_deactivation_asks_for_confirmation_and_then_no_key_counts_as_active(admin_client, make_org, make_key):
    org = make_org("acme")
    issued = make_key(org, name="laptop")
    action = {"action": "deactivate", "_selected_action": [org.pk], "index": 0}
    asked = admin_client.post("/admin/organizations/organization/", action)
    assert asked.status_code == 200
    html = asked.content.decode()
    assert "Yes, deactivate" in html and "stop working" in html
    org.refresh_from_db()
    assert org.is_active  # asking changed nothing
    done = admin_client.post("/admin/organizations/organization/", {**action, "post": "yes"}, follow=True)
    assert "Deactivated 1 organization(s)" in done.content.decode()
    org.refresh_from_db()
    assert not org.is_active
    rows = {o.slug: o for o in admin_client.get("/admin/organizations/organization/").context["cl"].result_list}
    assert rows["acme"]._active_keys == 0 and rows["acme"]._keys == 1
    assert key_client(issued).get("/orgs/acme/people").status_code == 401


def test_try_it_recognizes_and_registers_with_the_staff_session(admin_client, make_org, manifest, faces_dir):
    org = make_org("acme")
    base = f"/admin/organizations/organization/{org.pk}/try/"
    page = admin_client.get(base)
    assert page.status_code == 200 and 'id="drop-zone"' in page.content.decode()
    obama = manifest["Barack_Obama"]
    with open(obama[0].path, "rb") as image:
        registered = admin_client.post(base + "register/", {"name": "Barack Obama", "image": image})
    assert registered.status_code == 201, registered.content
    assert registered.json()["faces_added"] == 1
    with open(faces_dir / "_group" / "two_people.jpg", "rb") as image:
        answer = admin_client.post(base + "recognize/", {"image": image})
    assert answer.status_code == 200
    body = answer.json()
    assert len(body["faces"]) == 2 and body["threshold"] > 0
    assert [face["match"]["name"] for face in body["faces"] if face["match"]] == ["Barack Obama"]
    with open(manifest["_noface"][0].path, "rb") as image:
        refused = admin_client.post(base + "register/", {"name": "Nobody", "image": image})
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "no_face"
    assert not Person.objects.filter(name="Nobody").exists()
    assert Client().post(base + "recognize/").status_code == 302  # staff only: to the login page


def test_people_list_shows_one_row_of_crops_and_the_face_inline_has_no_add_row(
    admin_client, make_org, make_key, manifest
):
    org = make_org("acme")
    api = key_client(make_key(org))
    photos = manifest["Barack_Obama"][:2]
    assert api.post("/register/acme", {"name": "Obama", "images": [p.b64() for p in photos]},
                    format="json").status_code == 201
    listing = admin_client.get("/admin/faces/person/").content.decode()
    assert "People" in listing and listing.count('class="fp-thumb"') == 2
    person = Person.objects.get(organization=org)
    detail = admin_client.get(f"/admin/faces/person/{person.pk}/change/").content.decode()
    assert detail.count('class="fp-face-box"') == 2
    assert "empty-form" not in detail and "Quality" in detail  # no blank "add another face" row
    index = admin_client.get("/admin/").content.decode()
    assert ">People<" in index and "FacePortal" in index and "Django administration" not in index

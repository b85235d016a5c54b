"""Names that spoof display are refused or normalised: format characters (bidirectional overrides,
zero-width characters), names with nothing visible, compatibility forms (stored as NFKC), an
organisation slug with a trailing newline; look-alike names are flagged in the admin."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from faces.models import Person
from organizations.models import Organization

pytestmark = pytest.mark.django_db(transaction=True)

SETTINGS = settings(max_examples=20, suppress_health_check=[HealthCheck.function_scoped_fixture])
# Format characters (Cf) that change or hide what is displayed, and separators.
SPOOFING = ["\u202e", "\u202d", "\u2066", "\u2067", "\u2068", "\u2069", "\u200e", "\u200f", "\u061c", "\u200b",
            "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad", "\u2028", "\u2029", "\U000e0001", "\ue000"]
INVISIBLE = [" ", "\u3000", "\u3164", "\u115f", "\u2800", "\u0301", "\u00a0", "\u2003"]
VISIBLE = st.text(alphabet=st.characters(whitelist_categories=["Lu", "Ll", "Lo", "Nd"]), min_size=2, max_size=12)


@pytest.fixture
def person(acme):
    return Person.objects.create(organization=acme.org, name="Ada Lovelace")


def rename(acme, person, name):
    return acme.client.patch(f"/orgs/acme/people/{person.pk}", {"name": name}, format="json")


@SETTINGS
@given(base=VISIBLE, spoof=st.sampled_from(SPOOFING), data=st.data())
@example(base="TonyBlair", spoof="\u202e", data=None)
def test_names_with_format_characters_are_refused(acme, person, base, spoof, data):
    # Inside the name: at its ends the separators are whitespace, which is trimmed like any other.
    position = data.draw(st.integers(1, len(base) - 1), label="position") if data is not None else 4
    response = rename(acme, person, base[:position] + spoof + base[position:])
    assert response.status_code == 400, response.content
    assert response.json()["error"]["details"]["field"] == "name"
    assert Person.objects.get(pk=person.pk).name == "Ada Lovelace"


@SETTINGS
@given(name=st.text(alphabet=st.sampled_from(INVISIBLE + ["\u200b", "\u200d"]), min_size=1, max_size=8))
def test_names_with_nothing_visible_are_refused(acme, person, name):
    response = rename(acme, person, name)
    assert response.status_code == 400, response.content
    assert Person.objects.get(pk=person.pk).name == "Ada Lovelace"


@SETTINGS
@given(name=st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", min_size=1, max_size=10))
def test_compatibility_forms_are_stored_in_nfkc_and_cannot_duplicate_a_name(acme, person, name):
    wide = "".join(chr(ord(char) + 0xFEE0) for char in name)  # full-width letters
    response = rename(acme, person, wide)
    assert response.status_code == 200, response.content
    assert response.json()["name"] == name == unicodedata.normalize("NFKC", wide)
    other = Person.objects.create(organization=acme.org, name=f"other {name}")
    assert rename(acme, other, wide).status_code == 409  # the plain spelling is taken
    other.delete()


@pytest.mark.parametrize("slug", ["acme\n", "acme\r\n", "acme\n\n", "\nacme", "acme\x0b", "acme\u2028"])
def test_an_organisation_slug_with_a_newline_or_separator_is_refused(staff_client, slug):
    response = staff_client.post("/orgs", {"organization": slug}, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["details"]["field"] == "organization"
    assert not Organization.objects.exists()


@pytest.mark.parametrize("name", ["Acme\u202eCorp", "\u200b", "Ac\nme", " \u3164 ", "Ac\u200dme"])
def test_an_organisation_name_that_spoofs_display_is_refused(staff_client, name):
    response = staff_client.post("/orgs", {"organization": "acme", "name": name}, format="json")
    assert response.status_code == 400, response.content
    assert not Organization.objects.exists()


@pytest.mark.parametrize(("existing", "lookalike"), [
    ("Tony Blair", "Tоny Blair"),  # Cyrillic о
    ("Ada Lovelace", "Аda Lovelace"),  # Cyrillic А
    ("Paul", "Pаul"),
    ("Iris", "lris"),
    ("Zoë Smith", "Zoe Smith"),
    ("Olga", "0lga"),
])
def test_the_admin_warns_when_a_name_looks_like_another_persons(acme, staff_user, client, existing, lookalike):
    Person.objects.create(organization=acme.org, name=existing)
    spoof = Person.objects.create(organization=acme.org, name=lookalike)  # as the API may register it
    client.force_login(staff_user)
    staff_user.is_superuser = True
    staff_user.save()
    page = client.get(f"/admin/faces/person/{spoof.pk}/change/")
    assert page.status_code == 200
    assert "looks like another person" in page.content.decode(), lookalike
    unrelated = Person.objects.create(organization=acme.org, name="Someone Else")
    assert "looks like" not in client.get(f"/admin/faces/person/{unrelated.pk}/change/").content.decode()

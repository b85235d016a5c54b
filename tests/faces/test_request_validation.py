"""One set of rules for every body: a JSON body and a multipart form (all text) are validated by the
same Input serializer, JSON types are taken at their word, and a refused body names its field and
stores nothing. Any JSON value in any option gets either a valid value or our 400, never a 500."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from faceportal.errors import InvalidInput
from faceportal.serializers import validated
from faces.models import Face, Person
from faces.serializers import RegisterInputSerializer
from recognition.serializers import MAX_RESULTS_LIMIT, RecognitionOptionsSerializer, VerifyInputSerializer
from tests.conftest import api_auth

pytestmark = pytest.mark.django_db

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
# The database fixture is function-scoped; validation reads and writes nothing between examples.
PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture],
                    database=None)


@PROPERTY
@given(threshold=json_values, max_results=json_values)
def test_any_json_value_in_an_option_is_a_valid_value_or_a_400_naming_it(threshold, max_results):
    for field, value in (("threshold", threshold), ("max_results", max_results)):
        try:
            options = validated(RecognitionOptionsSerializer, data={field: value})
        except InvalidInput as refused:
            assert refused.details["field"] == field
            assert refused.message.startswith(f"'{field}'")
            continue
        accepted = options[field]
        if field == "threshold":
            assert accepted is None or (type(value) in (int, float) and 0 <= accepted <= 1)
        else:
            assert accepted is None or (type(value) is int and 1 <= accepted <= MAX_RESULTS_LIMIT)


@PROPERTY
@given(name=json_values, boxes=json_values, allow_duplicate=json_values)
def test_any_json_register_body_is_valid_or_a_400_naming_a_field(name, boxes, allow_duplicate):
    body = {"name": name, "images": ["x"], "boxes": boxes, "allow_duplicate": allow_duplicate}
    try:
        data = validated(RegisterInputSerializer, data=body)
    except InvalidInput as refused:
        assert refused.details["field"] in {"name", "boxes", "allow_duplicate"}
        return
    assert isinstance(name, str) and data["name"] == name.strip() and data["name"]
    assert isinstance(allow_duplicate, bool)
    assert boxes is None or len(data["boxes"]) == 1


JSON_AND_FORM_REFUSALS = [
    # (field, JSON value, the same as form text)
    ("threshold", "0.5", "high"),
    ("threshold", 1.5, "1.5"),
    ("threshold", True, "nan"),
    ("max_results", "3", "3.5"),
    ("max_results", 0, "0"),
    ("allow_duplicate", "yes", "yes"),
    ("boxes", [{"x": 0, "y": 0, "w": 0, "h": 5}], '[{"x": 0, "y": 0, "w": 0, "h": 5}]'),
    ("boxes", [None, None], "not json"),
    ("api_auth", "alice", "{not json"),
]


@pytest.mark.parametrize("field, as_json, as_text", JSON_AND_FORM_REFUSALS)
def test_json_and_form_bodies_meet_the_same_rules(acme, manifest, field, as_json, as_text):
    photo = manifest["Tony_Blair"][0]
    route = "/recognize/acme" if field in {"threshold", "max_results"} else "/register/acme"
    image_field = "image" if route == "/recognize/acme" else "images"
    base = {"name": "Blair"} if route == "/register/acme" else {}
    as_json_body = {**base, image_field: photo.b64() if image_field == "image" else [photo.b64()], field: as_json}
    refused = acme.client.post(route, as_json_body, format="json")
    assert refused.status_code == 400, refused.content
    assert refused.json()["error"]["details"]["field"] == field
    with open(photo.path, "rb") as handle:
        form = acme.client.post(route, {**base, image_field: handle, field: as_text}, format="multipart")
    assert form.status_code == 400, form.content
    assert form.json()["error"]["details"]["field"] == field
    assert not Person.objects.exists() and not Face.objects.exists()


def test_a_form_carries_boxes_flags_numbers_and_api_auth_as_text(acme, manifest, faces_dir):
    group = faces_dir / "_group" / "two_people.jpg"
    with open(group, "rb") as handle:
        found = acme.client.post("/recognize/acme", {"image": handle, "max_results": "1", "threshold": "0.5"},
                                 format="multipart").json()
    assert len(found["faces"]) == 2 and found["threshold"] == 0.5
    right = max(found["faces"], key=lambda face: face["box"]["x"])["box"]
    with open(group, "rb") as handle:
        registered = acme.client.post("/register/acme", {
            "name": "Right", "images": [handle], "boxes": json.dumps([right]), "allow_duplicate": "true",
            "api_auth": json.dumps(api_auth(acme.issued)),
        }, format="multipart")
    assert registered.status_code == 201, registered.content
    assert registered.json()["images"][0]["box"] == right  # the face the form's boxes named
    with open(group, "rb") as handle:
        wrong_key = acme.client.post("/register/acme", {
            "name": "Right", "images": [handle], "api_auth": json.dumps({"user": "mallory", "api_key_name": "x"}),
        }, format="multipart")
    assert wrong_key.status_code == 403 and Face.objects.count() == 1


def test_verify_needs_exactly_one_of_image2_and_person():
    for body in ({"image": "x"}, {"image": "x", "image2": "y", "person": 1}):
        with pytest.raises(InvalidInput) as refused:
            validated(VerifyInputSerializer, data=body)
        assert refused.value.details["field"] == "image2"
    assert validated(VerifyInputSerializer, data={"image": "x", "person": 3})["person"] == 3

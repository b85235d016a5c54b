"""Classes of hostile input that could give 500s, generated rather than listed: JSON nested to
any depth (every JSON route, at the parser), arbitrary Unicode in names and searches (lone UTF-16
surrogates and NUL included), server paths of any length (ENAMETOOLONG, and the client's path
never in a log). Real PostgreSQL; the model never runs for these (all are refused before it)."""

from __future__ import annotations

import json
import logging
import unicodedata
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from rest_framework.exceptions import ValidationError

from faceportal import parsers
from faceportal.errors import InvalidImage, InvalidInput
from faceportal.serializers import validated
from faces import images
from faces.models import Face, Person
from faces.serializers import RegisterInputSerializer, person_name_validate

pytestmark = pytest.mark.django_db

# One tenant serves every example (each asserts what it left behind); each example is a real request.
HOSTILE = settings(max_examples=60, deadline=None, database=None,
                   suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
JSON_ROUTES = [("post", "/recognize/acme"), ("post", "/register/acme"), ("post", "/verify/acme"),
               ("patch", "/orgs/acme/people/{person}")]

# Every code point: lone surrogates (U+D800-U+DFFF) and NUL included, which st.text() leaves out.
any_char = st.integers(0, 0x10FFFF).map(chr)
any_text = st.text(alphabet=any_char, max_size=40)


@pytest.fixture
def tenant(acme):
    person = Person.objects.create(organization=acme.org, name="Existing Person")
    return {"client": acme.client, "person": person.pk}


def assert_error_shape(response, status: int | None = None) -> dict:
    assert response.status_code < 500, response.content[:300]
    if status is not None:
        assert response.status_code == status, response.content[:300]
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}, body
    return body["error"]


@st.composite
def nested_json(draw) -> tuple[str, int]:
    """Valid-looking JSON of a drawn depth, built as text (json.dumps itself would recurse)."""
    depth = draw(st.one_of(st.integers(1, 64), st.integers(64, 200_000)))
    opener, closer = draw(st.sampled_from([("[", "]"), ('{"a":', "}"), ('{"images":[', "]}")]))
    inner = draw(st.sampled_from(["1", '"x"', "null", "[]", "{}"]))
    closed = draw(st.booleans())
    return opener * depth + inner + (closer * depth if closed else ""), depth


@HOSTILE
@given(body=nested_json(), route=st.sampled_from(JSON_ROUTES))
@example(body=("[" * 100_000, 100_000), route=("post", "/recognize/acme"))
@example(body=('{"images":[' * 100_000, 100_000), route=("post", "/register/acme"))
def test_json_nested_to_any_depth_is_a_4xx_on_every_json_route(tenant, body, route):
    text, depth = body
    method, path = route
    response = getattr(tenant["client"], method)(path.format(person=tenant["person"]), data=text,
                                                 content_type="application/json")
    error = assert_error_shape(response)
    if depth > 32:
        assert response.status_code == 400 and error["code"] == "malformed_request", error


@HOSTILE
@given(depth=st.integers(0, 300_000), shape=st.sampled_from(["[]", "{}", "[{"]))
def test_nesting_depth_is_counted_without_recursion_and_stops_past_the_limit(depth, shape):
    opener = shape[0] if shape != "[{" else None
    text = ("[{" * (depth // 2) + "[" * (depth % 2)) if opener is None else opener * depth
    text += "".join({"[": "]", "{": "}"}[char] for char in reversed(text))
    assert parsers.nesting_depth(text, stop_after=64) == min(depth, 65)
    assert parsers.nesting_depth('["[[[[", {"k": "]]]"}]') == 2  # brackets in strings do not count


@HOSTILE
@given(name=any_text)
@example(name="a\ud800b")
@example(name="\udfff")
@example(name="a\x00b")
def test_any_unicode_name_on_register_and_rename_is_stored_or_refused_cleanly(tenant, name):
    client, person = tenant["client"], tenant["person"]
    # ensure_ascii: a lone surrogate travels as its JSON escape, as a hostile client sends it.
    body = json.dumps({"name": name, "images": ["not an image"]})
    answer = client.post("/register/acme", data=body, content_type="application/json")
    assert_error_shape(answer)  # the image is bad anyway: nothing is registered
    rename = client.patch(f"/orgs/acme/people/{person}", data=json.dumps({"name": name}),
                          content_type="application/json")
    has_surrogate = any("\ud800" <= char <= "\udfff" for char in name)
    if has_surrogate:
        assert rename.status_code == 400, rename.content
    if rename.status_code >= 400:
        assert_error_shape(rename)
    else:
        # Stored as NFKC (faceportal.text.display_name_clean), its ends trimmed.
        assert Person.objects.get(pk=person).name == unicodedata.normalize("NFKC", name.strip()).strip()
    assert not Face.objects.exists()


def test_a_surrogate_name_is_refused_before_any_image_is_read_or_model_run(acme, manifest):
    good = manifest["Tony_Blair"][0].b64()  # readable: only the name can be refused
    # Over JSON its escape is refused by the parser; the form, the admin's try-it page and bulk
    # enrolment's folder names meet the name's own rule.
    body = json.dumps({"name": "a\ud800b", "images": [good]})
    refused = acme.client.post("/register/acme", data=body, content_type="application/json")
    assert refused.status_code == 400, refused.content
    with pytest.raises(InvalidInput) as invalid:
        validated(RegisterInputSerializer, data={"name": "a\ud800b", "images": [good]})
    assert invalid.value.details["field"] == "name"
    with pytest.raises(ValidationError):
        person_name_validate("\udc80 surrogate-escaped file name")
    assert not Person.objects.exists() and not Face.objects.exists()


@HOSTILE
@given(search=any_text)
@example(search="a\x00b")
@example(search="\x00")
def test_any_search_text_answers_without_a_5xx(tenant, search):
    # As raw UTF-8 (surrogates passed through as invalid bytes) and percent-encoded.
    encoded = quote(search.encode("utf-8", "surrogatepass"), safe="")
    response = tenant["client"].get(f"/orgs/acme/people?search={encoded}")
    assert response.status_code < 500, response.content[:300]
    if response.status_code >= 400:
        assert_error_shape(response, 400)
    if "\x00" in search:
        assert response.status_code == 400


@HOSTILE
@given(
    segments=st.lists(st.integers(1, 6000), min_size=1, max_size=6),
    char=st.sampled_from(["a", "é", "\u4e00", "\U0001f600", "\udc80"]),
)
@example(segments=[5000], char="a")
@example(segments=[300], char="b")
@example(segments=[200] * 25, char="c")
def test_server_paths_of_any_length_are_refused_cleanly_and_never_logged(tenant, settings, tmp_path_factory,
                                                                         caplog, segments, char):
    settings.FACEPORTAL_IMAGE_ROOT = str(tmp_path_factory.getbasetemp())
    path = "/".join(char * length for length in segments) + ".jpg"
    with pytest.raises(InvalidImage) as refused:
        images.read_path(path, index=0, organization="acme")
    assert refused.value.code in {"image_path_forbidden", "image_path_not_found"}
    caplog.clear()
    with caplog.at_level(logging.DEBUG):
        response = tenant["client"].post("/recognize/acme", data=json.dumps({"image": {"path": path}}),
                                         content_type="application/json")
    assert_error_shape(response, 400)
    logged = "\n".join(record.getMessage() + str(record.exc_info or "") for record in caplog.records)
    assert char * min(segments) not in logged or min(segments) < 8

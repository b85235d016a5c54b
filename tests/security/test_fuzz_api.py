"""Schemathesis against our own OpenAPI schema, as served at /api/schema/: every operation, each
generated request sent with a tenant's key, as staff and with no credentials. Whatever arrives:
no 5xx, and every error is JSON in the one documented shape {"error": {"code", "message", "details"}}.

Requests are put on the wire byte for byte by tests/security/wire.py: any text Hypothesis draws,
lone surrogates included, travels as the bytes a client would send (a test that cannot encode
its own request tests nothing). The schema is loaded inside the test (building the WSGI app may
touch the database, which pytest-django allows only there), and hypothesis drives each
operation's strategy directly.
"""

from __future__ import annotations

import base64
import functools

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from apikeys.models import APIKey
from apikeys.services import api_key_issue
from faces.models import Face, Person
from organizations.models import Organization
from organizations.services import organization_create
from tests.photos import STRANGERS, load_manifest
from tests.security.wire import WireRequest, from_case

pytestmark = pytest.mark.django_db(transaction=True)

EXAMPLES_PER_OPERATION = 15
OPEN_ROUTES = {"/healthz", "/readyz", "/metrics", "/api/schema/"}


@pytest.fixture
def tenant(django_user_model, settings):
    # Generous limits: this test is about answers, not throttling (tests/security/test_throttling.py).
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"api_key": "100000/min", "address": "100000/min", "auth_failure": "100000/min"},
    }
    # Staff basic auth runs the password hasher on every request; a fast one keeps this test short.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    org = organization_create(slug="acme")
    issued = api_key_issue(organization=org, user="alice", name="fuzz")
    person = Person.objects.create(organization=org, name="Existing Person")
    django_user_model.objects.create_user("staff", password="staff-pass-123", is_staff=True)
    return {"key": issued.plaintext, "person_id": person.pk}


def credentials(mode: str, tenant: dict) -> dict[str, str]:
    if mode == "key":
        return {"Authorization": f"Bearer {tenant['key']}"}
    if mode == "staff":
        return {"Authorization": "Basic " + base64.b64encode(b"staff:staff-pass-123").decode()}
    return {}


def aim_at_tenant(request: WireRequest, tenant: dict) -> None:
    """Generated slugs and ids exist nowhere; point a request at real ones so handlers go deep."""
    params = request.path_parameters
    if "organization" in params:
        params["organization"] = "acme"
        if "person_id" in params:
            params["person_id"] = tenant["person_id"]


def assert_error_shape(response, where: str) -> None:
    assert response["Content-Type"].startswith("application/json"), where
    body = response.json()
    assert set(body) == {"error"}, where
    error = body["error"]
    assert isinstance(error["code"], str) and error["code"], where
    assert isinstance(error["message"], str) and error["message"], where
    assert isinstance(error["details"], dict), where


def describe(request: WireRequest, response) -> str:
    # A streamed answer (the gallery export's zip) is named, not read: reading would consume it.
    body = b"<streamed>" if getattr(response, "streaming", False) else response.content[:300]
    return f"{request.method} {request.url()[:300]} -> {response.status_code}: {body!r}"


def assert_no_5xx(request: WireRequest, response) -> None:
    where = describe(request, response)
    # /readyz documents its 503 (a model still loading is "not ready", in the error shape).
    assert response.status_code < 500 or (request.path == "/readyz" and response.status_code == 503), where
    if response.status_code >= 400:
        assert_error_shape(response, where)


def schema_operations():
    schema = schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application())
    return [result.ok() for result in schema.get_all_operations()]


def test_every_operation_answers_without_5xx_in_the_error_shape(tenant):
    operations = schema_operations()
    assert len(operations) >= 12  # every REST route is in the schema
    for operation in operations:

        @given(case=operation.as_strategy(), own=st.booleans())
        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, phases=[Phase.explicit, Phase.generate],
                  suppress_health_check=[HealthCheck.too_slow], database=None)  # each example is 3 real requests
        def fuzz(case, own):
            for mode in ("key", "staff", "anonymous"):
                request = from_case(case)
                if own:
                    aim_at_tenant(request, tenant)
                request.headers.update(credentials(mode, tenant))
                response = request.send()
                assert_no_5xx(request, response)
                if mode == "anonymous" and request.path not in OPEN_ROUTES:
                    # Refused before anything is looked up; a 404 only where the URL itself
                    # matches no route (a negative id), which says nothing about any data.
                    url_not_routed = response.status_code == 404 and response.json()["error"]["code"] == "not_found"
                    assert response.status_code in (401, 403) or url_not_routed, describe(request, response)

        fuzz()


# Classes the schema's own strategies never produce: every code point (lone surrogates and NUL
# included) in every string, bodies nested past the parser's depth limit, very long strings.
HOSTILE_EXAMPLES_PER_OPERATION = 10
any_char = st.integers(0, 0x10FFFF).map(chr)
lone_surrogate = st.integers(0xD800, 0xDFFF).map(chr)
# Text with no UTF-8 form: what Python's URL, form and multipart encoders refuse to encode.
unencodable_text = st.tuples(st.text(alphabet=any_char, max_size=12), lone_surrogate,
                             st.text(alphabet=any_char, max_size=12)).map("".join)
hostile_text = st.one_of(
    st.text(alphabet=any_char, max_size=30),
    unencodable_text,
    st.builds(lambda char, length: char * length, any_char, st.integers(200, 6000)),
)


def hostile(value, data):
    """The same shape with every string replaced by a hostile one."""
    if isinstance(value, str):
        return data.draw(hostile_text)
    if isinstance(value, dict):
        return {key: hostile(item, data) for key, item in value.items()}
    if isinstance(value, list):
        return [hostile(item, data) for item in value]
    return value


FORM_MEDIA_TYPES = {"multipart/form-data", "application/x-www-form-urlencoded"}


def test_every_operation_answers_hostile_strings_and_nesting_without_5xx(tenant):
    for operation in schema_operations():

        @given(case=operation.as_strategy(), data=st.data())
        @settings(max_examples=HOSTILE_EXAMPLES_PER_OPERATION, deadline=None, phases=[Phase.generate],
                  suppress_health_check=[HealthCheck.too_slow], database=None)  # each example is a real request
        def fuzz(case, data):
            request = from_case(case)
            if data.draw(st.booleans(), label="aimed at acme"):
                aim_at_tenant(request, tenant)
            else:  # any text in every path parameter, integers' included
                request.path_parameters = {name: data.draw(hostile_text) for name in request.path_parameters}
            request.query = hostile(request.query, data)
            request.headers = {**hostile(request.headers, data), "X-Request-ID": data.draw(hostile_text),
                               **credentials("key", tenant)}
            if isinstance(request.body, (dict, list)):
                body = hostile(request.body, data)
                for _ in range(data.draw(st.sampled_from([0, 0, 40, 400]))):
                    body = [body]  # deeper than FACEPORTAL_MAX_JSON_DEPTH, within json.dumps' reach
                request.body = body
            if request.media_type in FORM_MEDIA_TYPES:
                request.extra_fields = [(data.draw(hostile_text), data.draw(hostile_text))]
            request.raw_json = data.draw(st.booleans(), label="JSON as raw UTF-8 bytes")
            assert_no_5xx(request, request.send())

        fuzz()


# Text without a UTF-8 form, in each place a request carries text. Whatever the rest of the
# request, the server refuses it (Django would otherwise read the bytes as U+FFFD and store that).
def text_in(slot: str, text: str, tenant: dict) -> WireRequest:
    key = credentials("key", tenant)
    photo = enrollable_photo()  # a real face: were the text read as U+FFFD, the person would be stored
    if slot == "path parameter":
        return WireRequest("get", "/orgs/{organization}/people", {"organization": text}, headers=key)
    if slot == "query":
        return WireRequest("get", "/orgs/{organization}/people", {"organization": "acme"}, {"search": text}, key)
    if slot == "header":
        return WireRequest("get", "/orgs/{organization}/people", {"organization": "acme"},
                           headers={"Authorization": f"Bearer {text}"})
    if slot == "multipart value":
        return WireRequest("post", "/register/{organization}", {"organization": "acme"}, headers=key,
                           media_type="multipart/form-data", body={"name": text, "images": photo})
    if slot == "multipart field name":  # the name's value under a name that is no field's
        return WireRequest("post", "/register/{organization}", {"organization": "acme"}, headers=key,
                           media_type="multipart/form-data", body={"images": photo}, extra_fields=[(text, "Ann")])
    if slot == "form value":
        return WireRequest("post", "/orgs/{organization}/api-key", {"organization": "acme"},
                           headers=credentials("staff", tenant), media_type="application/x-www-form-urlencoded",
                           body={"user": text, "api_key_name": "kiosk"})
    if slot == "raw JSON":
        return WireRequest("post", "/register/{organization}", {"organization": "acme"}, headers=key,
                           media_type="application/json", raw_json=True,
                           body={"name": text, "images": [base64.b64encode(photo).decode()]})
    raise AssertionError(slot)


@functools.cache
def enrollable_photo() -> bytes:
    identity = next(name for name in sorted(load_manifest()) if not name.startswith("_") and name not in STRANGERS)
    return load_manifest()[identity][0].path.read_bytes()


SLOTS = ["path parameter", "query", "header", "multipart value", "multipart field name", "form value", "raw JSON"]
FOUND = [  # drawn by Hypothesis in earlier runs; tested on every run
    "\ud934",
    "\uda14",
    "흜𤱁\U000e879c\U000414cb\U0001199bçᤫ\ud934¥\xa0ηᇲïVཹᣙઍ",
    "\uda65" * 3772,
]


def stored_counts() -> tuple[int, ...]:
    return (Organization.objects.count(), APIKey.objects.count(), Person.objects.count(), Face.objects.count())


@pytest.mark.parametrize("slot", SLOTS)
def test_text_without_a_utf8_form_is_sent_as_its_bytes_and_refused_in_every_slot(tenant, slot):
    @given(text=unencodable_text)
    @settings(max_examples=25, deadline=None, database=None)
    @example(text=FOUND[0])
    @example(text=FOUND[1])
    @example(text=FOUND[2])
    @example(text=FOUND[3])
    def refused(text):
        before = stored_counts()
        request = text_in(slot, text, tenant)
        response = request.send()
        where = describe(request, response)
        assert 400 <= response.status_code < 500, where
        assert_error_shape(response, where)
        assert stored_counts() == before, where

    refused()

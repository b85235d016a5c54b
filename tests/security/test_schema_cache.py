"""Anonymous `/api/schema/` requests are cheap: the schema is built once per format, whatever the
clients send, so a flood of them cannot take CPU from tenants' recognitions."""

from __future__ import annotations

import contextlib

import pytest
from django.test import Client
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from faceportal.schema_view import _rendered_schemas

pytestmark = pytest.mark.django_db

FORMATS = ["", "?format=json", "?format=yaml", "?format=openapi", "?format=openapi-json"]
ACCEPTS = [None, "*/*", "application/json", "application/vnd.oai.openapi",
           "application/vnd.oai.openapi+json", "application/vnd.oai.openapi; version=x"]


@contextlib.contextmanager
def counting_builds():
    builds = []
    original = SchemaGenerator.get_schema

    def counted(self, *args, **kwargs):
        builds.append(1)
        return original(self, *args, **kwargs)

    SchemaGenerator.get_schema = counted
    try:
        yield builds
    finally:
        SchemaGenerator.get_schema = original


def fetch(query: str, accept: str | None, lang: str | None) -> tuple[int, bytes, str]:
    if lang is not None:
        query += ("&" if "?" in query else "?") + "lang=" + lang
    headers = {"HTTP_ACCEPT": accept} if accept else {}
    response = Client().get("/api/schema/" + query, **headers)
    return response.status_code, response.content, response.get("Content-Type", "")


requests = st.lists(st.tuples(st.sampled_from(FORMATS), st.sampled_from(ACCEPTS),
                              st.one_of(st.none(), st.sampled_from(["en", "en-us", "fr"]),
                                        st.text("abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=12))),
                    min_size=3, max_size=10)


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=requests)
def test_repeated_anonymous_schema_requests_never_rebuild_it(batch):
    _rendered_schemas.clear()
    with counting_builds() as builds:
        first = [fetch(*request) for request in batch]
        built = len(builds)
        second = [fetch(*request) for request in batch]
    assert len(builds) == built, "the same requests again built the schema again"
    assert first == second
    # A format the Accept header contradicts is refused (404/406) before any build.
    assert all(status in {200, 404, 406} and body for status, body, _ in first)
    # At most one build per renderer and supported language, however many distinct strings came.
    languages = {lang for _, _, lang in batch if lang in {"en", "en-us", "fr"}}
    assert built <= 4 * (len(languages) + 1), (built, len(batch))


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(langs=st.lists(st.text("abcdefghijklmnopqrstuvwxyz0123456789_", min_size=5, max_size=30), min_size=5,
                      max_size=20, unique=True))
def test_unsupported_languages_share_one_cached_schema(langs):
    """`?lang=` with text no language has cannot make a new cache entry (or a new build) each time."""
    _rendered_schemas.clear()
    with counting_builds() as builds:
        bodies = {fetch("?format=json", None, lang)[1] for lang in langs}
    assert len(builds) <= 1 and len(bodies) == 1
    assert len(_rendered_schemas) <= 1


def test_the_cached_schema_is_what_drf_spectacular_builds():
    from django.test import RequestFactory
    from drf_spectacular.views import SpectacularAPIView

    _rendered_schemas.clear()
    for query in ("", "?format=json"):
        fresh = SpectacularAPIView.as_view()(RequestFactory().get("/api/schema/" + query))
        fresh.render()
        for _ in range(2):
            status, body, content_type = fetch(query, None, None)
            assert status == 200 and body == fresh.content and content_type == fresh["Content-Type"]

"""Shared fixtures: real PostgreSQL and Redis (set by `make test`), real photographs, real model.

Tests that use the database are marked `postgres` and `redis` here (the suite's database tests are
written for PostgreSQL with Redis as the cache, as in production); tests that start their own
redis-server are marked `redis_server`. Before anything runs, the session checks that what the
selected tests need is configured and answering, and otherwise stops with one line saying what is
missing. Tests without those markers (for example `tests/ship/test_make_run.py`) run anywhere:
`pytest -m "not postgres and not redis"`.
"""

from __future__ import annotations

import base64
import os
import shutil
from pathlib import Path
from typing import NamedTuple

import pytest
import schemathesis
from django.contrib.auth import get_user_model
from hypothesis import settings as hypothesis_settings
from rest_framework.test import APIClient

from apikeys.services import IssuedKey, api_key_issue
from organizations.models import Organization
from organizations.services import organization_create
from tests.photos import FACES_DIR, Photo, load_manifest
from tests.redis_server import RedisProcess, redis_cache_settings

REPO_ROOT = Path(__file__).resolve().parent.parent

# Random exploration on every run, CI included: Hypothesis' own "ci" profile (loaded when CI is
# set) derandomizes, which would turn each class of inputs into one fixed list that passes by luck.
# No example database: what a run finds is pinned in its test as an explicit @example, and
# print_blob lets a failure seen in CI be replayed. No deadline: a slow machine is not a failure.
hypothesis_settings.register_profile("faceportal", derandomize=False, database=None, deadline=None, print_blob=True)
hypothesis_settings.load_profile("faceportal")
# The gallery import's body is a zip's bytes, sent as they are (schema conformance, the fuzz runs).
schemathesis.serializer.alias("application/zip", "application/octet-stream")


DATABASE_FIXTURES = {"django_db_setup", "db", "transactional_db"}


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by these markers
def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.get_closest_marker("django_db") or DATABASE_FIXTURES & set(item.fixturenames):
            item.add_marker(pytest.mark.postgres)
            item.add_marker(pytest.mark.redis)
        if "private_redis" in item.fixturenames:
            item.add_marker(pytest.mark.redis_server)


def pytest_collection_finish(session):
    missing = _missing_services(session.items)  # what is left after -m and -k
    if missing:
        pytest.exit(missing, returncode=pytest.ExitCode.USAGE_ERROR)


def _count(items, marker: str) -> int:
    return sum(1 for item in items if item.get_closest_marker(marker))


def _missing_services(items) -> str | None:
    """One line naming what the selected tests need and do not have, or None."""
    from django.conf import settings

    hint = "run `make test` (it starts both) or deselect them with -m 'not postgres and not redis'"
    needs_postgres = _count(items, "postgres")
    if needs_postgres:
        db = settings.DATABASES["default"]
        if db["ENGINE"] != "django.db.backends.postgresql":
            return (f"{needs_postgres} selected tests need PostgreSQL (marker `postgres`) but DATABASE_URL is "
                    f"{'unset' if not os.environ.get('DATABASE_URL') else 'not PostgreSQL'}: set e.g. "
                    f"DATABASE_URL=postgres://postgres@127.0.0.1:5432/faceportal, or {hint}.")
        import psycopg

        try:
            psycopg.connect(host=db["HOST"] or "127.0.0.1", port=db["PORT"] or 5432, user=db["USER"],
                            password=db["PASSWORD"] or None, dbname="postgres", connect_timeout=3).close()
        except psycopg.Error as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            return (f"{needs_postgres} selected tests need PostgreSQL at {db['HOST'] or '127.0.0.1'}:"
                    f"{db['PORT'] or 5432}, which does not answer ({reason}); `bash .ci/services.sh` starts "
                    f"it, or {hint}.")
    needs_redis = _count(items, "redis")
    if needs_redis:
        if not os.environ.get("REDIS_URL"):
            return (f"{needs_redis} selected tests need Redis (marker `redis`) but REDIS_URL is unset: set e.g. "
                    f"REDIS_URL=redis://127.0.0.1:6379/15, or {hint}.")
        import redis

        try:
            redis.Redis.from_url(os.environ["REDIS_URL"], socket_connect_timeout=3).ping()
        except redis.RedisError as exc:
            return (f"{needs_redis} selected tests need Redis at REDIS_URL, which does not answer ({exc}); "
                    f"`bash .ci/services.sh` starts it, or {hint}.")
    needs_photos = sum(1 for item in items if {"faces_dir", "manifest"} & set(item.fixturenames))
    if needs_photos and not (FACES_DIR / "manifest.csv").exists():
        return (f"{needs_photos} selected tests need the photographs (manifest.csv) at {FACES_DIR}: set "
                "FACEPORTAL_FACES_DIR=/path/to/faces (make test: FACES_DIR=/path).")
    needs_server = _count(items, "redis_server")
    if needs_server and shutil.which("redis-server") is None:
        return (f"{needs_server} selected tests start their own redis-server (marker `redis_server`), "
                "which is not installed: apt-get install redis-server.")
    return None


def database_url(settings_dict: dict) -> str:
    """A postgres:// URL for a test database's settings, password included, for subprocesses."""
    from urllib.parse import quote

    credentials = quote(settings_dict["USER"] or "", safe="")
    if settings_dict.get("PASSWORD"):
        credentials += ":" + quote(settings_dict["PASSWORD"], safe="")
    host = settings_dict["HOST"] or "127.0.0.1"
    return f"postgres://{credentials}@{host}:{settings_dict['PORT'] or 5432}/{settings_dict['NAME']}"


@pytest.fixture(scope="session")
def faces_dir() -> Path:
    if not (FACES_DIR / "manifest.csv").exists():
        raise RuntimeError(f"Face photos not found at {FACES_DIR}; set FACEPORTAL_FACES_DIR.")
    return FACES_DIR


@pytest.fixture(scope="session")
def manifest(faces_dir) -> dict[str, list[Photo]]:
    """identity -> photos in manifest order (includes `_noface` and `_group`)."""
    return load_manifest(faces_dir)


def _clear_caches() -> None:
    from django.conf import settings
    from django.core.cache import caches

    for alias in settings.CACHES:
        caches[alias].clear()


@pytest.fixture(autouse=True)
def _clean_cache():
    _clear_caches()
    yield
    _clear_caches()


@pytest.fixture
def staff_user(db):
    return get_user_model().objects.create_user("staff", password="staff-pass-123", is_staff=True)


@pytest.fixture
def staff_client(staff_user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Basic " + base64.b64encode(b"staff:staff-pass-123").decode())
    return client


@pytest.fixture
def anon_client() -> APIClient:
    return APIClient()


@pytest.fixture
def make_org(db):
    def factory(slug: str = "acme") -> Organization:
        return organization_create(slug=slug)

    return factory


@pytest.fixture
def make_key(db):
    def factory(org: Organization, user: str = "alice", name: str = "default") -> IssuedKey:
        return api_key_issue(organization=org, user=user, name=name)

    return factory


def key_client(issued: IssuedKey, *, header: str = "bearer") -> APIClient:
    client = APIClient()
    if header == "bearer":
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.plaintext}")
    else:
        client.credentials(HTTP_X_API_KEY=issued.plaintext)
    return client


class Tenant(NamedTuple):
    """An organisation, a key of it, and a REST client that sends that key."""

    org: Organization
    issued: IssuedKey
    client: APIClient


@pytest.fixture
def make_tenant(make_org, make_key):
    def factory(slug: str = "acme", user: str = "alice", name: str = "default") -> Tenant:
        org = make_org(slug)
        issued = make_key(org, user=user, name=name)
        return Tenant(org, issued, key_client(issued))

    return factory


@pytest.fixture
def acme(make_tenant) -> Tenant:
    return make_tenant("acme")


def api_auth(issued: IssuedKey) -> dict[str, str]:
    return {"user": issued.api_key.user, "api_key_name": issued.api_key.name}


@pytest.fixture
def private_redis(settings):
    """A redis-server of the test's own, used as the cache, that the test may stop."""
    server = RedisProcess()
    server.start()
    settings.CACHES = redis_cache_settings(server.url)
    yield server
    server.stop()

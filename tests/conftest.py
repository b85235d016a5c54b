"""Shared fixtures: real PostgreSQL and Redis (set by `make test`), real photographs, real model."""

from __future__ import annotations

import base64
import csv
import os
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from rest_framework.test import APIClient

from apikeys.services import IssuedKey, api_key_issue
from organizations.models import Organization
from organizations.services import organization_create
from tests.redis_server import RedisProcess, redis_cache_settings

REPO_ROOT = Path(__file__).resolve().parent.parent
FACES_DIR = Path(os.environ.get("FACEPORTAL_FACES_DIR") or REPO_ROOT.parent / "shared" / "faces")


@dataclass(frozen=True)
class Photo:
    path: Path
    identity: str

    def b64(self) -> str:
        return base64.b64encode(self.path.read_bytes()).decode()

    def data_uri(self) -> str:
        return "data:image/jpeg;base64," + self.b64()


@pytest.fixture(scope="session")
def faces_dir() -> Path:
    if not (FACES_DIR / "manifest.csv").exists():
        raise RuntimeError(f"Face photos not found at {FACES_DIR}; set FACEPORTAL_FACES_DIR.")
    return FACES_DIR


@pytest.fixture(scope="session")
def manifest(faces_dir) -> dict[str, list[Photo]]:
    """identity -> photos in manifest order (includes `_noface` and `_group`)."""
    by_identity: dict[str, list[Photo]] = {}
    with open(faces_dir / "manifest.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            by_identity.setdefault(row["identity"], []).append(Photo(faces_dir / row["path"], row["identity"]))
    return by_identity


@pytest.fixture(autouse=True)
def _clean_cache():
    cache.clear()
    yield
    cache.clear()


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

"""/healthz says the process answers; /readyz checks each dependency for real and names what is down."""

from __future__ import annotations

import logging

import pytest
from django.test import override_settings

from faces.engine import get_engine
from faces.engine import pipeline as engine_pipeline
from faces.index import reset_index
from tests.redis_server import RedisProcess, free_port, redis_cache_settings

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def loaded_engine():
    get_engine().warm()  # the real Dlib models, as daphne's start-up warm-up loads them
    return get_engine()


@pytest.fixture
def private_redis():
    redis = RedisProcess()
    redis.start()
    try:
        with override_settings(CACHES=redis_cache_settings(redis.url)):
            yield redis
    finally:
        redis.stop()


def test_healthz_answers_without_credentials(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_is_ready_when_every_dependency_answers(client, loaded_engine, private_redis):
    response = client.get("/readyz")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "ready"
    assert {name: check["ready"] for name, check in body["checks"].items()} == {
        "database": True, "cache": True, "vector_store": True, "model": True,
    }
    assert body["checks"]["database"]["detail"] == "postgresql"
    assert body["checks"]["cache"]["detail"] == "redis"


def test_readyz_names_the_cache_when_redis_stops(client, loaded_engine, private_redis):
    assert client.get("/readyz").status_code == 200
    private_redis.stop()
    response = client.get("/readyz")
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "not_ready"
    assert error["details"]["not_ready"] == ["cache"]
    assert "cache" in error["message"]
    checks = error["details"]["checks"]
    assert checks["cache"]["ready"] is False
    assert checks["database"]["ready"] and checks["vector_store"]["ready"] and checks["model"]["ready"]
    # The API itself keeps working without Redis (keys fall back to the database).
    assert client.get("/healthz").status_code == 200


def test_readyz_names_the_vector_store_when_mongodb_is_unreachable(client, loaded_engine):
    closed_port = free_port()
    reset_index()
    try:
        with override_settings(
            FACEPORTAL_VECTOR_STORE="atlas",
            MONGODB_URI=f"mongodb://127.0.0.1:{closed_port}/?directConnection=true",
            MONGODB_TIMEOUT_MS=300,
        ):
            response = client.get("/readyz")
    finally:
        reset_index()
    assert response.status_code == 503
    details = response.json()["error"]["details"]
    assert details["not_ready"] == ["vector_store"]
    assert details["checks"]["vector_store"]["detail"].startswith("atlas")


class Records(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)


def test_readyz_names_the_model_until_it_is_loaded(client, monkeypatch):
    # A process whose engine has not been built yet (daphne still warming up).
    monkeypatch.setattr(engine_pipeline, "_engine", None)
    django_request = Records()
    logging.getLogger("django.request").addHandler(django_request)
    try:
        response = client.get("/readyz")
    finally:
        logging.getLogger("django.request").removeHandler(django_request)
    assert response.status_code == 503
    details = response.json()["error"]["details"]
    assert details["not_ready"] == ["model"]
    assert details["checks"]["model"]["detail"] == "face models are still loading"
    # Polled by every load balancer during start-up: the request line says 503, Django does not add
    # an ERROR "Service Unavailable" that reads like a crash.
    assert django_request.records == []

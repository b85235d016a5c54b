"""Readiness needs both models and a clean warm-up; registration timings never add up parallel
stages. Real Dlib models, real photos."""

from __future__ import annotations

import threading
import time

import pytest

from faces.engine import cache as model_cache
from faces.engine import get_engine, pipeline
from tests.conftest import key_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def fresh_load_record(monkeypatch):
    """This process's record of loaded models, emptied: as in a worker that has loaded nothing yet."""
    get_engine()
    record: dict[str, float] = {}
    monkeypatch.setattr(model_cache, "_load_seconds", record)
    return record


def model_check(client) -> dict:
    response = client.get("/readyz")
    checks = response.json()["checks"] if response.status_code == 200 else response.json()["error"]["details"]["checks"]
    return checks["model"]


def load_on_a_new_thread(load) -> None:
    # Models are cached per thread; a new thread really loads (and records) them.
    thread = threading.Thread(target=load)
    thread.start()
    thread.join()


def test_readyz_waits_for_the_embedder_as_well_as_the_detector(client, fresh_load_record):
    engine = get_engine()
    assert model_check(client)["ready"] is False
    load_on_a_new_thread(engine.detector.load)
    assert any(key.startswith(f"detector:{engine.detector.name}") for key in fresh_load_record)
    check = model_check(client)
    assert check == {"ready": False, "detail": "face models are still loading"}
    load_on_a_new_thread(engine.embedder.load)
    assert model_check(client)["ready"] is True


def test_a_failing_warm_up_is_logged_and_keeps_readiness_false(client, settings, monkeypatch, caplog):
    get_engine().warm()
    monkeypatch.setattr(pipeline, "_engine", None)
    monkeypatch.setattr(pipeline, "_warm_failures", {})
    settings.FACEPORTAL_WARM_ENGINE = True
    settings.DEEPFACE_EMBEDDER_MODEL = "NoSuchModel"  # deepface refuses to build it
    for future in pipeline.warm_in_background():
        future.result(timeout=300)
    assert any(record.message == "face engine warm-up failed" and record.exc_info for record in caplog.records)
    check = model_check(client)
    assert check["ready"] is False
    assert check["detail"] == "face model warm-up failed (UnimplementedError)"
    assert client.get("/readyz").status_code == 503
    # The detector loaded fine on those threads; readiness still says no.
    assert not pipeline.engine_loaded()


def test_registration_timings_never_exceed_the_request(make_org, make_key, manifest):
    client = key_client(make_key(make_org("acme")))
    photos = manifest["Barack_Obama"][:6]
    started = time.perf_counter()
    response = client.post(
        "/register/acme", {"name": "Barack Obama", "images": [photo.b64() for photo in photos]}, format="json"
    )
    request_ms = (time.perf_counter() - started) * 1000
    assert response.status_code == 201, response.content
    timings = response.json()["timings_ms"]
    assert set(timings) == {"detect", "align", "embed", "engine"}
    # Six images on the engine pool's threads: each stage is its slowest image, `engine` the
    # wall-clock time of them all, and none exceeds the request that contained them.
    for stage in ("detect", "align", "embed"):
        assert 0 < timings[stage] <= timings["engine"], timings
    assert timings["engine"] <= request_ms

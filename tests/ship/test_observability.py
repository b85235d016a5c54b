"""Prometheus metrics after a real recognition, and JSON request logs that never hold a secret or an image."""

from __future__ import annotations

import io
import json
import logging
import re

import pytest
from django.db import transaction
from prometheus_client.parser import text_string_to_metric_families
from rest_framework.test import APIClient

from faces.models import Face
from faces.services import person_register
from tests.conftest import key_client

pytestmark = pytest.mark.django_db


def scrape(client) -> dict[tuple[str, frozenset], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples, name, **labels) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_metrics_expose_requests_stages_faces_and_model_after_a_recognition(
    client, acme, manifest, django_capture_on_commit_callbacks
):
    issued = acme.issued
    api = key_client(issued)
    before = scrape(client)
    with django_capture_on_commit_callbacks(execute=True):
        registered = api.post(
            "/register/acme", {"name": "Barack Obama", "images": [manifest["Barack_Obama"][0].b64()]}, format="json"
        )
    assert registered.status_code == 201, registered.content
    recognized = api.post("/recognize/acme", {"image": manifest["Barack_Obama"][1].b64()}, format="json")
    assert recognized.status_code == 200, recognized.content
    assert recognized.json()["faces"][0]["match"]["name"] == "Barack Obama"
    after = scrape(client)

    requests = "faceportal_http_requests_total"
    assert value(after, requests, route="recognize", method="POST", status="200") == (
        value(before, requests, route="recognize", method="POST", status="200") + 1
    )
    assert value(after, requests, route="register", method="POST", status="201") == (
        value(before, requests, route="register", method="POST", status="201") + 1
    )
    latency = "faceportal_http_request_duration_seconds_count"
    assert value(after, latency, route="recognize", method="POST") == value(before, latency, route="recognize",
                                                                               method="POST") + 1
    stage = "faceportal_stage_duration_seconds_count"
    for name in ("decode", "detect", "align", "embed", "search", "total"):
        assert value(after, stage, route="recognize", stage=name) == value(before, stage, route="recognize",
                                                                            stage=name) + 1, name
    assert value(after, "faceportal_stage_duration_seconds_sum", route="recognize", stage="detect") > value(
        before, "faceportal_stage_duration_seconds_sum", route="recognize", stage="detect"
    )
    assert value(after, "faceportal_faces_registered_total") == value(before, "faceportal_faces_registered_total") + 1
    assert value(after, "faceportal_faces_stored") >= 1 and value(after, "faceportal_people_stored") >= 1
    assert value(after, "faceportal_model_loaded") == 1
    load_times = {
        dict(labels)["model"]: seconds
        for (name, labels), seconds in after.items()
        if name == "faceportal_model_load_seconds"
    }
    assert any("Dlib" in model for model in load_times), load_times
    assert all(seconds > 0 for seconds in load_times.values()), load_times


def test_registered_faces_count_the_faces_a_committed_registration_added_and_nothing_else(
    client, acme, manifest, django_capture_on_commit_callbacks
):
    registered = "faceportal_faces_registered_total"
    photos = [photo.b64() for photo in manifest["Barack_Obama"][:2]]
    before = value(scrape(client), registered)
    with django_capture_on_commit_callbacks(execute=True):
        result = person_register(organization=acme.org, name="Barack Obama", images=photos)
    assert result.accepted_count == 2
    assert value(scrape(client), registered) == before + 2

    with django_capture_on_commit_callbacks(execute=True):
        again = person_register(organization=acme.org, name="Barack Obama", images=photos[:1])
    assert again.accepted_count == 0, "the same image again adds no face"
    with django_capture_on_commit_callbacks(execute=True):
        with pytest.raises(RuntimeError), transaction.atomic():
            person_register(organization=acme.org, name="Angelina Jolie", images=[manifest["Angelina_Jolie"][0].b64()])
            raise RuntimeError("rolled back after the registration")
        # A face row written without a registration (an import, the latency bench's gallery).
        Face.objects.create(organization=acme.org, person=result.person, model_name="Dlib",
                            embedding=Face.objects.filter(person=result.person).first().embedding,
                            box={"x": 0, "y": 0, "w": 1, "h": 1})
    assert value(scrape(client), registered) == before + 2


# The WebSocket metrics move through a real connection: tests/ship/test_websocket_observability.py.


@pytest.fixture
def json_log():
    """The project's own JSON formatter and filters, writing to a buffer the test can read."""
    console = logging.getLogger("django").handlers[0]
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(console.formatter)
    for log_filter in console.filters:
        handler.addFilter(log_filter)
    loggers = [logging.getLogger(), logging.getLogger("django")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    yield buffer
    for logger, level in zip(loggers, levels, strict=True):
        logger.removeHandler(handler)
        logger.setLevel(level)


def test_request_logs_carry_request_id_org_and_timings_but_no_secret_or_image(acme, manifest, json_log):
    issued = acme.issued
    secret = issued.plaintext
    image_b64 = manifest["Barack_Obama"][1].b64()

    bearer = key_client(issued)
    recognized = bearer.post("/recognize/acme", {"image": image_b64}, format="json", HTTP_X_REQUEST_ID="req-abc.123")
    assert recognized.status_code == 200
    assert recognized["X-Request-ID"] == "req-abc.123"

    header_key = APIClient()
    header_key.credentials(HTTP_X_API_KEY=secret)
    assert header_key.get(f"/orgs/acme/people?token={secret}").status_code == 200
    wrong = "fp_0123456789ab_" + "x" * 43
    unauthorized = APIClient().post(
        "/recognize/acme", {"image": image_b64}, format="json", HTTP_AUTHORIZATION=f"Bearer {wrong}"
    )
    assert unauthorized.status_code == 401
    missing = APIClient().get(f"/no-such-page?token={secret}&api_key={secret}", HTTP_X_REQUEST_ID="bad id\nforged")
    assert missing.status_code == 404
    assert re.fullmatch(r"[0-9a-f]{32}", missing["X-Request-ID"])  # a forged id is replaced, not echoed

    output = json_log.getvalue()
    for forbidden in (secret, secret.split("_", 2)[2], wrong, image_b64[:64], "forged"):
        assert forbidden not in output
    lines = [json.loads(line) for line in output.splitlines() if line.strip()]
    request_lines = [line for line in lines if line.get("message") == "request"]
    (recognize_line,) = [line for line in request_lines if line["route"] == "recognize" and line["status"] == 200]
    assert recognize_line["request_id"] == "req-abc.123"
    assert recognize_line["organization"] == "acme"
    assert recognize_line["api_key_name"] == issued.api_key.name
    assert recognize_line["duration_ms"] > 0
    assert {"decode", "detect", "embed", "search"} <= set(recognize_line["timings_ms"])
    assert any(line["route"] == "person-list" and line["path"] == "/orgs/acme/people" for line in request_lines)
    assert any(line["status"] == 401 and line["route"] == "recognize" for line in request_lines)
    # The 404 is one request line (no query string), not repeated by Django's own "Not Found" warning.
    (not_found,) = [line for line in request_lines if line["status"] == 404]
    assert not_found["request_id"] == missing["X-Request-ID"] and not_found["path"] == "/no-such-page"
    assert not [line for line in lines if line["name"] == "django.request"]
    assert all(re.search(r"\+00:00$", line["time"]) for line in lines)  # timestamps carry their zone

"""Recognition latency per stage, per detector and photo size; 4 concurrent clients; requests/s.

Each request goes through `recognition.services.recognize` (what REST and WebSocket call) with a
base64 JPEG, against an organisation holding one real face per dev identity, then the answer's
serializer and `json.dumps` (serialise). Medians over several requests after one warm-up.

Run alone: `FACEPORTAL_FACES_DIR=../shared/faces DATABASE_URL=... .venv/bin/python bench/latency.py`.
"""

from __future__ import annotations

import base64
import json
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import STRANGERS, log, median, people, setup_django, table  # noqa: E402

SINGLE_REQUESTS = 7
CLIENTS = 4
REQUESTS_PER_CLIENT = 4
STAGES = ("decode", "detect", "align", "embed", "search", "serialise", "total")


def _jpeg(image: np.ndarray) -> str:
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    return base64.b64encode(encoded.tobytes()).decode()


def test_images() -> dict[str, str]:
    """A 250 px portrait, a 640x480 frame and a 1600 px photo, each with one real face."""
    identities = people()
    portrait = cv2.imread(str(identities["Ariel_Sharon"][0].path))  # LFW: 250x250
    wide = max((cv2.imread(str(p.path)) for p in identities["Angelina_Jolie"]), key=lambda im: im.shape[0])
    height, width = wide.shape[:2]
    scale = min(640 / width, 480 / height)  # fit inside the frame, letterboxed, so the face stays whole
    fitted = cv2.resize(wide, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)
    frame = np.zeros((480, 640, 3), dtype=np.uint8)
    top, left = (480 - fitted.shape[0]) // 2, (640 - fitted.shape[1]) // 2
    frame[top:top + fitted.shape[0], left:left + fitted.shape[1]] = fitted
    scale = 1600 / max(height, width)
    big = cv2.resize(wide, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_CUBIC)
    portrait = cv2.resize(portrait, (250, 250)) if portrait.shape[:2] != (250, 250) else portrait
    return {"250 px portrait": _jpeg(portrait), "640x480 frame": _jpeg(frame), "1600 px photo": _jpeg(big)}


def bench_organization(slug: str = "bench-latency"):
    """An organisation with one enrolled face per dev identity (real embeddings, real rows)."""
    from bench.embeddings import CACHE, dev_embeddings
    from faces.index import VectorRecord, get_index
    from faces.index.base import vector_to_bytes
    from faces.models import Face, Person
    from organizations.models import Organization
    from organizations.services import organization_create

    existing = Organization.objects.filter(slug=slug).first()
    if existing is not None:
        get_index().drop_organization(organization_id=existing.pk)
        existing.delete()
    organization = organization_create(slug=slug)
    dev_embeddings()
    with np.load(CACHE) as cached:
        paths, vectors = list(cached["paths"]), cached["vectors"]
    first_of = {}
    for path, vector in zip(paths, vectors, strict=True):
        identity = Path(path).parent.name
        if identity not in STRANGERS:
            first_of.setdefault(identity, vector)
    records = []
    for name, vector in first_of.items():
        person = Person.objects.create(organization=organization, name=name)
        face = Face.objects.create(organization=organization, person=person, model_name="Dlib",
                                   embedding=vector_to_bytes(vector), box={"x": 0, "y": 0, "w": 1, "h": 1})
        records.append(VectorRecord(face_id=face.pk, person_id=person.pk, vector=vector))
    get_index().ensure_organization(organization_id=organization.pk, dimension=128)
    get_index().add(organization_id=organization.pk, records=records)
    return organization


def use_detector(detector: str) -> None:
    """Make the process-wide engine use this detector (what DEEPFACE_DETECTOR_BACKEND does at start-up)."""
    from bench.accuracy import engine_for
    from faces.engine import pipeline

    pipeline._engine = engine_for(detector)


def one_request(organization, image_b64: str) -> dict[str, float]:
    from recognition.serializers import RecognizeOutputSerializer
    from recognition.services import recognize

    started = time.perf_counter()
    result = recognize(organization=organization, image=image_b64)
    mark = time.perf_counter()
    response = RecognizeOutputSerializer(result).data
    json.dumps(response)
    timings = dict(result.timings_ms)
    timings["serialise"] = (time.perf_counter() - mark) * 1000
    timings["total"] = (time.perf_counter() - started) * 1000
    timings["faces"] = len(response["faces"])
    return timings


def measure(organization, image_b64: str) -> tuple[dict[str, float], float, float, float]:
    """(median stage times single, median total under 4 clients, requests/s under 4 clients, faces)."""
    from django.db import connection

    one_request(organization, image_b64)  # warm-up: models on this thread's pool worker
    single = [one_request(organization, image_b64) for _ in range(SINGLE_REQUESTS)]
    medians = {stage: median(t.get(stage, 0.0) for t in single) for stage in STAGES}
    totals: list[float] = []
    lock = threading.Lock()

    def client() -> None:
        try:
            for _ in range(REQUESTS_PER_CLIENT):
                total = one_request(organization, image_b64)["total"]
                with lock:
                    totals.append(total)
        finally:
            connection.close()

    started = time.perf_counter()
    with ThreadPoolExecutor(CLIENTS) as pool:
        for future in [pool.submit(client) for _ in range(CLIENTS)]:
            future.result()
    wall = time.perf_counter() - started
    return medians, median(totals), len(totals) / wall, single[0]["faces"]


def run(detectors, organization=None) -> str:
    from django.conf import settings

    organization = organization or bench_organization()
    images = test_images()
    rows = []
    for detector in detectors:
        use_detector(detector)
        for label, image_b64 in images.items():
            log(f"latency: {detector} {label}")
            medians, concurrent_total, rps, faces = measure(organization, image_b64)
            rows.append([detector, label] + [medians[s] for s in STAGES] + [concurrent_total, rps])
    use_detector(settings.DEEPFACE_DETECTOR_BACKEND)
    return table(
        "Recognition latency per stage (median ms, one request at a time) and under 4 concurrent clients",
        ["detector", "image"] + list(STAGES) + ["total, 4 clients", "req/s, 4 clients"],
        rows,
        note=(f"`recognition.services.recognize` on a base64 JPEG, {SINGLE_REQUESTS} sequential requests after "
              f"a warm-up, then {CLIENTS} client threads x {REQUESTS_PER_CLIENT} requests; req/s under 4 "
              f"clients is the saturation throughput (engine pool: {settings.FACEPORTAL_ENGINE_WORKERS} "
              f"threads). Detection runs on a copy bounded to {settings.FACEPORTAL_DETECT_MAX_SIDE} px; "
              f"gallery: one face per dev identity. align = dlib's 150 px chip from the detector's five "
              f"landmarks (dlib's 5-point predictor for detectors without them); names = face rows."),
    )


if __name__ == "__main__":
    setup_django()
    from bench.accuracy import available_detectors

    run(tuple(sys.argv[1:]) or available_detectors()[0])

"""Engine throughput: the default engine against the previous default (HOG + dlib-bin), same run.

Each configuration serves `recognition.services.recognize` (what REST and WebSocket call) on the
same 640x480 frame with one face, against the same organisation: median latency and stage times
with one client, then frames/s with 1, 2 and 4 concurrent clients. "2 clients / 1" is how the
engine scales with a second core (the engine pool has FACEPORTAL_ENGINE_WORKERS threads); the last
row divides the default's figures by the previous default's, measured minutes apart in this process.

Run alone: `FACEPORTAL_FACES_DIR=../shared/faces .venv/bin/python bench/engine.py` (a throw-away SQLite).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import log, median, setup_django, table  # noqa: E402

# Requests per client for 1, 2 and 4 clients (BENCH_ENGINE_REQUESTS="20,10,6" to change).
REQUESTS = tuple(int(n) for n in os.environ.get("BENCH_ENGINE_REQUESTS", "16,10,6").split(","))
CLIENT_COUNTS = (1, 2, 4)
PREVIOUS = ("dlib", "dlib")  # detector, Dlib runtime of the default before engine v2


def use_engine(detector: str, runtime: str, second_model: str | None = None):
    from dataclasses import replace

    from faces.engine import FaceEngine, pipeline
    from faces.engine.config import EngineConfig

    config = replace(EngineConfig.from_settings(), detector_backend=detector, dlib_runtime=runtime)
    if second_model is not None:
        config = replace(config, second_model=second_model)
    pipeline._engine = FaceEngine(config)
    return pipeline._engine


def second_vectors_add(organization) -> None:
    """Store the second model's vector of each bench face, from its photo (as registration does)."""
    import numpy as np

    from bench.common import manifest
    from faces.engine import get_engine
    from faces.images import decode
    from faces.index.base import vector_to_bytes
    from faces.models import Face

    engine = get_engine()
    if engine.second_embedder is None:
        return
    first_photo = {name: photos[0].path for name, photos in manifest().items() if photos}
    for face in Face.objects.filter(organization=organization).select_related("person"):
        path = first_photo.get(face.person.name)
        if path is None:
            continue
        result = engine.faces_in(decode(path.read_bytes(), index=0).pixels, most_prominent_only=True)
        if result.faces and result.second is not None:
            face.second_embedding = vector_to_bytes(np.asarray(result.second([0])[0], dtype=np.float32))
            face.second_model_name = engine.second_embedder.name
            face.save(update_fields=["second_embedding", "second_model_name"])


def clients_run(organization, image_b64: str, clients: int, per_client: int) -> tuple[float, float, list[dict]]:
    """(frames/s, cores busy, every request's timings): `clients` threads each send `per_client` frames.

    Cores busy = this process's CPU seconds per wall second: near the client count (up to the
    cores) when the work runs in parallel; near 1 when it is serialised; lower when the machine
    is shared and the scheduler gives us less.
    """
    from django.db import connection

    from bench.latency import one_request

    results: list[dict] = []
    lock = threading.Lock()

    def client() -> None:
        try:
            for _ in range(per_client):
                timings = one_request(organization, image_b64)
                with lock:
                    results.append(timings)
        finally:
            connection.close()

    started, cpu_started = time.perf_counter(), time.process_time()
    with ThreadPoolExecutor(clients) as pool:
        for future in [pool.submit(client) for _ in range(clients)]:
            future.result()
    wall = time.perf_counter() - started
    return len(results) / wall, (time.process_time() - cpu_started) / wall, results


def measure(organization, image_b64: str) -> dict[str, float]:
    clients_run(organization, image_b64, 2, 2)  # warm-up: models loaded on both pool threads
    figures: dict[str, float] = {}
    from faces.engine import get_engine

    for clients, per_client in zip(CLIENT_COUNTS, REQUESTS, strict=True):
        ran = get_engine().second_faces
        fps, busy, results = clients_run(organization, image_b64, clients, per_client)
        if clients == 1:
            figures["second"] = (get_engine().second_faces - ran) / max(1, len(results))
        figures[f"fps{clients}"] = fps
        figures[f"busy{clients}"] = busy
        if clients == 1:
            for stage in ("detect", "align", "embed", "total"):
                figures[stage] = median(r.get(stage, 0.0) for r in results)
            figures["faces"] = results[0]["faces"]
    return figures


def run(organization=None) -> str:
    from django.conf import settings

    from bench.latency import bench_organization, test_images

    organization = organization or bench_organization()
    frame = test_images()["640x480 frame"]
    default = (settings.DEEPFACE_DETECTOR_BACKEND, settings.FACEPORTAL_DLIB_RUNTIME)
    second = settings.FACEPORTAL_SECOND_MODEL
    configs = [(f"default ({default[0]} + Dlib on {default[1]}" + (f", {second} cascade)" if second else ")"),
                default, None),
               ("previous default (HOG + dlib-bin)", PREVIOUS, "")]
    if default == PREVIOUS:
        configs = configs[:1]
    if second:  # the same engine with the first model alone, measured in this run
        configs.insert(1, (f"first model alone ({default[0]} + Dlib on {default[1]})", default, ""))
    rows, measured = [], []
    use_engine(*default)
    second_vectors_add(organization)
    for label, (detector, runtime), second_model in configs:
        log(f"engine: {label}")
        use_engine(detector, runtime, second_model)
        figures = measure(organization, frame)
        measured.append(figures)
        rows.append([label, figures["faces"], figures["total"], figures["detect"], figures["align"], figures["embed"],
                     f"{figures.get('second', 0.0):.0%}",
                     figures["fps1"], figures["fps2"], figures["fps4"], figures["fps2"] / figures["fps1"],
                     f"{figures['busy1']:.2f} / {figures['busy2']:.2f}", figures["busy1"] * 1000 / figures["fps1"]])
    if second:
        measured = [measured[0], measured[-1]] if len(measured) == 3 else measured[:1]
    if len(measured) == 2:
        new, old = measured
        rows.append(["default / previous default", "", new["total"] / old["total"], new["detect"] / old["detect"],
                     new["align"] / old["align"], new["embed"] / old["embed"], "", new["fps1"] / old["fps1"],
                     new["fps2"] / old["fps2"], new["fps4"] / old["fps4"], "", "",
                     (new["busy1"] / new["fps1"]) / (old["busy1"] / old["fps1"])])
    use_engine(*default)
    sections = [table(
        "Engine: one 640x480 frame with one face through `recognize`, default against previous default",
        ["engine", "faces", "p50 ms, 1 client", "detect ms", "align ms", "embed ms", "second model ran",
         "frames/s, 1 client",
         "frames/s, 2 clients", "frames/s, 4 clients", "2 clients / 1", "cores busy, 1 / 2 clients",
         "CPU ms/frame, 1 client"],
        rows,
        note=(f"`recognition.services.recognize` on a base64 JPEG (decode, detect, align, embed, search, names); "
              f"stage times are medians of the 1-client run. Clients are threads sending frames back to back: "
              f"{', '.join(f'{c} x {n}' for c, n in zip(CLIENT_COUNTS, REQUESTS, strict=True))} requests; engine "
              f"pool: {settings.FACEPORTAL_ENGINE_WORKERS} threads on {os.cpu_count()} cores. Ratios < 1 in the "
              "ms columns and > 1 in the frames/s columns favour the default. Cores busy: the process's CPU "
              "seconds per wall second; below the client count on a machine shared with other work. CPU ms/frame "
              "(cores busy x 1000 / frames/s) is what a frame costs, whatever else runs on the machine. Second "
              "model ran: the share of frames (1 client) the cascade sent to the second model."),
    )]
    if second:
        sections.append(mixed_photos(organization))
    return "\n".join(sections)


def mixed_photos(organization) -> str:
    """How often the cascade runs the second model on varied photos: every dev photo but each enrolled
    person's first (their gallery photo), strangers included, with and without the second model."""
    from django.conf import settings

    from bench.common import manifest
    from bench.latency import one_request
    from faces.engine import get_engine

    photos = []
    for name, items in manifest().items():
        if name.startswith("_"):
            continue
        photos += items[1:]
    import base64

    photos = photos[::3]  # a spread of a third of them keeps the run short
    encoded = [base64.b64encode(photo.path.read_bytes()).decode() for photo in photos]
    rows = []
    default = (settings.DEEPFACE_DETECTOR_BACKEND, settings.FACEPORTAL_DLIB_RUNTIME)
    for label, second_model in ((f"first model + {settings.FACEPORTAL_SECOND_MODEL} cascade", None),
                                ("first model alone", "")):
        use_engine(*default, second_model)
        one_request(organization, encoded[0])  # warm-up
        ran = get_engine().second_embedder.name if get_engine().second_embedder is not None else ""
        before = get_engine().second_faces
        totals, faces = [], 0
        for image in encoded:
            timings = one_request(organization, image)
            totals.append(timings["total"])
            faces += int(timings["faces"])
        share = (get_engine().second_faces - before) / max(1, faces) if ran else 0.0
        rows.append([label, len(encoded), faces, median(totals), f"{share:.0%}"])
    use_engine(*default)
    return table("Cascade: how often the second model runs, on the dev photos (enrolled people and strangers)",
                 ["engine", "photos", "faces", "p50 ms per photo", "faces sent to the second model"], rows,
                 note="Each enrolled person's first photo is their gallery face; their other photos and every "
                 "stranger's are the probes.")


if __name__ == "__main__":
    import tempfile

    scratch = Path(tempfile.mkdtemp(prefix="faceportal-bench-"))
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{scratch / 'bench.sqlite3'}")
    os.environ.setdefault("FACEPORTAL_VAR_DIR", str(scratch))
    setup_django()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    run()

"""Bulk enrolment jobs beside live recognition: does a job slow `POST /recognize` down, and how fast
does it enrol next to `manage.py enroll`?

In one process, as in the server: the job runner thread (faces.enrolment_jobs) and the requests
share the engine pool. `POST /recognize/{org}` goes through Django's test client (the whole view,
authentication included) with a base64 photo, one request at a time, against an organisation of
one face per identity: first alone, then while a job enrols the photo set. Then the same folder
through `manage.py enroll` and as a job with nothing else running, each into a fresh organisation.

Run: `FACEPORTAL_FACES_DIR=../shared/faces .venv/bin/python bench/enrolment_jobs.py` (a throw-away
SQLite database unless BENCH_DATABASE_URL names one to migrate).
"""

from __future__ import annotations

import io
import os
import sys
import tempfile
import threading
import time
import zipfile
from io import StringIO
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import faces_dir, log, manifest, people, percentile, table  # noqa: E402

ALONE_REQUESTS = 40
GALLERY = 10  # identities in the live organisation


def folder_zip(root: Path) -> bytes:
    """The photo set as `manage.py enroll` reads it (the `_` folders go in and are skipped)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(root.rglob("*")):
            if path.is_file() and path.parent != root:
                archive.write(path, path.relative_to(root).as_posix())
    return buffer.getvalue()


def recognize_ms(client, slug: str, probe: str) -> float:
    started = time.perf_counter()
    response = client.post(f"/recognize/{slug}", {"image": probe}, content_type="application/json")
    elapsed = (time.perf_counter() - started) * 1000
    assert response.status_code == 200, response.content[:300]
    return elapsed


def run_job(slug: str, archive: bytes, *, during=None) -> tuple[float, int, list[float]]:
    """(seconds from its first image to its end, faces added, recognition latencies measured meanwhile)."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    from faces.enrolment_jobs import enrolment_job_create, start_enrolment_runner
    from faces.models import EnrolmentJob
    from organizations.services import organization_create

    job = enrolment_job_create(organization=organization_create(slug=slug),
                               archive=SimpleUploadedFile("people.zip", archive))
    stop = threading.Event()
    runner = start_enrolment_runner(poll=0.02, stop=stop)
    latencies: list[float] = []
    try:
        while EnrolmentJob.objects.get(pk=job.pk).status != "done":
            if during is not None:
                latencies.append(during())
            else:
                time.sleep(0.05)
    finally:
        stop.set()
        runner.join()
    job.refresh_from_db()
    return (job.finished_at - job.started_at).total_seconds(), job.faces_added, latencies


def main() -> None:
    scratch = Path(tempfile.mkdtemp(prefix="faceportal-bench-jobs-"))
    os.environ["DATABASE_URL"] = os.environ.get("BENCH_DATABASE_URL") or f"sqlite:///{scratch / 'bench.sqlite3'}"
    os.environ["FACEPORTAL_VAR_DIR"] = str(scratch)
    from bench.common import setup_django

    setup_django()
    from django.conf import settings
    from django.core.management import call_command
    from django.test import Client

    from apikeys.services import api_key_issue
    from faces.engine import get_engine
    from faces.services import person_register
    from organizations.services import organization_create

    call_command("migrate", verbosity=0)
    get_engine().warm()
    root = faces_dir()
    archive = folder_zip(root)

    log("live organisation")
    live = organization_create(slug="bench-live")
    identities = list(people().items())
    for name, photos in identities[:GALLERY]:
        person_register(organization=live, name=name, images=[photos[0].path.read_bytes()])
    issued = api_key_issue(organization=live, user="bench", name="bench")
    client = Client(HTTP_AUTHORIZATION=f"Bearer {issued.plaintext}")
    probes = [photos[-1].b64() for _, photos in identities[:GALLERY]]
    turn = iter(range(10**9))

    def one_request() -> float:
        return recognize_ms(client, "bench-live", probes[next(turn) % len(probes)])

    one_request()  # warm-up
    log("recognition alone")
    alone = [one_request() for _ in range(ALONE_REQUESTS)]
    log("recognition during a job")
    job_seconds_busy, job_faces_busy, during = run_job("bench-job-busy", archive, during=one_request)
    log("job alone")
    job_seconds, job_faces, _ = run_job("bench-job-alone", archive)
    log("manage.py enroll")
    organization_create(slug="bench-enroll")
    out = StringIO()
    started = time.perf_counter()
    call_command("enroll", str(root), "--org", "bench-enroll", "--no-progress", stdout=out)
    enroll_seconds = time.perf_counter() - started
    enroll_faces = int(out.getvalue().strip().splitlines()[-1].split(":")[1].split()[0])

    table(
        "POST /recognize alone and while an enrolment job runs (ms, one request at a time)",
        ["", "requests", "p50", "p99", "max"],
        [["alone", len(alone), percentile(alone, 0.5), percentile(alone, 0.99), max(alone)],
         ["during a job", len(during), percentile(during, 0.5), percentile(during, 0.99), max(during)]],
    )
    table(
        f"Enrolment speed: {root.name}/ ({sum(len(p) for n, p in manifest().items() if not n.startswith('_'))} "
        "photos in person folders)",
        ["", "faces", "seconds", "faces/s"],
        [["manage.py enroll (8 photos per call, all engine threads)", enroll_faces, enroll_seconds,
          enroll_faces / enroll_seconds],
         ["enrolment job, nothing else running", job_faces, job_seconds, job_faces / job_seconds],
         ["enrolment job, requests one after another", job_faces_busy, job_seconds_busy,
          job_faces_busy / job_seconds_busy]],
        note=f"{settings.FACEPORTAL_ENGINE_WORKERS} engine threads, {os.cpu_count()} cores. The job enrols one "
        "image at a time, on one engine thread, and only while no live request is in the engine pool.",
    )


if __name__ == "__main__":
    main()

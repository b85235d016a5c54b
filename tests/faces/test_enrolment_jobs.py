"""Bulk enrolment jobs: a zip of one folder per person, enrolled in the background, resumable, and
ending with the same people as `manage.py enroll` on the same folder."""

from __future__ import annotations

import io
import threading
import time
import zipfile
from io import StringIO

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from PIL import Image

from faces import enrolment_jobs
from faces.enrolment_jobs import start_enrolment_runner
from faces.models import EnrolmentJob, EnrolmentJobImage, Face, Person
from faces.signals import enrolment_job_finished

# Photos of each identity: one, and three of a few, so face counts differ; quick enough for the suite.
PER_PERSON = {"Tony_Blair": 3, "Barack_Obama": 2}


def zipped(files: dict[str, bytes], *, compression=zipfile.ZIP_STORED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def upload(client, slug: str, data: bytes):
    return client.post(f"/orgs/{slug}/enrolment-jobs",
                       {"archive": SimpleUploadedFile("people.zip", data, content_type="application/zip")},
                       format="multipart")


def collection(manifest) -> dict[str, bytes]:
    """Every identity of the photo set (PER_PERSON photos, else one), plus a photo without a face in one
    folder; the `_noface`/`_group` folders go in too, and are skipped as `manage.py enroll` skips them."""
    files = {}
    for identity, photos in manifest.items():
        for number, photo in enumerate(photos[:PER_PERSON.get(identity, 1)], start=1):
            files[f"{identity}/{number}{photo.path.suffix}"] = photo.path.read_bytes()
    files[f"Tony_Blair/9{manifest['_noface'][0].path.suffix}"] = manifest["_noface"][0].path.read_bytes()
    return files


def people_of(org) -> dict[str, int]:
    return {person.name: person.faces.count() for person in Person.objects.filter(organization=org)}


def wait_for(predicate, *, seconds: float = 120.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.mark.django_db(transaction=True)
def test_a_job_killed_midway_resumes_and_ends_like_manage_py_enroll(make_tenant, manifest, tmp_path):
    files = collection(manifest)
    # The reference: manage.py enroll on the same folder.
    folder = tmp_path / "people"
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    reference = make_tenant("reference").org
    call_command("enroll", str(folder), "--org", "reference", "--no-progress", stdout=StringIO())

    acme = make_tenant("acme")
    finished = []
    enrolment_job_finished.connect(lambda sender, job, organization, **kw: finished.append(job.pk),
                                   weak=False, dispatch_uid="test-finished")
    response = upload(acme.client, "acme", zipped(files))
    assert response.status_code == 202, response.content
    job_id = response.json()["id"]
    total = response.json()["total"]
    assert total == sum(1 for name in files if not name.startswith("_"))

    # The server's runner thread, stopped after a few images (the process going away between images).
    stop = threading.Event()
    runner = start_enrolment_runner(poll=0.05, stop=stop)
    wait_for(lambda: EnrolmentJob.objects.get(pk=job_id).done >= 5)
    stop.set()
    runner.join(timeout=60)
    assert not runner.is_alive()
    half = acme.client.get(f"/orgs/acme/enrolment-jobs/{job_id}").json()
    assert half["status"] == "running" and 5 <= half["done"] < total
    assert sum(1 for image in half["images"] if image["processed"]) == half["done"]

    # Killed in the middle of an image: its faces were stored, its outcome not yet; the transaction
    # rolls back both, and the image is done again on resume.
    faces_before = Face.objects.filter(organization=acme.org).count()
    real_record = enrolment_jobs._record_outcome

    def crash(**kwargs):
        assert Face.objects.filter(organization=acme.org).count() > faces_before  # the face was written
        raise KeyboardInterrupt("killed")

    enrolment_jobs._record_outcome = crash
    try:
        with pytest.raises(KeyboardInterrupt):
            enrolment_jobs.enrolment_job_step()
    finally:
        enrolment_jobs._record_outcome = real_record
    assert Face.objects.filter(organization=acme.org).count() == faces_before
    assert EnrolmentJob.objects.get(pk=job_id).done == half["done"]

    # A restarted server resumes it.
    stop = threading.Event()
    runner = start_enrolment_runner(poll=0.05, stop=stop)
    try:
        wait_for(lambda: EnrolmentJob.objects.get(pk=job_id).status == "done")
    finally:
        stop.set()
        runner.join(timeout=60)
    final = acme.client.get(f"/orgs/acme/enrolment-jobs/{job_id}").json()
    assert final["done"] == final["total"] == total
    assert people_of(acme.org) == people_of(reference)
    assert final["faces_added"] == Face.objects.filter(organization=acme.org).count()
    by_path = {image["path"]: image for image in final["images"]}
    no_face = by_path[f"Tony_Blair/9{manifest['_noface'][0].path.suffix}"]
    assert (no_face["accepted"], no_face["code"]) == (False, "no_face")
    assert all(image["face_id"] for image in final["images"] if image["accepted"])
    assert not EnrolmentJobImage.objects.filter(job_id=job_id).exclude(data=b"").exists()  # bytes dropped
    assert finished == [job_id]
    enrolment_job_finished.disconnect(dispatch_uid="test-finished")


def jpeg(width: int = 64, height: int = 64) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (120, 90, 60)).save(buffer, "JPEG")
    return buffer.getvalue()


@pytest.mark.django_db
@hypothesis_settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(bad=st.sampled_from(["../evil/1.jpg", "/abs/1.jpg", "Ada/../../1.jpg", "C:/Ada/1.jpg", "Ada\\1.jpg"]),
       good=st.integers(min_value=0, max_value=3))
def test_unsafe_names_are_refused_and_nothing_is_created(acme, bad, good):
    files = {f"Person {n}/{n}.jpg": jpeg() for n in range(good)}
    files[bad] = jpeg()
    response = upload(acme.client, "acme", zipped(files))
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "unsafe_path"
    assert not EnrolmentJob.objects.exists() and not EnrolmentJobImage.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("case", ["too_many_files", "ratio", "image_bytes", "image_pixels", "not_zip", "empty",
                                  "unzipped_total", "bad_folder"])
def test_archive_bounds_answer_400_and_create_nothing(acme, settings, case):
    files = {f"Ada/{n}.jpg": jpeg() for n in range(3)}
    compression = zipfile.ZIP_STORED
    if case == "too_many_files":
        settings.FACEPORTAL_ENROLMENT_JOB_MAX_FILES = 2
        code = "too_many_files"
    elif case == "ratio":
        files["Ada/bomb.png"] = b"\0" * (2 * 1024 * 1024)  # compresses about 1000:1
        compression, code = zipfile.ZIP_DEFLATED, "compression_ratio_too_high"
    elif case == "image_bytes":
        settings.FACEPORTAL_MAX_IMAGE_BYTES = 2000
        files["Ada/big.jpg"] = jpeg(400, 400) + b"\xff" * 4000
        code = "image_too_large"
    elif case == "image_pixels":
        settings.FACEPORTAL_MAX_IMAGE_PIXELS = 100 * 100
        files["Ada/wide.jpg"] = jpeg(300, 200)
        code = "image_too_large"
    elif case == "unzipped_total":
        settings.FACEPORTAL_ENROLMENT_JOB_MAX_UNZIPPED_BYTES = 1000
        code = "archive_too_large"
    elif case == "bad_folder":
        files["x" * 300 + "/1.jpg"] = jpeg()
        code = "invalid_folder_name"
    data = zipped(files, compression=compression)
    if case == "not_zip":
        data, code = jpeg(), "invalid_archive"
    elif case == "empty":
        data, code = zipped({"readme.txt": b"hello", "_group/1.jpg": jpeg()}), "empty_archive"
    response = upload(acme.client, "acme", data)
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == code
    assert not EnrolmentJob.objects.exists() and not EnrolmentJobImage.objects.exists()


@pytest.mark.django_db
def test_one_job_per_organisation_and_external_id_folders(acme, make_tenant, manifest):
    photo = manifest["Tony_Blair"][0]
    files = {f"people/ext:emp-7/{n}.jpg": p.path.read_bytes() for n, p in enumerate(manifest["Tony_Blair"][:2])}
    first = upload(acme.client, "acme", zipped(files))
    assert first.status_code == 202, first.content
    second = upload(acme.client, "acme", zipped({"Ada/1.jpg": photo.path.read_bytes()}))
    assert second.status_code == 409 and second.json()["error"]["code"] == "enrolment_job_running"
    # Another organisation is not held up.
    assert upload(make_tenant("globex").client, "globex", zipped({"Ada/1.jpg": jpeg()})).status_code == 202
    assert EnrolmentJob.objects.filter(organization=acme.org).count() == 1
    images = list(EnrolmentJobImage.objects.filter(job__organization=acme.org).values_list("folder", flat=True))
    assert images == ["ext:emp-7", "ext:emp-7"]  # under one wrapper folder
    while enrolment_jobs.enrolment_job_step():
        pass
    person = Person.objects.get(organization=acme.org)
    assert (person.external_id, person.faces.count()) == ("emp-7", 2)
    # Finished: a new job is taken.
    assert upload(acme.client, "acme", zipped({"Ada/1.jpg": jpeg()})).status_code == 202


@pytest.mark.django_db
def test_another_organisations_job_is_not_found(acme, make_tenant):
    job = upload(make_tenant("globex").client, "globex", zipped({"Ada/1.jpg": jpeg()})).json()["id"]
    mine = acme.client.get(f"/orgs/acme/enrolment-jobs/{job}")
    missing = acme.client.get("/orgs/acme/enrolment-jobs/987654321")
    assert mine.status_code == missing.status_code == 404
    assert mine.content == missing.content


@pytest.mark.django_db(transaction=True)
def test_the_runner_waits_while_live_work_fills_the_engine_pool(acme, manifest):
    from django.db import connection

    from faces.engine import run_in_engine_pool

    job = upload(acme.client, "acme", zipped({"Ada/1.jpg": manifest["Tony_Blair"][0].path.read_bytes()})).json()
    release = threading.Event()
    # One live request in the engine pool is enough to hold the job back.
    busy = [run_in_engine_pool(release.wait, 60)]

    def run() -> None:
        try:
            enrolment_jobs.enrolment_jobs_run(max_images=2)
        finally:
            connection.close()

    runner = threading.Thread(target=run)
    runner.start()
    try:
        time.sleep(1.0)
        assert runner.is_alive()
        assert EnrolmentJob.objects.get(pk=job["id"]).done == 0  # nothing taken from live work
    finally:
        release.set()
    for future in busy:
        future.result(timeout=60)
    runner.join(timeout=120)
    assert EnrolmentJob.objects.get(pk=job["id"]).status == "done"


@pytest.mark.django_db
def test_the_admin_shows_jobs_read_only_with_a_progress_bar(acme, django_user_model):
    from django.test import Client

    staff_client = Client()
    staff_client.force_login(django_user_model.objects.create_superuser("root", password="x"))
    job = upload(acme.client, "acme", zipped({f"Ada/{n}.jpg": jpeg() for n in range(4)})).json()
    enrolment_jobs.enrolment_jobs_run(max_images=1)  # one of four: a blank image, refused
    listing = staff_client.get("/admin/faces/enrolmentjob/")
    assert listing.status_code == 200
    assert b'<progress value="1" max="4"' in listing.content
    page = staff_client.get(f"/admin/faces/enrolmentjob/{job['id']}/change/")
    assert page.status_code == 200 and b"<progress" in page.content and b"Ada/0.jpg" in page.content
    assert b'name="_save"' not in page.content  # read-only
    assert staff_client.get("/admin/faces/enrolmentjob/add/").status_code == 403


@pytest.mark.django_db
def test_an_image_the_engine_cannot_handle_does_not_hold_the_job_up(acme, monkeypatch):
    job = upload(acme.client, "acme", zipped({f"Ada/{n}.jpg": jpeg(64 + n, 64) for n in range(2)})).json()

    def engine_fault(**kwargs):
        raise RuntimeError("engine fault")

    monkeypatch.setattr(enrolment_jobs, "person_register", engine_fault)
    enrolment_jobs.enrolment_jobs_run()
    final = acme.client.get(f"/orgs/acme/enrolment-jobs/{job['id']}").json()
    assert final["status"] == "done"
    assert [image["code"] for image in final["images"]] == ["internal_error", "internal_error"]

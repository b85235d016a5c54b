"""Bulk enrolment jobs: a zip of one folder per person, enrolled outside requests, resumably.

The archive is checked and unpacked in the request (bounds below; on any refusal nothing is
created) into one EnrolmentJobImage row per image; the request answers 202. A daemon thread
started with the server (`start_enrolment_runner`, faceportal.asgi) enrols them one image at a
time, each in one transaction with its outcome, so a process killed mid-way redoes at most the
image it was on. The job row is claimed with SKIP LOCKED, so several processes never run one job
at once. Before each image the runner waits until the engine pool has no live work queued or
running, and it submits one image at a time: live recognition always finds a free engine thread,
and shares the cores with at most one image in progress.

Folders: `<name>/<image>` enrols under that person's name (as `manage.py enroll`); a folder
named `ext:<id>` adds faces to the person whose external_id is `<id>` (created, named `<id>`,
when there is none). Folders starting with `_` or `.` are skipped, as `manage.py enroll` does.
One wrapper folder around them all (`zip -r people.zip people/`) is allowed.

When a job finishes, faces.signals.enrolment_job_finished is sent (sender=EnrolmentJob, job=, organization=).
"""

from __future__ import annotations

import hashlib
import io
import logging
import threading
import time
import zipfile
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from django.conf import settings
from django.db import DatabaseError, IntegrityError, transaction
from django.utils import timezone
from PIL import Image
from rest_framework.exceptions import ValidationError

from faceportal.background import one_pass, start_once
from faceportal.errors import Conflict, FacePortalError, InvalidInput, Unprocessable
from faces.engine import engine_pool_in_flight
from faces.models import JOB_ACTIVE, JOB_DONE, JOB_RUNNING, EnrolmentJob, EnrolmentJobImage, Face, Person
from faces.serializers import ExternalIdField, person_name_validate
from faces.services import person_register
from faces.signals import enrolment_job_finished
from organizations.models import Organization

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
EXTERNAL_ID_PREFIX = "ext:"
RATIO_CHECKED_ABOVE = 64 * 1024  # smaller files cannot bomb, whatever their ratio
YIELD_NAP = 0.05  # seconds between looks at a busy engine pool (a live camera keeps it busy: 200 looks a
# second cost the cameras a core's 2%; a job starting 50 ms after the pool goes idle costs nobody)


_wake = threading.Event()
_started = threading.Event()


@dataclass
class ArchiveImage:
    path: str
    folder: str
    data: bytes


def _refused(message: str, *, code: str, path: str | None = None) -> InvalidInput:
    return InvalidInput(message, code=code, details={"field": "archive", **({"path": path} if path else {})})


def _unsafe(name: str) -> bool:
    """A name that could write outside a folder if unpacked (we never unpack to disk; refused anyway)."""
    if not name or "\x00" in name or "\\" in name or name.startswith("/"):
        return True
    if len(name) > 1 and name[1] == ":":  # a drive letter
        return True
    return any(part == ".." for part in name.split("/"))


def _check_folder(folder: str, *, path: str) -> None:
    try:
        if folder.startswith(EXTERNAL_ID_PREFIX):
            ExternalIdField().run_validation(folder[len(EXTERNAL_ID_PREFIX):])
        else:
            person_name_validate(folder)
    except ValidationError as exc:
        detail = "; ".join(str(item) for item in exc.detail) if isinstance(exc.detail, list) else str(exc.detail)
        raise _refused(f"Folder '{folder[:80]}' is not a valid person name or ext:<external_id>: {detail}",
                       code="invalid_folder_name", path=path) from exc


def _check_pixels(data: bytes, *, path: str) -> None:
    """Header dimensions only (no decoding); an unreadable image is left to its own outcome."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
    except Exception:  # noqa: BLE001 - reported per image by the runner, as /register would
        return
    if width * height > settings.FACEPORTAL_MAX_IMAGE_PIXELS:
        raise _refused(f"{path}: {width}x{height} pixels is over the limit of "
                       f"{settings.FACEPORTAL_MAX_IMAGE_PIXELS}.", code="image_too_large", path=path)


def archive_images(*, archive: Any) -> list[ArchiveImage]:
    """The images of an uploaded zip in people's and files' name order, or a 400 naming the bound."""
    size = getattr(archive, "size", None) or 0
    if size > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
        raise _refused("The archive is over the size limit.", code="archive_too_large")
    try:
        zipped = zipfile.ZipFile(archive)
        infos = zipped.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as exc:
        raise _refused("The archive is not a readable zip file.", code="invalid_archive") from exc
    if len(infos) > settings.FACEPORTAL_ENROLMENT_JOB_MAX_FILES:
        raise _refused(f"The archive holds {len(infos)} entries; at most "
                       f"{settings.FACEPORTAL_ENROLMENT_JOB_MAX_FILES} are taken.", code="too_many_files")
    wanted: list[tuple[str, str, zipfile.ZipInfo]] = []
    unzipped = 0
    for info in infos:
        name = info.filename
        if _unsafe(name):
            raise _refused("The archive holds a path outside its folder.", code="unsafe_path", path=name[:200])
        if info.is_dir():
            continue
        if info.file_size > RATIO_CHECKED_ABOVE and \
                info.file_size > settings.FACEPORTAL_ENROLMENT_JOB_MAX_RATIO * max(1, info.compress_size):
            raise _refused(f"{name}: compressed {info.file_size // max(1, info.compress_size)}:1, over the "
                           f"limit of {settings.FACEPORTAL_ENROLMENT_JOB_MAX_RATIO:g}:1.",
                           code="compression_ratio_too_high", path=name)
        unzipped += info.file_size
        if unzipped > settings.FACEPORTAL_ENROLMENT_JOB_MAX_UNZIPPED_BYTES:
            raise _refused("The archive unpacks to more than the size limit.", code="archive_too_large")
        parts = PurePosixPath(name).parts
        if len(parts) < 2 or len(parts) > 3:
            continue  # a loose file, or deeper than person/image (or wrapper/person/image)
        folder, filename = parts[-2], parts[-1]
        if folder.startswith(("_", ".")) or filename.startswith(".") or \
                PurePosixPath(filename).suffix.lower() not in IMAGE_SUFFIXES:
            continue
        if info.file_size > settings.FACEPORTAL_MAX_IMAGE_BYTES:
            raise _refused(f"{name} is over the per-image limit of {settings.FACEPORTAL_MAX_IMAGE_BYTES} bytes.",
                           code="image_too_large", path=name)
        _check_folder(folder, path=name)
        wanted.append((folder, filename, info))
    if len({len(PurePosixPath(info.filename).parts) for _, _, info in wanted}) > 1:
        raise _refused("Put every person's folder at the same depth (at most one wrapper folder).",
                       code="invalid_archive")
    images = []
    for folder, _, info in sorted(wanted, key=lambda item: (item[0], item[1])):
        try:
            with zipped.open(info) as handle:
                # The header's size may lie: never read past the limit.
                data = handle.read(settings.FACEPORTAL_MAX_IMAGE_BYTES + 1)
                if len(data) > settings.FACEPORTAL_MAX_IMAGE_BYTES or handle.read(1):
                    raise _refused(f"{info.filename} unpacks to more than its declared size.",
                                   code="image_too_large", path=info.filename)
        except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, RuntimeError) as exc:
            raise _refused(f"{info.filename} cannot be unpacked.", code="invalid_archive",
                           path=info.filename) from exc
        _check_pixels(data, path=info.filename)
        images.append(ArchiveImage(path=info.filename, folder=folder, data=data))
    if not images:
        raise _refused("The archive holds no images in person folders.", code="empty_archive")
    return images


def _job_running(organization: Organization) -> Conflict:
    return Conflict("This organisation already has an enrolment job that has not finished.",
                    code="enrolment_job_running")


def enrolment_job_create(*, organization: Organization, archive: Any) -> EnrolmentJob:
    """A queued job for the archive's images (409 when the organisation has one unfinished)."""
    if EnrolmentJob.objects.filter(organization=organization, status__in=JOB_ACTIVE).exists():
        raise _job_running(organization)
    images = archive_images(archive=archive)
    try:
        with transaction.atomic():
            job = EnrolmentJob.objects.create(organization=organization, total=len(images))
            EnrolmentJobImage.objects.bulk_create(
                [EnrolmentJobImage(job=job, position=position, path=image.path[:500], folder=image.folder,
                                   data=image.data, content_hash=hashlib.sha256(image.data).hexdigest())
                 for position, image in enumerate(images)],
                batch_size=100,
            )
            transaction.on_commit(_wake.set)
    except IntegrityError as exc:  # another request created one meanwhile (the unique constraint)
        raise _job_running(organization) from exc
    return job


# --- The runner ----------------------------------------------------------------------------------

def _wait_for_idle_engine(stop: threading.Event | None) -> None:
    """Live requests first: wait while any engine work is queued or running. An image already
    started is not interrupted, so a request arriving meanwhile shares the cores with it (one
    engine thread; the others stay free)."""
    while engine_pool_in_flight() > 0:
        if stop is not None and stop.is_set():
            return
        time.sleep(YIELD_NAP)


def _person_for(*, organization: Organization, folder: str) -> tuple[str, str | None]:
    """(name, external_id) to register under."""
    if not folder.startswith(EXTERNAL_ID_PREFIX):
        return folder, None
    external_id = folder[len(EXTERNAL_ID_PREFIX):]
    existing = Person.objects.filter(organization=organization, external_id=external_id).first()
    return (existing.name if existing else external_id), external_id


def _enrol_one(*, organization: Organization, image: EnrolmentJobImage) -> dict[str, Any]:
    """The image's outcome, in /register's terms (accepted, code, reason, face_id)."""
    same_file = Face.objects.filter(organization=organization, content_hash=image.content_hash).first()
    if same_file is not None:
        return {"accepted": False, "code": "duplicate_image", "face_id": same_file.pk,
                "person_id": same_file.person_id, "reason": "the same file is already enrolled in this organisation"}
    name, external_id = _person_for(organization=organization, folder=image.folder)
    try:
        result = person_register(organization=organization, name=name, images=[bytes(image.data)],
                                 content_hashes=[image.content_hash], external_id=external_id)
    except Unprocessable as exc:
        refused = (exc.details or {}).get("images") or [{}]
        return {"accepted": False, "code": refused[0].get("code") or exc.code,
                "reason": refused[0].get("reason") or exc.message}
    except FacePortalError as exc:  # unreadable image (invalid_image), matches someone else (409), ...
        reason = exc.details.get("reason") if isinstance(exc.details, dict) else None
        return {"accepted": False, "code": exc.code, "reason": reason or exc.message}
    except DatabaseError:
        raise  # the database is away: the image stays pending and is tried again
    except Exception:  # one image the engine cannot handle must not hold the job up for ever
        logger.exception("enrolment job image failed", extra={"organization": organization.slug, "path": image.path})
        return {"accepted": False, "code": "internal_error", "reason": "this image could not be processed"}
    outcome = result.outcomes[0]
    return {"accepted": outcome.accepted, "code": outcome.code, "reason": outcome.reason,
            "face_id": outcome.face_id, "person_id": result.person.pk}


def _record_outcome(*, job: EnrolmentJob, image: EnrolmentJobImage, outcome: dict[str, Any]) -> None:
    image.processed = True
    image.data = b""
    image.accepted = bool(outcome.get("accepted"))
    image.code = outcome.get("code")
    image.reason = (outcome.get("reason") or None) and str(outcome["reason"])[:500]
    image.face_id = outcome.get("face_id")
    image.person_id = outcome.get("person_id")
    image.save(update_fields=["processed", "data", "accepted", "code", "reason", "face_id", "person_id"])
    job.done += 1
    job.faces_added += 1 if image.accepted else 0
    job.save(update_fields=["done", "faces_added"])


def _finish(job: EnrolmentJob) -> None:
    job.status = JOB_DONE
    job.finished_at = timezone.now()
    job.save(update_fields=["status", "finished_at"])
    organization = job.organization
    transaction.on_commit(lambda: enrolment_job_finished.send(sender=EnrolmentJob, job=job,
                                                              organization=organization))
    logger.info("enrolment job finished", extra={"organization": organization.slug, "job_id": job.pk,
                                                 "faces": job.faces_added, "images": job.total})


def enrolment_job_step(*, stop: threading.Event | None = None) -> bool:
    """Enrol the next image of the oldest unfinished job (or finish that job); False when none waits.

    The image's faces and its outcome commit together: a crash before the commit leaves it pending."""
    _wait_for_idle_engine(stop)
    with transaction.atomic():
        job = (EnrolmentJob.objects.select_for_update(skip_locked=True).select_related("organization")
               .filter(status__in=JOB_ACTIVE).order_by("id").first())
        if job is None:
            return False
        if job.status != JOB_RUNNING:
            job.status, job.started_at = JOB_RUNNING, job.started_at or timezone.now()
            job.save(update_fields=["status", "started_at"])
        image = job.images.filter(processed=False).order_by("position").first()
        if image is None:
            _finish(job)
            return True
        outcome = _enrol_one(organization=job.organization, image=image)
        _record_outcome(job=job, image=image, outcome=outcome)
    return True


def enrolment_jobs_run(*, max_images: int | None = None, stop: threading.Event | None = None) -> int:
    """Work until no job waits (or `max_images` were taken, or `stop` is set); steps taken."""
    steps = 0
    while (max_images is None or steps < max_images) and not (stop is not None and stop.is_set()):
        if not enrolment_job_step(stop=stop):
            break
        steps += 1
    return steps


def _loop(poll: float, stop: threading.Event) -> None:
    while not stop.is_set():
        # A failed pass leaves the job where it was (each image commits on its own).
        one_pass(lambda: enrolment_jobs_run(stop=stop), logger=logger,
                 failure="enrolment job runner failed; retrying later")
        _wake.wait(poll)
        _wake.clear()


def start_enrolment_runner(*, poll: float | None = None, stop: threading.Event | None = None
                           ) -> threading.Thread | None:
    """Start the job runner thread once per process (none when the poll interval is 0)."""
    poll = settings.FACEPORTAL_ENROLMENT_JOB_POLL_SECONDS if poll is None else poll
    return start_once(name="enrolment-jobs", loop=_loop, period=poll, started=_started, stop=stop)

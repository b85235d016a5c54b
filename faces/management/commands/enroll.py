"""`manage.py enroll <folder> --org X`: enrol a folder-per-person photo collection, resumably.

Layout: `<folder>/<person name>/<image>`; folders starting with `_` or `.` are skipped. Each image
is hashed (SHA-256) and the hash is stored on its face, so a second run skips what is already in
the organisation and an interrupted run picks up where it stopped.
"""

from __future__ import annotations

import csv
import hashlib
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from rest_framework.exceptions import ValidationError
from tqdm import tqdm

from faceportal.errors import FacePortalError, Unprocessable
from faces.models import Face
from faces.serializers import person_name_validate
from faces.services import person_register
from organizations.models import Organization
from organizations.services import organization_create

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
BATCH = 8  # images of one person per registration call (under FACEPORTAL_MAX_IMAGES_PER_REQUEST)


@dataclass
class ImageReport:
    path: str
    person: str
    status: str  # enrolled | skipped | no_face | invalid
    detail: str = ""
    face_id: int | None = None


def collect(folder: Path) -> list[tuple[str, Path]]:
    """(person name, image path) for every image, people and files in name order."""
    found = []
    for person_dir in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(("_", "."))):
        for image in sorted(person_dir.iterdir()):
            if image.is_file() and image.suffix.lower() in IMAGE_SUFFIXES and not image.name.startswith("."):
                found.append((person_dir.name, image))
    return found


class Command(BaseCommand):
    help = "Enrol a folder of photos (one sub-folder per person) into an organisation; re-runs resume."

    def add_arguments(self, parser):
        parser.add_argument("folder", type=Path)
        parser.add_argument("--org", required=True, help="organisation slug")
        parser.add_argument("--create-org", action="store_true", help="create the organisation if it is missing")
        parser.add_argument("--report", type=Path, default=None, help="also write the per-image report as CSV")
        parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    def handle(self, *args, folder: Path, org: str, create_org: bool, report: Path | None, no_progress: bool,
               **options):
        if not folder.is_dir():
            raise CommandError(f"{folder} is not a folder.")
        organization = Organization.objects.filter(slug=org).first()
        if organization is None:
            if not create_org:
                raise CommandError(f"No organisation '{org}' (pass --create-org to create it).")
            try:
                organization = organization_create(slug=org)
            except FacePortalError as exc:
                raise CommandError(exc.message) from exc

        images = collect(folder)
        done = set(Face.objects.filter(organization=organization).exclude(content_hash="")
                   .values_list("content_hash", flat=True))
        reports: list[ImageReport] = []
        started = time.perf_counter()
        progress = tqdm(total=len(images), unit="img", disable=no_progress, file=sys.stderr, desc="enrol")
        pending: list[tuple[str, Path, bytes, str]] = []

        def flush() -> None:
            if pending:
                reports.extend(self._enrol_batch(organization, pending))
                progress.update(len(pending))
                pending.clear()

        for person, path in images:
            if pending and pending[0][0] != person:
                flush()
            data = path.read_bytes()
            digest = hashlib.sha256(data).hexdigest()
            if digest in done:
                reports.append(ImageReport(str(path), person, "skipped", "already enrolled"))
                progress.update(1)
                continue
            done.add(digest)  # the same file twice in the folder is enrolled once
            pending.append((person, path, data, digest))
            if len(pending) >= BATCH:
                flush()
        flush()
        progress.close()
        elapsed = time.perf_counter() - started

        for line in reports:
            suffix = f" face {line.face_id}" if line.face_id else ""
            detail = f" ({line.detail})" if line.detail else ""
            self.stdout.write(f"{line.status:8} {line.path}{suffix}{detail}")
        if report:
            with open(report, "w", newline="") as handle:
                writer = csv.writer(handle)
                writer.writerow(["path", "person", "status", "detail", "face_id"])
                for line in reports:
                    writer.writerow([line.path, line.person, line.status, line.detail, line.face_id or ""])
        counts = {status: sum(1 for r in reports if r.status == status)
                  for status in ("enrolled", "skipped", "no_face", "invalid")}
        rate = counts["enrolled"] / elapsed if elapsed > 0 else 0.0
        self.stdout.write(
            f"{organization.slug}: {counts['enrolled']} enrolled, {counts['skipped']} skipped, "
            f"{counts['no_face']} without a face, {counts['invalid']} invalid in {elapsed:.1f} s "
            f"({rate:.2f} faces/s)"
        )

    def _enrol_batch(self, organization: Organization, batch: list[tuple[str, Path, bytes, str]]) -> list[ImageReport]:
        person = batch[0][0]
        try:
            name = person_name_validate(person)
        except ValidationError as exc:  # a folder name no person may have (too long, control characters)
            return [ImageReport(str(path), person, "invalid", f"folder name: {'; '.join(exc.detail)}")
                    for _, path, _, _ in batch]
        try:
            result = person_register(organization=organization, name=name, images=[item[2] for item in batch],
                                     content_hashes=[item[3] for item in batch])
        except Unprocessable:
            return [ImageReport(str(path), person, "no_face", "no face detected") for _, path, _, _ in batch]
        except FacePortalError as exc:
            if len(batch) == 1:
                return [ImageReport(str(batch[0][1]), person, "invalid", exc.message)]
            # One bad file refuses the whole call: retry one by one so the report names it.
            return [report for item in batch for report in self._enrol_batch(organization, [item])]
        return [
            ImageReport(str(batch[o.index][1]), person, "enrolled" if o.accepted else "no_face",
                        "" if o.accepted else (o.reason or ""), o.face_id)
            for o in result.outcomes
        ]

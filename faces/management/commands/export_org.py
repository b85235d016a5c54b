"""`manage.py export_org SLUG FILE`: write an organisation's gallery file (docs/EXPORT.md)."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from faceportal.errors import FacePortalError
from faces.transfer import gallery_export
from organizations.models import Organization


class Command(BaseCommand):
    help = "Write an organisation's people, face crops and embeddings to a zip (the export route's file)."

    def add_arguments(self, parser):
        parser.add_argument("organization", help="the organisation's slug")
        parser.add_argument("file", help="the zip to write")

    def handle(self, *args, **options):
        organization = Organization.objects.filter(slug=options["organization"]).first()
        if organization is None:
            raise CommandError(f"No organisation '{options['organization']}'.")
        try:
            path = Path(options["file"])
            partial = path.with_name(path.name + ".partial")
            with partial.open("wb") as out:
                written = gallery_export(organization=organization, out=out)
            partial.replace(path)  # never a half-written file under the real name
        except (FacePortalError, OSError) as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"{organization.slug}: {written} bytes written to {path}")

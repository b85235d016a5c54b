"""`manage.py import_org SLUG FILE`: read a gallery file into an organisation (docs/EXPORT.md)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from faceportal.errors import FacePortalError
from faces.transfer import PersonImport, gallery_import
from organizations.models import Organization
from organizations.services import organization_create


class Command(BaseCommand):
    help = "Import a gallery zip (made by export_org or the export route) into an organisation."

    def add_arguments(self, parser):
        parser.add_argument("organization", help="the organisation's slug")
        parser.add_argument("file", help="the zip to read")
        parser.add_argument("--create", action="store_true", help="create the organisation when it does not exist")

    def handle(self, *args, **options):
        slug = options["organization"]
        organization = Organization.objects.filter(slug=slug).first()
        if organization is None:
            if not options["create"]:
                raise CommandError(f"No organisation '{slug}' (--create makes it).")
            try:
                organization = organization_create(slug=slug)
            except FacePortalError as exc:
                raise CommandError(exc.message) from exc

        def report(person: PersonImport) -> None:
            line = f"{person.status}: {person.name} (+{person.faces_added} faces, {person.faces_skipped} already there"
            if person.faces_unusable:
                line += f", {person.faces_unusable} crops without a face"
            line += ")" + (f" {person.code}: {person.reason}" if person.reason else "")
            self.stdout.write(line)

        try:
            with open(options["file"], "rb") as data:
                result = gallery_import(organization=organization, data=data, progress=report)
        except FacePortalError as exc:
            raise CommandError(f"{exc.code}: {exc.message}") from exc
        except OSError as exc:
            raise CommandError(str(exc)) from exc
        failed = sum(1 for person in result.people if person.status == "failed")
        how = "re-embedded from crops" if result.reembedded else "embeddings kept"
        self.stdout.write(f"{organization.slug}: {len(result.people)} people, {result.faces_added} faces added "
                          f"({how}), {failed} failed")
        if failed:
            raise CommandError(f"{failed} people could not be imported")

from django.core.management.base import BaseCommand, CommandError

from faceportal.errors import FacePortalError
from organizations.services import organization_create


class Command(BaseCommand):
    help = "Create an organization (tenant)."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--name", default=None)

    def handle(self, *args, slug, name, **options):
        try:
            organization = organization_create(slug=slug, name=name)
        except FacePortalError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(organization.slug)

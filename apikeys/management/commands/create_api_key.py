from django.core.management.base import BaseCommand, CommandError

from apikeys.services import api_key_issue
from faceportal.errors import FacePortalError
from organizations.selectors import organization_get


class Command(BaseCommand):
    help = "Issue an API key for an organization; prints the secret once."

    def add_arguments(self, parser):
        parser.add_argument("organization")
        parser.add_argument("--user", required=True)
        parser.add_argument("--name", required=True, help="api_key_name")

    def handle(self, *args, organization, user, name, **options):
        try:
            issued = api_key_issue(organization=organization_get(slug=organization), user=user, name=name)
        except FacePortalError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(issued.plaintext)

from django.core.management.base import BaseCommand

from faces.unknowns.sweep import purge_now


class Command(BaseCommand):
    help = ("Delete kept unknown faces older than their organisation's unknown_retention_days (and any over "
            "unknown_max_kept). The server does this on its own every FACEPORTAL_UNKNOWN_SWEEP_SECONDS.")

    def handle(self, *args, **options):
        deleted = purge_now()
        self.stdout.write(f"{deleted} expired unknown face{'s' if deleted != 1 else ''} purged")

from django.core.management.base import BaseCommand

from recognition.webhooks.delivery import deliver_due


class Command(BaseCommand):
    help = "Post the webhook deliveries that are due now (the server does this itself every few seconds)."

    def handle(self, *args, **options):
        attempted = total = deliver_due()
        while attempted and total < 10_000:  # a zero backoff could otherwise retry forever
            attempted = deliver_due()
            total += attempted
        self.stdout.write(f"{total} deliveries attempted")

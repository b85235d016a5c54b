from __future__ import annotations

from django.db.models import QuerySet

from organizations.models import Organization
from recognition.models import Webhook, WebhookDelivery

RECENT_DELIVERIES = 100


def webhook_list(*, organization: Organization) -> QuerySet[Webhook]:
    return Webhook.objects.filter(organization=organization).order_by("id")


def webhook_recent_deliveries(*, webhook: Webhook, limit: int = RECENT_DELIVERIES) -> list[WebhookDelivery]:
    """The newest deliveries first."""
    return list(WebhookDelivery.objects.filter(webhook=webhook).order_by("-id")[:limit])

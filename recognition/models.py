"""Recognition reads the galleries of faces/; its own tables are the webhooks an organisation
subscribes and their deliveries (docs/WEBHOOKS.md)."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from organizations.models import Organization

EVENT_FACE_RECOGNIZED = "face.recognized"
EVENT_FACE_UNKNOWN = "face.unknown"
EVENT_PERSON_CREATED = "person.created"
EVENT_PERSON_DELETED = "person.deleted"
EVENT_ENROLMENT_JOB_FINISHED = "enrolment_job.finished"
WEBHOOK_EVENTS = (EVENT_FACE_RECOGNIZED, EVENT_FACE_UNKNOWN, EVENT_PERSON_CREATED, EVENT_PERSON_DELETED,
                  EVENT_ENROLMENT_JOB_FINISHED)
MAX_WEBHOOK_URL_LENGTH = 2000
MAX_WEBHOOKS_PER_ORGANIZATION = 20


class Webhook(models.Model):
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="webhooks")
    url = models.CharField(max_length=MAX_WEBHOOK_URL_LENGTH)
    events = models.JSONField(default=list)  # a subset of WEBHOOK_EVENTS
    # Kept as given: it must sign every delivery, so it cannot be hashed like an API key. Shown
    # once, at creation; never logged or returned afterwards.
    secret = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"webhook {self.pk} of {self.organization_id}"


class WebhookDelivery(models.Model):
    """One event for one webhook: persisted before anything is sent, so a restart resumes it."""

    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"

    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(max_length=40)
    body = models.TextField()  # the exact JSON bytes signed and sent
    status = models.CharField(max_length=10, default=PENDING,
                              choices=[(PENDING, "pending"), (DELIVERED, "delivered"), (FAILED, "failed")])
    attempts = models.PositiveIntegerField(default=0)
    # When the runner may next try it: a retry's backoff, or a lease while one runner sends it.
    next_attempt_at = models.DateTimeField(default=timezone.now)
    last_status_code = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="webhook_delivery_due")]

    def __str__(self) -> str:
        return f"delivery {self.pk} ({self.event}, {self.status})"

"""Faces recognition decided `unknown`, kept per organisation when it asks (docs/UNKNOWN_FACES.md)."""

import numpy as np
from django.db import models
from django.utils import timezone

from apikeys.models import APIKey
from faces.index.base import vector_from_bytes
from organizations.models import Organization

SOURCE_REST = "rest"
SOURCE_WEBSOCKET = "websocket"


class UnknownFace(models.Model):
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="unknown_faces")
    model_name = models.CharField(max_length=40)
    embedding = models.BinaryField()  # float32, L2-normalised, as faces.Face
    crop = models.BinaryField()  # small JPEG around the face
    box = models.JSONField()  # {"x", "y", "w", "h"} in the image as sent
    detection_confidence = models.FloatField(default=0.0)
    quality = models.JSONField(default=dict)  # the enrolment gates' measures
    seen_at = models.DateTimeField(default=timezone.now)
    # Which key saw it; the name stays when the key is deleted.
    api_key = models.ForeignKey(APIKey, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    api_key_name = models.CharField(max_length=150, blank=True, default="")
    source = models.CharField(max_length=16, choices=[(SOURCE_REST, "REST"), (SOURCE_WEBSOCKET, "WebSocket")])

    class Meta:
        ordering = ["-seen_at", "-id"]
        indexes = [models.Index(fields=["organization", "-seen_at", "-id"], name="unknown_org_seen")]

    def __str__(self) -> str:
        return f"unknown face {self.pk} ({self.organization_id})"

    @property
    def vector(self) -> np.ndarray:
        return vector_from_bytes(self.embedding)


class UnknownState(models.Model):
    """Per-organisation change counter of kept unknowns: a cached grouping is valid for one version."""

    organization = models.OneToOneField(Organization, on_delete=models.CASCADE, related_name="unknown_state")
    version = models.BigIntegerField(default=0)


class SweepState(models.Model):
    """When a periodic job last ran, so a restart neither loses the schedule nor runs it twice."""

    name = models.CharField(max_length=64, unique=True)
    last_run_at = models.DateTimeField(null=True, blank=True)

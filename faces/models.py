import numpy as np
from django.db import models
from django.utils import timezone

from apikeys.models import APIKey
from faces.index.base import vector_from_bytes
from organizations.models import Organization

MAX_NAME_LENGTH = 200
MAX_EXTERNAL_ID_LENGTH = 200
MAX_METADATA_BYTES = 8192  # a person's metadata, as compact JSON


class Person(models.Model):
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="people")
    name = models.CharField(max_length=MAX_NAME_LENGTH)
    # The client's own id for this person (unique per organisation), and its free-form data.
    external_id = models.CharField(max_length=MAX_EXTERNAL_ID_LENGTH, null=True, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "name"], name="unique_person_name_per_org"),
            models.UniqueConstraint(fields=["organization", "external_id"],
                                    condition=models.Q(external_id__isnull=False),
                                    name="unique_person_external_id_per_org"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.organization.slug})"


class Face(models.Model):
    """One registered face. The database row is the source of truth; vector stores mirror it."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="faces")
    person = models.ForeignKey(Person, on_delete=models.CASCADE, related_name="faces")
    model_name = models.CharField(max_length=40)
    embedding = models.BinaryField()  # float32, L2-normalised, little-endian
    box = models.JSONField()  # {"x", "y", "w", "h"} in the source image
    detection_confidence = models.FloatField(default=0.0)
    crop = models.BinaryField(blank=True, default=b"")  # small JPEG around the face
    # SHA-256 of the source image file, when known: `manage.py enroll` skips images already enrolled.
    content_hash = models.CharField(max_length=64, blank=True, default="")
    # The engine's second model's embedding (float32, L2-normalised), read only for the few
    # candidates the cascade fuses (faces/matching.py), never kept in the vector index. Null until
    # computed: at registration, else from the crop on first need or by `manage.py vectors second`.
    second_embedding = models.BinaryField(null=True, blank=True)
    second_model_name = models.CharField(max_length=40, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["organization", "id"]),
            models.Index(fields=["organization", "content_hash"], name="face_org_content_hash"),
        ]

    def __str__(self) -> str:
        return f"face {self.pk} of {self.person_id}"

    @property
    def vector(self) -> np.ndarray:
        return vector_from_bytes(self.embedding)


class IndexState(models.Model):
    """Per-organisation change counter: workers compare it to their in-memory index before a search."""

    organization = models.OneToOneField(Organization, on_delete=models.CASCADE, related_name="index_state")
    version = models.BigIntegerField(default=0)


class EmbeddedVector(models.Model):
    """The embedded vector store's durable copy (the Atlas backend keeps its own in MongoDB)."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    face_id = models.BigIntegerField()
    person_id = models.BigIntegerField()
    vector = models.BinaryField()
    # IndexState.version of the write that stored it: other workers fetch only what is newer.
    version = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["organization", "face_id"], name="unique_vector_per_face")]
        indexes = [models.Index(fields=["organization", "version"], name="vector_org_version")]


# --- Unknown faces: faces recognition decided `unknown`, kept when an organisation asks ----------
# (docs/UNKNOWN_FACES.md)

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


# --- Bulk enrolment jobs: a zip of one folder per person, enrolled outside requests ---------------

JOB_QUEUED = "queued"
JOB_RUNNING = "running"
JOB_DONE = "done"
JOB_STATUSES = [(JOB_QUEUED, "Queued"), (JOB_RUNNING, "Running"), (JOB_DONE, "Done")]
JOB_ACTIVE = (JOB_QUEUED, JOB_RUNNING)


class EnrolmentJob(models.Model):
    """One uploaded archive; its images are rows of EnrolmentJobImage, so a restart resumes it."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="enrolment_jobs")
    status = models.CharField(max_length=16, choices=JOB_STATUSES, default=JOB_QUEUED)
    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0)
    faces_added = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            # One unfinished job per organisation: the database says so, not only the view.
            models.UniqueConstraint(fields=["organization"], condition=models.Q(status__in=JOB_ACTIVE),
                                    name="one_active_enrolment_job_per_org"),
        ]

    def __str__(self) -> str:
        return f"enrolment job {self.pk} ({self.organization_id})"

    @property
    def percent(self) -> int:
        return int(100 * self.done / self.total) if self.total else 100


class EnrolmentJobImage(models.Model):
    """One image of a job: its bytes until it is processed, then its outcome (as /register reports it)."""

    job = models.ForeignKey(EnrolmentJob, on_delete=models.CASCADE, related_name="images")
    position = models.PositiveIntegerField()
    path = models.CharField(max_length=500)  # inside the archive
    folder = models.CharField(max_length=255)  # the person's folder: a name, or ext:<external_id>
    data = models.BinaryField(default=b"")  # emptied once processed
    content_hash = models.CharField(max_length=64)
    processed = models.BooleanField(default=False)
    accepted = models.BooleanField(default=False)
    code = models.CharField(max_length=64, null=True, blank=True)
    reason = models.CharField(max_length=500, null=True, blank=True)
    face_id = models.BigIntegerField(null=True, blank=True)
    person_id = models.BigIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["job", "position"]
        constraints = [models.UniqueConstraint(fields=["job", "position"], name="unique_job_image_position")]
        indexes = [models.Index(fields=["job", "processed", "position"], name="job_image_pending")]

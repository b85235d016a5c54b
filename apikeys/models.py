from django.db import models
from django.db.models import Q
from django.utils import timezone

from organizations.models import Organization

# What a key may do: `recognize` (recognise, verify, the WebSocket), `enrol` (register people, add
# faces), `manage` (read and edit people and faces, the unknown-face inbox, and the rest).
SCOPE_RECOGNIZE = "recognize"
SCOPE_ENROL = "enrol"
SCOPE_MANAGE = "manage"
SCOPES = (SCOPE_RECOGNIZE, SCOPE_ENROL, SCOPE_MANAGE)
MAX_ROTATION_GRACE_SECONDS = 24 * 3600


def all_scopes() -> list[str]:
    return list(SCOPES)


class APIKey(models.Model):
    """An organisation's API key. Only a keyed hash of the secret is stored; the prefix is public."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="api_keys")
    user = models.CharField(max_length=150)
    name = models.CharField("api_key_name", max_length=150)
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    secret_hash = models.CharField(max_length=64, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)
    scopes = models.JSONField(default=all_scopes, help_text="What the key may do: recognize, enrol, manage.")
    expires_at = models.DateTimeField(null=True, blank=True, help_text="After this the key is refused; empty: never.")
    # The secret replaced by the last rotation, still accepted until `previous_valid_until`.
    previous_prefix = models.CharField(max_length=16, null=True, blank=True, unique=True, editable=False)
    previous_secret_hash = models.CharField(max_length=64, blank=True, default="", editable=False)
    previous_valid_until = models.DateTimeField(null=True, blank=True, editable=False)
    rotated_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "name"],
                condition=Q(revoked_at__isnull=True),
                name="unique_active_key_name_per_org",
            )
        ]

    def __str__(self) -> str:
        return f"{self.organization.slug}/{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    @property
    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()

from django.db import models
from django.db.models import Q

from organizations.models import Organization


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

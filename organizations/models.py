from django.core.validators import RegexValidator
from django.db import models

SLUG_PATTERN = r"^[a-z0-9_-]{1,64}$"
SLUG_MAX_LENGTH = 64


class Organization(models.Model):
    """A tenant. Its slug is what routes call `{organization}`."""

    slug = models.CharField(
        max_length=SLUG_MAX_LENGTH,
        unique=True,
        validators=[RegexValidator(SLUG_PATTERN, "Use 1-64 characters from a-z, 0-9, '-' and '_'.")],
    )
    name = models.CharField(max_length=200)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug

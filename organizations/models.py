from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models

SLUG_PATTERN = r"^[a-z0-9_-]{1,64}\Z"  # \Z, not $: "$" also matches before a trailing newline
SLUG_MAX_LENGTH = 64
# The chance that a search for someone not enrolled names somebody; 1 in 1,000 by default
# (docs/OPEN_SET.md). The server turns it into a similarity threshold for the current gallery.
DEFAULT_FALSE_MATCH_RATE = 0.001
# Kept unknown faces (docs/UNKNOWN_FACES.md): off until staff turn it on.
DEFAULT_UNKNOWN_RETENTION_DAYS = 30
DEFAULT_UNKNOWN_MAX_KEPT = 10_000
MAX_UNKNOWN_RETENTION_DAYS = 3650
MAX_UNKNOWN_MAX_KEPT = 100_000


class Organization(models.Model):
    """A tenant. Its slug is what routes call `{organization}`."""

    slug = models.CharField(
        max_length=SLUG_MAX_LENGTH,
        unique=True,
        validators=[RegexValidator(SLUG_PATTERN, "Use 1-64 characters from a-z, 0-9, '-' and '_'.")],
    )
    name = models.CharField(max_length=200)
    is_active = models.BooleanField(default=True)
    false_match_rate = models.FloatField(
        default=DEFAULT_FALSE_MATCH_RATE,
        validators=[MinValueValidator(1e-6), MaxValueValidator(0.5)],
        help_text="Chance that a search for a stranger returns a match (0.001 = 1 in 1,000). The match "
        "threshold is derived from it and the number of people enrolled; a request's 'threshold' overrides it.",
    )
    keep_unknown_faces = models.BooleanField(
        default=False,
        help_text="Keep faces that recognition decides are unknown (crop, embedding, when, which key), "
        "so staff can group and name them. Off by default.",
    )
    unknown_retention_days = models.PositiveIntegerField(
        default=DEFAULT_UNKNOWN_RETENTION_DAYS,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_UNKNOWN_RETENTION_DAYS)],
        help_text="Kept unknown faces older than this many days are purged.",
    )
    unknown_max_kept = models.PositiveIntegerField(
        default=DEFAULT_UNKNOWN_MAX_KEPT,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_UNKNOWN_MAX_KEPT)],
        help_text="At most this many unknown faces are kept; the newest win.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug


class DailyRequestCount(models.Model):
    """API requests per organisation per UTC day, for the staff overview (one upserted row a day)."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    count = models.PositiveBigIntegerField(default=0)

    class Meta:
        ordering = ["-day"]
        constraints = [models.UniqueConstraint(fields=["organization", "day"], name="unique_request_count_per_day")]

    def __str__(self) -> str:
        return f"{self.organization_id} {self.day}: {self.count}"

from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models

SLUG_PATTERN = r"^[a-z0-9_-]{1,64}\Z"  # \Z, not $: "$" also matches before a trailing newline
SLUG_MAX_LENGTH = 64
# The chance that a search for someone not enrolled names somebody; 1 in 1,000 by default
# (docs/OPEN_SET.md). The server turns it into a similarity threshold for the current gallery.
DEFAULT_FALSE_MATCH_RATE = 0.001


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
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug

from django.db import models

from organizations.models import Organization


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

"""Per-organisation request counts per day: one upsert per API request, read by the staff overview."""

from __future__ import annotations

import logging
from datetime import date, timedelta

from django.db import Error as DatabaseError
from django.db import connection
from django.utils import timezone

from organizations.models import DailyRequestCount

logger = logging.getLogger(__name__)


def request_count_increment(*, organization_id: int) -> None:
    """Count one request; never fails the request it counts (the database may be what just failed)."""
    table = DailyRequestCount._meta.db_table
    try:
        with connection.cursor() as cursor:
            # One statement, no read-modify-write race between workers (PostgreSQL and SQLite).
            cursor.execute(
                f"INSERT INTO {table} (organization_id, day, count) VALUES (%s, %s, 1) "  # noqa: S608 - table name is ours
                f"ON CONFLICT (organization_id, day) DO UPDATE SET count = {table}.count + 1",
                [organization_id, timezone.now().date()],
            )
    except DatabaseError:
        logger.warning("could not count a request", extra={"organization_id": organization_id})


def requests_per_day(*, organization_id: int, days: int = 14) -> list[tuple[date, int]]:
    """The last `days` days, oldest first, zero-filled."""
    today = timezone.now().date()
    first = today - timedelta(days=days - 1)
    counts = dict(
        DailyRequestCount.objects.filter(organization_id=organization_id, day__gte=first).values_list("day", "count")
    )
    return [(first + timedelta(days=offset), counts.get(first + timedelta(days=offset), 0)) for offset in range(days)]

"""Purging expired unknown faces on a schedule, outside any request.

The server process runs `start_sweeper` (faceportal.asgi): a daemon thread that wakes every few
minutes and runs the purge when its last run, recorded in the database (SweepState), is older
than FACEPORTAL_UNKNOWN_SWEEP_SECONDS. The schedule lives in the table, not in memory, so a
restart neither skips a due purge nor repeats one, and several processes never purge at once
(the row is claimed with SKIP LOCKED). `manage.py purge_unknown_faces` runs it by hand or from cron.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from faceportal.background import one_pass, start_once
from faces.models import SweepState
from faces.unknowns.services import unknown_faces_purge

logger = logging.getLogger(__name__)

PURGE = "purge_unknown_faces"
MAX_NAP = 300.0  # seconds between looks at the schedule, at most

_started = threading.Event()


def purge_if_due(*, interval: float, now: datetime | None = None) -> int | None:
    """Purge when the last run is `interval` seconds old or more; faces removed, or None when not due
    (or another process is purging right now)."""
    now = now or timezone.now()
    SweepState.objects.get_or_create(name=PURGE)
    with transaction.atomic():
        state = SweepState.objects.select_for_update(skip_locked=True).filter(name=PURGE).first()
        if state is None:
            return None  # another process holds it
        if state.last_run_at is not None and now - state.last_run_at < timedelta(seconds=interval):
            return None
        deleted = unknown_faces_purge(now=now)
        state.last_run_at = now
        state.save(update_fields=["last_run_at"])
    return deleted


def purge_now(*, now: datetime | None = None) -> int:
    """Purge at once (the management command), recording the run."""
    now = now or timezone.now()
    with transaction.atomic():
        state, _ = SweepState.objects.select_for_update().get_or_create(name=PURGE)
        deleted = unknown_faces_purge(now=now)
        state.last_run_at = now
        state.save(update_fields=["last_run_at"])
    return deleted


def _loop(interval: float, stop: threading.Event) -> None:
    nap = min(MAX_NAP, max(0.5, interval / 4))
    while not stop.is_set():
        one_pass(lambda: purge_if_due(interval=interval), logger=logger,
                 failure="unknown-face purge failed; retrying later")
        stop.wait(nap)


def start_sweeper(*, interval: float | None = None, stop: threading.Event | None = None) -> threading.Thread | None:
    """Start the purge thread once per process (none when the interval is 0)."""
    interval = settings.FACEPORTAL_UNKNOWN_SWEEP_SECONDS if interval is None else interval
    return start_once(name="unknown-face-purge", loop=_loop, period=interval, started=_started, stop=stop)

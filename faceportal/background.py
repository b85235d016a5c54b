"""Work a server process does on its own, outside requests: one daemon thread per job and process
(the purge of unknown faces, webhook deliveries, enrolment jobs), whose state lives in the database
so that a restart resumes it."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from django.db import close_old_connections, connection


def one_pass(step: Callable[[], Any], *, logger: logging.Logger, failure: str) -> Any:
    """Run one pass of a background job on fresh database connections. A failure is logged and
    the pass gives None: the database may be away for a while, and the next pass tries again."""
    try:
        close_old_connections()
        return step()
    except Exception:
        logger.exception(failure)
        return None
    finally:
        connection.close()


def start_once(*, name: str, loop: Callable[[float, threading.Event], None], period: float,
               started: threading.Event, stop: threading.Event | None = None) -> threading.Thread | None:
    """Start `loop(period, stop)` on a daemon thread, once per process (a test passes its own `stop`
    and may start more); none when the period is 0 (the job is switched off in this process)."""
    if not period or (stop is None and started.is_set()):
        return None
    if stop is None:
        started.set()
    thread = threading.Thread(target=loop, args=(period, stop or threading.Event()), name=name, daemon=True)
    thread.start()
    return thread
